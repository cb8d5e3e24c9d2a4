//! Storage benchmark for sidebus's durable local spool.
//!
//! When the broker is down, sidebus appends published events (~1 KiB each) to a
//! durable local log with group commit (one fsync per group, before the HTTP 202s
//! that depend on it); a forwarder later reads them back in FIFO order, produces
//! them to the broker and frees the space once acknowledged. This crate compares
//! three candidate stores for that spool:
//!
//! * `segment`: a hand-written append-only segment log on `std::fs` + `crc32fast`
//!   (records framed as `[u32 LE len][u32 LE crc32(payload)][payload]`, 64 MiB
//!   segments, one `write_all` + `File::sync_data()` per group, a small durable
//!   cursor file for the consumed position, whole segments deleted once consumed);
//! * `segment-pre`: the same log with each new segment pre-sized to 64 MiB by a sparse
//!   `set_len` (as fjall does for its journal) so appends never grow the file size;
//!   zeros past the last record read as end-of-segment (so empty records are refused);
//! * `redb`: one table `u64 -> &[u8]`, one write transaction per group with the
//!   default durability (fsync on commit), range reads, key deletes per group;
//! * `fjall`: one keyspace with u64 big-endian keys, one write batch per group then
//!   `Database::persist(PersistMode::SyncData)`, range reads, key removes per group.
//!
//! For redb and fjall the stored value is `[u32 LE crc32(payload)][payload]` so that
//! every candidate verifies an application-level checksum on read. Payloads start
//! with their u64 LE sequence number followed by pseudo-random (incompressible) bytes,
//! and every read checks that sequence numbers come back contiguous and in order.
//!
//! It measures, per candidate:
//! * append throughput (events/s, MB/s of payload) for 1 KiB events with group sizes
//!   1, 64 and 512 (one fsync per group), for ~3 s or 200,000 events, whichever
//!   comes first, with one writer thread, plus process CPU time per event
//!   (`getrusage`, includes the store's background threads) and group-commit latency;
//! * a 256 MiB fill (262,144 events, group 512), the on-disk size afterwards, then
//!   recovery (reopen + read every event in order with checksum verification) with a
//!   cold page cache (the store's files are evicted with `posix_fadvise(DONTNEED)`)
//!   and warm, with the peak RSS (VmHWM) of the recovering process;
//! * forward-and-free: read everything in order and free it in groups of 512
//!   (durably), and the on-disk size afterwards;
//! * a torn-tail check for the segment log (truncated last record, and a flipped
//!   byte in the last record).
//!
//! Every measurement runs in a fresh child process (this same executable, invoked
//! with a subcommand such as `recover --store redb --dir X`) so that peak RSS and CPU
//! time are per candidate and per phase.
//!
//! Run (from anywhere; the crate is standalone, not part of the sidebus workspace):
//!
//! ```text
//! CARGO_TARGET_DIR=/work/spool-store-target nice -n 10 \
//!   cargo run --release --manifest-path benches/spool-store/Cargo.toml -- \
//!   --json /tmp/spool-store.json
//! ```
//!
//! Scratch directories are created under `--dir` (default: the system temp dir).

//!
//! Layout: this file holds the command line and the parent's orchestration of the
//! child processes; [`phases`] runs one measurement inside a child; [`segment`],
//! [`redb_store`] and [`fjall_store`] hold the candidates; [`torn`] the torn-tail
//! check; [`payload`] the event payloads; [`measure`] CPU, RSS, disk usage and
//! latency helpers; [`report`] the result records, the tables and the JSON report.

mod fjall_store;
mod measure;
mod payload;
mod phases;
mod redb_store;
mod report;
mod segment;
mod torn;

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::measure::disk_usage;
use crate::report::{
    crate_versions, print_report, AppendResult, ForwardResult, RecoverResult, Report, StoreReport,
};

/// Result type used throughout the benchmark.
pub type Res<T> = Result<T, Box<dyn Error>>;

/// Payload size of one event.
pub const EVENT_SIZE: usize = 1024;
/// Events are forwarded and freed in groups of this many.
pub const FREE_GROUP: usize = 512;

/// A storage candidate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Store {
    Segment,
    /// The segment log with each new segment pre-sized to 64 MiB (sparse `set_len`,
    /// as fjall does for its journal) so that appends do not grow the file size.
    SegmentPre,
    Redb,
    Fjall,
}

impl Store {
    /// The candidate's name as used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Store::Segment => "segment",
            Store::SegmentPre => "segment-pre",
            Store::Redb => "redb",
            Store::Fjall => "fjall",
        }
    }
}

#[derive(Parser)]
#[command(
    version,
    about = "Benchmark storage candidates for the sidebus durable spool"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Base directory for the scratch directories (default: system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Candidates to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "segment,segment-pre,redb,fjall"
    )]
    stores: Vec<Store>,
    /// Group sizes (events per fsync) for the append benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,64,512")]
    groups: Vec<usize>,
    /// Stop each append setting after this many events...
    #[arg(long, default_value_t = 200_000)]
    max_events: u64,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 3.0)]
    max_secs: f64,
    /// Events written (group 512) before the recovery and forward-and-free phases.
    #[arg(long, default_value_t = 262_144)]
    fill_events: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// (child) Append events in groups, one fsync per group; prints JSON.
    Append {
        #[arg(long)]
        store: Store,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        group: usize,
        #[arg(long)]
        max_events: u64,
        #[arg(long)]
        max_secs: f64,
    },
    /// (child) Reopen the store and read every event in order, verifying; prints JSON.
    Recover {
        #[arg(long)]
        store: Store,
        #[arg(long)]
        dir: PathBuf,
        /// Evict the store's files from the page cache first.
        #[arg(long)]
        cold: bool,
    },
    /// (child) Read every event in order and free them in groups of 512; prints JSON.
    Forward {
        #[arg(long)]
        store: Store,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Torn-tail check of the segment log in a scratch directory; prints JSON.
    Torn {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use preallocated segments.
        #[arg(long)]
        prealloc: bool,
    },
}

// ---------------------------------------------------------------------------
// Parent: orchestration
// ---------------------------------------------------------------------------

/// Run this executable with `args` and parse the JSON it prints on its last line.
fn child<T: DeserializeOwned>(args: &[String]) -> Res<T> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "child {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout.lines().last().ok_or("child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn dir_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One append setting in a fresh child process and a fresh scratch directory.
fn run_append(store: Store, group: usize, a: &RunArgs, base: &Path) -> Res<AppendResult> {
    let tmp = tempfile::tempdir_in(base)?;
    eprintln!("[{}] append group={group} ...", store.name());
    let mut r: AppendResult = child(&[
        s("append"),
        s("--store"),
        s(store.name()),
        s("--dir"),
        dir_arg(tmp.path()),
        s("--group"),
        s(group),
        s("--max-events"),
        s(a.max_events),
        s("--max-secs"),
        s(a.max_secs),
    ])?;
    r.disk_bytes = disk_usage(tmp.path())?;
    Ok(r)
}

fn run_store(
    store: Store,
    appends: Vec<AppendResult>,
    a: &RunArgs,
    base: &Path,
) -> Res<StoreReport> {
    let name = s(store.name());
    let tmp = tempfile::tempdir_in(base)?;
    let d = dir_arg(tmp.path());
    eprintln!(
        "[{name}] fill {} events, group {FREE_GROUP} ...",
        a.fill_events
    );
    let mut fill: AppendResult = child(&[
        s("append"),
        s("--store"),
        name.clone(),
        s("--dir"),
        d.clone(),
        s("--group"),
        s(FREE_GROUP),
        s("--max-events"),
        s(a.fill_events),
        s("--max-secs"),
        s(1e9),
    ])?;
    fill.disk_bytes = disk_usage(tmp.path())?;

    eprintln!("[{name}] recover (cold) ...");
    let recover_cold: RecoverResult = child(&[
        s("recover"),
        s("--store"),
        name.clone(),
        s("--dir"),
        d.clone(),
        s("--cold"),
    ])?;
    eprintln!("[{name}] recover (warm) ...");
    let recover_warm: RecoverResult = child(&[
        s("recover"),
        s("--store"),
        name.clone(),
        s("--dir"),
        d.clone(),
    ])?;
    for r in [&recover_cold, &recover_warm] {
        if r.events != fill.events {
            return Err(format!(
                "[{name}] recovered {} events, expected {}",
                r.events, fill.events
            )
            .into());
        }
    }
    eprintln!("[{name}] forward-and-free ...");
    let mut forward: ForwardResult = child(&[
        s("forward"),
        s("--store"),
        name.clone(),
        s("--dir"),
        d.clone(),
    ])?;
    forward.disk_bytes_after = disk_usage(tmp.path())?;
    if forward.events != fill.events {
        return Err(format!(
            "[{name}] forwarded {} events, expected {}",
            forward.events, fill.events
        )
        .into());
    }
    Ok(StoreReport {
        store,
        appends,
        fill,
        recover_cold,
        recover_warm,
        forward,
    })
}

fn run_all(a: &RunArgs) -> Res<()> {
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    // Append settings are interleaved across candidates (group by group) so that
    // drifts in the shared machine's fsync latency hit every candidate alike.
    let mut appends = vec![Vec::new(); a.stores.len()];
    for &g in &a.groups {
        for (i, &st) in a.stores.iter().enumerate() {
            appends[i].push(run_append(st, g, a, &base)?);
        }
    }
    let mut stores = Vec::new();
    for (&st, ap) in a.stores.iter().zip(appends) {
        stores.push(run_store(st, ap, a, &base)?);
    }
    eprintln!("[segment] torn-tail checks ...");
    let torn = vec![torn::cmd_torn(&base, false)?, torn::cmd_torn(&base, true)?];
    let report = Report {
        event_size: EVENT_SIZE,
        fill_events: a.fill_events,
        scratch_dir: base.to_string_lossy().into_owned(),
        crate_versions: crate_versions(),
        stores,
        torn,
    };
    print_report(&report);
    if let Some(path) = &a.json {
        fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nJSON written to {}", path.display());
    }
    if report.torn.iter().any(|t| !t.ok) {
        return Err("torn-tail check failed".into());
    }
    Ok(())
}

fn print_json<T: Serialize>(v: &T) -> Res<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn main() -> Res<()> {
    let cli = Cli::parse();
    match cli.cmd {
        None => run_all(&cli.run),
        Some(Cmd::Append {
            store,
            dir,
            group,
            max_events,
            max_secs,
        }) => print_json(&phases::cmd_append(
            store, &dir, group, max_events, max_secs,
        )?),
        Some(Cmd::Recover { store, dir, cold }) => {
            print_json(&phases::cmd_recover(store, &dir, cold)?)
        }
        Some(Cmd::Forward { store, dir }) => print_json(&phases::cmd_forward(store, &dir)?),
        Some(Cmd::Torn { dir, prealloc }) => {
            let base = dir.unwrap_or_else(std::env::temp_dir);
            print_json(&torn::cmd_torn(&base, prealloc)?)
        }
    }
}
