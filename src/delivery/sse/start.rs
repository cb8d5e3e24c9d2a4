//! Where a stream starts: the client's request checked against what the broker can do.

use super::cursor::Cursor;
use crate::backend::consume::StartFrom;
use crate::backend::Capabilities;
use crate::config::topic::TopicPattern;
use crate::policy::cesql::Expression;

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Right after the event whose cursor this is.
    Cursor(Cursor),
    /// The oldest retained event, or only new ones.
    From(StartFrom),
}

/// What a client asked for, checked against what the broker can do.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// Topic to read.
    pub topic: String,
    /// Start position.
    pub start: Start,
    /// Only events with this `partitionkey`.
    pub key: Option<String>,
    /// Only events this CESQL expression (`?filter=`) matches; set after [`StreamRequest::new`].
    pub filter: Option<Expression>,
    /// Read through this consumer group (shared, acknowledged) instead of by position.
    pub group: Option<String>,
    /// Name each SSE event after its CloudEvent type.
    pub typed: bool,
    /// Decode schema-encoded payloads to JSON (`?decode=false` streams the broker's bytes);
    /// set after [`StreamRequest::new`].
    pub decode: bool,
}

impl StreamRequest {
    /// Builds a request for a broker of config kind and capabilities `broker` (the kind only
    /// names the broker in error messages). `cursor` is the `Last-Event-ID` header, or else the
    /// `lastEventId` parameter; it wins over `from`.
    pub fn new(
        broker: (&str, Capabilities),
        topic: &str,
        cursor: Option<&str>,
        from: StartFrom,
        key: Option<String>,
        group: Option<String>,
        typed: bool,
    ) -> Result<Self, String> {
        let (kind, capabilities) = broker;
        let start = match (cursor, capabilities.no_replay) {
            (Some(_), Some(no_replay)) => return Err(no_replay.cursor.into()),
            (Some(_), None) if group.is_some() => {
                return Err(
                    "a ?group= stream resumes from the group's acknowledged position; \
                     it takes no cursor (Last-Event-ID / lastEventId)"
                        .into(),
                )
            }
            (Some(text), None) => Start::Cursor(
                Cursor::decode(text, capabilities.cursor, kind, topic)
                    .map_err(|e| format!("cannot resume from `{}`: {e}", truncate(text, 80)))?,
            ),
            (None, _) => Start::From(from),
        };
        if let Some(no_replay) = capabilities.no_replay {
            if group.is_none() && from == StartFrom::Earliest {
                return Err(no_replay.earliest.into());
            }
        }
        let pattern = TopicPattern::parse(topic).map_err(|e| e.to_string())?;
        if pattern.is_wildcard() {
            if let Some(reason) = capabilities.no_wildcards {
                return Err(format!("`{topic}` is a topic pattern: {reason}"));
            }
            if let (Some(reason), None) = (capabilities.no_wildcard_read, &group) {
                return Err(format!("`{topic}` is a topic pattern: {reason}"));
            }
        }
        Ok(Self {
            topic: topic.to_string(),
            start,
            key,
            filter: None,
            group,
            typed,
            decode: true,
        })
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::consume::ReadPosition;
    use crate::backend::{self, cursor_kind};

    /// The broker of this build whose cursors are tagged `byte` (2 JetStream, 3 Kafka).
    fn with_cursor(byte: u8) -> (&'static str, Capabilities) {
        *backend::kinds()
            .iter()
            .find(|(_, c)| c.cursor.is_some_and(|k| k.byte == byte))
            .expect("a broker of this build")
    }

    /// A broker of this build that cannot replay (AMQP), if it has one.
    fn without_replay() -> Option<(&'static str, Capabilities)> {
        backend::kinds()
            .iter()
            .find(|(_, c)| c.no_replay.is_some())
            .copied()
    }

    #[test]
    fn requests_check_cursor_and_broker_rules() {
        let jetstream = with_cursor(2);
        let position = Cursor::new(cursor_kind(2).unwrap(), ReadPosition::Sequence(7)).unwrap();
        let cursor = position.encode("t");
        let r = StreamRequest::new(
            jetstream,
            "t",
            Some(&cursor),
            StartFrom::Earliest,
            None,
            None,
            false,
        )
        .unwrap();
        assert_eq!(r.start, Start::Cursor(position), "a cursor wins over from");
        assert!(StreamRequest::new(
            with_cursor(3),
            "t",
            Some(&cursor),
            StartFrom::Latest,
            None,
            None,
            false
        )
        .unwrap_err()
        .contains("does not belong"));
        assert!(StreamRequest::new(
            jetstream,
            "t",
            Some("garbage!"),
            StartFrom::Latest,
            None,
            None,
            false
        )
        .unwrap_err()
        .contains("malformed"));
        if let Some(amqp) = without_replay() {
            assert!(StreamRequest::new(
                amqp,
                "t",
                Some(&cursor),
                StartFrom::Latest,
                None,
                None,
                false
            )
            .unwrap_err()
            .contains("AMQP has no replay"));
            assert!(
                StreamRequest::new(amqp, "t", None, StartFrom::Earliest, None, None, false)
                    .unwrap_err()
                    .contains("AMQP has no replay")
            );
            assert!(StreamRequest::new(
                amqp,
                "t",
                None,
                StartFrom::Earliest,
                None,
                Some("g".into()),
                false
            )
            .is_ok());
        }
        assert!(StreamRequest::new(
            jetstream,
            "t",
            Some(&cursor),
            StartFrom::Latest,
            None,
            Some("g".into()),
            false
        )
        .unwrap_err()
        .contains("group"));
    }

    #[test]
    fn patterns_follow_the_broker() {
        let request = |broker, group: Option<&str>| {
            StreamRequest::new(
                broker,
                "orders.*",
                None,
                StartFrom::Latest,
                None,
                group.map(String::from),
                false,
            )
        };
        for (kind, capabilities) in backend::kinds() {
            let broker = (*kind, *capabilities);
            let alone = request(broker, None);
            let grouped = request(broker, Some("g"));
            match (capabilities.no_wildcards, capabilities.no_wildcard_read) {
                (Some(reason), _) => {
                    assert!(alone.unwrap_err().contains(reason), "{kind}");
                    assert!(grouped.unwrap_err().contains(reason), "{kind}");
                }
                (None, Some(reason)) => {
                    assert!(alone.unwrap_err().contains(reason), "{kind}");
                    assert!(grouped.is_ok(), "{kind}: a group keeps the position");
                }
                (None, None) => assert!(alone.is_ok() && grouped.is_ok(), "{kind}"),
            }
        }
    }
}
