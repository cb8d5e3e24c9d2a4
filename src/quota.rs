//! Quotas at run time (design §8.6): one pair of token buckets (events, bytes) per principal
//! quota and per `[[quotas]]` rule, on `governor`'s GCRA. A publish is admitted only when every
//! bucket that applies has room for all of its events and bytes; otherwise it is refused whole,
//! with how long until it would fit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use metrics::Counter;

use crate::config::quota::{Limits, QuotaRule};
use crate::config::AccessConfig;
use crate::telemetry;

/// Why a publish was refused, with what the `429` says about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Exceeded {
    /// What was exceeded, in words.
    pub detail: String,
    /// Until the request would fit (at least one second in `Retry-After`).
    pub wait: Duration,
    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): `"<name>";q=<quota>;w=1`.
    pub policy: String,
    /// `RateLimit`: `"<name>";r=0;t=<seconds>`.
    pub state: String,
}

/// A bucket on the standard library's monotonic clock: `governor`'s default clock (`quanta`)
/// executed a CPUID instruction on every read on this project's virtual machines, which a
/// hypervisor traps — 0.4 µs a check (`cargo bench --bench access`).
type Limiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// One bucket: its limiter and what it allows per second.
struct Bucket {
    limiter: Limiter,
    per_second: u32,
    burst: u32,
    /// `events` or `bytes`.
    unit: &'static str,
}

/// A principal's or a rule's buckets.
struct Buckets {
    /// `principal checkout` or `quota orders`, for details.
    owner: String,
    /// The policy name in headers: `checkout-events`.
    name: String,
    events: Option<Bucket>,
    bytes: Option<Bucket>,
    refused: Counter,
}

impl Buckets {
    fn new(owner: String, name: &str, limits: &Limits) -> Self {
        let bucket = |per_second: u32, burst: u32, unit| {
            let rate = NonZeroU32::new(per_second).expect("validated: at least 1");
            let burst_nz = NonZeroU32::new(burst).expect("validated: at least 1");
            Bucket {
                limiter: RateLimiter::direct_with_clock(
                    Quota::per_second(rate).allow_burst(burst_nz),
                    MonotonicClock,
                ),
                per_second,
                burst,
                unit,
            }
        };
        let events = limits
            .events_per_second
            .map(|rate| bucket(rate, limits.burst.unwrap_or(rate), "events"));
        let bytes = limits.bytes_per_second.map(|b| {
            let rate = u32::try_from(b.as_u64()).expect("validated: at most 4GiB");
            bucket(rate, rate, "bytes")
        });
        Self {
            refused: metrics::counter!(telemetry::QUOTA_REJECTED, "quota" => name.to_string()),
            owner,
            name: name.to_string(),
            events,
            bytes,
        }
    }

    /// Takes `events` and `bytes` from the buckets, or says what does not fit; `reserved` of
    /// the events were taken already (by [`Quotas::reserve`]). The event bucket is asked
    /// first; when the byte bucket then refuses, the events taken stay taken (`governor` has no
    /// way to give them back), which errs towards admitting less.
    fn take(&self, events: u32, bytes: u32, reserved: u32) -> Result<(), Exceeded> {
        for (bucket, n, reserved) in [(&self.events, events, reserved), (&self.bytes, bytes, 0)] {
            let (Some(bucket), Some(n)) = (bucket, NonZeroU32::new(n)) else {
                continue;
            };
            let refusal = |wait: Duration, detail: String| {
                self.refused.increment(1);
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                let name = format!("{}-{}", self.name, bucket.unit);
                Exceeded {
                    detail,
                    wait,
                    policy: format!("\"{name}\";q={};w=1", bucket.per_second),
                    state: format!("\"{name}\";r=0;t={seconds}"),
                }
            };
            let outcome = match NonZeroU32::new(n.get().saturating_sub(reserved)) {
                _ if n.get() > bucket.burst => Err(governor::InsufficientCapacity(bucket.burst)),
                Some(rest) => bucket.limiter.check_n(rest),
                None => Ok(Ok(())),
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(MonotonicClock.now());
                    return Err(refusal(
                        wait,
                        format!(
                            "{} allows {} {} per second; this request of {n} would fit in {:.2} s",
                            self.owner,
                            bucket.per_second,
                            bucket.unit,
                            wait.as_secs_f64()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(refusal(
                        Duration::from_secs(1),
                        format!(
                            "{} allows at most {} {} at once; this request has {n} and never fits: \
                             send it in smaller parts",
                            self.owner, bucket.burst, bucket.unit
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Every quota.
#[derive(Default)]
pub struct Quotas {
    principals: HashMap<Arc<str>, Buckets>,
    rules: Vec<(QuotaRule, Buckets)>,
}

impl Quotas {
    /// The buckets of every principal quota and `[[quotas]]` rule, full.
    pub fn new(access: &AccessConfig, rules: &[QuotaRule]) -> Self {
        let principals = access
            .principals
            .iter()
            .filter_map(|(name, p)| {
                let limits = p.quota.as_ref()?;
                Some((
                    Arc::from(name.as_str()),
                    Buckets::new(format!("the quota of principal `{name}`"), name, limits),
                ))
            })
            .collect();
        let rules = rules
            .iter()
            .map(|rule| {
                let owner = format!("quota rule `{}`", rule.name);
                let buckets = Buckets::new(owner, &rule.name, &rule.limits);
                (rule.clone(), buckets)
            })
            .collect();
        Self { principals, rules }
    }

    /// Whether there is any quota at all (the publish path skips everything when not).
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty() && self.rules.is_empty()
    }

    /// Admits a publish of `events` events and `bytes` payload bytes by `principal` to
    /// `broker`/`topic`, or refuses it whole.
    pub fn admit(
        &self,
        principal: Option<&str>,
        broker: &str,
        topic: &str,
        events: usize,
        bytes: usize,
    ) -> Result<(), Exceeded> {
        self.take(principal, broker, topic, events, bytes, 0)
    }

    /// Takes one event from every quota that applies, before the request is parsed: a caller
    /// over its quota is refused without its body being read as events.
    /// [`Quotas::admit_reserved`] takes the rest once the request's size is known.
    pub fn reserve(
        &self,
        principal: Option<&str>,
        broker: &str,
        topic: &str,
    ) -> Result<(), Exceeded> {
        self.take(principal, broker, topic, 1, 0, 0)
    }

    /// [`Quotas::admit`] for a request whose first event [`Quotas::reserve`] took: a request
    /// larger than a bucket can hold still never fits.
    pub fn admit_reserved(
        &self,
        principal: Option<&str>,
        broker: &str,
        topic: &str,
        events: usize,
        bytes: usize,
    ) -> Result<(), Exceeded> {
        self.take(principal, broker, topic, events, bytes, 1)
    }

    fn take(
        &self,
        principal: Option<&str>,
        broker: &str,
        topic: &str,
        events: usize,
        bytes: usize,
        reserved: u32,
    ) -> Result<(), Exceeded> {
        let events = u32::try_from(events).unwrap_or(u32::MAX);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        if let Some(buckets) = principal.and_then(|p| self.principals.get(p)) {
            buckets.take(events, bytes, reserved)?;
        }
        for (rule, buckets) in &self.rules {
            if rule.applies(broker, topic) {
                buckets.take(events, bytes, reserved)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(events: Option<u32>, bytes: Option<&str>, burst: Option<u32>) -> QuotaRule {
        QuotaRule {
            name: "orders".into(),
            broker: None,
            topics: vec!["orders".into()],
            limits: Limits {
                events_per_second: events,
                bytes_per_second: bytes.map(|b| b.parse().unwrap()),
                burst,
            },
        }
    }

    #[test]
    fn a_reserved_event_counts_once_and_never_fits_still_holds() {
        let quotas = Quotas::new(&AccessConfig::default(), &[rule(Some(10), None, Some(5))]);
        quotas.reserve(None, "b", "orders").unwrap();
        quotas.admit_reserved(None, "b", "orders", 5, 0).unwrap();
        assert!(
            quotas.reserve(None, "b", "orders").is_err(),
            "5 taken: the burst"
        );
        let quotas = Quotas::new(&AccessConfig::default(), &[rule(Some(10), None, Some(5))]);
        quotas.reserve(None, "b", "orders").unwrap();
        let never = quotas
            .admit_reserved(None, "b", "orders", 6, 0)
            .unwrap_err();
        assert!(never.detail.contains("never fits"), "{}", never.detail);
    }

    #[test]
    fn a_burst_is_admitted_then_the_rest_is_refused_whole() {
        let quotas = Quotas::new(&AccessConfig::default(), &[rule(Some(10), None, Some(5))]);
        assert!(
            quotas.admit(None, "b", "other", 1000, 0).is_ok(),
            "not covered"
        );
        assert!(quotas.admit(None, "b", "orders", 3, 0).is_ok());
        assert!(quotas.admit(None, "b", "orders", 2, 0).is_ok());
        let refused = quotas.admit(None, "b", "orders", 1, 0).unwrap_err();
        assert!(refused.wait > Duration::ZERO && refused.wait <= Duration::from_millis(100));
        assert_eq!(refused.policy, "\"orders-events\";q=10;w=1");
        assert_eq!(refused.state, "\"orders-events\";r=0;t=1");
        assert!(refused
            .detail
            .starts_with("quota rule `orders` allows 10 events per second"));
        let never = quotas.admit(None, "b", "orders", 6, 0).unwrap_err();
        assert!(never.detail.contains("never fits"), "{}", never.detail);
    }

    #[test]
    fn high_rates_admit_what_they_allow() {
        let quotas = Quotas::new(
            &AccessConfig::default(),
            &[rule(Some(1_000_000_000), Some("1000MiB"), None)],
        );
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(300) {
            if let Err(e) = quotas.admit(None, "b", "orders", 1, 100) {
                panic!("{e:?}");
            }
        }
    }

    #[test]
    fn bytes_count_payload_bytes() {
        let quotas = Quotas::new(&AccessConfig::default(), &[rule(None, Some("1KiB"), None)]);
        assert!(quotas.admit(None, "b", "orders", 1, 1000).is_ok());
        let refused = quotas.admit(None, "b", "orders", 1, 100).unwrap_err();
        assert_eq!(refused.policy, "\"orders-bytes\";q=1024;w=1");
        assert!(
            quotas.admit(None, "b", "orders", 1, 0).is_ok(),
            "no bytes, no byte bucket"
        );
    }
}
