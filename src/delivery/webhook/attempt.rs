//! Delivering one event (or one batch) to the endpoint: attempts, backoff, `Retry-After`,
//! dead-lettering, and settling with the broker.

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::watch;
use tracing::Instrument;

use super::client::WebhookClient;
use super::order::{Admission, OrderGuard};
use super::outcome::{self, Outcome};
use super::request::{self, SigningKey};
use super::RunState;
use crate::backend::consume::Delivery;
use crate::backend::Outbound;
use crate::config::subscription::{Ordering, SubscriptionSpec};
use crate::delivery::status::Status;
use crate::delivery::Views;
use crate::event::Event;
use crate::pipeline::Pipeline;
use crate::policy::filter::Filters;

/// A rate limiter shared by a subscription's deliveries.
/// On the standard library's monotonic clock: `governor`'s default (`quanta`) ran a CPUID
/// instruction per read on virtual machines, which the hypervisor traps (see `crate::quota`).
pub type Limiter = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

/// How long an event refused for order is held before it goes back to the broker, so a broker
/// that offers it again at once (a JetStream nak) is not asked in a tight loop.
const REFUSED_BACKOFF: Duration = Duration::from_millis(20);

/// Everything a subscription's deliveries share.
pub struct Worker {
    /// Subscription name.
    pub name: Arc<str>,
    /// Its spec.
    pub spec: Arc<SubscriptionSpec>,
    /// Its filters, compiled: events that do not match are acknowledged undelivered.
    pub filters: Filters,
    /// The HTTP client (connection pool shared by all subscriptions).
    pub http: WebhookClient,
    /// The spec's endpoint, parsed once rather than per request.
    pub endpoint: http::Uri,
    /// Signing key, when the spec has a secret.
    pub key: Option<SigningKey>,
    /// The pipeline of the subscription's broker, for dead letters.
    pub pipeline: Pipeline,
    /// Live counters.
    pub status: Arc<Status>,
    /// Rate limit: the spec's `rate_limit`, or the lower rate a handshake granted; set before
    /// the first delivery.
    pub limiter: std::sync::OnceLock<Limiter>,
    /// The spec's `rate_limit.bytes_per_second`, with the capacity of its bucket (one second's
    /// bytes).
    pub byte_limiter: Option<(Limiter, NonZeroU32)>,
    /// The origin named in the webhook handshake (the host of the config `source`).
    pub origin: Arc<str>,
    /// The schema decoder (schema-encoded events go out as JSON unless the spec says
    /// `decode = false`) and the topic map (endpoints see logical topic names).
    pub views: Arc<Views>,
    /// Running / paused / stopped; a 410 from the endpoint switches it to paused.
    pub control: Arc<watch::Sender<RunState>>,
    /// What each ordering lane gave back, so nothing later of the lane overtakes it.
    pub order: OrderGuard,
    /// Given back while the subscription stops or pauses: settled (in this order) once its
    /// consumer has stopped fetching, so a broker that redelivers at once (a JetStream nak)
    /// does not hand them to a consumer that is going away.
    pub returned: std::sync::Mutex<Vec<Delivery>>,
    /// Set when the subscription's topic moved to another physical topic (a reload): the
    /// topic this worker keeps reading until it is drained, while a new worker reads the new
    /// one.
    pub retiring: std::sync::OnceLock<String>,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Acknowledged: delivered, dead-lettered or dropped.
    Settled,
    /// Given back to the broker because the subscription paused or stopped.
    Returned,
}

impl Worker {
    fn running(&self) -> bool {
        *self.control.borrow() == RunState::Running
    }

    /// The ordering lane of `delivery`: events of one lane are delivered one at a time, in
    /// order; `None` for an event that is ordered with nothing. Order holds per concrete topic
    /// (a wildcard subscription's topics each have their own keys and partitions).
    pub fn lane(&self, delivery: &Delivery) -> Option<String> {
        let topic = &delivery.topic;
        match self.spec.ordering {
            Ordering::None => None,
            Ordering::Key => delivery
                .event
                .partition_key()
                .map(|k| format!("k:{topic}:{k}")),
            Ordering::Partition => Some(format!("p:{topic}:{}", delivery.spot.partition)),
        }
    }

    /// The topic names the endpoint sees for `deliveries`: the subscription's topic, or under a
    /// pattern the logical name of the physical topic each was read from.
    fn logical_topics<'d>(&'d self, deliveries: &'d [Delivery]) -> Vec<Cow<'d, str>> {
        if !self.spec.topic.contains(['*', '>']) {
            return vec![Cow::Borrowed(self.spec.topic.as_str()); deliveries.len()];
        }
        let topics = self.views.topics();
        deliveries
            .iter()
            .map(|d| {
                topics
                    .logical(&self.spec.broker, &d.topic)
                    .unwrap_or(Cow::Borrowed(&d.topic))
            })
            .collect()
    }

    /// `delivery`, when the subscription's filters let it through; otherwise it is acknowledged
    /// (its offset may be committed like a delivered one's) and counted as filtered.
    pub fn admit_filtered(&self, delivery: Delivery) -> Option<Delivery> {
        if self.filters.is_empty() || self.filters.matches(&delivery.event) {
            return Some(delivery);
        }
        self.status.filtered();
        tokio::spawn(delivery.settle.ack());
        None
    }

    /// Gives `deliveries` back to the broker, remembering them so that nothing later of their
    /// lanes is delivered before them.
    pub async fn give_back(&self, deliveries: Vec<Delivery>) -> Ended {
        for d in deliveries {
            self.give_back_one(d).await;
        }
        Ended::Returned
    }

    async fn give_back_one(&self, d: Delivery) {
        if let Some(lane) = self.lane(&d) {
            self.order.owe(&lane, &d.event.id);
        }
        if self.running() {
            let _ = d.settle.nack().await;
        } else {
            self.returned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(d);
        }
    }

    /// Gives back to the broker, in the order they were given back, the deliveries held since
    /// the subscription left the running state.
    pub async fn settle_returned(&self) {
        let returned =
            std::mem::take(&mut *self.returned.lock().unwrap_or_else(|e| e.into_inner()));
        for d in returned {
            let _ = d.settle.nack().await;
        }
    }

    /// Keeps the deliveries that may go now; gives back the others, which an earlier event of
    /// their lane, given back before, must precede.
    async fn admit(&self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let (admitted, refused): (Vec<_>, Vec<_>) = deliveries.into_iter().partition(|d| {
            self.lane(d)
                .is_none_or(|lane| self.order.admit(&lane, &d.event.id) == Admission::Admitted)
        });
        if !refused.is_empty() {
            tracing::debug!(
                subscription = %self.name,
                refused = refused.len(),
                "events wait for an earlier event of their lane that was given back"
            );
            tokio::time::sleep(REFUSED_BACKOFF).await;
            for d in refused {
                let _ = d.settle.nack().await;
            }
        }
        admitted
    }

    /// Delivers `deliveries` (one, or a batch) until an outcome is final, then settles them.
    pub async fn deliver(&self, deliveries: Vec<Delivery>) -> Ended {
        let span = tracing::debug_span!(
            "deliver",
            subscription = %self.name,
            id = %deliveries.first().map_or("", |d| d.event.id.as_str()),
            events = deliveries.len(),
            traceparent = deliveries.first().and_then(|d| d.event.extension("traceparent")).unwrap_or(""),
        );
        if !span.is_disabled() {
            let incoming = deliveries.first().and_then(|d| {
                Some(crate::event::trace::TraceContext {
                    traceparent: d.event.extension("traceparent")?.to_string(),
                    tracestate: d.event.extension("tracestate").map(str::to_string),
                })
            });
            crate::telemetry::tracing::adopt(&span, incoming.as_ref());
        }
        self.deliver_traced(deliveries).instrument(span).await
    }

    async fn deliver_traced(&self, deliveries: Vec<Delivery>) -> Ended {
        if !self.running() {
            return self.give_back(deliveries).await;
        }
        let deliveries = self.admit(deliveries).await;
        if deliveries.is_empty() {
            return Ended::Returned;
        }
        let started = Instant::now();
        let mut decoded = Vec::new();
        let schemas = self.views.schemas();
        if self.spec.decode && schemas.decodes_anything() {
            let originals: Vec<&Event> = deliveries.iter().map(|d| &d.event).collect();
            for event in originals {
                decoded.push(schemas.decode(event).await);
            }
        }
        let topics = self.logical_topics(&deliveries);
        let events: Vec<(&str, &Event)> = deliveries
            .iter()
            .zip(&topics)
            .enumerate()
            .map(|(i, (d, topic))| {
                let event = decoded.get(i).and_then(Option::as_ref).unwrap_or(&d.event);
                (&**topic, event)
            })
            .collect();
        let retry = &self.spec.retry;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(retry.initial_backoff)
            .with_max_delay(retry.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        let mut control = self.control.subscribe();
        let mut attempt = 0u32;
        let (reason, status) = loop {
            attempt += 1;
            if let (Some(limiter), Some(n)) =
                (self.limiter.get(), NonZeroU32::new(deliveries.len() as u32))
            {
                let _ = limiter.until_n_ready(n).await;
            }
            if let Some((limiter, capacity)) = &self.byte_limiter {
                // A request larger than a second's bytes waits for a full bucket and goes.
                let bytes: usize = events.iter().map(|(_, e)| e.data.len()).sum();
                let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
                if let Some(n) = NonZeroU32::new(bytes.min(capacity.get())) {
                    let _ = limiter.until_n_ready(n).await;
                }
            }
            // Built per attempt, so the first one moves its headers into the request instead of
            // cloning them; the id stays, the timestamp and signature are fresh.
            let mut request = request::build(&events, self.spec.content_mode);
            request.stamp(self.key.as_ref(), chrono::Utc::now().timestamp());
            let sent = self
                .http
                .post(
                    &self.endpoint,
                    request.headers,
                    request.body,
                    self.spec.timeout,
                )
                .await;
            let verdict = match sent {
                Ok(answer) => outcome::from_response(answer.status, &answer.headers),
                Err(e) => outcome::from_error(&e),
            };
            match verdict {
                Outcome::Delivered => {
                    let seconds = started.elapsed().as_secs_f64();
                    for d in deliveries {
                        if let Err(e) = d.settle.ack().await {
                            self.status
                                .error(&format!("acknowledging {}: {e}", d.event.id));
                        }
                        self.status.delivered(seconds);
                    }
                    return Ended::Settled;
                }
                Outcome::Pause => {
                    self.status
                        .error("endpoint answered 410 Gone; subscription paused");
                    self.status.set_paused(true);
                    self.control.send_if_modified(|state| {
                        let running = *state == RunState::Running;
                        if running {
                            *state = RunState::Paused;
                        }
                        running
                    });
                    return self.give_back(deliveries).await;
                }
                Outcome::Permanent { reason, status } => break (reason, Some(status)),
                Outcome::Retry {
                    after,
                    reason,
                    status,
                } => {
                    if attempt >= retry.max_attempts {
                        break (reason, status);
                    }
                    self.status.retried(&reason);
                    let delay =
                        after.unwrap_or_else(|| backoff.next().unwrap_or(retry.max_backoff));
                    let interrupted = tokio::select! {
                        _ = tokio::time::sleep(delay) => false,
                        _ = control.wait_for(|s| *s != RunState::Running) => true,
                    };
                    if interrupted {
                        return self.give_back(deliveries).await;
                    }
                }
            }
        };
        for d in deliveries {
            self.dead_letter(d, &reason, status, attempt).await;
        }
        Ended::Settled
    }

    /// Publishes a failed event to the dead-letter topic (acknowledging the original only once
    /// that publish is acknowledged), or drops and counts it when there is none.
    async fn dead_letter(&self, d: Delivery, reason: &str, status: Option<u16>, attempts: u32) {
        let Some(topic) = &self.spec.dead_letter else {
            if let Err(e) = d.settle.ack().await {
                self.status
                    .error(&format!("acknowledging {}: {e}", d.event.id));
            }
            self.status.failed(reason, false);
            return;
        };
        let mut event = d.event.clone();
        let mut set = |name: &str, value: String| event.set_extension(name, value);
        set("sidebuserrorreason", reason.to_string());
        if let Some(status) = status {
            set("sidebuserrorstatus", status.to_string());
        }
        set("sidebuserrorattempts", attempts.to_string());
        set("sidebuserrorsubscription", self.name.to_string());
        let [logical] = &self.logical_topics(std::slice::from_ref(&d))[..] else {
            unreachable!("one topic per delivery")
        };
        set("sidebuserrortopic", logical.to_string());
        set("sidebuserrorphysicaltopic", d.topic.to_string());
        let physical = self
            .views
            .topics()
            .route(&self.spec.broker, &Arc::from(topic.as_str()))
            .physical;
        set("sidebuserrorposition", d.spot.to_string());
        let published = match self.pipeline.submit(
            vec![Outbound {
                topic: physical,
                event,
            }],
            true,
        ) {
            Ok(Some(waiting)) => match waiting.await {
                Ok(mut results) => {
                    results
                        .pop()
                        .unwrap_or(Err(crate::backend::PublishError::Unavailable(
                            "no result".into(),
                        )))
                }
                Err(_) => Err(crate::backend::PublishError::Unavailable("stopping".into())),
            },
            Ok(None) => unreachable!("a waiting submit returns a receiver"),
            Err(e) => Err(crate::backend::PublishError::Unavailable(e.to_string())),
        };
        match published {
            Ok(_) => {
                if let Err(e) = d.settle.ack().await {
                    self.status
                        .error(&format!("acknowledging {}: {e}", d.event.id));
                }
                self.status.failed(reason, true);
            }
            Err(e) => {
                self.status.error(&format!(
                    "dead-letter publish to {topic} failed ({e}); the event will be redelivered"
                ));
                self.give_back_one(d).await;
            }
        }
    }
}
