//! The batcher task: groups submissions into batches, sends them to the backend one after the
//! other (so order holds), and lets up to `max_in_flight_batches` await their acks at once.
//! With a spool, a batch goes to the spool instead while it is busy, and the events of a live
//! batch that the broker could not take (unavailable, or no acknowledgement in time) follow it
//! there.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::bound::{Bound, Share};
use super::meters::{BrokerMeters, Flush};
use super::Submission;
use crate::backend::{Acks, Backend, Outbound, Position, PublishError, PublishResult};
use crate::config::PipelineConfig;
use crate::spool::Spool;

/// Extra time the pipeline gives a backend past `ack_timeout` before answering 504 itself.
const ACK_GRACE: Duration = Duration::from_secs(5);

pub(super) async fn run(
    meters: Arc<BrokerMeters>,
    mut queue: mpsc::UnboundedReceiver<Submission>,
    backend: Arc<dyn Backend>,
    config: PipelineConfig,
    bound: Arc<Bound>,
    spool: Option<Arc<Spool>>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight_batches));
    let mut carried: Option<Submission> = None;
    // The previous batch's completion, when batches must complete in order.
    let mut order: Option<oneshot::Receiver<()>> = None;
    loop {
        let first = match carried.take() {
            Some(s) => s,
            None => match queue.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        let mut count = first.events.len();
        let mut bytes = first.weight;
        let mut batch = vec![first];
        let deadline = Instant::now() + config.linger;
        let reason = loop {
            if count >= config.max_batch_events {
                break Flush::Full;
            }
            if bytes >= config.max_batch_bytes {
                break Flush::Bytes;
            }
            let next = match queue.try_recv() {
                Ok(s) => s,
                Err(TryRecvError::Disconnected) => break Flush::Idle,
                Err(TryRecvError::Empty) if config.linger.is_zero() => break Flush::Idle,
                Err(TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(s)) => s,
                        Ok(None) => break Flush::Idle,
                        Err(_) => break Flush::Linger,
                    }
                }
            };
            if count + next.events.len() > config.max_batch_events {
                carried = Some(next);
                break Flush::Full;
            }
            count += next.events.len();
            bytes += next.weight;
            batch.push(next);
        };
        meters.flushed(reason, count);
        let mut events = Vec::with_capacity(count);
        let mut waiters = Vec::with_capacity(batch.len());
        for submission in batch {
            waiters.push((submission.reply, submission.events.len(), submission.share));
            events.extend(submission.events);
        }
        let span = tracing::debug_span!(
            "batch_flush",
            broker = meters.broker(),
            events = count,
            reason = reason.label()
        );
        let done = Done {
            meters: meters.clone(),
            bound: bound.clone(),
            waiters,
        };
        let Some(spool) = &spool else {
            let slot = in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the in-flight semaphore is never closed");
            let mut acks = backend.send(events).instrument(span.clone()).await;
            // A broker that acknowledges as it takes the batch (the memory broker) is answered
            // here, without a task per batch.
            if let Poll::Ready(results) = futures::poll!(&mut acks) {
                let results = counted(results, count, done.meters.broker());
                done.answer(results);
                drop(slot);
                continue;
            }
            let ack_timeout = config.ack_timeout;
            tokio::spawn(
                async move {
                    let results =
                        acknowledged(acks, count, ack_timeout, done.meters.broker()).await;
                    done.answer(results);
                    drop(slot);
                }
                .instrument(span),
            );
            continue;
        };
        // With a spool, batches complete in the order they were flushed, so that what fails
        // live is spooled in order, ahead of everything flushed after it.
        let previous = order.take();
        let (finished, next) = oneshot::channel::<()>();
        order = Some(next);
        let spool = spool.clone();
        if spool.busy() {
            let pending = spool.pending();
            tokio::spawn(
                async move {
                    if let Some(previous) = previous {
                        let _ = previous.await;
                    }
                    let results = spooled(&spool, &events).await;
                    drop(pending);
                    let _ = finished.send(());
                    done.answer(results);
                }
                .instrument(span),
            );
            continue;
        }
        let slot = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        let copies = events.clone();
        let acks = backend.send(events).instrument(span.clone()).await;
        let ack_timeout = config.ack_timeout;
        tokio::spawn(
            async move {
                let mut results =
                    acknowledged(acks, count, ack_timeout, done.meters.broker()).await;
                drop(slot);
                let retry: Vec<usize> = (0..count)
                    .filter(|&i| {
                        matches!(
                            results[i],
                            Err(PublishError::Unavailable(_) | PublishError::Timeout(_))
                        )
                    })
                    .collect();
                let pending = (!retry.is_empty()).then(|| spool.pending());
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                if pending.is_some() {
                    let failed: Vec<Outbound> = copies
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| retry.binary_search(i).is_ok())
                        .map(|(_, o)| o)
                        .collect();
                    for (i, result) in retry.into_iter().zip(spooled(&spool, &failed).await) {
                        results[i] = result;
                    }
                }
                drop(pending);
                let _ = finished.send(());
                done.answer(results);
            }
            .instrument(span),
        );
    }
}

/// Where a batch's results go.
struct Done {
    meters: Arc<BrokerMeters>,
    bound: Arc<Bound>,
    waiters: Vec<Waiter>,
}

/// A submission's reply channel, its event count and its share of the bound.
type Waiter = (Option<oneshot::Sender<Vec<PublishResult>>>, usize, Share);

impl Done {
    /// Counts the results and hands each submission its own, in order.
    fn answer(self, results: Vec<PublishResult>) {
        self.meters.outcomes(&results);
        let mut results = results.into_iter();
        for (reply, n, share) in self.waiters {
            let mine: Vec<PublishResult> = results.by_ref().take(n).collect();
            if let Some(reply) = reply {
                let _ = reply.send(mine);
            }
            drop(share);
        }
        self.meters.held(&self.bound);
    }
}

/// The broker's results for a batch of `count` events, or a timeout for each.
async fn acknowledged(
    acks: Acks,
    count: usize,
    ack_timeout: Duration,
    broker: &str,
) -> Vec<PublishResult> {
    match tokio::time::timeout(ack_timeout + ACK_GRACE, acks).await {
        Ok(results) => counted(results, count, broker),
        Err(_) => vec![Err(PublishError::Timeout(ack_timeout)); count],
    }
}

/// `results` if the backend answered each of the `count` events, else an internal error for
/// each.
fn counted(results: Vec<PublishResult>, count: usize, broker: &str) -> Vec<PublishResult> {
    if results.len() == count {
        return results;
    }
    tracing::error!(%broker, expected = count, got = results.len(), "backend returned the wrong number of results");
    vec![
        Err(PublishError::Rejected(
            "internal error: result count mismatch".into()
        ));
        count
    ]
}

/// Appends `events` to the spool: each is spooled, or each refused with why.
async fn spooled(spool: &Spool, events: &[Outbound]) -> Vec<PublishResult> {
    let result = match spool.append(events).await {
        Ok(()) => Ok(Position {
            spooled: true,
            ..Position::default()
        }),
        Err(reason) => Err(PublishError::SpoolRefused(reason)),
    };
    vec![result; events.len()]
}
