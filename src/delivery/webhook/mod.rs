//! The webhook dispatcher of one subscription: consumes from the broker and delivers each event
//! to the endpoint with the subscription's ordering and concurrency.

pub mod attempt;
pub mod client;
pub mod handshake;
pub mod order;
pub mod outcome;
pub mod request;

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{Quota, RateLimiter};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::backend::consume::{ConsumeError, Consumer, Delivery, GroupSpec};
use crate::backend::Backend;
use crate::config::subscription::ContentMode;

pub use attempt::Worker;

/// Whether a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Consuming and delivering.
    Running,
    /// Not consuming; what was in flight went back to the broker.
    Paused,
    /// Deleted or shutting down.
    Stopped,
}

/// How long a retiring worker (its subscription's topic moved to another physical topic) waits
/// without an event, with nothing in flight and nothing left on the broker, before it stops:
/// other sidecars may go on publishing to the old topic until their own reload.
pub const RETIRE_IDLE: Duration = Duration::from_secs(60);

/// Delay before consuming again after the consumer could not start.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// How long a stopped consumer may take to hand over what it had fetched and close.
const CONSUMER_STOP: Duration = Duration::from_secs(5);

/// Batch requests of a subscription in batch mode.
struct BatchSlots {
    /// One permit per batch request that may be in flight.
    requests: Arc<Semaphore>,
    /// Batch requests allowed in flight.
    limit: usize,
    /// Signalled whenever a batch request ends.
    finished: Notify,
}

impl BatchSlots {
    /// Batch requests being delivered, other than the one being filled.
    fn others_in_flight(&self) -> usize {
        self.limit - 1 - self.requests.available_permits()
    }
}

/// Fills `batch` up to `max_batch` with what the consumer has ready; while other batches are
/// being delivered it keeps waiting for more, so a partial batch goes out only when no other is
/// in flight: batches grow with the load, and an idle subscription's first event is not delayed.
async fn fill_batch(
    worker: &Worker,
    consumer: &mut Consumer,
    permits: &Arc<Semaphore>,
    batches: &BatchSlots,
    batch: &mut Vec<(Delivery, OwnedSemaphorePermit)>,
) {
    let max = worker.spec.max_batch;
    let take = |item: Result<Delivery, ConsumeError>, permit, batch: &mut Vec<_>| match item {
        Ok(d) => {
            if let Some(d) = worker.admit_filtered(d) {
                worker.status.in_flight(1);
                batch.push((d, permit));
            }
        }
        Err(e) => worker.status.error(&format!("consuming: {e}")),
    };
    while batch.len() < max {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            if let Ok(item) = consumer.deliveries.try_recv() {
                take(item, permit, batch);
                continue;
            }
        }
        let finished = batches.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        if batches.others_in_flight() == 0 {
            return;
        }
        let next = async {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            (consumer.deliveries.recv().await, permit)
        };
        tokio::select! {
            (item, permit) = next => match item {
                Some(item) => take(item, permit, batch),
                None => return,
            },
            _ = finished => {}
        }
    }
}

/// Runs a subscription until it is stopped. A pause keeps a consumer that can be held (see
/// [`Consumer::hold`]) and releases it on resume; any other is dropped and subscribed again.
pub async fn run(worker: Arc<Worker>, backend: Arc<dyn Backend>) {
    let mut control = worker.control.subscribe();
    if !agree_on_rate(&worker, &mut control).await {
        return;
    }
    let mut held: Option<Consumer> = None;
    loop {
        let state = *control.borrow_and_update();
        match state {
            RunState::Stopped => return,
            RunState::Paused => {
                worker.status.set_paused(true);
                if control.changed().await.is_err() {
                    return;
                }
                continue;
            }
            RunState::Running => worker.status.set_paused(false),
        }
        let spec = &worker.spec;
        let subscribed = match held.take() {
            Some(consumer) => {
                consumer.set_held(false);
                Ok(consumer)
            }
            None => {
                backend
                    .subscribe(GroupSpec {
                        topic: match worker.retiring.get() {
                            Some(old) => old.clone(),
                            None => worker
                                .views
                                .topics()
                                .physical(&spec.broker, &spec.topic)
                                .into_owned(),
                        },
                        group: spec.group_or(&worker.name).to_string(),
                        start: spec.start,
                        max_in_flight: spec.unsettled_limit(),
                    })
                    .await
            }
        };
        match subscribed {
            Ok(consumer) => {
                worker.status.set_failing(false);
                worker.status.set_lag(Some(consumer.lag.clone()));
                worker.order.restart();
                held = pump(&worker, consumer, &mut control).await;
                worker.status.set_lag(None);
            }
            Err(e) => {
                worker.status.set_failing(true);
                worker.status.error(&format!("cannot consume: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(RESUBSCRIBE) => {}
                    _ = control.changed() => {}
                }
            }
        }
    }
}

/// Events queued behind the one being delivered, per ordering lane.
type Lanes = Arc<Mutex<HashMap<String, VecDeque<(Delivery, OwnedSemaphorePermit)>>>>;

/// Sets the subscription's rate limit, after the webhook handshake when the spec asks for one:
/// until the endpoint agrees the subscription delivers nothing, shows `failing` with the reason
/// and asks again with the retry backoff. Returns false when it was stopped before that.
async fn agree_on_rate(worker: &Worker, control: &mut watch::Receiver<RunState>) -> bool {
    let spec = &worker.spec;
    let events_per_second = spec.rate_limit.and_then(|r| r.events_per_second);
    let mut quota = events_per_second
        .and_then(NonZeroU32::new)
        .map(Quota::per_second);
    if spec.handshake {
        let requested = events_per_second.map(|r| r.saturating_mul(60));
        let mut backoff = spec.retry.initial_backoff;
        loop {
            if *control.borrow() == RunState::Stopped {
                return false;
            }
            let asked = handshake::ask(
                &worker.http,
                &worker.endpoint,
                &worker.origin,
                requested,
                spec.timeout,
            )
            .await;
            match asked {
                Ok(grant) => {
                    worker.status.set_failing(false);
                    if let Some(cap) = grant.cap_per_minute {
                        // One request per granted interval, with no burst above it.
                        let interval = Duration::from_secs(60) / cap.get();
                        quota = Quota::with_period(interval);
                    }
                    break;
                }
                Err(reason) => {
                    tracing::warn!(subscription = %worker.name, %reason, "webhook handshake");
                    worker.status.set_failing(true);
                    worker.status.error(&reason);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        changed = control.changed() => if changed.is_err() {
                            return false;
                        },
                    }
                    backoff = (backoff * 2).min(spec.retry.max_backoff);
                }
            }
        }
    }
    if let Some(quota) = quota {
        let _ = worker.limiter.set(RateLimiter::direct_with_clock(
            quota,
            governor::clock::MonotonicClock,
        ));
    }
    true
}

/// Delivers what `consumer` yields until it ends or the subscription leaves the running state;
/// then waits until every delivery it started is settled. Returns the consumer, held, when the
/// subscription paused and the consumer can be held.
async fn pump(
    worker: &Arc<Worker>,
    mut consumer: Consumer,
    control: &mut watch::Receiver<RunState>,
) -> Option<Consumer> {
    let spec = worker.spec.clone();
    let permits = Arc::new(Semaphore::new(spec.unsettled_limit()));
    let batches = Arc::new(BatchSlots {
        requests: Arc::new(Semaphore::new(spec.batches_in_flight())),
        limit: spec.batches_in_flight(),
        finished: Notify::new(),
    });
    let lanes: Lanes = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        if *control.borrow() != RunState::Running {
            break;
        }
        let request = match spec.content_mode {
            ContentMode::Batch => tokio::select! {
                p = batches.requests.clone().acquire_owned() => Some(p.expect("never closed")),
                _ = control.changed() => continue,
            },
            ContentMode::Binary | ContentMode::Structured => None,
        };
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("never closed"),
            _ = control.changed() => continue,
        };
        let retiring = worker.retiring.get().is_some();
        let next = tokio::select! {
            next = consumer.deliveries.recv() => next,
            _ = control.changed() => continue,
            // An async block, so that no timer is made (nor the clock read) per delivery of a
            // worker that is not retiring: a disabled branch's expression is still evaluated.
            _ = async { tokio::time::sleep(RETIRE_IDLE).await }, if retiring => {
                let idle = permits.available_permits() + 1 == spec.unsettled_limit();
                if idle && (consumer.lag)().unwrap_or(0) == 0 {
                    worker.control.send_replace(RunState::Stopped);
                }
                continue;
            }
        };
        let delivery = match next {
            None => break,
            Some(Err(e)) => {
                worker.status.set_failing(true);
                worker.status.error(&format!("consuming: {e}"));
                continue;
            }
            Some(Ok(d)) => match worker.admit_filtered(d) {
                Some(d) => d,
                None => continue,
            },
        };
        worker.status.in_flight(1);
        if let Some(request) = request {
            let mut batch = vec![(delivery, permit)];
            fill_batch(worker, &mut consumer, &permits, &batches, &mut batch).await;
            let worker = worker.clone();
            let batches = batches.clone();
            tasks.spawn(async move {
                let n = batch.len() as i64;
                let (deliveries, held): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                worker.deliver(deliveries).await;
                worker.status.in_flight(-n);
                drop((held, request));
                batches.finished.notify_waiters();
            });
            while tasks.try_join_next().is_some() {}
            continue;
        }
        match worker.lane(&delivery) {
            None => {
                let worker = worker.clone();
                tasks.spawn(async move {
                    worker.deliver(vec![delivery]).await;
                    worker.status.in_flight(-1);
                    drop(permit);
                });
            }
            Some(lane) => {
                let mut queues = lanes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(queue) = queues.get_mut(&lane) {
                    queue.push_back((delivery, permit));
                } else {
                    queues.insert(lane.clone(), VecDeque::new());
                    tasks.spawn(run_lane(
                        worker.clone(),
                        lanes.clone(),
                        lane,
                        (delivery, permit),
                    ));
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    let held = *control.borrow() == RunState::Paused && consumer.set_held(true);
    if !held {
        drop(consumer.stop.take());
    }
    while tasks.join_next().await.is_some() {}
    // Handed out and not taken yet: given back in their order. A consumer that was stopped
    // closes its channel once it has stopped fetching.
    loop {
        let item = if held {
            consumer.deliveries.try_recv().ok()
        } else {
            tokio::time::timeout(CONSUMER_STOP, consumer.deliveries.recv())
                .await
                .ok()
                .flatten()
        };
        match item {
            Some(Ok(delivery)) => {
                worker.give_back(vec![delivery]).await;
            }
            Some(Err(_)) => {}
            None => break,
        }
    }
    worker.settle_returned().await;
    held.then_some(consumer)
}

/// Delivers one lane's events one after the other; the lane ends when its queue is empty.
async fn run_lane(
    worker: Arc<Worker>,
    lanes: Lanes,
    lane: String,
    first: (Delivery, OwnedSemaphorePermit),
) {
    let mut current = first;
    loop {
        let (delivery, permit) = current;
        worker.deliver(vec![delivery]).await;
        worker.status.in_flight(-1);
        drop(permit);
        let next = {
            let mut queues = lanes.lock().unwrap_or_else(|e| e.into_inner());
            match queues.get_mut(&lane).and_then(VecDeque::pop_front) {
                Some(next) => next,
                None => {
                    queues.remove(&lane);
                    return;
                }
            }
        };
        current = next;
    }
}
