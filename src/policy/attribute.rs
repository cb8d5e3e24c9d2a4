//! A CloudEvents context attribute named once (at parse or configuration time) and read from
//! events without comparing names: the core attributes are fields of [`Event`], extensions are
//! looked up by name.

use crate::event::{Event, SPEC_VERSION};

/// A context attribute or extension of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attribute {
    SpecVersion,
    Id,
    Source,
    Type,
    Subject,
    Time,
    DataContentType,
    DataSchema,
    Extension(Box<str>),
}

impl Attribute {
    /// The attribute called `name` (lowercase, as CloudEvents names attributes).
    pub(crate) fn new(name: &str) -> Self {
        match name {
            "specversion" => Self::SpecVersion,
            "id" => Self::Id,
            "source" => Self::Source,
            "type" => Self::Type,
            "subject" => Self::Subject,
            "time" => Self::Time,
            "datacontenttype" => Self::DataContentType,
            "dataschema" => Self::DataSchema,
            other => Self::Extension(other.into()),
        }
    }

    /// The attribute's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::SpecVersion => "specversion",
            Self::Id => "id",
            Self::Source => "source",
            Self::Type => "type",
            Self::Subject => "subject",
            Self::Time => "time",
            Self::DataContentType => "datacontenttype",
            Self::DataSchema => "dataschema",
            Self::Extension(name) => name,
        }
    }

    /// The attribute's value in `event`, `None` when the event does not carry it. The four
    /// REQUIRED attributes are always present.
    pub(crate) fn get<'e>(&self, event: &'e Event) -> Option<&'e str> {
        match self {
            Self::SpecVersion => Some(SPEC_VERSION),
            Self::Id => Some(&event.id),
            Self::Source => Some(&event.source),
            Self::Type => Some(&event.ty),
            Self::Subject => event.subject.as_deref(),
            Self::Time => event.time.as_deref(),
            Self::DataContentType => event.datacontenttype.as_deref(),
            Self::DataSchema => event.dataschema.as_deref(),
            Self::Extension(name) => event.extension(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_values_come_from_the_event() {
        let event = Event {
            id: "1".into(),
            source: "/s".into(),
            ty: "t".into(),
            time: None,
            datacontenttype: Some("text/plain".into()),
            dataschema: None,
            subject: Some("sub".into()),
            extensions: vec![("ext".into(), "v".into())],
            data: bytes::Bytes::new(),
        };
        let cases = [
            ("specversion", Some("1.0")),
            ("id", Some("1")),
            ("source", Some("/s")),
            ("type", Some("t")),
            ("subject", Some("sub")),
            ("time", None),
            ("datacontenttype", Some("text/plain")),
            ("dataschema", None),
            ("ext", Some("v")),
            ("other", None),
        ];
        for (name, value) in cases {
            let attribute = Attribute::new(name);
            assert_eq!(attribute.name(), name);
            assert_eq!(attribute.get(&event), value, "{name}");
        }
    }
}
