//! Candidate 2: redb. One table `u64 -> &[u8]` (values are `[u32 LE crc32][payload]`),
//! one write transaction per group with the default durability (fsync on commit),
//! range reads, key deletes per group.

use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable};

use crate::payload::{decode_value, encode_value};
use crate::{Res, FREE_GROUP};

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("spool");

fn redb_path(dir: &Path) -> PathBuf {
    dir.join("spool.redb")
}

/// Appends groups of events to a redb database.
pub struct RedbWriter {
    db: redb::Database,
}

impl RedbWriter {
    /// Create (or open) the database in `dir`.
    pub fn open(dir: &Path) -> Res<Self> {
        Ok(RedbWriter {
            db: redb::Database::create(redb_path(dir))?,
        })
    }

    /// Durably append `payloads` under keys `first_seq..` in one write transaction;
    /// `val` is a scratch buffer for the encoded values.
    pub fn append_group(
        &mut self,
        first_seq: u64,
        payloads: &[&[u8]],
        val: &mut Vec<u8>,
    ) -> Res<()> {
        let tx = self.db.begin_write()?; // default durability: Immediate
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
}

/// Recovery: open the database, then read every event in key order, passing each
/// verified payload to `check`. Returns the open time (seconds since `t0`), the
/// number of events and (always `None`) what stopped the read early.
pub fn recover(
    dir: &Path,
    t0: Instant,
    check: &mut impl FnMut(u64, &[u8]) -> Res<()>,
) -> Res<(f64, u64, Option<String>)> {
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
    Ok((open, n, None))
}

/// Forward-and-free: read FREE_GROUP events at a time in key order (passing each to
/// `check`), then delete their keys in one durable write transaction. Returns the
/// open time (seconds since `t0`) and the number of events.
pub fn forward(
    dir: &Path,
    t0: Instant,
    check: &mut impl FnMut(u64, &[u8]) -> Res<()>,
) -> Res<(f64, u64)> {
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
    Ok((open_secs, events))
}
