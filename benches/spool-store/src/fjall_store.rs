//! Candidate 3: fjall. One keyspace with u64 big-endian keys (values are
//! `[u32 LE crc32][payload]`), one write batch per group then
//! `Database::persist(PersistMode::SyncData)`, range reads, key removes per group.

use std::path::Path;
use std::time::Instant;

use crate::payload::{decode_value, encode_value};
use crate::{Res, FREE_GROUP};

fn fjall_open(dir: &Path) -> Res<(fjall::Database, fjall::Keyspace)> {
    let db = fjall::Database::builder(dir.join("fjall")).open()?;
    let ks = db.keyspace("spool", fjall::KeyspaceCreateOptions::default)?;
    Ok((db, ks))
}

/// Appends groups of events to a fjall keyspace.
pub struct FjallWriter {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl FjallWriter {
    /// Open (or create) the database and its keyspace in `dir`.
    pub fn open(dir: &Path) -> Res<Self> {
        let (db, ks) = fjall_open(dir)?;
        Ok(FjallWriter { db, ks })
    }

    /// Durably append `payloads` under keys `first_seq..` in one write batch, then
    /// persist with SyncData; `val` is a scratch buffer for the encoded values.
    pub fn append_group(
        &mut self,
        first_seq: u64,
        payloads: &[&[u8]],
        val: &mut Vec<u8>,
    ) -> Res<()> {
        let mut b = self.db.batch();
        for (i, p) in payloads.iter().enumerate() {
            encode_value(p, val);
            let key = (first_seq + i as u64).to_be_bytes();
            b.insert(&self.ks, &key[..], val.as_slice());
        }
        b.commit()?;
        self.db.persist(fjall::PersistMode::SyncData)?;
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
    let (_db, ks) = fjall_open(dir)?;
    let open = t0.elapsed().as_secs_f64();
    let mut n = 0;
    for guard in ks.iter() {
        let (k, v) = guard.into_inner()?;
        let seq = u64::from_be_bytes(k.as_ref().try_into()?);
        check(seq, decode_value(&v)?)?;
        n += 1;
    }
    Ok((open, n, None))
}

/// Forward-and-free: read FREE_GROUP events at a time in key order (passing each to
/// `check`), then remove their keys in one batch and persist with SyncData. Returns
/// the open time (seconds since `t0`) and the number of events.
pub fn forward(
    dir: &Path,
    t0: Instant,
    check: &mut impl FnMut(u64, &[u8]) -> Res<()>,
) -> Res<(f64, u64)> {
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
    Ok((open_secs, events))
}
