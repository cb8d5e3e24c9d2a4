//! Serde helpers for the integer fields of a subscription. JSON Schema counts `8.0` as the
//! integer 8, and so do JSON encoders that write every number as a float (Python's for a
//! `float`, JavaScript's never, some code generators always); serde's own integer types refuse
//! it. These accept a number with no fractional part, integer or float, and nothing else.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes an unsigned integer written as `8` or `8.0`.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_u64(Whole(PhantomData))
}

/// [`deserialize`] for an optional field (`null` or absent = `None`).
pub fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_option(Optional(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Whole<T> {
    fn fit<E: de::Error>(n: u64) -> Result<T, E> {
        T::try_from(n)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &"a smaller whole number"))
    }
}

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number at least 0")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let n = u64::try_from(n).map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))?;
        Self::fit(n)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        // 2^64 as f64; every whole f64 below it converts to u64 exactly.
        const LIMIT: f64 = 18_446_744_073_709_551_616.0;
        if n.fract() != 0.0 || !(0.0..LIMIT).contains(&n) {
            return Err(E::invalid_value(de::Unexpected::Float(n), &self));
        }
        Self::fit(n as u64)
    }
}

struct Optional<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for Optional<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number at least 0, or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Fields {
        #[serde(deserialize_with = "super::deserialize")]
        count: u32,
        #[serde(default, deserialize_with = "super::option")]
        limit: Option<u32>,
    }

    fn parse(json: &str) -> Result<Fields, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers() {
        for (json, count, limit) in [
            (r#"{"count": 8}"#, 8, None),
            (r#"{"count": 8.0, "limit": 2346.0}"#, 8, Some(2346)),
            (r#"{"count": 0.0, "limit": null}"#, 0, None),
            (
                r#"{"count": 4294967295.0, "limit": 1e3}"#,
                u32::MAX,
                Some(1000),
            ),
        ] {
            assert_eq!(parse(json), Ok(Fields { count, limit }), "{json}");
        }
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for json in [
            r#"{"count": 8.5}"#,
            r#"{"count": -1}"#,
            r#"{"count": -1.0}"#,
            r#"{"count": 4294967296}"#,
            r#"{"count": 4294967296.0}"#,
            r#"{"count": 1e300}"#,
            r#"{"count": "8"}"#,
            r#"{"count": 1, "limit": 0.5}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn toml_whole_floats_are_integers() {
        use figment::providers::{Format, Toml};
        let fields: Fields = figment::Figment::from(Toml::string("count = 8.0\nlimit = 3"))
            .extract()
            .unwrap();
        assert_eq!(
            fields,
            Fields {
                count: 8,
                limit: Some(3)
            }
        );
    }
}
