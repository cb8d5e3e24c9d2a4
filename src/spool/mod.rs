//! A broker's durable spool (design §8.9): publishes the broker cannot take now are appended to
//! a local [`log::SegmentLog`] and forwarded to the broker in order once it takes them again.
//!
//! Appends go to one writer thread, which takes every append queued behind the one it is
//! writing and syncs them with one `fdatasync` (group commit) before any of them is answered.
//! The forwarder task reads the log from its head in order, sends each chunk to the broker until
//! every event of it is acknowledged (retrying without end), then releases it. While the spool
//! holds anything, or an append is under way, the pipeline sends nothing live
//! ([`Spool::busy`]): new events queue behind the spooled ones, so order holds.

mod forward;
pub mod log;
pub mod record;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::backend::{Backend, Outbound};
use crate::config::SpoolConfig;
use crate::telemetry;
use log::{push_frame, AppendError, SegmentLog, FRAME};

/// How long a publisher refused by a full spool is told to wait.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("opening the spool of broker `{broker}` in {dir}: {source}")]
pub struct OpenError {
    broker: String,
    dir: String,
    source: std::io::Error,
}

struct Job {
    frames: Vec<u8>,
    count: u64,
    done: oneshot::Sender<Result<(), String>>,
}

/// Handles of the spool's metrics.
struct Meters {
    events: Gauge,
    bytes: Gauge,
    oldest: Gauge,
    spooled: Counter,
    forwarded: Counter,
    dropped: Counter,
}

/// One broker's spool; cheap to share.
pub struct Spool {
    broker: String,
    log: Arc<SegmentLog>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Appends decided on and not yet written.
    pending: AtomicU64,
    /// Events written and not yet released (the log's count, readable without its lock: the
    /// pipeline asks on every publish).
    held: AtomicU64,
    /// Wakes the forwarder when something was appended.
    appended: Notify,
    /// Unix ms at which the oldest unreleased event was spooled (0 = none known).
    oldest_ms: AtomicU64,
    meters: Meters,
    /// The forwarder's last failure, for `/v1/brokers`.
    last_error: Mutex<Option<String>>,
}

/// A decision to append, held until the append is written: the spool counts as busy meanwhile,
/// so nothing overtakes it live.
pub struct Pending(Arc<Spool>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What `/v1/brokers` shows of a spool.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backlog {
    /// Events waiting for the broker.
    pub events: u64,
    /// Bytes of the spool's files.
    pub bytes: u64,
    /// The bound on `bytes`.
    pub max_bytes: u64,
    /// Seconds since the oldest waiting event was spooled.
    pub oldest_age_seconds: f64,
    /// Why the last forward failed, while the spool is not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Spool {
    /// Opens the spool of `broker` in `dir` (recovering what a previous process left there) and
    /// starts its writer thread and its forwarder, which stops when `stop` turns true.
    pub fn start(
        broker: &str,
        dir: &Path,
        config: &SpoolConfig,
        backend: Arc<dyn Backend>,
        ack_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, OpenError> {
        let fail = |source| OpenError {
            broker: broker.to_string(),
            dir: dir.display().to_string(),
            source,
        };
        let (log, recovered) =
            SegmentLog::open(dir, config.max_bytes.as_u64(), config.segment_bytes())
                .map_err(fail)?;
        for (segment, bytes) in &recovered.torn {
            tracing::warn!(broker, segment, bytes, "spool: cut a torn record off the end of a segment (a write the crash interrupted; it was never acknowledged)");
        }
        if recovered.records > 0 {
            tracing::info!(
                broker,
                events = recovered.records,
                "spool: forwarding events a previous run left"
            );
        }
        let log = Arc::new(log);
        let (jobs, queue) = mpsc::unbounded_channel();
        let label = broker.to_string();
        let meters = Meters {
            events: metrics::gauge!(telemetry::SPOOL_EVENTS, "broker" => label.clone()),
            bytes: metrics::gauge!(telemetry::SPOOL_BYTES, "broker" => label.clone()),
            oldest: metrics::gauge!(telemetry::SPOOL_OLDEST_AGE, "broker" => label.clone()),
            spooled: metrics::counter!(telemetry::SPOOL_SPOOLED, "broker" => label.clone()),
            forwarded: metrics::counter!(telemetry::SPOOL_FORWARDED, "broker" => label.clone()),
            dropped: metrics::counter!(telemetry::SPOOL_DROPPED, "broker" => label),
        };
        let spool = Arc::new(Self {
            broker: broker.to_string(),
            log: log.clone(),
            jobs,
            pending: AtomicU64::new(0),
            held: AtomicU64::new(recovered.records),
            appended: Notify::new(),
            oldest_ms: AtomicU64::new(0),
            meters,
            last_error: Mutex::new(None),
        });
        spool.update_gauges();
        std::thread::Builder::new()
            .name(format!("spool-{broker}"))
            .spawn(move || write_loop(&log, queue))
            .map_err(fail)?;
        tokio::spawn(forward::run(spool.clone(), backend, ack_timeout, stop));
        Ok(spool)
    }

    /// Whether new events must go to the spool: it holds events, or an append is under way.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0 || self.held.load(Ordering::Acquire) > 0
    }

    /// Marks an append as decided on, before it is written.
    pub fn pending(self: &Arc<Self>) -> Pending {
        self.pending.fetch_add(1, Ordering::AcqRel);
        Pending(self.clone())
    }

    /// Appends `events` durably, in order, all or none.
    pub async fn append(&self, events: &[Outbound]) -> Result<(), String> {
        let now = now_ms();
        let mut frames = Vec::with_capacity(
            events
                .iter()
                .map(|o| o.event.weight() + o.topic.len() + 64 + FRAME)
                .sum(),
        );
        let mut payload = Vec::new();
        for outbound in events {
            payload.clear();
            record::encode(outbound, now, &mut payload);
            push_frame(&mut frames, &payload);
        }
        let (done, written) = oneshot::channel();
        let job = Job {
            frames,
            count: events.len() as u64,
            done,
        };
        self.jobs
            .send(job)
            .map_err(|_| "the spool's writer has stopped".to_string())?;
        let result = written
            .await
            .unwrap_or_else(|_| Err("the spool's writer has stopped".into()));
        if result.is_ok() {
            self.held.fetch_add(events.len() as u64, Ordering::AcqRel);
            let _ = self
                .oldest_ms
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
            self.meters.spooled.increment(events.len() as u64);
            self.appended.notify_one();
        }
        self.update_gauges();
        result
    }

    /// What the spool holds.
    pub fn backlog(&self) -> Backlog {
        let events = self.log.records();
        Backlog {
            events,
            bytes: self.log.disk_bytes(),
            max_bytes: self.log.max_bytes(),
            oldest_age_seconds: self.oldest_age().as_secs_f64(),
            last_error: match events {
                0 => None,
                _ => self.last_error.lock().expect("spool lock").clone(),
            },
        }
    }

    fn oldest_age(&self) -> Duration {
        match self.oldest_ms.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            at => Duration::from_millis(now_ms().saturating_sub(at)),
        }
    }

    fn update_gauges(&self) {
        self.meters.events.set(self.log.records() as f64);
        self.meters.bytes.set(self.log.disk_bytes() as f64);
        self.meters.oldest.set(self.oldest_age().as_secs_f64());
    }
}

/// The writer thread: one write and one sync per group of queued appends.
fn write_loop(log: &SegmentLog, mut queue: mpsc::UnboundedReceiver<Job>) {
    /// Bytes one group takes at most, so a sync never waits on an unbounded write.
    const GROUP_BYTES: usize = 8 << 20;
    let mut frames = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        let mut bytes = group[0].frames.len();
        while bytes < GROUP_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += job.frames.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        // One job that does not fit must not sink the others with it: write the group whole
        // when it fits, else each job alone.
        frames.clear();
        for job in &group {
            frames.extend_from_slice(&job.frames);
        }
        let count = group.iter().map(|j| j.count).sum();
        let result = log.append(&frames, count);
        if frames.capacity() > GROUP_BYTES {
            frames = Vec::new();
        }
        match result {
            Ok(()) => {
                for job in group {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(AppendError::Full { .. }) if group.len() > 1 => {
                for job in group {
                    let result = log
                        .append(&job.frames, job.count)
                        .map_err(|e| e.to_string());
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for job in group {
                    let _ = job.done.send(Err(reason.clone()));
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
