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

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

type Res<T> = Result<T, Box<dyn Error>>;

/// Payload size of one event.
const EVENT_SIZE: usize = 1024;
/// Segment files roll over at this size.
const SEGMENT_SIZE: u64 = 64 << 20;
/// Frame header: u32 length + u32 crc32.
const HEADER: usize = 8;
/// Anything larger than this in a length field is treated as garbage.
const MAX_RECORD: usize = 16 << 20;
/// Events are forwarded and freed in groups of this many.
const FREE_GROUP: usize = 512;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Store {
    Segment,
    /// The segment log with each new segment pre-sized to 64 MiB (sparse `set_len`,
    /// as fjall does for its journal) so that appends do not grow the file size.
    SegmentPre,
    Redb,
    Fjall,
}

impl Store {
    fn name(self) -> &'static str {
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
// Results
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AppendResult {
    store: Store,
    group: usize,
    events: u64,
    secs: f64,
    events_per_sec: f64,
    mb_per_sec: f64,
    cpu_secs: f64,
    cpu_us_per_event: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    commit_max_ms: f64,
    /// Filled in by the parent after the child exits (du of the directory).
    #[serde(default)]
    disk_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RecoverResult {
    store: Store,
    cold: bool,
    open_secs: f64,
    read_secs: f64,
    total_secs: f64,
    events: u64,
    torn: Option<String>,
    peak_rss_kib: u64,
    cpu_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ForwardResult {
    store: Store,
    open_secs: f64,
    forward_secs: f64,
    events: u64,
    events_per_sec: f64,
    peak_rss_kib: u64,
    cpu_secs: f64,
    /// Filled in by the parent after the child exits.
    #[serde(default)]
    disk_bytes_after: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TornResult {
    store: Store,
    written: u64,
    damage: String,
    recovered_after_truncate: u64,
    reported_after_truncate: Option<String>,
    recovered_after_bitflip: u64,
    reported_after_bitflip: Option<String>,
    recovered_after_repair_and_append: u64,
    ok: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoreReport {
    store: Store,
    appends: Vec<AppendResult>,
    fill: AppendResult,
    recover_cold: RecoverResult,
    recover_warm: RecoverResult,
    forward: ForwardResult,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    event_size: usize,
    fill_events: u64,
    scratch_dir: String,
    crate_versions: Vec<(String, String)>,
    stores: Vec<StoreReport>,
    torn: Vec<TornResult>,
}

// ---------------------------------------------------------------------------
// Helpers: payloads, CPU time, RSS, disk usage, page cache eviction
// ---------------------------------------------------------------------------

const POOL_SIZE: usize = 1 << 20;

/// Pseudo-random bytes (xorshift64*) from which payload bodies are sliced.
fn random_pool() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pool = Vec::with_capacity(POOL_SIZE + EVENT_SIZE);
    while pool.len() < POOL_SIZE + EVENT_SIZE {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        pool.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    pool
}

/// Fill `buf` with the payload of event `seq`: its sequence number, then random bytes.
fn make_payload(pool: &[u8], seq: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let off = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % (POOL_SIZE - 8);
    let n = buf.len() - 8;
    buf[8..].copy_from_slice(&pool[off..off + n]);
}

/// Check that a payload has the right size and carries the expected sequence number.
fn check_payload(expected_seq: u64, payload: &[u8]) -> Res<()> {
    if payload.len() != EVENT_SIZE {
        return Err(format!("event {expected_seq}: bad size {}", payload.len()).into());
    }
    let seq = u64::from_le_bytes(payload[..8].try_into()?);
    if seq != expected_seq {
        return Err(format!("out of order: expected {expected_seq}, got {seq}").into());
    }
    Ok(())
}

/// Value stored in redb/fjall: crc32 of the payload, then the payload.
fn encode_value(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Verify and strip the crc prefix of a redb/fjall value.
fn decode_value(value: &[u8]) -> Res<&[u8]> {
    if value.len() < 4 {
        return Err("value too short".into());
    }
    let (crc, payload) = value.split_at(4);
    if u32::from_le_bytes(crc.try_into()?) != crc32fast::hash(payload) {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

/// User + system CPU time of this process (all threads).
fn cpu_time() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Peak resident set size of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Res<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk_files(&entry.path(), out)?;
        } else if ty.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Allocated size of everything under `dir` (like `du -s --block-size=1`).
fn disk_usage(dir: &Path) -> Res<u64> {
    let mut files = Vec::new();
    walk_files(dir, &mut files)?;
    let mut total = 0;
    for f in files {
        total += fs::symlink_metadata(&f)?.blocks() * 512;
    }
    Ok(total)
}

/// Evict the files under `dir` from the page cache (they are fsynced first so the
/// pages are clean), to simulate the cold cache of a restart after power loss.
fn evict_page_cache(dir: &Path) -> Res<()> {
    let mut files = Vec::new();
    walk_files(dir, &mut files)?;
    for path in files {
        let f = File::open(&path)?;
        f.sync_all()?;
        // SAFETY: plain syscall on a valid, open file descriptor.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(format!("posix_fadvise({}) failed: {rc}", path.display()).into());
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}

fn sync_dir(dir: &Path) -> Res<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Candidate 1: hand-written segment log
// ---------------------------------------------------------------------------

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Segment ids present in `dir`, ascending.
fn list_segments(dir: &Path) -> Res<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(id) = stem.parse() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

struct SegmentWriter {
    dir: PathBuf,
    prealloc: bool,
    file: File,
    seg_id: u64,
    seg_len: u64,
    buf: Vec<u8>,
    dir_dirty: bool,
}

impl SegmentWriter {
    /// Start writing a new segment after the highest existing one (a possibly torn
    /// tail of an older segment is never appended to; recovery truncates it).
    fn open(dir: &Path, prealloc: bool) -> Res<Self> {
        let seg_id = list_segments(dir)?.last().map_or(0, |id| id + 1);
        let file = Self::create_segment(dir, seg_id, prealloc)?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            prealloc,
            file,
            seg_id,
            seg_len: 0,
            buf: Vec::with_capacity(1 << 20),
            dir_dirty: true,
        })
    }

    /// Create a segment file. With `prealloc`, it is sized to SEGMENT_SIZE up front
    /// (sparse): the zeros past the last record read as "end of segment".
    fn create_segment(dir: &Path, id: u64, prealloc: bool) -> Res<File> {
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(segment_path(dir, id))?;
        if prealloc {
            file.set_len(SEGMENT_SIZE)?;
        }
        Ok(file)
    }

    fn flush_buf(&mut self) -> Res<()> {
        self.file.write_all(&self.buf)?;
        self.seg_len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn roll(&mut self) -> Res<()> {
        self.flush_buf()?;
        if self.prealloc {
            self.file.set_len(self.seg_len)?; // trim the unused preallocated tail
        }
        self.file.sync_data()?;
        self.seg_id += 1;
        self.file = Self::create_segment(&self.dir, self.seg_id, self.prealloc)?;
        self.seg_len = 0;
        self.dir_dirty = true;
        Ok(())
    }

    /// Durably append a group: one write_all and one fdatasync (plus a directory
    /// fsync when a new segment was created).
    fn append_group(&mut self, payloads: &[&[u8]]) -> Res<()> {
        for p in payloads {
            if p.is_empty() {
                return Err("empty records are not allowed (zero header = end)".into());
            }
            let rec = (HEADER + p.len()) as u64;
            let used = self.seg_len + self.buf.len() as u64;
            if used > 0 && used + rec > SEGMENT_SIZE {
                self.roll()?;
            }
            self.buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            self.buf
                .extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            self.buf.extend_from_slice(p);
        }
        self.flush_buf()?;
        self.file.sync_data()?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

/// Read until `buf` is full or EOF; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Res<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Where a scan of one segment stopped.
struct SegmentEnd {
    /// Offset just past the last valid record.
    valid_end: u64,
    /// Why the scan stopped early, if it did (torn or corrupt record).
    torn: Option<String>,
}

/// Scan one segment from `start`, calling `f(end_offset_of_record, payload)` for
/// every valid record; stops at the first torn/corrupt record and reports it.
fn scan_segment(
    path: &Path,
    start: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> Res<()>,
) -> Res<SegmentEnd> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    file.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut pos = start;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::with_capacity(EVENT_SIZE);
    loop {
        let n = read_full(&mut r, &mut header)?;
        if n == 0 {
            return Ok(SegmentEnd {
                valid_end: pos,
                torn: None,
            });
        }
        let torn = |why: String| {
            Ok(SegmentEnd {
                valid_end: pos,
                torn: Some(format!(
                    "{}: {why} at offset {pos} (file length {file_len})",
                    path.file_name().unwrap_or_default().to_string_lossy()
                )),
            })
        };
        if n < HEADER {
            return torn(format!("partial header ({n} of {HEADER} bytes)"));
        }
        let len = u32::from_le_bytes(header[..4].try_into()?) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into()?);
        if len == 0 {
            if crc == 0 {
                // Zeros: the preallocated, never written part of the segment.
                return Ok(SegmentEnd {
                    valid_end: pos,
                    torn: None,
                });
            }
            return torn("zero length with non-zero checksum".to_string());
        }
        if len > MAX_RECORD {
            return torn(format!("implausible length {len}"));
        }
        payload.resize(len, 0);
        let n = read_full(&mut r, &mut payload)?;
        if n < len {
            return torn(format!("partial payload ({n} of {len} bytes)"));
        }
        if crc32fast::hash(&payload) != crc {
            return torn("checksum mismatch".to_string());
        }
        pos += (HEADER + len) as u64;
        f(pos, &payload)?;
    }
}

const CURSOR_FILE: &str = "cursor";

/// Consumed position: everything before (segment, offset) has been acknowledged.
#[derive(Clone, Copy, Default, Debug)]
struct Cursor {
    seg: u64,
    off: u64,
}

fn read_cursor(dir: &Path) -> Option<Cursor> {
    let b = fs::read(dir.join(CURSOR_FILE)).ok()?;
    if b.len() != 20 {
        return None;
    }
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    if crc32fast::hash(&b[..16]) != crc {
        // A torn cursor only means re-delivering from the oldest segment.
        return None;
    }
    Some(Cursor {
        seg: u64::from_le_bytes(b[..8].try_into().ok()?),
        off: u64::from_le_bytes(b[8..16].try_into().ok()?),
    })
}

struct CursorFile {
    file: File,
}

impl CursorFile {
    fn open(dir: &Path) -> Res<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(CURSOR_FILE))?;
        Ok(CursorFile { file })
    }

    /// Durably record the consumed position (20 bytes, one fdatasync).
    fn store(&mut self, c: Cursor) -> Res<()> {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&c.seg.to_le_bytes());
        b[8..16].copy_from_slice(&c.off.to_le_bytes());
        let crc = crc32fast::hash(&b[..16]);
        b[16..].copy_from_slice(&crc.to_le_bytes());
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&b)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// Outcome of a full scan of the segment log.
struct ScanOutcome {
    records: u64,
    torn: Option<String>,
    /// (segment id, valid end) of every segment that had a torn/corrupt tail.
    torn_segments: Vec<(u64, u64)>,
}

/// Scan all segments from the consumed cursor on, in order, calling
/// `f(segment_id, end_offset, payload)` for every valid record.
/// Callback for every valid record: (segment id, offset just past the record, payload).
type OnRecord<'a> = dyn FnMut(u64, u64, &[u8]) -> Res<()> + 'a;

fn scan_log(dir: &Path, f: &mut OnRecord<'_>) -> Res<ScanOutcome> {
    let cursor = read_cursor(dir).unwrap_or_default();
    let mut out = ScanOutcome {
        records: 0,
        torn: None,
        torn_segments: Vec::new(),
    };
    for id in list_segments(dir)? {
        if id < cursor.seg {
            continue; // consumed; its deletion was interrupted
        }
        let start = if id == cursor.seg { cursor.off } else { 0 };
        let mut count = 0;
        let end = scan_segment(&segment_path(dir, id), start, &mut |off, p| {
            count += 1;
            f(id, off, p)
        })?;
        out.records += count;
        if let Some(t) = end.torn {
            out.torn_segments.push((id, end.valid_end));
            out.torn = Some(match out.torn.take() {
                Some(prev) => format!("{prev}; {t}"),
                None => t,
            });
        }
    }
    Ok(out)
}

/// Recovery repair: cut torn tails off so that later scans and appends are clean.
fn repair_log(dir: &Path, outcome: &ScanOutcome) -> Res<()> {
    for &(id, valid_end) in &outcome.torn_segments {
        let f = OpenOptions::new().write(true).open(segment_path(dir, id))?;
        f.set_len(valid_end)?;
        f.sync_all()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Candidate 2: redb
// ---------------------------------------------------------------------------

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("spool");

fn redb_path(dir: &Path) -> PathBuf {
    dir.join("spool.redb")
}

// ---------------------------------------------------------------------------
// Candidate 3: fjall
// ---------------------------------------------------------------------------

fn fjall_open(dir: &Path) -> Res<(fjall::Database, fjall::Keyspace)> {
    let db = fjall::Database::builder(dir.join("fjall")).open()?;
    let ks = db.keyspace("spool", fjall::KeyspaceCreateOptions::default)?;
    Ok((db, ks))
}

// ---------------------------------------------------------------------------
// Generic writer
// ---------------------------------------------------------------------------

enum Writer {
    Segment(SegmentWriter),
    Redb(redb::Database),
    Fjall(fjall::Database, fjall::Keyspace),
}

impl Writer {
    fn open(store: Store, dir: &Path) -> Res<Self> {
        Ok(match store {
            Store::Segment => Writer::Segment(SegmentWriter::open(dir, false)?),
            Store::SegmentPre => Writer::Segment(SegmentWriter::open(dir, true)?),
            Store::Redb => Writer::Redb(redb::Database::create(redb_path(dir))?),
            Store::Fjall => {
                let (db, ks) = fjall_open(dir)?;
                Writer::Fjall(db, ks)
            }
        })
    }

    /// Durably append `payloads`, which get sequence numbers `first_seq..`.
    fn append_group(&mut self, first_seq: u64, payloads: &[&[u8]], val: &mut Vec<u8>) -> Res<()> {
        match self {
            Writer::Segment(w) => w.append_group(payloads),
            Writer::Redb(db) => {
                let tx = db.begin_write()?; // default durability: Immediate
                {
                    let mut t = tx.open_table(REDB_TABLE)?;
                    for (i, p) in payloads.iter().enumerate() {
                        encode_value(p, val);
                        t.insert(first_seq + i as u64, val.as_slice())?;
                    }
                }
                tx.commit()?;
                Ok(())
            }
            Writer::Fjall(db, ks) => {
                let mut b = db.batch();
                for (i, p) in payloads.iter().enumerate() {
                    encode_value(p, val);
                    let key = (first_seq + i as u64).to_be_bytes();
                    b.insert(ks, &key[..], val.as_slice());
                }
                b.commit()?;
                db.persist(fjall::PersistMode::SyncData)?;
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Child commands
// ---------------------------------------------------------------------------

fn cmd_append(
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

fn cmd_recover(store: Store, dir: &Path, cold: bool) -> Res<RecoverResult> {
    if cold {
        evict_page_cache(dir)?;
    }
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut next: Option<u64> = None;
    let mut check = |seq: u64, payload: &[u8]| -> Res<()> {
        if let Some(n) = next {
            if seq != n {
                return Err(format!("gap: expected {n}, got {seq}").into());
            }
        }
        check_payload(seq, payload)?;
        next = Some(seq + 1);
        Ok(())
    };
    let (open_secs, events, torn) = match store {
        Store::Segment | Store::SegmentPre => {
            // "Open" = list segments and read the cursor; the scan is the recovery.
            let _ = list_segments(dir)?;
            let _ = read_cursor(dir);
            let open = t0.elapsed().as_secs_f64();
            let out = scan_log(dir, &mut |_, _, p| {
                let seq = u64::from_le_bytes(p[..8].try_into()?);
                check(seq, p)
            })?;
            (open, out.records, out.torn)
        }
        Store::Redb => {
            use redb::{ReadableDatabase, ReadableTable};
            let db = redb::Database::open(redb_path(dir))?;
            let open = t0.elapsed().as_secs_f64();
            let rtx = db.begin_read()?;
            let t = rtx.open_table(REDB_TABLE)?;
            let mut n = 0;
            for item in t.range(0u64..)? {
                let (k, v) = item?;
                check(k.value(), decode_value(v.value())?)?;
                n += 1;
            }
            (open, n, None)
        }
        Store::Fjall => {
            let (_db, ks) = fjall_open(dir)?;
            let open = t0.elapsed().as_secs_f64();
            let mut n = 0;
            for guard in ks.iter() {
                let (k, v) = guard.into_inner()?;
                let seq = u64::from_be_bytes(k.as_ref().try_into()?);
                check(seq, decode_value(&v)?)?;
                n += 1;
            }
            (open, n, None)
        }
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

fn cmd_forward(store: Store, dir: &Path) -> Res<ForwardResult> {
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut next: Option<u64> = None;
    let mut check = |seq: u64, payload: &[u8]| -> Res<()> {
        if let Some(n) = next {
            if seq != n {
                return Err(format!("gap: expected {n}, got {seq}").into());
            }
        }
        check_payload(seq, payload)?;
        next = Some(seq + 1);
        Ok(())
    };
    let (open_secs, events) = match store {
        Store::Segment | Store::SegmentPre => {
            let mut cursor = CursorFile::open(dir)?;
            let open_secs = t0.elapsed().as_secs_f64();
            let mut oldest = list_segments(dir)?.first().copied().unwrap_or(0);
            let mut pending = 0usize;
            let mut last = Cursor::default();
            let mut ack = |c: Cursor, oldest: &mut u64| -> Res<()> {
                // The group was "produced and acknowledged": persist the consumed
                // position, then delete the segments wholly before it.
                cursor.store(c)?;
                while *oldest < c.seg {
                    fs::remove_file(segment_path(dir, *oldest))?;
                    *oldest += 1;
                }
                Ok(())
            };
            let out = scan_log(dir, &mut |seg, off, p| {
                let seq = u64::from_le_bytes(p[..8].try_into()?);
                check(seq, p)?;
                last = Cursor { seg, off };
                pending += 1;
                if pending == FREE_GROUP {
                    ack(last, &mut oldest)?;
                    pending = 0;
                }
                Ok(())
            })?;
            if pending > 0 {
                ack(last, &mut oldest)?;
            }
            // Drained completely (the writer is idle in this benchmark): reset the
            // spool by deleting the remaining, fully consumed segments.
            for id in list_segments(dir)? {
                fs::remove_file(segment_path(dir, id))?;
            }
            fs::remove_file(dir.join(CURSOR_FILE))?;
            sync_dir(dir)?;
            (open_secs, out.records)
        }
        Store::Redb => {
            use redb::{ReadableDatabase, ReadableTable};
            let db = redb::Database::open(redb_path(dir))?;
            let open_secs = t0.elapsed().as_secs_f64();
            let mut events = 0u64;
            let mut from = 0u64;
            let mut keys = Vec::with_capacity(FREE_GROUP);
            loop {
                keys.clear();
                {
                    let rtx = db.begin_read()?;
                    let t = rtx.open_table(REDB_TABLE)?;
                    for item in t.range(from..)?.take(FREE_GROUP) {
                        let (k, v) = item?;
                        check(k.value(), decode_value(v.value())?)?;
                        keys.push(k.value());
                    }
                }
                let Some(&last) = keys.last() else { break };
                let tx = db.begin_write()?;
                {
                    let mut t = tx.open_table(REDB_TABLE)?;
                    for k in &keys {
                        t.remove(k)?;
                    }
                }
                tx.commit()?;
                events += keys.len() as u64;
                from = last + 1;
            }
            (open_secs, events)
        }
        Store::Fjall => {
            let (db, ks) = fjall_open(dir)?;
            let open_secs = t0.elapsed().as_secs_f64();
            let mut events = 0u64;
            let mut from = 0u64;
            let mut keys = Vec::with_capacity(FREE_GROUP);
            loop {
                keys.clear();
                for guard in ks.range(from.to_be_bytes()..).take(FREE_GROUP) {
                    let (k, v) = guard.into_inner()?;
                    let seq = u64::from_be_bytes(k.as_ref().try_into()?);
                    check(seq, decode_value(&v)?)?;
                    keys.push(seq);
                }
                let Some(&last) = keys.last() else { break };
                let mut b = db.batch();
                for k in &keys {
                    b.remove(&ks, &k.to_be_bytes()[..]);
                }
                b.commit()?;
                db.persist(fjall::PersistMode::SyncData)?;
                events += keys.len() as u64;
                from = last + 1;
            }
            (open_secs, events)
        }
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

/// Torn-tail check: write events, tear the last record in half (plain segments:
/// truncate the file there; preallocated segments: zero its second half, which is
/// what a lost page looks like there), rescan; then flip a byte in the (new) last
/// record, rescan; then repair (truncate to the valid end) and append more.
fn cmd_torn(base: &Path, prealloc: bool) -> Res<TornResult> {
    let tmp = tempfile::tempdir_in(base)?;
    let dir = tmp.path();
    let pool = random_pool();
    let written = 10_000u64;
    let mut w = SegmentWriter::open(dir, prealloc)?;
    let mut bufs = vec![vec![0u8; EVENT_SIZE]; 500];
    let mut seq = 0;
    while seq < written {
        for (i, b) in bufs.iter_mut().enumerate() {
            make_payload(&pool, seq + i as u64, b);
        }
        let refs: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
        w.append_group(&refs)?;
        seq += refs.len() as u64;
    }
    drop(w);
    let scan = |dir: &Path| -> Res<ScanOutcome> {
        let mut next = 0u64;
        scan_log(dir, &mut |_, _, p| {
            check_payload(next, p)?;
            next += 1;
            Ok(())
        })
    };

    // 1. Tear the last record of the last segment in the middle.
    let last_id = *list_segments(dir)?.last().ok_or("no segment")?;
    let last_path = segment_path(dir, last_id);
    let mut last_end = 0;
    scan_log(dir, &mut |seg, off, _| {
        if seg == last_id {
            last_end = off;
        }
        Ok(())
    })?;
    let cut = last_end - (HEADER + EVENT_SIZE) as u64 / 2;
    let damage = if prealloc {
        let mut f = OpenOptions::new().write(true).open(&last_path)?;
        f.seek(SeekFrom::Start(cut))?;
        f.write_all(&vec![0u8; (last_end - cut) as usize])?;
        format!(
            "zeroed bytes {cut}..{last_end} of {}",
            last_path.file_name().unwrap_or_default().to_string_lossy()
        )
    } else {
        OpenOptions::new()
            .write(true)
            .open(&last_path)?
            .set_len(cut)?;
        format!(
            "truncated {} to {cut} bytes",
            last_path.file_name().unwrap_or_default().to_string_lossy()
        )
    };
    let after_truncate = scan(dir)?;

    // 2. Flip one payload byte in what is now the last complete record.
    let rec = (HEADER + EVENT_SIZE) as u64;
    let valid_end = after_truncate.torn_segments.first().map_or(cut, |t| t.1);
    {
        let mut f = OpenOptions::new().read(true).write(true).open(&last_path)?;
        let pos = valid_end - rec + HEADER as u64 + 100;
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut b)?;
        b[0] ^= 0x40;
        f.seek(SeekFrom::Start(pos))?;
        f.write_all(&b)?;
    }
    let after_flip = scan(dir)?;

    // 3. Recovery repair (truncate to the valid end), then keep appending.
    repair_log(dir, &after_flip)?;
    let mut w = SegmentWriter::open(dir, prealloc)?;
    let resume = after_flip.records;
    let mut more = vec![0u8; EVENT_SIZE];
    for s in resume..resume + 100 {
        make_payload(&pool, s, &mut more);
        w.append_group(&[more.as_slice()])?;
    }
    drop(w);
    let after_repair = scan(dir)?;

    let ok = after_truncate.records == written - 1
        && after_truncate.torn.is_some()
        && after_flip.records == written - 2
        && after_flip.torn.is_some()
        && after_repair.records == written - 2 + 100
        && after_repair.torn.is_none();
    Ok(TornResult {
        store: if prealloc {
            Store::SegmentPre
        } else {
            Store::Segment
        },
        written,
        damage,
        recovered_after_truncate: after_truncate.records,
        reported_after_truncate: after_truncate.torn,
        recovered_after_bitflip: after_flip.records,
        reported_after_bitflip: after_flip.torn,
        recovered_after_repair_and_append: after_repair.records,
        ok,
    })
}

// ---------------------------------------------------------------------------
// Parent: orchestration and reporting
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

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_report(r: &Report) {
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
fn crate_versions() -> Vec<(String, String)> {
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
    let torn = vec![cmd_torn(&base, false)?, cmd_torn(&base, true)?];
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
        }) => print_json(&cmd_append(store, &dir, group, max_events, max_secs)?),
        Some(Cmd::Recover { store, dir, cold }) => print_json(&cmd_recover(store, &dir, cold)?),
        Some(Cmd::Forward { store, dir }) => print_json(&cmd_forward(store, &dir)?),
        Some(Cmd::Torn { dir, prealloc }) => {
            let base = dir.unwrap_or_else(std::env::temp_dir);
            print_json(&cmd_torn(&base, prealloc)?)
        }
    }
}
