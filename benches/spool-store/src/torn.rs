//! Torn-tail check of the segment log (plain and preallocated): damage the tail,
//! check what a rescan recovers and reports, repair, and append again.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::payload::{check_payload, make_payload, random_pool};
use crate::report::TornResult;
use crate::segment::{
    list_segments, repair_log, scan_log, segment_path, ScanOutcome, SegmentWriter, HEADER,
};
use crate::{Res, Store, EVENT_SIZE};

/// Torn-tail check: write events, tear the last record in half (plain segments:
/// truncate the file there; preallocated segments: zero its second half, which is
/// what a lost page looks like there), rescan; then flip a byte in the (new) last
/// record, rescan; then repair (truncate to the valid end) and append more.
pub fn cmd_torn(base: &Path, prealloc: bool) -> Res<TornResult> {
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
