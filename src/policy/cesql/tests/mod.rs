//! Table tests of the whole language, held to the CESQL v1.0 specification and its TCK
//! (`tck`), sidebus's interpretations and edge cases (`extra`), and property tests (`props`).

mod extra;
mod props;
mod tck;
mod tck_examples;

use bytes::Bytes;

use super::{parse, ErrorKind, Value};
use crate::event::Event;

/// An expected result.
#[derive(Debug, Clone, Copy)]
pub(super) enum R {
    I(i32),
    S(&'static str),
    B(bool),
}

impl R {
    fn value(self) -> Value {
        match self {
            Self::I(i) => Value::Integer(i),
            Self::S(s) => Value::String(s.to_owned()),
            Self::B(b) => Value::Boolean(b),
        }
    }
}

/// One case: expression, attributes set on the event, result, error kind.
pub(super) type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], R, Option<ErrorKind>);

/// An event with the required attributes only, then `attributes` set.
pub(super) fn event(attributes: &[(&str, &str)]) -> Event {
    let mut event = Event {
        id: "myId".into(),
        source: "localhost.localdomain".into(),
        ty: "myType".into(),
        time: None,
        datacontenttype: None,
        dataschema: None,
        subject: None,
        extensions: Vec::new(),
        data: Bytes::new(),
    };
    for (name, value) in attributes {
        let value = (*value).to_owned();
        match *name {
            "id" => event.id = value,
            "source" => event.source = value,
            "type" => event.ty = value,
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            "datacontenttype" => event.datacontenttype = Some(value),
            "dataschema" => event.dataschema = Some(value),
            other => event.set_extension(other, value),
        }
    }
    event
}

/// Runs every case; reports all failures at once.
pub(super) fn run(cases: &[Case<'_>]) {
    let mut failures = Vec::new();
    for (text, attributes, result, error) in cases {
        let expression = match parse(text) {
            Ok(expression) => expression,
            Err(e) => {
                failures.push(format!("{text}: does not parse: {e}"));
                continue;
            }
        };
        let event = event(attributes);
        let (value, raised) = expression.evaluate(&event);
        let kind = raised.as_ref().map(|e| e.kind);
        if value != result.value() || kind != *error {
            failures.push(format!(
                "{text}: got {value:?} {raised:?}, expected {result:?} {error:?}"
            ));
        }
        let matches = value == Value::Boolean(true) && raised.is_none();
        if expression.matches(&event) != matches {
            failures.push(format!("{text}: matches() disagrees with evaluate()"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Expressions that must not parse, with the 1-based position of the error.
pub(super) fn run_parse_errors(cases: &[(&str, usize)]) {
    let mut failures = Vec::new();
    for (text, position) in cases {
        match parse(text) {
            Ok(e) => failures.push(format!("{text}: parsed as {e:?}")),
            Err(e) if e.position != *position => failures.push(format!(
                "{text}: error at {}, expected {position}: {e}",
                e.position
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
