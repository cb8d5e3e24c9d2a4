//! The batching pipeline between the API and a broker: a bounded intake, a batcher that groups
//! events by count, bytes and linger, and per-request completion with one result per event.
//!
//! The bound is `limits.pipeline_depth` events and `limits.pipeline_bytes` bytes, held from
//! intake until the broker's acknowledgement: memory stays flat under any load, and a full
//! pipeline is refused at once (429) instead of queueing.

mod batcher;
mod bound;
mod broker;
pub mod meters;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, Outbound, PublishResult};
use crate::config::PipelineConfig;
use crate::spool::Spool;
pub use bound::Exhausted;
use bound::{Bound, Share};
pub use broker::Broker;
use meters::BrokerMeters;

/// How long a refused publisher is told to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bytes an event held by the pipeline takes beyond its payload and attribute text (the event
/// and its allocations, its place in the batch, the broker client's per-message state), counted
/// against `limits.pipeline_bytes` so the bound is close to the memory a full pipeline takes
/// (`cargo bench --bench rss`: about 1.5 MiB resident per MiB of 1 KiB events' payload and
/// attributes).
pub const HELD_PER_EVENT: usize = 512;

/// Why a submission was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The pipeline holds `limits.pipeline_depth` events or `limits.pipeline_bytes` bytes.
    #[error("the pipeline of broker `{broker}` is full: {limit}")]
    Full {
        /// Broker name.
        broker: String,
        /// The limit that refused the request.
        limit: Exhausted,
    },
    /// sidebus is shutting down and takes no new events.
    #[error("sidebus is shutting down")]
    Closed,
}

/// Events of one request travelling through the pipeline together.
struct Submission {
    events: Vec<Outbound>,
    /// The events' payload and attribute bytes ([`crate::event::Event::weight`]), weighed once
    /// at intake for both the byte bound and the batcher's `max_batch_bytes`.
    weight: usize,
    /// Where the results go; `None` for `Prefer: respond-async`.
    reply: Option<oneshot::Sender<Vec<PublishResult>>>,
    /// The request's share of the pipeline's bound, released once the broker answered.
    share: Share,
}

/// Handle to one broker's pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    meters: Arc<BrokerMeters>,
    intake: mpsc::UnboundedSender<Submission>,
    bound: Arc<Bound>,
    closed: Arc<AtomicBool>,
    spool: Option<Arc<Spool>>,
}

impl Pipeline {
    /// Starts the batcher task of `broker` and returns the handle that feeds it; it holds at
    /// most `depth` events and `max_bytes` bytes of them.
    pub fn start(
        broker: &str,
        backend: Arc<dyn Backend>,
        config: PipelineConfig,
        depth: usize,
        max_bytes: usize,
        spool: Option<Arc<Spool>>,
    ) -> Self {
        let (intake, queue) = mpsc::unbounded_channel();
        let bound = Arc::new(Bound::new(depth, max_bytes));
        // Metric labels borrow the name for the life of the process; broker names are a
        // handful from the config, so this avoids an allocation per labelled sample.
        let broker: &'static str = Box::leak(broker.to_string().into_boxed_str());
        let meters = Arc::new(BrokerMeters::new(broker));
        tokio::spawn(batcher::run(
            meters.clone(),
            queue,
            backend,
            config,
            bound.clone(),
            spool.clone(),
        ));
        Self {
            meters,
            intake,
            bound,
            closed: Arc::new(AtomicBool::new(false)),
            spool,
        }
    }

    /// Takes `events` in order, or refuses all of them at once. With `wait`, the receiver yields
    /// one result per event, in order, once the broker answered. Without `wait` there is a
    /// receiver too while the broker's spool is busy: the events are then spooled, and a
    /// `respond-async` answer waits until they are on disk.
    pub fn submit(
        &self,
        events: Vec<Outbound>,
        wait: bool,
    ) -> Result<Option<oneshot::Receiver<Vec<PublishResult>>>, SubmitError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        let weight: usize = events.iter().map(|o| o.event.weight()).sum();
        let held = weight + events.len() * HELD_PER_EVENT;
        let share = self.bound.try_take(events.len(), held).map_err(|limit| {
            self.meters.rejected();
            SubmitError::Full {
                broker: self.meters.broker().to_string(),
                limit,
            }
        })?;
        self.meters.held(&self.bound);
        let wait = wait || self.spool.as_ref().is_some_and(|s| s.busy());
        let (reply, receiver) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.intake
            .send(Submission {
                events,
                weight,
                reply,
                share,
            })
            .map_err(|_| SubmitError::Closed)?;
        Ok(receiver)
    }

    /// Where publishes go while the broker cannot take them, if configured.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// The broker's publish metrics.
    pub fn meters(&self) -> &BrokerMeters {
        &self.meters
    }

    /// Events held now (queued or awaiting acknowledgement).
    pub fn in_flight(&self) -> usize {
        self.bound.events_held()
    }

    /// Waits until every event taken so far has its broker result; intake stays open.
    pub async fn settled(&self) {
        self.bound.settled().await;
    }

    /// Stops intake and waits until every event taken so far has its broker result.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        self.settled().await;
    }
}
