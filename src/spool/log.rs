//! The spool's storage: an append-only log of checksummed records in numbered segment files,
//! read back in order and freed segment by segment once every record in it is released.
//!
//! A record on disk is `[u32 LE length][u32 LE CRC-32 of the payload][payload]`. Appends are
//! written at explicit offsets and made durable with one `fdatasync` per group; a record counts
//! only once its group is synced, so a reader never sees half a group. After a crash the scan at
//! open stops at the first record whose length or checksum does not hold — a torn tail — and
//! cuts the segment there, keeping every record before it. The position of the first unreleased
//! record is kept in `head` (written on every release, not synced: after a power loss the
//! records since the last synced head are forwarded again, which at-least-once allows).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes of a record's frame before its payload.
pub const FRAME: usize = 8;
/// The largest payload a record may have; a longer length read back is corruption.
const MAX_RECORD: usize = 256 << 20;
/// Bytes one read takes from a segment at most (more only for a single larger record).
const READ_CHUNK: usize = 1 << 20;
const HEAD_FILE: &str = "head";
const SEGMENT_SUFFIX: &str = ".seg";

/// A place in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Segment number.
    pub segment: u64,
    /// Byte offset of a record's frame in the segment.
    pub offset: u64,
}

/// Why an append was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log holds `max_bytes` already.
    #[error("the spool is full: {held} of {max} bytes held, {wanted} more wanted")]
    Full {
        /// Bytes on disk now.
        held: u64,
        /// The bound.
        max: u64,
        /// Bytes the append needs.
        wanted: u64,
    },
    /// Writing or syncing failed; nothing of the group counts.
    #[error("writing the spool failed: {0}")]
    Io(#[from] io::Error),
}

/// What the scan at open found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Unreleased records kept.
    pub records: u64,
    /// Bytes cut off segments after their last whole record (a torn tail), per segment.
    pub torn: Vec<(u64, u64)>,
}

/// One record read back: its payload and the position after it.
pub struct Entry {
    /// Where the next record starts.
    pub next: Pos,
    /// The payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    /// Bytes of whole, synced records.
    len: u64,
}

#[derive(Debug)]
struct Meta {
    /// Oldest first; the last one is written to.
    segments: VecDeque<Segment>,
    /// The first unreleased record.
    head: Pos,
    /// Unreleased records.
    records: u64,
}

impl Meta {
    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn tail(&self) -> Pos {
        let last = self.segments.back().expect("the log always has a segment");
        Pos {
            segment: last.id,
            offset: last.len,
        }
    }
}

/// The segment log; shared by the one writer and the one reader.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    meta: Mutex<Meta>,
    /// The active segment's file. Held for the whole of an append, so a release that truncates
    /// an emptied log never races a write.
    writer: Mutex<File>,
}

impl SegmentLog {
    /// Opens (creating) the log in `dir`, recovering what an earlier process left.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let head = read_head(dir).filter(|h| ids.contains(&h.segment));
        let head = head.unwrap_or(Pos {
            segment: ids.first().copied().unwrap_or(1),
            offset: 0,
        });
        let mut recovered = Recovered::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = segment_path(dir, id);
            if id < head.segment {
                fs::remove_file(&path)?;
                continue;
            }
            let from = if id == head.segment { head.offset } else { 0 };
            let (records, end, file_len) = scan(&path, from)?;
            if end < file_len {
                OpenOptions::new().write(true).open(&path)?.set_len(end)?;
                recovered.torn.push((id, file_len - end));
            }
            recovered.records += records;
            segments.push_back(Segment { id, len: end });
        }
        if segments.is_empty() {
            File::create(segment_path(dir, head.segment))?;
            sync_dir(dir)?;
            segments.push_back(Segment {
                id: head.segment,
                len: 0,
            });
        }
        let head = Pos {
            segment: head.segment,
            offset: head.offset.min(segments[0].len),
        };
        let active = segments.back().expect("one segment at least").id;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(segment_path(dir, active))?;
        let log = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            meta: Mutex::new(Meta {
                segments,
                head,
                records: recovered.records,
            }),
            writer: Mutex::new(file),
        };
        Ok((log, recovered))
    }

    /// Appends `frames` (whole framed records, `count` of them) and syncs them, or takes none.
    pub fn append(&self, frames: &[u8], count: u64) -> Result<(), AppendError> {
        let wanted = frames.len() as u64;
        let mut file = self.writer.lock().expect("spool writer lock");
        let (segment, offset) = {
            let meta = self.meta.lock().expect("spool lock");
            let held = meta.disk_bytes();
            if held + wanted > self.max_bytes {
                return Err(AppendError::Full {
                    held,
                    max: self.max_bytes,
                    wanted,
                });
            }
            let tail = meta.tail();
            (tail.segment, tail.offset)
        };
        let (segment, offset) = if offset > 0 && offset + wanted > self.segment_bytes {
            let next = segment + 1;
            let new = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(segment_path(&self.dir, next))?;
            sync_dir(&self.dir)?;
            *file = new;
            let mut meta = self.meta.lock().expect("spool lock");
            meta.segments.push_back(Segment { id: next, len: 0 });
            (next, 0)
        } else {
            (segment, offset)
        };
        file.write_all_at(frames, offset)?;
        file.sync_data()?;
        let mut meta = self.meta.lock().expect("spool lock");
        let last = meta.segments.back_mut().expect("one segment at least");
        debug_assert_eq!(last.id, segment);
        last.len = offset + wanted;
        meta.records += count;
        Ok(())
    }

    /// Reads up to `max_records` whole records from `from` on (fewer where the log ends).
    pub fn read(&self, from: Pos, max_records: usize) -> io::Result<Vec<Entry>> {
        let spans: Vec<Segment> = {
            let meta = self.meta.lock().expect("spool lock");
            meta.segments
                .iter()
                .filter(|s| s.id >= from.segment)
                .copied()
                .collect()
        };
        let mut out = Vec::new();
        for segment in spans {
            let mut offset = if segment.id == from.segment {
                from.offset
            } else {
                0
            };
            if offset >= segment.len {
                continue;
            }
            let file = File::open(segment_path(&self.dir, segment.id))?;
            while offset < segment.len && out.len() < max_records {
                let want = (segment.len - offset).min(READ_CHUNK as u64) as usize;
                let mut chunk = vec![0; want];
                file.read_exact_at(&mut chunk, offset)?;
                let mut at = 0;
                while out.len() < max_records {
                    match frame(&chunk[at..]) {
                        Frame::Whole(payload) => {
                            at += FRAME + payload.len();
                            out.push(Entry {
                                next: Pos {
                                    segment: segment.id,
                                    offset: offset + at as u64,
                                },
                                payload: payload.to_vec(),
                            });
                        }
                        Frame::Needs(len) if at == 0 => {
                            // One record longer than a chunk: read exactly it.
                            let mut whole = vec![0; len];
                            file.read_exact_at(&mut whole, offset)?;
                            let Frame::Whole(payload) = frame(&whole) else {
                                return Err(corrupt(segment.id, offset));
                            };
                            at = whole.len();
                            out.push(Entry {
                                next: Pos {
                                    segment: segment.id,
                                    offset: offset + at as u64,
                                },
                                payload: payload.to_vec(),
                            });
                            break;
                        }
                        Frame::Needs(_) | Frame::End => break,
                        Frame::Bad => return Err(corrupt(segment.id, offset + at as u64)),
                    }
                }
                if at == 0 {
                    return Err(corrupt(segment.id, offset));
                }
                offset += at as u64;
            }
            if out.len() >= max_records {
                break;
            }
        }
        Ok(out)
    }

    /// Releases every record before `upto` (`count` of them): deletes segments left with
    /// nothing unreleased, and empties the log's files when everything is released.
    pub fn release(&self, upto: Pos, count: u64) -> io::Result<()> {
        let (doomed, head) = {
            let mut meta = self.meta.lock().expect("spool lock");
            meta.head = upto.max(meta.head);
            meta.records = meta.records.saturating_sub(count);
            let mut doomed = Vec::new();
            while meta.segments.len() > 1 && meta.segments[0].id < meta.head.segment {
                doomed.push(meta.segments.pop_front().expect("checked").id);
            }
            if meta.segments.len() > 1
                && meta.head.segment == meta.segments[0].id
                && meta.head.offset >= meta.segments[0].len
            {
                let id = meta.segments.pop_front().expect("checked").id;
                doomed.push(id);
                meta.head = Pos {
                    segment: meta.segments[0].id,
                    offset: 0,
                };
            }
            (doomed, meta.head)
        };
        for id in doomed {
            fs::remove_file(segment_path(&self.dir, id))?;
        }
        write_head(&self.dir, head)?;
        self.truncate_if_empty()
    }

    /// With nothing unreleased and no append under way, cuts the active segment back to empty.
    fn truncate_if_empty(&self) -> io::Result<()> {
        let Ok(file) = self.writer.try_lock() else {
            return Ok(());
        };
        let mut meta = self.meta.lock().expect("spool lock");
        if meta.records > 0 || meta.segments.len() != 1 || meta.segments[0].len == 0 {
            return Ok(());
        }
        file.set_len(0)?;
        meta.segments[0].len = 0;
        meta.head = Pos {
            segment: meta.segments[0].id,
            offset: 0,
        };
        write_head(&self.dir, meta.head)
    }

    /// The first unreleased record.
    pub fn head(&self) -> Pos {
        self.meta.lock().expect("spool lock").head
    }

    /// Unreleased records.
    pub fn records(&self) -> u64 {
        self.meta.lock().expect("spool lock").records
    }

    /// Bytes of the segment files (what counts against `max_bytes`).
    pub fn disk_bytes(&self) -> u64 {
        self.meta.lock().expect("spool lock").disk_bytes()
    }

    /// The bound on [`SegmentLog::disk_bytes`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// Frames `payload` onto `out`.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

enum Frame<'a> {
    Whole(&'a [u8]),
    /// A frame whose header is read needs this many bytes in all.
    Needs(usize),
    /// Not even a header is left.
    End,
    /// The length or checksum does not hold.
    Bad,
}

fn frame(bytes: &[u8]) -> Frame<'_> {
    if bytes.len() < FRAME {
        return Frame::End;
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Frame::Bad;
    }
    let Some(payload) = bytes.get(FRAME..FRAME + len) else {
        return Frame::Needs(FRAME + len);
    };
    if crc32fast::hash(payload) != crc {
        return Frame::Bad;
    }
    Frame::Whole(payload)
}

/// Counts the whole records of a segment from `from` on: `(records, end of the last whole
/// record, file length)`. Streams the file, holding one record at a time.
fn scan(path: &Path, from: u64) -> io::Result<(u64, u64, u64)> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut at = from.min(file_len);
    let mut reader = BufReader::with_capacity(READ_CHUNK, file);
    reader.seek(SeekFrom::Start(at))?;
    let mut records = 0;
    let mut header = [0u8; FRAME];
    let mut payload = Vec::new();
    loop {
        if !read_whole(&mut reader, &mut header)? {
            break;
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            break;
        }
        payload.resize(len, 0);
        if !read_whole(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc {
            break;
        }
        at += (FRAME + len) as u64;
        records += 1;
    }
    Ok((records, at, file_len))
}

/// Fills `buf`; false when the file ends first.
fn read_whole(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

fn corrupt(segment: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("spool segment {segment} is corrupt at byte {offset}"),
    )
}

fn read_head(dir: &Path) -> Option<Pos> {
    let bytes = fs::read(dir.join(HEAD_FILE)).ok()?;
    let bytes: [u8; 20] = bytes.try_into().ok()?;
    let crc = u32::from_le_bytes(bytes[16..].try_into().expect("4 bytes"));
    (crc32fast::hash(&bytes[..16]) == crc).then(|| Pos {
        segment: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
        offset: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
    })
}

fn write_head(dir: &Path, head: Pos) -> io::Result<()> {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&head.segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&head.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(HEAD_FILE))?;
    file.write_all_at(&bytes, 0)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
