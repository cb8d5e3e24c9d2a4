//! The batching pipeline between the API and a broker: a bounded intake, a batcher that groups
//! events by count, bytes and linger, and per-request completion with one result per event.
//!
//! The bound is a semaphore of `limits.pipeline_depth` permits, one per event, held from intake
//! until the broker's acknowledgement: memory stays flat under any load, and a full pipeline is
//! refused at once (429) instead of queueing.

mod batcher;
pub mod meters;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::backend::{Backend, Outbound, PublishResult};
use crate::config::PipelineConfig;
use meters::BrokerMeters;

/// How long a refused publisher is told to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a submission was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The pipeline holds `limits.pipeline_depth` events already.
    #[error("the pipeline of broker `{broker}` is full ({depth} events queued or awaiting acknowledgement)")]
    Full {
        /// Broker name.
        broker: String,
        /// Configured depth.
        depth: usize,
    },
    /// sidebus is shutting down and takes no new events.
    #[error("sidebus is shutting down")]
    Closed,
}

/// Events of one request travelling through the pipeline together.
struct Submission {
    events: Vec<Outbound>,
    /// Where the results go; `None` for `Prefer: respond-async`.
    reply: Option<oneshot::Sender<Vec<PublishResult>>>,
    /// The request's share of the pipeline depth, released once the broker answered.
    permit: OwnedSemaphorePermit,
}

/// Handle to one broker's pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    meters: Arc<BrokerMeters>,
    intake: mpsc::UnboundedSender<Submission>,
    permits: Arc<Semaphore>,
    depth: usize,
    closed: Arc<AtomicBool>,
}

impl Pipeline {
    /// Starts the batcher task of `broker` and returns the handle that feeds it.
    pub fn start(
        broker: &str,
        backend: Arc<dyn Backend>,
        config: PipelineConfig,
        depth: usize,
    ) -> Self {
        let (intake, queue) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(depth));
        // Metric labels borrow the name for the life of the process; broker names are a
        // handful from the config, so this avoids an allocation per labelled sample.
        let broker: &'static str = Box::leak(broker.to_string().into_boxed_str());
        let meters = Arc::new(BrokerMeters::new(broker));
        tokio::spawn(batcher::run(
            meters.clone(),
            queue,
            backend,
            config,
            permits.clone(),
            depth,
        ));
        Self {
            meters,
            intake,
            permits,
            depth,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes `events` in order, or refuses all of them at once. With `wait`, the receiver yields
    /// one result per event, in order, once the broker answered.
    pub fn submit(
        &self,
        events: Vec<Outbound>,
        wait: bool,
    ) -> Result<Option<oneshot::Receiver<Vec<PublishResult>>>, SubmitError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| {
                self.meters.rejected();
                SubmitError::Full {
                    broker: self.meters.broker().to_string(),
                    depth: self.depth,
                }
            })?;
        self.record_depth();
        let (reply, receiver) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.intake
            .send(Submission {
                events,
                reply,
                permit,
            })
            .map_err(|_| SubmitError::Closed)?;
        Ok(receiver)
    }

    /// The broker's publish metrics.
    pub fn meters(&self) -> &BrokerMeters {
        &self.meters
    }

    /// Events held now (queued or awaiting acknowledgement).
    pub fn in_flight(&self) -> usize {
        self.depth - self.permits.available_permits()
    }

    fn record_depth(&self) {
        self.meters.depth(self.in_flight());
    }

    /// Waits until every event taken so far has its broker result; intake stays open.
    pub async fn settled(&self) {
        let all = u32::try_from(self.depth).unwrap_or(u32::MAX);
        let _all_free = self.permits.acquire_many(all).await;
    }

    /// Stops intake and waits until every event taken so far has its broker result.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        self.settled().await;
    }
}
