//! Per-lane order across give-backs: an event given back to the broker undelivered (the
//! subscription paused or stopped, a retry interrupted, a dead-letter publish failed) must be
//! delivered before any later event of its ordering lane, whatever order the broker hands them
//! out again in. JetStream, for one, redelivers in the order of its naks, and a nak can reach it
//! after those of later events.
//!
//! The guard remembers, per lane, the ids given back, in lane order. An event of a lane that
//! owes something is admitted only when it is the first one owed; any other is refused, owed in
//! its turn behind those, and goes back to the broker, to come again after the owed one. (Refused
//! events come back in whatever order their naks reach the broker; owing them keeps the lane's
//! order among them too.) An owed event that does not come back
//! within [`OrderGuard::wait`] of the consumer (re)starting, or of the previous owed event's
//! delivery, is taken as gone (another member of the group delivered it, or the broker dropped
//! it) so that its lane is not held forever.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a lane waits for an event it owes before taking it as gone: JetStream's ack wait,
/// the longest a given-back event stays away when its nak was lost.
pub const OWED_WAIT: Duration = Duration::from_secs(30);

/// Lanes kept before those whose wait ran out are swept.
const SWEEP_ABOVE: usize = 1024;

/// What one lane owes.
#[derive(Debug)]
struct Owed {
    /// Event ids given back, in the lane's order.
    ids: VecDeque<String>,
    /// Since when the first of `ids` is awaited.
    since: Instant,
}

/// The give-backs of one subscription, kept across its consumer's restarts.
#[derive(Debug)]
pub struct OrderGuard {
    lanes: Mutex<HashMap<String, Owed>>,
    wait: Duration,
}

impl Default for OrderGuard {
    fn default() -> Self {
        Self::new(OWED_WAIT)
    }
}

/// Whether an event may be delivered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Nothing earlier of its lane is owed.
    Admitted,
    /// An earlier event of its lane was given back and has not come again: give this one back.
    Refused,
}

impl OrderGuard {
    /// A guard that waits `wait` for an owed event.
    pub fn new(wait: Duration) -> Self {
        Self {
            lanes: Mutex::default(),
            wait,
        }
    }

    /// How long a lane waits for an owed event.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owed>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether event `id` of `lane` may be delivered; an admitted owed event is no longer owed.
    pub fn admit(&self, lane: &str, id: &str) -> Admission {
        let mut lanes = self.lock();
        let Some(owed) = lanes.get_mut(lane) else {
            return Admission::Admitted;
        };
        let now = Instant::now();
        loop {
            match owed.ids.front() {
                None => {
                    lanes.remove(lane);
                    return Admission::Admitted;
                }
                Some(first) if first == id => {
                    owed.ids.pop_front();
                    owed.since = now;
                    if owed.ids.is_empty() {
                        lanes.remove(lane);
                    }
                    return Admission::Admitted;
                }
                Some(first) if now.duration_since(owed.since) >= self.wait => {
                    tracing::warn!(
                        lane,
                        id = %first,
                        waited = ?self.wait,
                        "an event given back did not come again; its lane goes on without it"
                    );
                    owed.ids.pop_front();
                    owed.since = now;
                }
                Some(_) => {
                    // A refused event comes again later, perhaps after events of its lane that
                    // follow it: it is owed, in the order the lane first offered it.
                    if !owed.ids.iter().any(|owed| owed == id) {
                        owed.ids.push_back(id.to_string());
                    }
                    return Admission::Refused;
                }
            }
        }
    }

    /// Records that event `id` of `lane` went back to the broker undelivered.
    pub fn owe(&self, lane: &str, id: &str) {
        let mut lanes = self.lock();
        let now = Instant::now();
        if lanes.len() > SWEEP_ABOVE {
            lanes.retain(|_, owed| now.duration_since(owed.since) < self.wait);
        }
        let owed = lanes.entry(lane.to_string()).or_insert_with(|| Owed {
            ids: VecDeque::new(),
            since: now,
        });
        if !owed.ids.iter().any(|owed| owed == id) {
            owed.ids.push_back(id.to_string());
        }
    }

    /// The consumer (re)started: what was given back can come now, so every wait starts again.
    pub fn restart(&self) {
        let now = Instant::now();
        for owed in self.lock().values_mut() {
            owed.since = now;
        }
    }

    /// Events owed, over all lanes.
    pub fn owed(&self) -> usize {
        self.lock().values().map(|owed| owed.ids.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::{Admission::*, OrderGuard};
    use std::time::Duration;

    #[test]
    fn a_lane_that_owes_nothing_admits_everything() {
        let guard = OrderGuard::default();
        assert_eq!(guard.admit("k:a", "1"), Admitted);
        assert_eq!(guard.admit("k:a", "2"), Admitted);
    }

    #[test]
    fn owed_events_come_first_and_in_their_order() {
        let guard = OrderGuard::default();
        for id in ["4", "5", "6"] {
            guard.owe("k:a", id);
        }
        assert_eq!(guard.admit("k:a", "5"), Refused, "4 is owed before it");
        assert_eq!(guard.admit("k:a", "11"), Refused, "a later event waits too");
        assert_eq!(guard.admit("k:b", "1"), Admitted, "other lanes go on");
        assert_eq!(guard.admit("k:a", "4"), Admitted);
        assert_eq!(guard.admit("k:a", "6"), Refused);
        assert_eq!(guard.admit("k:a", "5"), Admitted);
        assert_eq!(guard.admit("k:a", "6"), Admitted);
        assert_eq!(
            guard.owed(),
            1,
            "11, refused while 4 was owed, waits its turn"
        );
        assert_eq!(guard.admit("k:a", "11"), Admitted);
        assert_eq!(guard.owed(), 0);
    }

    #[test]
    fn refused_events_keep_their_order_whatever_order_they_come_again_in() {
        let guard = OrderGuard::default();
        guard.owe("k:a", "4");
        for id in ["5", "6", "7"] {
            assert_eq!(guard.admit("k:a", id), Refused, "{id} waits for 4");
        }
        assert_eq!(guard.admit("k:a", "4"), Admitted);
        assert_eq!(guard.admit("k:a", "7"), Refused, "7 came again first");
        assert_eq!(guard.admit("k:a", "6"), Refused);
        assert_eq!(guard.admit("k:a", "5"), Admitted);
        assert_eq!(guard.admit("k:a", "7"), Refused);
        assert_eq!(guard.admit("k:a", "6"), Admitted);
        assert_eq!(guard.admit("k:a", "7"), Admitted);
        assert_eq!(guard.owed(), 0);
    }

    #[test]
    fn giving_back_twice_owes_once() {
        let guard = OrderGuard::default();
        guard.owe("k:a", "4");
        guard.owe("k:a", "4");
        assert_eq!(guard.owed(), 1);
    }

    #[test]
    fn an_owed_event_that_never_comes_again_stops_holding_its_lane() {
        let guard = OrderGuard::new(Duration::ZERO);
        guard.owe("k:a", "4");
        guard.owe("k:a", "5");
        assert_eq!(
            guard.admit("k:a", "9"),
            Admitted,
            "4 and 5 are taken as gone"
        );
        assert_eq!(guard.owed(), 0);
    }

    #[test]
    fn the_wait_is_for_the_first_owed_event_only() {
        let guard = OrderGuard::new(Duration::from_secs(3600));
        guard.owe("k:a", "4");
        guard.restart();
        assert_eq!(guard.admit("k:a", "5"), Refused);
        assert_eq!(
            guard.owed(),
            2,
            "4 is still awaited, and 5 is owed behind it"
        );
    }
}
