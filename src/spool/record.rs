//! One spooled event as bytes: the time it was spooled, its topic and every CloudEvent field,
//! length-prefixed. The frame around it (length and checksum) is the log's.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::Outbound;
use crate::event::Event;

/// Why a record could not be read back (the checksum matched, so this is a bug or a record of
/// another version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spool record is malformed: {0}")]
pub struct RecordError(&'static str);

/// Appends `outbound`, spooled at `at_ms` (Unix milliseconds), to `out`.
pub fn encode(outbound: &Outbound, at_ms: u64, out: &mut Vec<u8>) {
    let e = &outbound.event;
    out.extend_from_slice(&at_ms.to_le_bytes());
    put(out, outbound.topic.as_bytes());
    put(out, e.id.as_bytes());
    put(out, e.source.as_bytes());
    put(out, e.ty.as_bytes());
    for optional in [&e.time, &e.datacontenttype, &e.dataschema, &e.subject] {
        match optional {
            Some(value) => {
                out.push(1);
                put(out, value.as_bytes());
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&(e.extensions.len() as u32).to_le_bytes());
    for (name, value) in &e.extensions {
        put(out, name.as_bytes());
        put(out, value.as_bytes());
    }
    put(out, &e.data);
}

/// Reads a record back: the time it was spooled and the event with its topic.
pub fn decode(record: &[u8]) -> Result<(u64, Outbound), RecordError> {
    let mut r = Reader(record);
    let at_ms = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let topic: Arc<str> = Arc::from(r.string()?);
    let id = r.string()?;
    let source = r.string()?;
    let ty = r.string()?;
    let mut optional = [None, None, None, None];
    for slot in &mut optional {
        *slot = match r.take(1)?[0] {
            0 => None,
            1 => Some(r.string()?),
            _ => return Err(RecordError("an optional attribute's flag is not 0 or 1")),
        };
    }
    let [time, datacontenttype, dataschema, subject] = optional;
    let count = r.u32()? as usize;
    let mut extensions = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        extensions.push((r.string()?, r.string()?));
    }
    let data = Bytes::copy_from_slice(r.bytes()?);
    if !r.0.is_empty() {
        return Err(RecordError("bytes follow the data"));
    }
    let event = Event {
        id,
        source,
        ty,
        time,
        datacontenttype,
        dataschema,
        subject,
        extensions,
        data,
    };
    Ok((at_ms, Outbound { topic, event }))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("it ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| RecordError("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        Outbound {
            topic: Arc::from("orders"),
            event: Event {
                id: "e-1".into(),
                source: "/shop".into(),
                ty: "order.placed".into(),
                time: Some("2026-12-07T10:00:00Z".into()),
                datacontenttype: Some("application/json".into()),
                dataschema: None,
                subject: Some("o/1".into()),
                extensions: vec![("partitionkey".into(), "c-1".into())],
                data: Bytes::from_static(br#"{"total":1}"#),
            },
        }
    }

    #[test]
    fn every_field_round_trips() {
        let original = outbound();
        let mut bytes = Vec::new();
        encode(&original, 1_765_000_000_000, &mut bytes);
        let (at, back) = decode(&bytes).unwrap();
        assert_eq!(at, 1_765_000_000_000);
        assert_eq!(back.topic, original.topic);
        assert_eq!(back.event, original.event);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        encode(&outbound(), 1, &mut bytes);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "{len}");
        }
        bytes.push(0);
        assert!(decode(&bytes).is_err());
    }
}
