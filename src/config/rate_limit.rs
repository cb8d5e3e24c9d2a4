//! A webhook subscription's `rate_limit`: events per second as a bare number (`rate_limit =
//! 100`), or events and/or payload bytes per second as a table (`rate_limit = {
//! events_per_second = 100, bytes_per_second = "1MiB" }`).

use std::fmt;

use bytesize::ByteSize;
use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How fast a subscription may deliver. Each rate set is a token bucket; a delivery waits until
/// every bucket has room for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// Most events delivered per second.
    pub events_per_second: Option<u32>,
    /// Most payload bytes delivered per second.
    pub bytes_per_second: Option<ByteSize>,
}

impl RateLimit {
    /// Why the rates are unusable, if they are.
    pub fn problem(&self) -> Option<&'static str> {
        match (
            self.events_per_second,
            self.bytes_per_second.map(|b| b.as_u64()),
        ) {
            (None, None) => Some("needs events_per_second, bytes_per_second or both"),
            (Some(0), _) => Some("must be at least 1 event per second"),
            (_, Some(0)) => Some("bytes_per_second must be at least 1B"),
            (_, Some(b)) if b > u64::from(u32::MAX) => {
                Some("bytes_per_second must be at most 4GiB")
            }
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole::option"
    )]
    events_per_second: Option<u32>,
    /// Written back as a whole number of bytes: `ByteSize` would write a rounded `9.8 KiB`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "exact_bytes",
        deserialize_with = "bytes"
    )]
    bytes_per_second: Option<ByteSize>,
}

/// Reads bytes as a whole number, `8` or `8.0` (JSON Schema's integers, as the other whole-number
/// fields take them), or as a size such as `"1MiB"`; `null` is none.
fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ByteSize>, D::Error> {
    deserializer.deserialize_option(Bytes)
}

struct Bytes;

impl<'de> Visitor<'de> for Bytes {
    type Value = Option<ByteSize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("bytes as a whole number, or a size such as \"1MiB\"")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(ByteSize::b(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        let n: u64 = super::whole::deserialize(n.into_deserializer())?;
        Ok(Some(ByteSize::b(n)))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        let n: u64 = super::whole::deserialize(n.into_deserializer())?;
        Ok(Some(ByteSize::b(n)))
    }

    fn visit_str<E: de::Error>(self, size: &str) -> Result<Self::Value, E> {
        size.parse().map(Some).map_err(E::custom)
    }
}

fn exact_bytes<S: Serializer>(bytes: &Option<ByteSize>, serializer: S) -> Result<S::Ok, S::Error> {
    bytes.map(|b| b.as_u64()).serialize(serializer)
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Written)
    }
}

/// Reads either form. Not a `#[serde(untagged)]` enum: that buffers the value and then refuses
/// `20.0` as an integer, which every other whole-number field of a subscription takes.
struct Written;

impl<'de> Visitor<'de> for Written {
    type Value = RateLimit;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("events per second, or a table of events_per_second and bytes_per_second")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RateLimit, E> {
        events(super::whole::deserialize(n.into_deserializer())?)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RateLimit, E> {
        events(super::whole::deserialize(n.into_deserializer())?)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<RateLimit, E> {
        events(super::whole::deserialize(n.into_deserializer())?)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RateLimit, A::Error> {
        let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RateLimit {
            events_per_second: table.events_per_second,
            bytes_per_second: table.bytes_per_second,
        })
    }
}

fn events<E>(events_per_second: u32) -> Result<RateLimit, E> {
    Ok(RateLimit {
        events_per_second: Some(events_per_second),
        bytes_per_second: None,
    })
}

impl Serialize for RateLimit {
    /// A bare number when only events are limited, as it was always written; a table otherwise.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.events_per_second, self.bytes_per_second) {
            (Some(events), None) => events.serialize(serializer),
            (events_per_second, bytes_per_second) => Table {
                events_per_second,
                bytes_per_second,
            }
            .serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_and_write_back() {
        let bare: RateLimit = serde_json::from_str("20.0").unwrap();
        assert_eq!(bare.events_per_second, Some(20));
        assert_eq!(serde_json::to_string(&bare).unwrap(), "20");
        let table: RateLimit =
            serde_json::from_str(r#"{"events_per_second": 5, "bytes_per_second": "10KB"}"#)
                .unwrap();
        assert_eq!(table.bytes_per_second, Some(ByteSize::kb(10)));
        assert_eq!(
            serde_json::to_string(&table).unwrap(),
            r#"{"events_per_second":5,"bytes_per_second":10000}"#
        );
        let again: RateLimit =
            serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(again, table);
        assert!(serde_json::from_str::<RateLimit>(r#"{"events": 5}"#).is_err());
        let empty: RateLimit = serde_json::from_str("{}").unwrap();
        assert!(empty.problem().is_some());
        assert!(RateLimit {
            events_per_second: Some(0),
            ..empty
        }
        .problem()
        .is_some());
    }

    #[test]
    fn bytes_per_second_takes_whole_numbers_as_json_schema_counts_them() {
        let read = |json: &str| serde_json::from_str::<RateLimit>(json).map(|r| r.bytes_per_second);
        assert_eq!(
            read(r#"{"events_per_second": 15.0, "bytes_per_second": 49.0}"#).unwrap(),
            Some(ByteSize::b(49))
        );
        assert_eq!(
            read(r#"{"bytes_per_second": 4096}"#).unwrap(),
            Some(ByteSize::b(4096))
        );
        assert_eq!(
            read(r#"{"bytes_per_second": "1MiB"}"#).unwrap(),
            Some(ByteSize::mib(1))
        );
        assert_eq!(
            read(r#"{"events_per_second": 1, "bytes_per_second": null}"#).unwrap(),
            None
        );
        for refused in [
            r#"{"bytes_per_second": 49.5}"#,
            r#"{"bytes_per_second": -1}"#,
            r#"{"bytes_per_second": "lots"}"#,
            r#"{"bytes_per_second": true}"#,
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
        let toml: RateLimit = figment::Figment::from(figment::providers::Serialized::defaults(
            serde_json::json!({"bytes_per_second": "1KiB"}),
        ))
        .extract()
        .unwrap();
        assert_eq!(toml.bytes_per_second, Some(ByteSize::kib(1)));
    }
}
