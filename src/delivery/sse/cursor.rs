//! The SSE resume cursor: the `id:` of every event, opaque to clients, encoding the position
//! itself so any sidebus instance can resume from it without server-side state.
//!
//! Layout (version 1), then base64url without padding:
//!
//! ```text
//! 0x01                       version
//! kind                       the broker's `CursorKind` byte: 1 = memory, 2 = JetStream,
//!                            3 = Kafka
//! fnv1a32(topic), 4 bytes BE guards against a cursor of another topic
//! sequence layout:           varint next offset / next stream sequence (memory, JetStream)
//! offsets layout:            varint n, then n × (varint partition, varint next offset),
//!                            partitions strictly ascending (Kafka)
//! ```
//!
//! Nothing may follow; anything malformed, of another version, broker kind or topic is an error,
//! never a silent replay from somewhere else. The codec knows no broker: each backend declares
//! its kind byte, name and layout in its `Capabilities`.

use std::collections::BTreeMap;

use base64::Engine;

use crate::backend::consume::{ReadFrom, ReadPosition};
use crate::backend::{cursor_kind, CursorKind, CursorLayout};

const VERSION: u8 = 1;
/// Most partitions a cursor may name (a bound on decoding work, far above real topics).
pub const MAX_PARTITIONS: usize = 100_000;
/// Longest cursor text accepted.
pub const MAX_LEN: usize = 2 * 1024 * 1024;

/// A position in one topic, the next event to deliver, tagged with the cursor kind of the
/// broker it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    kind: CursorKind,
    position: ReadPosition,
}

impl Cursor {
    /// The cursor of `position` on a broker whose cursors are of `kind`; `None` when the
    /// position does not have the kind's layout.
    pub fn new(kind: CursorKind, position: ReadPosition) -> Option<Self> {
        let fits = matches!(
            (kind.layout, &position),
            (CursorLayout::Sequence, ReadPosition::Sequence(_))
                | (CursorLayout::Offsets, ReadPosition::Offsets(_))
        );
        fits.then_some(Self { kind, position })
    }

    /// The cursor kind of the broker the position belongs to.
    pub fn kind(&self) -> CursorKind {
        self.kind
    }

    /// The position.
    pub fn position(&self) -> &ReadPosition {
        &self.position
    }

    /// Where a reader resumes from this position.
    pub fn read_from(&self) -> ReadFrom {
        self.position.clone().into()
    }

    /// Moves past an event at `partition`/`offset` (both from a broker, so never negative; the
    /// largest offset saturates rather than overflowing).
    pub fn advance(&mut self, partition: i32, offset: i64) {
        self.position.advance(partition, offset);
    }

    /// The cursor text for `topic`.
    pub fn encode(&self, topic: &str) -> String {
        let mut out = Vec::with_capacity(16);
        out.push(VERSION);
        out.push(self.kind.byte);
        out.extend_from_slice(&fnv1a32(topic).to_be_bytes());
        match &self.position {
            ReadPosition::Sequence(next) => put_varint(&mut out, *next),
            ReadPosition::Offsets(next) => {
                put_varint(&mut out, next.len() as u64);
                for (partition, offset) in next {
                    put_varint(&mut out, *partition as u64);
                    put_varint(&mut out, *offset as u64);
                }
            }
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// Reads a cursor given for `topic` on a broker of config kind `broker` whose cursors are
    /// of kind `here` (`None`: the broker has no cursors).
    pub fn decode(
        text: &str,
        here: Option<CursorKind>,
        broker: &str,
        topic: &str,
    ) -> Result<Self, CursorError> {
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(CursorError::Malformed);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError::Malformed)?;
        let mut input = bytes.as_slice();
        let version = take(&mut input, 1)?[0];
        if version != VERSION {
            return Err(CursorError::Version(version));
        }
        let kind = cursor_kind(take(&mut input, 1)?[0]).ok_or(CursorError::Malformed)?;
        let hash = u32::from_be_bytes(take(&mut input, 4)?.try_into().expect("4 bytes"));
        let position = match kind.layout {
            CursorLayout::Sequence => ReadPosition::Sequence(get_varint(&mut input)?),
            CursorLayout::Offsets => ReadPosition::Offsets(get_offsets(&mut input)?),
        };
        if !input.is_empty() {
            return Err(CursorError::Malformed);
        }
        if here != Some(kind) {
            return Err(CursorError::Foreign(format!(
                "it is a {} cursor and this broker is {broker}",
                kind.name
            )));
        }
        if hash != fnv1a32(topic) {
            return Err(CursorError::Foreign(format!(
                "it was issued for another topic than `{topic}`"
            )));
        }
        Ok(Self { kind, position })
    }
}

/// `n`, then `n` × (partition, next offset), partitions strictly ascending.
fn get_offsets(input: &mut &[u8]) -> Result<BTreeMap<i32, i64>, CursorError> {
    let n = get_varint(input)?;
    if n as usize > MAX_PARTITIONS {
        return Err(CursorError::Malformed);
    }
    let mut next = BTreeMap::new();
    let mut last: Option<i32> = None;
    for _ in 0..n {
        let partition = i32::try_from(get_varint(input)?).map_err(|_| CursorError::Malformed)?;
        let offset = i64::try_from(get_varint(input)?).map_err(|_| CursorError::Malformed)?;
        if last.is_some_and(|l| partition <= l) {
            return Err(CursorError::Malformed);
        }
        last = Some(partition);
        next.insert(partition, offset);
    }
    Ok(next)
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a sidebus cursor at all (truncated, altered, not base64url).
    #[error("the cursor is malformed; use the `id` of an event this route sent")]
    Malformed,
    /// A cursor format this sidebus does not know.
    #[error("the cursor has version {0}, which this sidebus does not know")]
    Version(u8),
    /// A well-formed cursor of another broker kind or topic.
    #[error("the cursor does not belong here: {0}")]
    Foreign(String),
}

/// FNV-1a, 32 bits: stable across builds and platforms, unlike the std hasher.
fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, CursorError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(input, 1)?[0];
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(CursorError::Malformed);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            // Only the shortest encoding is valid, so every position has one cursor text.
            if byte == 0 && shift > 0 {
                return Err(CursorError::Malformed);
            }
            return Ok(value);
        }
    }
    Err(CursorError::Malformed)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], CursorError> {
    if input.len() < n {
        return Err(CursorError::Malformed);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backend;

    /// Every broker kind of this build and its cursor kind, as the backends declare them.
    fn brokers() -> &'static [(&'static str, backend::Capabilities)] {
        backend::kinds()
    }

    /// The cursor kind tagged `byte` (1 memory, 2 JetStream, 3 Kafka).
    fn kind(byte: u8) -> CursorKind {
        cursor_kind(byte).expect("a cursor kind of this build")
    }

    /// The config kind of the broker whose cursors are of `kind`.
    fn broker_of(kind: CursorKind) -> &'static str {
        brokers()
            .iter()
            .find(|(_, c)| c.cursor == Some(kind))
            .map(|(name, _)| *name)
            .expect("every cursor kind belongs to a broker")
    }

    fn memory(next: u64) -> Cursor {
        Cursor::new(kind(1), ReadPosition::Sequence(next)).unwrap()
    }

    fn jetstream(next: u64) -> Cursor {
        Cursor::new(kind(2), ReadPosition::Sequence(next)).unwrap()
    }

    fn kafka(next: BTreeMap<i32, i64>) -> Cursor {
        Cursor::new(kind(3), ReadPosition::Offsets(next)).unwrap()
    }

    /// Decodes `text` on a broker whose cursors are of kind `byte`.
    fn decode_on(text: &str, byte: u8, topic: &str) -> Result<Cursor, CursorError> {
        Cursor::decode(text, Some(kind(byte)), broker_of(kind(byte)), topic)
    }

    fn round_trip(cursor: Cursor, topic: &str) {
        let text = cursor.encode(topic);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text}"
        );
        assert_eq!(decode_on(&text, cursor.kind().byte, topic), Ok(cursor));
    }

    #[test]
    fn edge_positions_round_trip() {
        round_trip(kafka(BTreeMap::new()), "empty");
        round_trip(memory(u64::MAX), "max");
        round_trip(jetstream(0), "");
        round_trip(kafka(BTreeMap::from([(0, 0), (i32::MAX, i64::MAX)])), "max");
    }

    #[test]
    fn a_position_fits_only_its_kinds_layout() {
        assert!(Cursor::new(kind(3), ReadPosition::Sequence(1)).is_none());
        assert!(Cursor::new(kind(1), ReadPosition::Offsets(BTreeMap::new())).is_none());
    }

    /// Values of every magnitude up to `max` (a power of two less one), both edges included.
    fn number(max: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(max),
            (any::<u64>(), 0..64u32).prop_map(move |(v, shift)| (v >> shift) & max),
        ]
    }

    /// Cursors of every kind of this build, with positions as brokers produce them:
    /// partitions and offsets are never negative.
    fn position() -> impl Strategy<Value = Cursor> {
        let kinds: Vec<CursorKind> = brokers().iter().filter_map(|(_, c)| c.cursor).collect();
        prop::sample::select(kinds).prop_flat_map(|kind| {
            let position = match kind.layout {
                CursorLayout::Sequence => number(u64::MAX).prop_map(ReadPosition::Sequence).boxed(),
                CursorLayout::Offsets => {
                    let partition = number(i32::MAX as u64).prop_map(|p| p as i32);
                    let offset = number(i64::MAX as u64).prop_map(|o| o as i64);
                    prop::collection::btree_map(partition, offset, 0..70)
                        .prop_map(ReadPosition::Offsets)
                        .boxed()
                }
            };
            position.prop_map(move |p| Cursor::new(kind, p).expect("the kind's layout"))
        })
    }

    proptest! {
        #[test]
        fn every_position_round_trips(position in position(), topic in ".{0,40}") {
            round_trip(position, &topic);
        }

        #[test]
        fn a_cursor_is_foreign_to_every_other_kind_and_topic(
            position in position(),
            topic in ".{0,40}",
            other in ".{0,40}",
        ) {
            let text = position.encode(&topic);
            for (broker, capabilities) in brokers()
                .iter()
                .filter(|(_, c)| c.cursor != Some(position.kind()))
            {
                prop_assert!(
                    matches!(
                        Cursor::decode(&text, capabilities.cursor, broker, &topic),
                        Err(CursorError::Foreign(_))
                    ),
                    "{broker}"
                );
            }
            if fnv1a32(&other) != fnv1a32(&topic) {
                prop_assert!(matches!(
                    decode_on(&text, position.kind().byte, &other),
                    Err(CursorError::Foreign(_))
                ));
            }
        }

        #[test]
        fn any_text_decodes_without_panic(text in ".{0,64}", broker in 0..brokers().len()) {
            let (name, capabilities) = brokers()[broker];
            if let Ok(position) = Cursor::decode(&text, capabilities.cursor, name, "t") {
                prop_assert_eq!(position.encode("t"), text);
            }
        }

        /// Bytes behind a valid header, so decoding goes past the version and kind checks; a
        /// cursor that decodes is the one text of its position.
        #[test]
        fn any_payload_decodes_without_panic_and_valid_ones_are_canonical(
            kind_byte in 0..5u8,
            payload in prop::collection::vec(any::<u8>(), 0..48),
            broker in 0..brokers().len(),
        ) {
            let mut raw = vec![VERSION, kind_byte];
            raw.extend_from_slice(&fnv1a32("t").to_be_bytes());
            raw.extend_from_slice(&payload);
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            let (name, capabilities) = brokers()[broker];
            if let Ok(position) = Cursor::decode(&text, capabilities.cursor, name, "t") {
                prop_assert_eq!(Some(position.kind()), capabilities.cursor);
                prop_assert_eq!(position.encode("t"), text);
            }
        }

        #[test]
        fn advancing_never_steps_back_and_still_round_trips(
            mut position in position(),
            steps in prop::collection::vec(
                (number(i32::MAX as u64), number(i64::MAX as u64)),
                1..20,
            ),
        ) {
            for (partition, offset) in steps {
                let (partition, offset) = (partition as i32, offset as i64);
                let before = position.clone();
                position.advance(partition, offset);
                let (now, was) = (position.read_from(), before.read_from());
                match (&now, &was) {
                    (ReadFrom::Sequence(now), ReadFrom::Sequence(was)) => {
                        prop_assert!(now >= was);
                        prop_assert!(*now > offset as u64);
                    }
                    (ReadFrom::Offsets(now), ReadFrom::Offsets(was)) => {
                        prop_assert!(was.iter().all(|(p, o)| now[p] >= *o));
                        prop_assert!(now[&partition] > offset || offset == i64::MAX);
                    }
                    _ => prop_assert!(false, "{now:?} after {was:?}"),
                }
                round_trip(position.clone(), "t");
            }
        }
    }

    /// Cursors issued before stay valid: the wire layout of every kind is fixed.
    #[test]
    fn the_wire_layout_is_stable() {
        let offsets = kafka(BTreeMap::from([(0, 17), (1, 16), (2, 300)]));
        for (position, text) in [
            (memory(3), "AQEyXpbsAw"),
            (jetstream(21), "AQIyXpbsFQ"),
            (offsets, "AQMyXpbsAwARARACrAI"),
        ] {
            assert_eq!(position.encode("orders"), text);
            assert_eq!(
                decode_on(text, position.kind().byte, "orders"),
                Ok(position)
            );
        }
    }

    #[test]
    fn cursors_are_short() {
        let offsets = kafka(BTreeMap::from([(0, 17), (1, 16), (2, 17)]));
        assert!(
            offsets.encode("orders").len() <= 20,
            "{}",
            offsets.encode("orders")
        );
        assert!(jetstream(21).encode("orders").len() <= 12);
    }

    #[test]
    fn a_cursor_of_another_kind_or_topic_is_foreign() {
        let text = jetstream(5).encode("orders");
        assert!(matches!(
            decode_on(&text, 3, "orders"),
            Err(CursorError::Foreign(_))
        ));
        assert!(matches!(
            decode_on(&text, 1, "orders"),
            Err(CursorError::Foreign(_))
        ));
        assert!(matches!(
            decode_on(&text, 2, "payments"),
            Err(CursorError::Foreign(_))
        ));
        assert_eq!(decode_on(&text, 2, "orders"), Ok(jetstream(5)));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let good = kafka(BTreeMap::from([(0, 3), (2, 9)])).encode("t");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&good)
            .unwrap();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut trailing = raw.clone();
        trailing.push(0);
        let mut unordered = raw[..6].to_vec();
        unordered.extend_from_slice(&[2, 2, 0, 1, 0]);
        let mut overlong = raw[..6].to_vec();
        overlong.extend_from_slice(&[0x80, 0x00]);
        let mut too_big = vec![1, 1];
        too_big.extend_from_slice(&fnv1a32("t").to_be_bytes());
        too_big.extend_from_slice(&[0xff; 10]);
        let mut negative_partition = raw[..6].to_vec();
        negative_partition.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        for bad in [
            String::new(),
            "not a cursor".into(),
            "42".into(),
            format!("{good}="),
            good[..good.len() - 1].to_string(),
            b64(&trailing),
            b64(&unordered),
            b64(&overlong),
            b64(&too_big),
            b64(&negative_partition),
            b64(&[1, 9, 0, 0, 0, 0, 0]),
            "x".repeat(MAX_LEN + 1),
        ] {
            let got = decode_on(&bad, 3, "t");
            assert_eq!(got, Err(CursorError::Malformed), "{bad:.80}");
        }
        let mut future = raw.clone();
        future[0] = 2;
        assert_eq!(
            decode_on(&b64(&future), 3, "t"),
            Err(CursorError::Version(2))
        );
        // Every single-byte change is refused or decodes to a different, still valid position
        // of the same topic; none panics.
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut flipped = raw.clone();
                flipped[i] ^= 1 << bit;
                let _ = decode_on(&b64(&flipped), 3, "t");
            }
        }
    }

    #[test]
    fn positions_advance_past_delivered_events() {
        let mut sequence = memory(0);
        sequence.advance(0, 41);
        assert_eq!(sequence.read_from(), ReadFrom::Sequence(42));
        let mut offsets = kafka(BTreeMap::from([(0, 5), (1, 0)]));
        offsets.advance(1, 7);
        offsets.advance(2, 0);
        offsets.advance(0, 3); // older than the position: no step back
        assert_eq!(
            offsets.read_from(),
            ReadFrom::Offsets(BTreeMap::from([(0, 5), (1, 8), (2, 1)]))
        );
        offsets.advance(3, i64::MAX);
        assert_eq!(decode_on(&offsets.encode("t"), 3, "t"), Ok(offsets.clone()));
    }
}
