use super::*;

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        push_frame(&mut out, p);
    }
    out
}

fn all(log: &SegmentLog) -> Vec<Vec<u8>> {
    log.read(log.head(), usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

#[test]
fn appends_read_back_in_order_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovered) = SegmentLog::open(dir.path(), 1 << 20, 64).unwrap();
    assert_eq!(recovered, Recovered::default());
    for i in 0..10u8 {
        log.append(&frames(&[&[i; 20], &[i + 100; 3]]), 2).unwrap();
    }
    assert_eq!(log.records(), 20);
    let expected: Vec<Vec<u8>> = (0..10u8)
        .flat_map(|i| [vec![i; 20], vec![i + 100; 3]])
        .collect();
    assert_eq!(all(&log), expected);
    let segments = fs::read_dir(dir.path()).unwrap().count() - 1;
    assert!(segments > 1, "64-byte segments roll: {segments}");
    drop(log);
    let (log, recovered) = SegmentLog::open(dir.path(), 1 << 20, 64).unwrap();
    assert_eq!(recovered.records, 20);
    assert!(recovered.torn.is_empty());
    assert_eq!(all(&log), expected);
}

#[test]
fn release_frees_whole_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), 1 << 20, 100).unwrap();
    for i in 0..6u8 {
        log.append(&frames(&[&[i; 50]]), 1).unwrap();
    }
    let files = || fs::read_dir(dir.path()).unwrap().count();
    let before = files();
    let read = log.read(log.head(), 3).unwrap();
    log.release(read[2].next, 3).unwrap();
    assert_eq!(log.records(), 3);
    assert!(files() < before, "released segments are deleted");
    assert_eq!(all(&log), vec![vec![3; 50], vec![4; 50], vec![5; 50]]);
    drop(log);
    let (log, recovered) = SegmentLog::open(dir.path(), 1 << 20, 100).unwrap();
    assert_eq!(recovered.records, 3);
    assert_eq!(all(&log)[0], vec![3; 50]);
    let rest = log.read(log.head(), 10).unwrap();
    log.release(rest.last().unwrap().next, 3).unwrap();
    assert_eq!(log.records(), 0);
    assert_eq!(log.disk_bytes(), 0, "an emptied log keeps no bytes");
    log.append(&frames(&[b"again"]), 1).unwrap();
    assert_eq!(all(&log), vec![b"again".to_vec()]);
}

#[test]
fn a_torn_tail_is_cut_and_every_earlier_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
    log.append(&frames(&[b"one", b"two"]), 2).unwrap();
    log.append(&frames(&[b"three"]), 1).unwrap();
    drop(log);
    let segment = segment_path(dir.path(), 1);
    let len = fs::metadata(&segment).unwrap().len();
    // Half of the last record made it to disk.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (log, recovered) = SegmentLog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
    assert_eq!(recovered.records, 2);
    assert_eq!(recovered.torn, vec![(1, (FRAME + 5 - 3) as u64)]);
    assert_eq!(all(&log), vec![b"one".to_vec(), b"two".to_vec()]);
    // A flipped byte in the last record is caught by its checksum the same way.
    log.append(&frames(&[b"four"]), 1).unwrap();
    drop(log);
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .write_all_at(b"X", len - 1)
        .unwrap();
    let (log, recovered) = SegmentLog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
    assert_eq!(recovered.records, 2);
    assert_eq!(all(&log).len(), 2);
}

#[test]
fn a_full_log_refuses_the_whole_group_and_takes_more_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), 100, 1000).unwrap();
    log.append(&frames(&[&[1; 40], &[2; 40]]), 2).unwrap();
    let err = log.append(&frames(&[&[3; 10]]), 1).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Full {
                held: 96,
                max: 100,
                wanted: 18
            }
        ),
        "{err}"
    );
    assert_eq!(log.records(), 2);
    let read = log.read(log.head(), 10).unwrap();
    log.release(read[1].next, 2).unwrap();
    log.append(&frames(&[&[3; 10]]), 1).unwrap();
    assert_eq!(all(&log), vec![vec![3; 10]]);
}

#[test]
fn a_record_larger_than_a_read_chunk_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), 8 << 20, 8 << 20).unwrap();
    let big = vec![7u8; READ_CHUNK + 10];
    log.append(&frames(&[b"small", &big, b"after"]), 3).unwrap();
    let read = all(&log);
    assert_eq!(read.len(), 3);
    assert_eq!(read[1], big);
    assert_eq!(read[2], b"after");
}
