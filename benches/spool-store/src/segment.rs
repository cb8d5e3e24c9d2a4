//! Candidate 1: a hand-written append-only segment log on `std::fs` + `crc32fast`,
//! plain (`segment`) or with each new segment pre-sized to 64 MiB (`segment-pre`).
//!
//! Records are framed as `[u32 LE len][u32 LE crc32(payload)][payload]` in 64 MiB
//! segments; a group is one `write_all` + `File::sync_data()`; a small durable
//! cursor file holds the consumed position and whole segments are deleted once
//! consumed. This module holds the log itself and its recovery and forward-and-free
//! phases.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{Res, EVENT_SIZE, FREE_GROUP};

/// Segment files roll over at this size.
const SEGMENT_SIZE: u64 = 64 << 20;
/// Frame header: u32 length + u32 crc32.
pub const HEADER: usize = 8;
/// Anything larger than this in a length field is treated as garbage.
const MAX_RECORD: usize = 16 << 20;

/// Path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Segment ids present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Res<Vec<u64>> {
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

/// Appends records to the newest segment of a segment log, one fdatasync per group.
pub struct SegmentWriter {
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
    pub fn open(dir: &Path, prealloc: bool) -> Res<Self> {
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
    pub fn append_group(&mut self, payloads: &[&[u8]]) -> Res<()> {
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

/// The durable consumed position, if the cursor file exists and is intact.
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

/// The cursor file, open for durable updates of the consumed position.
struct CursorFile {
    file: File,
}

impl CursorFile {
    /// Open (or create) the cursor file in `dir`.
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
pub struct ScanOutcome {
    /// Valid records found.
    pub records: u64,
    /// Why the scan stopped early in some segment(s), if it did.
    pub torn: Option<String>,
    /// (segment id, valid end) of every segment that had a torn/corrupt tail.
    pub torn_segments: Vec<(u64, u64)>,
}

/// Callback for every valid record: (segment id, offset just past the record, payload).
pub type OnRecord<'a> = dyn FnMut(u64, u64, &[u8]) -> Res<()> + 'a;

/// Scan all segments from the consumed cursor on, in order, calling
/// `f(segment_id, end_offset, payload)` for every valid record.
pub fn scan_log(dir: &Path, f: &mut OnRecord<'_>) -> Res<ScanOutcome> {
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
pub fn repair_log(dir: &Path, outcome: &ScanOutcome) -> Res<()> {
    for &(id, valid_end) in &outcome.torn_segments {
        let f = OpenOptions::new().write(true).open(segment_path(dir, id))?;
        f.set_len(valid_end)?;
        f.sync_all()?;
    }
    Ok(())
}

/// fsync the directory itself (after creating or removing files in it).
fn sync_dir(dir: &Path) -> Res<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------

/// Recovery: "open" = list segments and read the cursor; the scan is the recovery.
/// Every payload is passed to `check` with its sequence number. Returns the open
/// time (seconds since `t0`), the number of records and what stopped the scan early.
pub fn recover(
    dir: &Path,
    t0: Instant,
    check: &mut impl FnMut(u64, &[u8]) -> Res<()>,
) -> Res<(f64, u64, Option<String>)> {
    let _ = list_segments(dir)?;
    let _ = read_cursor(dir);
    let open = t0.elapsed().as_secs_f64();
    let out = scan_log(dir, &mut |_, _, p| {
        let seq = u64::from_le_bytes(p[..8].try_into()?);
        check(seq, p)
    })?;
    Ok((open, out.records, out.torn))
}

/// Forward-and-free: read every record in order (passing it to `check`), persist
/// the cursor every FREE_GROUP records and delete the segments wholly before it,
/// then reset the drained spool. Returns the open time (seconds since `t0`) and the
/// number of records.
pub fn forward(
    dir: &Path,
    t0: Instant,
    check: &mut impl FnMut(u64, &[u8]) -> Res<()>,
) -> Res<(f64, u64)> {
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
    Ok((open_secs, out.records))
}
