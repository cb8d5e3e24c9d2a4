//! The forwarder: produces the spool to the broker in order, one chunk at a time, retrying
//! without end, and releases each chunk once the broker acknowledged all of it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{record, Spool};
use crate::backend::{Backend, Outbound, PublishError, PublishResult};

/// Events sent to the broker at once.
const CHUNK: usize = 512;
/// First wait after a failed forward; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Tries an event the broker refuses outright (not "unavailable") gets before it is dropped, so
/// one poisoned event cannot hold the spool for ever.
const REFUSALS: u32 = 5;
/// Extra time past `ack_timeout` before a send counts as timed out here.
const ACK_GRACE: Duration = Duration::from_secs(5);
/// How often an idle forwarder refreshes the spool's gauges.
const IDLE_TICK: Duration = Duration::from_secs(1);

pub(super) async fn run(
    spool: Arc<Spool>,
    backend: Arc<dyn Backend>,
    ack_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let broker = spool.broker.clone();
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let log = spool.log.clone();
        let head = log.head();
        let entries = match tokio::task::spawn_blocking(move || log.read(head, CHUNK)).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                tracing::error!(broker, error = %e, "spool: reading the spool failed");
                spool.failed(e.to_string());
                pause(&mut stop, &mut backoff).await;
                continue;
            }
            Err(e) => {
                tracing::error!(broker, error = %e, "spool: the reader panicked");
                return;
            }
        };
        let Some(next) = entries.last().map(|e| e.next) else {
            spool.oldest_ms.store(0, Ordering::Release);
            spool.update_gauges();
            tokio::select! {
                _ = spool.appended.notified() => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
            }
            continue;
        };
        let count = entries.len() as u64;
        let mut events = Vec::with_capacity(entries.len());
        for entry in &entries {
            match record::decode(&entry.payload) {
                Ok((at, outbound)) => {
                    if events.is_empty() {
                        spool.oldest_ms.store(at.max(1), Ordering::Release);
                    }
                    events.push(outbound);
                }
                Err(e) => {
                    tracing::error!(broker, error = %e, "spool: dropping a record that cannot be read");
                    spool.meters.dropped.increment(1);
                }
            }
        }
        drop(entries);
        spool.update_gauges();
        if !forward(&spool, &*backend, events, ack_timeout, &mut stop).await {
            return;
        }
        backoff = MIN_BACKOFF;
        let log = spool.log.clone();
        match tokio::task::spawn_blocking(move || log.release(next, count)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(broker, error = %e, "spool: freeing forwarded events failed")
            }
            Err(e) => tracing::error!(broker, error = %e, "spool: freeing panicked"),
        }
        spool.held.fetch_sub(count, Ordering::AcqRel);
        spool.meters.forwarded.increment(count);
        *spool.last_error.lock().expect("spool lock") = None;
        spool.update_gauges();
    }
}

/// Sends `events` until the broker acknowledged each (or refused it [`REFUSALS`] times);
/// returns false when told to stop first.
async fn forward(
    spool: &Spool,
    backend: &dyn Backend,
    mut events: Vec<Outbound>,
    ack_timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let broker = spool.broker.as_str();
    let mut refusals = vec![0u32; events.len()];
    let mut backoff = MIN_BACKOFF;
    while !events.is_empty() {
        if *stop.borrow() {
            return false;
        }
        let acks = backend.send(events.clone()).await;
        let n = events.len();
        let results: Vec<PublishResult> =
            match tokio::time::timeout(ack_timeout + ACK_GRACE, acks).await {
                Ok(results) if results.len() == n => results,
                Ok(_) => vec![Err(PublishError::Rejected("result count mismatch".into())); n],
                Err(_) => vec![Err(PublishError::Timeout(ack_timeout)); n],
            };
        let mut again = Vec::new();
        let mut again_refusals = Vec::new();
        let mut first_error = None;
        for ((event, result), mut refused) in events.into_iter().zip(results).zip(refusals) {
            let Err(e) = result else { continue };
            if matches!(e, PublishError::Rejected(_) | PublishError::InvalidTopic(_)) {
                refused += 1;
                if refused >= REFUSALS {
                    tracing::error!(broker, id = %event.event.id, topic = %event.topic, error = %e, "spool: dropping an event the broker refused {REFUSALS} times");
                    spool.meters.dropped.increment(1);
                    continue;
                }
            }
            first_error.get_or_insert_with(|| e.to_string());
            again.push(event);
            again_refusals.push(refused);
        }
        events = again;
        refusals = again_refusals;
        if let Some(error) = first_error {
            tracing::debug!(
                broker,
                error,
                waiting = events.len(),
                "spool: forward failed; retrying"
            );
            spool.failed(error);
            pause(stop, &mut backoff).await;
        }
    }
    true
}

/// Waits `backoff` (or until told to stop), then doubles it.
async fn pause(stop: &mut watch::Receiver<bool>, backoff: &mut Duration) {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = stop.changed() => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

impl Spool {
    fn failed(&self, error: String) {
        *self.last_error.lock().expect("spool lock") = Some(error);
    }
}
