//! How much a broker's pipeline may hold: events (`limits.pipeline_depth`) and bytes
//! (`limits.pipeline_bytes`), each a semaphore whose permits a request holds from intake until
//! the broker's acknowledgement.
//!
//! The event count alone let memory grow with the event size (65,536 events of 1 KiB are 64 MiB
//! of payload before any overhead); the byte bound keeps the peak near the same figure whatever
//! the events weigh.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The two limits of one pipeline.
pub(super) struct Bound {
    events: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    depth: usize,
    max_bytes: usize,
}

/// A request's share of the pipeline, given back when it is dropped.
pub(super) struct Share {
    _events: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// Which limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exhausted {
    /// The pipeline holds this many events (`limits.pipeline_depth`) already.
    Events(usize),
    /// The request's events would take the bytes held past this many (`limits.pipeline_bytes`).
    Bytes(usize),
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Events(depth) => write!(
                f,
                "it holds {depth} events queued or awaiting acknowledgement (limits.pipeline_depth)"
            ),
            Exhausted::Bytes(max) => write!(
                f,
                "this request's events would take it past {max} bytes queued or awaiting \
                 acknowledgement (limits.pipeline_bytes)"
            ),
        }
    }
}

/// Permits of one request: more than `u32::MAX` at once is never asked for.
fn permits(n: usize, capacity: usize) -> u32 {
    u32::try_from(n.min(capacity)).unwrap_or(u32::MAX)
}

impl Bound {
    /// A bound of `depth` events and `max_bytes` bytes.
    pub(super) fn new(depth: usize, max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            events: Arc::new(Semaphore::new(depth)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            depth,
            max_bytes,
        }
    }

    /// Takes room for `events` events weighing `bytes`, or refuses at once. A request heavier
    /// than the whole byte bound takes all of it, so it waits for an empty pipeline rather than
    /// being refused forever.
    pub(super) fn try_take(&self, events: usize, bytes: usize) -> Result<Share, Exhausted> {
        let events = self
            .events
            .clone()
            .try_acquire_many_owned(permits(events, self.depth))
            .map_err(|_| Exhausted::Events(self.depth))?;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(permits(bytes, self.max_bytes))
            .map_err(|_| Exhausted::Bytes(self.max_bytes))?;
        Ok(Share {
            _events: events,
            _bytes: bytes,
        })
    }

    /// Events held now.
    pub(super) fn events_held(&self) -> usize {
        self.depth - self.events.available_permits()
    }

    /// Bytes held now.
    pub(super) fn bytes_held(&self) -> usize {
        self.max_bytes - self.bytes.available_permits()
    }

    /// Waits until nothing is held.
    pub(super) async fn settled(&self) {
        let all = permits(self.depth, self.depth);
        let _all_free = self.events.acquire_many(all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_limit_refuses_and_a_dropped_share_frees_both() {
        let bound = Bound::new(3, 100);
        let first = bound.try_take(2, 60).unwrap();
        assert_eq!((bound.events_held(), bound.bytes_held()), (2, 60));
        assert_eq!(bound.try_take(1, 41).err(), Some(Exhausted::Bytes(100)));
        assert_eq!(bound.try_take(2, 1).err(), Some(Exhausted::Events(3)));
        assert_eq!(
            (bound.events_held(), bound.bytes_held()),
            (2, 60),
            "a refusal keeps nothing"
        );
        let second = bound.try_take(1, 40).unwrap();
        drop(first);
        assert_eq!((bound.events_held(), bound.bytes_held()), (1, 40));
        drop(second);
        assert_eq!((bound.events_held(), bound.bytes_held()), (0, 0));
    }

    #[test]
    fn a_request_heavier_than_the_bound_fits_only_an_empty_pipeline() {
        let bound = Bound::new(10, 100);
        let small = bound.try_take(1, 1).unwrap();
        assert_eq!(bound.try_take(1, 500).err(), Some(Exhausted::Bytes(100)));
        drop(small);
        let heavy = bound.try_take(1, 500).unwrap();
        assert_eq!(bound.bytes_held(), 100);
        drop(heavy);
    }
}
