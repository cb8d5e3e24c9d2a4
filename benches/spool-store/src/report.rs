//! Result records (what each child process prints as JSON, and the whole report
//! the parent writes with `--json`) and the human-readable tables printed at the end.

use serde::{Deserialize, Serialize};

use crate::{Store, FREE_GROUP};

/// One append setting: throughput, CPU and group-commit latency.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendResult {
    /// The candidate.
    pub store: Store,
    /// Events per group (one fsync per group).
    pub group: usize,
    /// Events appended.
    pub events: u64,
    /// Wall-clock time of the appends.
    pub secs: f64,
    /// Appended events per second.
    pub events_per_sec: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Process CPU time (user + system, all threads) during the appends.
    pub cpu_secs: f64,
    /// CPU time per event, in microseconds.
    pub cpu_us_per_event: f64,
    /// Median group-commit latency, in milliseconds.
    pub commit_p50_ms: f64,
    /// 99th-percentile group-commit latency, in milliseconds.
    pub commit_p99_ms: f64,
    /// Slowest group commit, in milliseconds.
    pub commit_max_ms: f64,
    /// Filled in by the parent after the child exits (du of the directory).
    #[serde(default)]
    pub disk_bytes: u64,
}

/// One recovery: reopen the store and read every event in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoverResult {
    /// The candidate.
    pub store: Store,
    /// Whether the store's files were evicted from the page cache first.
    pub cold: bool,
    /// Time to open the store.
    pub open_secs: f64,
    /// Time to read and verify every event after opening.
    pub read_secs: f64,
    /// `open_secs + read_secs`.
    pub total_secs: f64,
    /// Events recovered.
    pub events: u64,
    /// What stopped the scan early, if anything (segment log only).
    pub torn: Option<String>,
    /// Peak RSS (VmHWM) of the recovering process, in KiB.
    pub peak_rss_kib: u64,
    /// Process CPU time of the recovery.
    pub cpu_secs: f64,
}

/// Forward-and-free: read everything in order and free it in durable groups.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardResult {
    /// The candidate.
    pub store: Store,
    /// Time to open the store.
    pub open_secs: f64,
    /// Time to read and free every event after opening.
    pub forward_secs: f64,
    /// Events forwarded.
    pub events: u64,
    /// Forwarded events per second (excluding the open).
    pub events_per_sec: f64,
    /// Peak RSS (VmHWM) of the forwarding process, in KiB.
    pub peak_rss_kib: u64,
    /// Process CPU time of the open and the forwarding.
    pub cpu_secs: f64,
    /// Filled in by the parent after the child exits.
    #[serde(default)]
    pub disk_bytes_after: u64,
}

/// Outcome of the torn-tail check of the segment log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TornResult {
    /// `segment` or `segment-pre`.
    pub store: Store,
    /// Events written before the damage.
    pub written: u64,
    /// What was done to the last record.
    pub damage: String,
    /// Events recovered after tearing the last record.
    pub recovered_after_truncate: u64,
    /// What the scan reported after tearing the last record.
    pub reported_after_truncate: Option<String>,
    /// Events recovered after also flipping a byte in the new last record.
    pub recovered_after_bitflip: u64,
    /// What the scan reported after the flipped byte.
    pub reported_after_bitflip: Option<String>,
    /// Events recovered after repairing and appending 100 more.
    pub recovered_after_repair_and_append: u64,
    /// Whether every step recovered and reported what it should.
    pub ok: bool,
}

/// Everything measured for one candidate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreReport {
    /// The candidate.
    pub store: Store,
    /// One result per append group size.
    pub appends: Vec<AppendResult>,
    /// The fill before recovery and forward-and-free.
    pub fill: AppendResult,
    /// Recovery with a cold page cache.
    pub recover_cold: RecoverResult,
    /// Recovery with a warm page cache.
    pub recover_warm: RecoverResult,
    /// Forward-and-free after the recoveries.
    pub forward: ForwardResult,
}

/// The whole benchmark's results (printed as tables, optionally written as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Payload size of one event.
    pub event_size: usize,
    /// Events written by each fill.
    pub fill_events: u64,
    /// Base directory of the scratch directories.
    pub scratch_dir: String,
    /// (crate, version) of the candidate crates.
    pub crate_versions: Vec<(String, String)>,
    /// One report per candidate, in the order they were run.
    pub stores: Vec<StoreReport>,
    /// Torn-tail checks (plain and preallocated segments).
    pub torn: Vec<TornResult>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Print the report as tables on stdout.
pub fn print_report(r: &Report) {
    println!(
        "spool-store-bench: {} B events, scratch dir {}",
        r.event_size, r.scratch_dir
    );
    let versions: Vec<String> = r
        .crate_versions
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    println!("crates: {}", versions.join(", "));
    println!();
    println!("Append (one fsync per group, single writer):");
    println!(
        "{:<11} {:>5} {:>8} {:>6} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "store",
        "group",
        "events",
        "secs",
        "events/s",
        "MB/s",
        "CPU us/ev",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let settings = r.stores.first().map_or(0, |st| st.appends.len());
    for i in 0..settings {
        for a in r.stores.iter().filter_map(|st| st.appends.get(i)) {
            println!(
                "{:<11} {:>5} {:>8} {:>6.2} {:>10.0} {:>8.1} {:>10.2} {:>9.3} {:>9.3} {:>9.3}",
                a.store.name(),
                a.group,
                a.events,
                a.secs,
                a.events_per_sec,
                a.mb_per_sec,
                a.cpu_us_per_event,
                a.commit_p50_ms,
                a.commit_p99_ms,
                a.commit_max_ms
            );
        }
    }
    println!();
    println!(
        "Fill {} events ({} MiB payload), group {FREE_GROUP}; recovery = reopen + read all in order with checksum verification:",
        r.fill_events,
        (r.fill_events * r.event_size as u64) >> 20
    );
    println!(
        "{:<11} {:>7} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "store",
        "fill s",
        "fill ev/s",
        "disk MiB",
        "rec cold s",
        "(open s)",
        "rec warm s",
        "RSS MiB",
        "rec CPU s",
        "fill us/ev"
    );
    for st in &r.stores {
        let c = &st.recover_cold;
        println!(
            "{:<11} {:>7.2} {:>9.0} {:>9.1} {:>10.3} {:>10.3} {:>10.3} {:>9.1} {:>9.2} {:>10.2}",
            st.store.name(),
            st.fill.secs,
            st.fill.events_per_sec,
            mib(st.fill.disk_bytes),
            c.total_secs,
            c.open_secs,
            st.recover_warm.total_secs,
            c.peak_rss_kib as f64 / 1024.0,
            c.cpu_secs,
            st.fill.cpu_us_per_event
        );
    }
    println!();
    println!("Forward-and-free (read in order, free in durable groups of {FREE_GROUP}):");
    println!(
        "{:<11} {:>9} {:>10} {:>9} {:>9} {:>15}",
        "store", "secs", "events/s", "CPU s", "RSS MiB", "disk after MiB"
    );
    for st in &r.stores {
        let f = &st.forward;
        println!(
            "{:<11} {:>9.3} {:>10.0} {:>9.2} {:>9.1} {:>15.1}",
            st.store.name(),
            f.open_secs + f.forward_secs,
            f.events_per_sec,
            f.cpu_secs,
            f.peak_rss_kib as f64 / 1024.0,
            mib(f.disk_bytes_after)
        );
    }
    println!();
    for t in &r.torn {
        println!(
            "Torn tail ({}): wrote {}, {} -> recovered {}, reported: {}",
            t.store.name(),
            t.written,
            t.damage,
            t.recovered_after_truncate,
            t.reported_after_truncate.as_deref().unwrap_or("nothing")
        );
        println!(
            "  + flipped a byte in the new last record -> recovered {}, reported: {}",
            t.recovered_after_bitflip,
            t.reported_after_bitflip.as_deref().unwrap_or("nothing")
        );
        println!(
            "  + repaired (truncate to valid end) and appended 100 -> recovered {}; check {}",
            t.recovered_after_repair_and_append,
            if t.ok { "OK" } else { "FAILED" }
        );
    }
}

/// Versions of the candidate crates, read from this crate's Cargo.lock at build time.
pub fn crate_versions() -> Vec<(String, String)> {
    let lock = include_str!("../Cargo.lock");
    let mut out = Vec::new();
    for want in ["crc32fast", "redb", "fjall", "lsm-tree"] {
        let mut lines = lock.lines();
        while let Some(l) = lines.next() {
            if l == format!("name = \"{want}\"") {
                if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = ")) {
                    out.push((want.to_string(), v.trim_matches('"').to_string()));
                }
                break;
            }
        }
    }
    out
}
