//! Event payloads: each starts with its u64 LE sequence number followed by
//! pseudo-random (incompressible) bytes; the crc-prefixed value encoding used by
//! redb and fjall; and the in-order check applied to everything read back.

use crate::{Res, EVENT_SIZE};

const POOL_SIZE: usize = 1 << 20;

/// Pseudo-random bytes (xorshift64*) from which payload bodies are sliced.
pub fn random_pool() -> Vec<u8> {
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
pub fn make_payload(pool: &[u8], seq: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let off = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % (POOL_SIZE - 8);
    let n = buf.len() - 8;
    buf[8..].copy_from_slice(&pool[off..off + n]);
}

/// Check that a payload has the right size and carries the expected sequence number.
pub fn check_payload(expected_seq: u64, payload: &[u8]) -> Res<()> {
    if payload.len() != EVENT_SIZE {
        return Err(format!("event {expected_seq}: bad size {}", payload.len()).into());
    }
    let seq = u64::from_le_bytes(payload[..8].try_into()?);
    if seq != expected_seq {
        return Err(format!("out of order: expected {expected_seq}, got {seq}").into());
    }
    Ok(())
}

/// A checker for events read back in order: `check(seq, payload)` fails on a gap
/// after the first event it sees, or when the payload does not carry `seq`.
pub fn in_order_checker() -> impl FnMut(u64, &[u8]) -> Res<()> {
    let mut next: Option<u64> = None;
    move |seq: u64, payload: &[u8]| -> Res<()> {
        if let Some(n) = next {
            if seq != n {
                return Err(format!("gap: expected {n}, got {seq}").into());
            }
        }
        check_payload(seq, payload)?;
        next = Some(seq + 1);
        Ok(())
    }
}

/// Value stored in redb/fjall: crc32 of the payload, then the payload.
pub fn encode_value(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Verify and strip the crc prefix of a redb/fjall value.
pub fn decode_value(value: &[u8]) -> Res<&[u8]> {
    if value.len() < 4 {
        return Err("value too short".into());
    }
    let (crc, payload) = value.split_at(4);
    if u32::from_le_bytes(crc.try_into()?) != crc32fast::hash(payload) {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}
