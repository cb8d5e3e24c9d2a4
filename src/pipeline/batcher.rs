//! The batcher task: groups submissions into batches, sends them to the backend one after the
//! other (so order holds), and lets up to `max_in_flight_batches` await their acks at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::bound::Bound;
use super::meters::{BrokerMeters, Flush};
use super::Submission;
use crate::backend::{Backend, PublishError, PublishResult};
use crate::config::PipelineConfig;

/// Extra time the pipeline gives a backend past `ack_timeout` before answering 504 itself.
const ACK_GRACE: Duration = Duration::from_secs(5);

pub(super) async fn run(
    meters: Arc<BrokerMeters>,
    mut queue: mpsc::UnboundedReceiver<Submission>,
    backend: Arc<dyn Backend>,
    config: PipelineConfig,
    bound: Arc<Bound>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight_batches));
    let mut carried: Option<Submission> = None;
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
        let slot = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
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
        let acks = backend.send(events).instrument(span.clone()).await;
        let bound = bound.clone();
        let ack_timeout = config.ack_timeout;
        let meters = meters.clone();
        tokio::spawn(async move {
            let results = match tokio::time::timeout(ack_timeout + ACK_GRACE, acks).await {
                Ok(results) if results.len() == count => results,
                Ok(results) => {
                    tracing::error!(broker = %meters.broker(), expected = count, got = results.len(), "backend returned the wrong number of results");
                    vec![
                        Err(PublishError::Rejected(
                            "internal error: result count mismatch".into()
                        ));
                        count
                    ]
                }
                Err(_) => vec![Err(PublishError::Timeout(ack_timeout)); count],
            };
            meters.outcomes(&results);
            let mut results = results.into_iter();
            for (reply, n, share) in waiters {
                let mine: Vec<PublishResult> = results.by_ref().take(n).collect();
                if let Some(reply) = reply {
                    let _ = reply.send(mine);
                }
                drop(share);
            }
            drop(slot);
            meters.held(&bound);
        }.instrument(span));
    }
}
