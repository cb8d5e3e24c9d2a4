//! The SSE wire format of one event, shared by the pump that renders events and the body that
//! sends them.

use bytes::Bytes;

use crate::backend::consume::Settle;
use crate::event::{self, Event, TOPIC_ATTRIBUTE};

/// One rendered SSE event and the acknowledgement it carries.
pub(super) struct Frame {
    /// The event as SSE lines, blank line included.
    pub(super) bytes: Bytes,
    /// Settles the event once the connection has taken it (or gives it back).
    pub(super) settle: Box<dyn Settle>,
}

/// One SSE event: `id:` (when there is a cursor), `event:` (when typed), then the structured
/// CloudEvent JSON as `data:` lines (JSON data may span lines; SSE joins them with `\n`).
pub fn render(event: &Event, id: Option<&str>, typed: bool) -> Bytes {
    render_from(None, event, id, typed)
}

/// Like [`render`], with the concrete topic the event came from in the JSON as the extension
/// attribute `sidebustopic`.
pub fn render_from(topic: Option<&str>, event: &Event, id: Option<&str>, typed: bool) -> Bytes {
    let extra: Vec<(&str, &str)> = topic.map(|t| (TOPIC_ATTRIBUTE, t)).into_iter().collect();
    let json = event::to_json_with(event, &extra);
    let json = json.as_str();
    let mut out = String::with_capacity(json.len() + 128);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if typed {
        out.push_str("event: ");
        out.extend(
            event
                .ty
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
        out.push('\n');
    }
    let mut rest = json;
    loop {
        let (line, next) = match rest.find(['\n', '\r']) {
            Some(at) => {
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..at], Some(&rest[at + skip..]))
            }
            None => (rest, None),
        };
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &'static str, content_type: &str) -> Event {
        Event {
            id: "e-1".into(),
            source: "s".into(),
            ty: "order.placed".into(),
            time: None,
            datacontenttype: Some(content_type.into()),
            dataschema: None,
            subject: None,
            extensions: vec![],
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    /// The `data` of an SSE block, joined as a client does.
    fn data_of(block: &str) -> String {
        block
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|v| v.strip_prefix(' ').unwrap_or(v))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_event_is_id_then_data() {
        let block = render(&event("{\"a\":1}", "application/json"), Some("CUR"), false);
        let block = std::str::from_utf8(&block).unwrap();
        assert!(block.starts_with("id: CUR\ndata: {"), "{block}");
        assert!(block.ends_with("}\n\n"), "{block}");
        assert!(!block.contains("event:"), "{block}");
        let json: serde_json::Value = serde_json::from_str(&data_of(block)).unwrap();
        assert_eq!(json["data"]["a"], 1);
        assert_eq!(json["type"], "order.placed");
    }

    #[test]
    fn typed_events_are_named_after_their_type() {
        let block = render(&event("x", "text/plain"), None, true);
        let block = std::str::from_utf8(&block).unwrap();
        assert!(block.starts_with("event: order.placed\ndata: "), "{block}");
    }

    #[test]
    fn multi_line_json_data_survives_sse_framing() {
        let pretty = "{\r\n  \"a\": [1,\n 2],\r \"b\": \"x\"\n}";
        let block = render(&event(pretty, "application/json"), Some("c"), false);
        let block = std::str::from_utf8(&block).unwrap();
        assert_eq!(block.matches("\n\n").count(), 1, "{block:?}");
        assert!(!block.contains('\r'));
        let json: serde_json::Value = serde_json::from_str(&data_of(block)).unwrap();
        assert_eq!(json["data"]["a"][1], 2);
        assert_eq!(json["data"]["b"], "x");
    }

    #[test]
    fn binary_data_is_base64() {
        let mut e = event("", "application/octet-stream");
        e.data = Bytes::from_static(&[0xff, 0, 1]);
        let block = render(&e, None, false);
        let json: serde_json::Value =
            serde_json::from_str(&data_of(std::str::from_utf8(&block).unwrap())).unwrap();
        assert_eq!(json["data_base64"], "/wAB");
    }

    #[test]
    fn the_concrete_topic_is_an_extension_attribute() {
        let block = render_from(Some("orders.eu"), &event("x", "text/plain"), None, false);
        let json: serde_json::Value =
            serde_json::from_str(&data_of(std::str::from_utf8(&block).unwrap())).unwrap();
        assert_eq!(json["sidebustopic"], "orders.eu");
    }
}
