//! Driving the workers: closed or open loop, counting what they did and recording latencies.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::ops::{Op, OpError};
use crate::OP_TIMEOUT;

/// Histogram shards: workers record into `worker % SHARDS`, keeping memory small and flat.
const SHARDS: usize = 16;
/// Longest latency the histograms hold, in microseconds (larger values saturate).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Latencies (µs) of successful operations, sharded so workers rarely meet on a lock.
struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        })
    }

    fn record(&self, worker: usize, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.shards[worker % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(us);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            all.add(&*shard.lock().unwrap_or_else(|e| e.into_inner()))
                .expect("histograms with the same bounds add up");
        }
        all
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counts of one worker.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) rejected: u64,
    pub(crate) first_error: Option<String>,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.rejected += other.rejected;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, error: OpError) {
        if error.rejected {
            self.rejected += 1;
        } else {
            self.errors += 1;
        }
        self.first_error.get_or_insert(error.message);
    }
}

/// What a run of workers did.
pub(crate) struct Tally {
    pub(crate) counts: Counts,
    pub(crate) hist: Histogram<u64>,
    pub(crate) elapsed: Duration,
}

/// How a phase drives its workers.
#[derive(Clone, Copy)]
pub(crate) enum Drive {
    /// Every worker repeats its operation back to back until the time is up (closed loop).
    Closed { duration: Duration },
    /// Operation `i` is due at `start + i / rate`, spread round-robin over the workers; when a
    /// worker is still busy at an operation's due time, its latency counts from the due time, so
    /// queueing behind a slow answer is latency too (open loop, no coordinated omission).
    Open { rate: f64, total: u64 },
}

/// Runs `ops` (one worker task each) and hands them back for the next run.
pub(crate) async fn run<O: Op>(ops: Vec<O>, drive: Drive, max_ops: u64) -> (Vec<O>, Tally) {
    let workers = ops.len();
    let recorder = Recorder::new();
    let left = Arc::new(AtomicI64::new(i64::try_from(max_ops).unwrap_or(i64::MAX)));
    let started = Instant::now();
    let (deadline, hard_limit) = match drive {
        Drive::Closed { duration } => (started + duration, duration + OP_TIMEOUT * 2),
        Drive::Open { rate, total } => {
            let span = Duration::from_secs_f64(total as f64 / rate);
            (started + span, span + OP_TIMEOUT * 2)
        }
    };
    let mut handles = Vec::with_capacity(workers);
    for (worker, mut op) in ops.into_iter().enumerate() {
        let recorder = recorder.clone();
        let left = left.clone();
        handles.push(tokio::spawn(async move {
            let mut counts = Counts::default();
            let mut n: u64 = 0;
            loop {
                let due = match drive {
                    Drive::Closed { .. } => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        None
                    }
                    Drive::Open { rate, total } => {
                        let i = worker as u64 + n * workers as u64;
                        if i >= total {
                            break;
                        }
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if Instant::now() < due {
                            // Idle until due: the timer's lateness (tokio's 1 ms wheel) is the
                            // client's, not the server's, so latency counts from the wake-up.
                            tokio::time::sleep_until(due.into()).await;
                            None
                        } else {
                            // Behind schedule: the wait since the due time is queueing, and
                            // counts (no coordinated omission).
                            Some(due)
                        }
                    }
                };
                if left.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                n += 1;
                let begun = due.unwrap_or_else(Instant::now);
                match tokio::time::timeout(OP_TIMEOUT, op.call()).await {
                    Ok(Ok(())) => {
                        counts.ok += 1;
                        recorder.record(worker, begun.elapsed());
                    }
                    Ok(Err(e)) => counts.fail(e),
                    Err(_) => {
                        counts.fail(OpError::failed(format!("no answer within {OP_TIMEOUT:?}")))
                    }
                }
            }
            (op, counts)
        }));
    }
    let mut ops = Vec::with_capacity(workers);
    let mut counts = Counts::default();
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at((started + hard_limit).into(), handle).await {
            Ok(Ok((op, c))) => {
                ops.push(op);
                counts.add(c);
            }
            Ok(Err(e)) => counts.fail(OpError::failed(format!("worker failed: {e}"))),
            Err(_) => {
                abort.abort();
                counts.fail(OpError::failed("worker still busy at the hard time limit"));
            }
        }
    }
    let elapsed = started.elapsed();
    (
        ops,
        Tally {
            counts,
            hist: recorder.merged(),
            elapsed,
        },
    )
}
