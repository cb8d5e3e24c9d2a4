//! The measurements each child process runs (`append`, `recover`, `forward`):
//! common timing, CPU and RSS accounting around the per-candidate code in
//! [`crate::segment`], [`crate::redb_store`] and [`crate::fjall_store`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::fjall_store::{self, FjallWriter};
use crate::measure::{cpu_time, evict_page_cache, peak_rss_kib, percentile};
use crate::payload::{in_order_checker, make_payload, random_pool};
use crate::redb_store::{self, RedbWriter};
use crate::report::{AppendResult, ForwardResult, RecoverResult};
use crate::segment::{self, SegmentWriter};
use crate::{Res, Store, EVENT_SIZE};

/// An open candidate, ready to append groups.
enum Writer {
    Segment(SegmentWriter),
    Redb(RedbWriter),
    Fjall(FjallWriter),
}

impl Writer {
    fn open(store: Store, dir: &Path) -> Res<Self> {
        Ok(match store {
            Store::Segment => Writer::Segment(SegmentWriter::open(dir, false)?),
            Store::SegmentPre => Writer::Segment(SegmentWriter::open(dir, true)?),
            Store::Redb => Writer::Redb(RedbWriter::open(dir)?),
            Store::Fjall => Writer::Fjall(FjallWriter::open(dir)?),
        })
    }

    /// Durably append `payloads`, which get sequence numbers `first_seq..`.
    fn append_group(&mut self, first_seq: u64, payloads: &[&[u8]], val: &mut Vec<u8>) -> Res<()> {
        match self {
            Writer::Segment(w) => w.append_group(payloads),
            Writer::Redb(w) => w.append_group(first_seq, payloads, val),
            Writer::Fjall(w) => w.append_group(first_seq, payloads, val),
        }
    }
}

/// Append events in groups of `group` (one fsync per group) to a new store in
/// `dir` until `max_events` or `max_secs` is reached.
pub fn cmd_append(
    store: Store,
    dir: &Path,
    group: usize,
    max_events: u64,
    max_secs: f64,
) -> Res<AppendResult> {
    let pool = random_pool();
    let mut bufs = vec![vec![0u8; EVENT_SIZE]; group];
    let mut val = Vec::with_capacity(EVENT_SIZE + 4);
    let mut w = Writer::open(store, dir)?;
    let limit = Duration::from_secs_f64(max_secs);
    let mut lat = Vec::new();
    let mut seq = 0u64;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    while seq + group as u64 <= max_events && t0.elapsed() < limit {
        for (i, b) in bufs.iter_mut().enumerate() {
            make_payload(&pool, seq + i as u64, b);
        }
        let refs: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
        let g0 = Instant::now();
        w.append_group(seq, &refs, &mut val)?;
        lat.push(g0.elapsed());
        seq += group as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu0;
    drop(w);
    lat.sort_unstable();
    Ok(AppendResult {
        store,
        group,
        events: seq,
        secs,
        events_per_sec: seq as f64 / secs,
        mb_per_sec: (seq * EVENT_SIZE as u64) as f64 / secs / 1e6,
        cpu_secs: cpu,
        cpu_us_per_event: cpu * 1e6 / seq.max(1) as f64,
        commit_p50_ms: percentile(&lat, 0.50),
        commit_p99_ms: percentile(&lat, 0.99),
        commit_max_ms: lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        disk_bytes: 0,
    })
}

/// Reopen the store in `dir` (after evicting its files from the page cache if
/// `cold`) and read every event in order, verifying checksums and sequence numbers.
pub fn cmd_recover(store: Store, dir: &Path, cold: bool) -> Res<RecoverResult> {
    if cold {
        evict_page_cache(dir)?;
    }
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut check = in_order_checker();
    let (open_secs, events, torn) = match store {
        Store::Segment | Store::SegmentPre => segment::recover(dir, t0, &mut check)?,
        Store::Redb => redb_store::recover(dir, t0, &mut check)?,
        Store::Fjall => fjall_store::recover(dir, t0, &mut check)?,
    };
    let total = t0.elapsed().as_secs_f64();
    Ok(RecoverResult {
        store,
        cold,
        open_secs,
        read_secs: total - open_secs,
        total_secs: total,
        events,
        torn,
        peak_rss_kib: peak_rss_kib(),
        cpu_secs: cpu_time() - cpu0,
    })
}

/// Read every event of the store in `dir` in order (verifying it) and free them
/// in durable groups of FREE_GROUP, as the forwarder does once the broker acks.
pub fn cmd_forward(store: Store, dir: &Path) -> Res<ForwardResult> {
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut check = in_order_checker();
    let (open_secs, events) = match store {
        Store::Segment | Store::SegmentPre => segment::forward(dir, t0, &mut check)?,
        Store::Redb => redb_store::forward(dir, t0, &mut check)?,
        Store::Fjall => fjall_store::forward(dir, t0, &mut check)?,
    };
    let secs = t0.elapsed().as_secs_f64();
    let forward_secs = secs - open_secs;
    Ok(ForwardResult {
        store,
        open_secs,
        forward_secs,
        events,
        events_per_sec: events as f64 / forward_secs,
        peak_rss_kib: peak_rss_kib(),
        cpu_secs: cpu_time() - cpu0,
        disk_bytes_after: 0,
    })
}
