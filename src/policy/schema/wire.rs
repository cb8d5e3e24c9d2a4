//! The Confluent wire format: magic byte 0, the 4-byte big-endian schema id, for Protobuf the
//! message-index array (zigzag varints: a count, then the indexes; `[0]` is the single byte 0),
//! then the Avro datum or Protobuf message.

/// First byte of a Confluent-framed payload.
pub const MAGIC: u8 = 0;

/// `payload` framed with schema `id` (and, for Protobuf, the message `indexes`).
pub fn frame(id: u32, indexes: Option<&[i32]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    match indexes {
        None => {}
        Some([0]) => out.push(0),
        Some(indexes) => {
            put_zigzag(&mut out, indexes.len() as i64);
            for i in indexes {
                put_zigzag(&mut out, i64::from(*i));
            }
        }
    }
    out.extend_from_slice(payload);
    out
}

/// The schema id and what follows it, when `data` starts with the Confluent header.
pub fn unframe(data: &[u8]) -> Option<(u32, &[u8])> {
    match data {
        [MAGIC, a, b, c, d, rest @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

/// Reads the Protobuf message-index array at the start of `data`.
pub fn read_indexes(data: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let (count, mut rest) = get_zigzag(data)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(0..=64).contains(&count) {
        return Err(format!("message-index count {count} is out of range"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (i, next) = get_zigzag(rest)?;
        indexes.push(i32::try_from(i).map_err(|_| format!("message index {i} is out of range"))?);
        rest = next;
    }
    Ok((indexes, rest))
}

fn put_zigzag(out: &mut Vec<u8>, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_zigzag(data: &[u8]) -> Result<(i64, &[u8]), String> {
    let mut v: u64 = 0;
    for (i, b) in data.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let n = ((v >> 1) as i64) ^ -((v & 1) as i64);
            return Ok((n, &data[i + 1..]));
        }
    }
    Err("truncated varint in the message-index array".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_avro_and_protobuf() {
        assert_eq!(frame(7, None, b"x"), [0, 0, 0, 0, 7, b'x']);
        assert_eq!(frame(258, Some(&[0]), b"x"), [0, 0, 0, 1, 2, 0, b'x']);
        assert_eq!(frame(1, Some(&[1, 0]), b""), [0, 0, 0, 0, 1, 4, 2, 0]);
        let framed = frame(1, Some(&[1, 0]), b"p");
        let (id, rest) = unframe(&framed).unwrap();
        assert_eq!(id, 1);
        assert_eq!(read_indexes(rest).unwrap(), (vec![1, 0], &b"p"[..]));
        assert_eq!(read_indexes(&[0, 9]).unwrap(), (vec![0], &[9u8][..]));
        assert!(unframe(&[1, 0, 0, 0, 0]).is_none());
        assert!(read_indexes(&[0x80]).is_err());
    }
}
