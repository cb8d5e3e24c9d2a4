//! Subscription filters: the CloudEvents Subscriptions API filter dialects (§3.2.4.1), as
//! subscriptions carry them in configuration and JSON:
//!
//! ```json
//! {"exact": {"type": "com.example.order.placed", "source": "/shop"}}
//! {"prefix": {"type": "com.example."}}
//! {"suffix": {"subject": ".pdf"}}
//! {"all": [{"exact": {"type": "a"}}, {"sql": "INT(priority) > 3"}]}
//! {"any": [...]}
//! {"not": {"exact": {"type": "a"}}}
//! {"sql": "source LIKE '/shop/%' AND EXISTS subject"}
//! ```
//!
//! `exact`, `prefix` and `suffix` compare case-sensitively and every listed attribute must
//! match; an attribute the event does not carry does not match. `sql` is a CESQL expression,
//! parsed when the filter is read: it matches when it evaluates to `true` without error.
//! [`Filters`] is what a subscription holds: one filter object or an array of them, all of
//! which must match; none matches every event.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::attribute::Attribute;
use super::cesql::{self, Expression};
use crate::event::{validate_attribute_name, Event};

const DIALECTS: &str = "exact, prefix, suffix, all, any, not or sql";

/// One filter expression of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every listed attribute equals its value.
    Exact(AttributeValues),
    /// Every listed attribute starts with its value.
    Prefix(AttributeValues),
    /// Every listed attribute ends with its value.
    Suffix(AttributeValues),
    /// Every nested filter matches (at least one is given).
    All(Vec<Filter>),
    /// At least one nested filter matches (at least one is given).
    Any(Vec<Filter>),
    /// The nested filter does not match.
    Not(Box<Filter>),
    /// The CESQL expression evaluates to `true` without error.
    Sql(Expression),
}

impl Filter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Self::Exact(values) => values.all(event, |value, wanted| value == wanted),
            Self::Prefix(values) => values.all(event, |value, wanted| value.starts_with(wanted)),
            Self::Suffix(values) => values.all(event, |value, wanted| value.ends_with(wanted)),
            Self::All(filters) => filters.iter().all(|f| f.matches(event)),
            Self::Any(filters) => filters.iter().any(|f| f.matches(event)),
            Self::Not(filter) => !filter.matches(event),
            Self::Sql(expression) => expression.matches(event),
        }
    }

    fn dialect(&self) -> &'static str {
        match self {
            Self::Exact(_) => "exact",
            Self::Prefix(_) => "prefix",
            Self::Suffix(_) => "suffix",
            Self::All(_) => "all",
            Self::Any(_) => "any",
            Self::Not(_) => "not",
            Self::Sql(_) => "sql",
        }
    }
}

/// The attribute names and values of an `exact`, `prefix` or `suffix` filter, in the order
/// given: at least one, names as CloudEvents spells them (lowercase letters and digits), values
/// not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValues(Vec<(Attribute, Box<str>)>);

impl AttributeValues {
    /// The `(attribute, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(a, v)| (a.name(), &**v))
    }

    fn all(&self, event: &Event, test: impl Fn(&str, &str) -> bool) -> bool {
        self.0
            .iter()
            .all(|(attribute, wanted)| attribute.get(event).is_some_and(|v| test(v, wanted)))
    }
}

impl Serialize for AttributeValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AttributeValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = AttributeValues;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attribute names and string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(Attribute, Box<str>)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    validate_attribute_name(&name).map_err(de::Error::custom)?;
                    let value: String = map.next_value()?;
                    if value.is_empty() {
                        return Err(de::Error::custom(format!(
                            "the value for attribute `{name}` must not be empty"
                        )));
                    }
                    if pairs.iter().any(|(a, _)| a.name() == name) {
                        return Err(de::Error::custom(format!(
                            "attribute `{name}` is listed twice"
                        )));
                    }
                    pairs.push((Attribute::new(&name), value.into_boxed_str()));
                }
                if pairs.is_empty() {
                    return Err(de::Error::custom(
                        "list at least one attribute and the value to compare it with",
                    ));
                }
                Ok(AttributeValues(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        let dialect = self.dialect();
        match self {
            Self::Exact(values) | Self::Prefix(values) | Self::Suffix(values) => {
                map.serialize_entry(dialect, values)?
            }
            Self::All(filters) | Self::Any(filters) => map.serialize_entry(dialect, filters)?,
            Self::Not(filter) => map.serialize_entry(dialect, filter)?,
            Self::Sql(expression) => map.serialize_entry(dialect, expression.as_str())?,
        }
        map.end()
    }
}

struct FilterVisitor;

impl<'de> Visitor<'de> for FilterVisitor {
    type Value = Filter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a filter object with one key: {DIALECTS}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Filter, A::Error> {
        let Some(dialect) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "a filter object needs one dialect key: {DIALECTS}"
            )));
        };
        let nested = |filters: Vec<Filter>| {
            if filters.is_empty() {
                Err(de::Error::custom(format!(
                    "`{dialect}` needs at least one filter in its array"
                )))
            } else {
                Ok(filters)
            }
        };
        let filter = match dialect.as_str() {
            "exact" => Filter::Exact(map.next_value()?),
            "prefix" => Filter::Prefix(map.next_value()?),
            "suffix" => Filter::Suffix(map.next_value()?),
            "all" => Filter::All(nested(map.next_value()?)?),
            "any" => Filter::Any(nested(map.next_value()?)?),
            "not" => Filter::Not(Box::new(map.next_value()?)),
            "sql" => {
                let text: String = map.next_value()?;
                let expression = cesql::parse(&text).map_err(|e| {
                    de::Error::custom(format!("invalid CESQL expression {text:?} {e}"))
                })?;
                Filter::Sql(expression)
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown filter dialect `{other}`; the dialects are {DIALECTS}"
                )))
            }
        };
        if let Some(another) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a filter object has exactly one dialect key, this one has `{dialect}` and \
                 `{another}`; put each in its own filter inside `all` or `any`"
            )));
        }
        Ok(filter)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FilterVisitor)
    }
}

/// The filters of a subscription: one filter object or an array of them, all of which must
/// match. The default, no filter, matches every event. Serializes as an array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// Whether `event` passes every filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.0.iter().all(|f| f.matches(event))
    }

    /// True when there is no filter (every event matches).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The filters, in order.
    pub fn as_slice(&self) -> &[Filter] {
        &self.0
    }
}

/// Filters that do not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct FilterError {
    /// What is wrong, naming the dialect or the expression.
    pub detail: String,
    /// For a CESQL expression that does not parse: the 1-based character offset in it.
    pub position: Option<usize>,
}

impl Filters {
    /// Compiles filters as a subscription carries them (JSON or TOML, kept as written): a `sql`
    /// expression that does not parse is reported with its position, then the dialects are
    /// read strictly.
    pub fn compile(written: &serde_json::Value) -> Result<Self, FilterError> {
        first_bad_expression(written)?;
        serde_json::from_value(written.clone()).map_err(|e| FilterError {
            detail: e.to_string(),
            position: None,
        })
    }
}

/// The first `sql` member, anywhere in `written`, whose expression does not parse.
fn first_bad_expression(written: &serde_json::Value) -> Result<(), FilterError> {
    match written {
        serde_json::Value::Array(items) => items.iter().try_for_each(first_bad_expression),
        serde_json::Value::Object(members) => {
            for (key, value) in members {
                match (key.as_str(), value) {
                    ("sql", serde_json::Value::String(text)) => {
                        cesql::parse(text).map_err(|e| FilterError {
                            detail: format!("invalid CESQL expression {text:?} {e}"),
                            position: Some(e.position),
                        })?;
                    }
                    _ => first_bad_expression(value)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl From<Vec<Filter>> for Filters {
    fn from(filters: Vec<Filter>) -> Self {
        Self(filters)
    }
}

impl Serialize for Filters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for filter in &self.0 {
            seq.serialize_element(filter)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Filters;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a filter object or an array of filter objects")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Filters, A::Error> {
                Ok(Filters(vec![FilterVisitor.visit_map(map)?]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Filters, A::Error> {
                let mut filters = Vec::new();
                while let Some(filter) = seq.next_element()? {
                    filters.push(filter);
                }
                Ok(Filters(filters))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    fn event() -> Event {
        Event {
            id: "1".into(),
            source: "/shop/eu".into(),
            ty: "com.example.order.placed".into(),
            time: None,
            datacontenttype: None,
            dataschema: None,
            subject: Some("orders/42.pdf".into()),
            extensions: vec![("priority".into(), "5".into())],
            data: Bytes::new(),
        }
    }

    fn filter(json: serde_json::Value) -> Filter {
        serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn refused(json: serde_json::Value) -> String {
        match serde_json::from_value::<Filters>(json.clone()) {
            Ok(f) => panic!("{json} was accepted as {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn dialects_match() {
        let cases = [
            (json!({"exact": {"type": "com.example.order.placed"}}), true),
            (json!({"exact": {"type": "com.example.order"}}), false),
            (
                json!({"exact": {"type": "com.example.order.placed", "source": "/shop/eu"}}),
                true,
            ),
            (
                json!({"exact": {"type": "com.example.order.placed", "source": "/shop"}}),
                false,
            ),
            (
                json!({"exact": {"specversion": "1.0", "priority": "5"}}),
                true,
            ),
            (json!({"exact": {"time": "x"}}), false),
            (
                json!({"prefix": {"type": "com.example.", "source": "/shop/"}}),
                true,
            ),
            (json!({"prefix": {"type": "COM.example."}}), false),
            (json!({"prefix": {"missing": "a"}}), false),
            (json!({"suffix": {"subject": ".pdf"}}), true),
            (json!({"suffix": {"subject": ".PDF"}}), false),
            (json!({"suffix": {"dataschema": "x"}}), false),
            (
                json!({"all": [{"exact": {"id": "1"}}, {"prefix": {"type": "com."}}]}),
                true,
            ),
            (
                json!({"all": [{"exact": {"id": "1"}}, {"prefix": {"type": "org."}}]}),
                false,
            ),
            (
                json!({"any": [{"exact": {"id": "2"}}, {"prefix": {"type": "com."}}]}),
                true,
            ),
            (
                json!({"any": [{"exact": {"id": "2"}}, {"prefix": {"type": "org."}}]}),
                false,
            ),
            (json!({"not": {"exact": {"id": "2"}}}), true),
            (json!({"not": {"not": {"exact": {"id": "2"}}}}), false),
            (
                json!({"sql": "INT(priority) > 3 AND subject LIKE '%.pdf'"}),
                true,
            ),
            (json!({"sql": "priority"}), false),
            (json!({"sql": "missing = 'x' OR TRUE"}), false),
        ];
        for (json, expected) in cases {
            assert_eq!(filter(json.clone()).matches(&event()), expected, "{json}");
        }
    }

    #[test]
    fn serializes_back_to_the_same_json() {
        let shapes = [
            json!({"exact": {"type": "a", "source": "/b"}}),
            json!({"prefix": {"subject": "x"}}),
            json!({"suffix": {"type": ".y"}}),
            json!({"all": [{"exact": {"id": "1"}}, {"any": [{"sql": "TRUE"}]}]}),
            json!({"not": {"sql": "source LIKE '/shop/%'"}}),
        ];
        for json in shapes {
            let parsed = filter(json.clone());
            assert_eq!(serde_json::to_value(&parsed).expect("serializes"), json);
            assert_eq!(
                filter(serde_json::to_value(&parsed).expect("serializes")),
                parsed
            );
        }
        let text = r#"{"exact":{"type":"a","id":"b"}}"#;
        let parsed: Filter = serde_json::from_str(text).expect("parses");
        assert_eq!(serde_json::to_string(&parsed).expect("serializes"), text);
    }

    #[test]
    fn filters_take_one_object_or_an_array() {
        let one: Filters = serde_json::from_value(json!({"exact": {"id": "1"}})).expect("one");
        assert_eq!(one.as_slice().len(), 1);
        assert!(one.matches(&event()));
        let many: Filters = serde_json::from_value(json!([
            {"exact": {"id": "1"}},
            {"sql": "type = 'other'"}
        ]))
        .expect("many");
        assert!(!many.matches(&event()));
        assert_eq!(
            serde_json::to_value(&many).expect("serializes"),
            json!([{"exact": {"id": "1"}}, {"sql": "type = 'other'"}])
        );
        let none: Filters = serde_json::from_value(json!([])).expect("none");
        assert!(none.is_empty() && none.matches(&event()));
        assert!(Filters::default().matches(&event()));
        assert_eq!(
            Filters::from(vec![filter(json!({"sql": "TRUE"}))])
                .as_slice()
                .len(),
            1
        );
    }

    #[test]
    fn filters_read_from_toml_configuration() {
        #[derive(Deserialize)]
        struct Subscription {
            filters: Filters,
        }
        let toml = r#"
            [[filters]]
            exact = { type = "com.example.order.placed" }
            [[filters]]
            sql = "EXISTS subject"
        "#;
        let figment = figment::Figment::from(
            <figment::providers::Toml as figment::providers::Format>::string(toml),
        );
        let s: Subscription = figment.extract().expect("extracts");
        assert_eq!(s.filters.as_slice().len(), 2);
        assert!(s.filters.matches(&event()));
        let toml = r#"filters = { not = { prefix = { source = "/shop/" } } }"#;
        let figment = figment::Figment::from(
            <figment::providers::Toml as figment::providers::Format>::string(toml),
        );
        let s: Subscription = figment.extract().expect("extracts");
        assert!(!s.filters.matches(&event()));
    }

    #[test]
    fn malformed_filters_are_refused_with_a_reason() {
        let cases = [
            (json!({}), "needs one dialect key"),
            (
                json!({"exact": {"id": "1"}, "prefix": {"id": "1"}}),
                "`exact` and `prefix`",
            ),
            (
                json!({"regex": {"id": "1"}}),
                "unknown filter dialect `regex`",
            ),
            (
                json!([{"exact": {"id": "1"}}, {"Exact": {"id": "1"}}]),
                "`Exact`",
            ),
            (json!({"exact": {}}), "at least one attribute"),
            (json!({"exact": {"id": ""}}), "must not be empty"),
            (json!({"exact": {"": "x"}}), "attribute name"),
            (json!({"exact": {"Type": "x"}}), "attribute name `Type`"),
            (json!({"exact": {"id": 1}}), "expected a string"),
            (json!({"all": []}), "`all` needs at least one filter"),
            (json!({"any": []}), "`any` needs at least one filter"),
            (json!({"not": [{"exact": {"id": "1"}}]}), "filter object"),
            (json!({"sql": 1}), "expected a string"),
            (json!({"sql": "type = "}), "at position 8:"),
            (json!({"all": [{"sql": "a LIKE 1"}]}), "at position 8:"),
            (json!("exact"), "a filter object or an array"),
        ];
        for (json, reason) in cases {
            let message = refused(json.clone());
            assert!(message.contains(reason), "{json}: {message}");
        }
    }
}
