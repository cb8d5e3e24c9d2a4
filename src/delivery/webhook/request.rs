//! Building a webhook request: CloudEvents HTTP binding (binary, structured, batch) plus
//! Standard Webhooks signature headers.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::subscription::ContentMode;
use crate::event::{self, prefixed_name, Event, Prefix, TOPIC_ATTRIBUTE};

/// Characters percent-encoded in `ce-*` header values (CloudEvents HTTP binding §3.1.3.2):
/// controls, space, `"`, `%` and everything outside printable ASCII.
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// A request ready to send (without the URL, which is the subscription's).
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// Headers: content type, CloudEvents attributes, trace context, signature.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// `webhook-id`: the event id (batch: the first event's id, prefixed `batch_`).
    pub id: String,
}

/// A Standard Webhooks signing key (the bytes after `whsec_`).
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Decodes a `whsec_<base64>` secret (validated beforehand by the spec).
    pub fn from_secret(secret: &str) -> Option<Self> {
        let key = secret.strip_prefix("whsec_").unwrap_or(secret);
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .ok()
            .map(SigningKey)
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. Signs the raw body bytes, so binary
    /// payloads that are not UTF-8 are signed too (the `standardwebhooks` crate refuses those).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = hmac_sha256::HMAC::new(&self.0);
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize())
        )
    }
}

fn header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(value).ok()?;
    Some((name, value))
}

/// The `ce-` header of a context attribute; the names every event carries are static.
fn attribute_header(attribute: &str) -> Option<HeaderName> {
    match prefixed_name(Prefix::Dash, attribute) {
        Cow::Borrowed(name) => Some(HeaderName::from_static(name)),
        Cow::Owned(name) => HeaderName::from_bytes(name.as_bytes()).ok(),
    }
}

/// The header naming the concrete topic of the delivered events, wildcard subscription or not.
pub const TOPIC_HEADER: &str = "sidebus-topic";

/// Builds the request for `events` (one, except in batch mode), each with the concrete topic it
/// was consumed from: in the `sidebus-topic` header when they share one, and as the extension
/// attribute `sidebustopic` of each event in structured and batch bodies.
pub fn build(events: &[(&str, &Event)], mode: ContentMode) -> WebhookRequest {
    let (topic, first) = events[0];
    let mut headers = HeaderMap::new();
    if events.iter().all(|(t, _)| *t == topic) {
        if let Ok(value) = HeaderValue::from_str(topic) {
            headers.insert(TOPIC_HEADER, value);
        }
    }
    let (body, id) = match mode {
        ContentMode::Binary => {
            for (name, value) in first.header_attributes() {
                let encoded: Cow<'_, str> = utf8_percent_encode(value, HEADER_VALUE).into();
                if let (Some(n), Ok(v)) = (attribute_header(name), HeaderValue::from_str(&encoded))
                {
                    headers.insert(n, v);
                }
            }
            if let Some((n, v)) = first
                .datacontenttype
                .as_deref()
                .and_then(|ct| header("content-type", ct))
            {
                headers.insert(n, v);
            }
            (first.data.clone(), first.id.clone())
        }
        ContentMode::Structured => {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents+json"),
            );
            let json = event::to_json_with(first, &[(TOPIC_ATTRIBUTE, topic)]);
            (Bytes::from(json), first.id.clone())
        }
        ContentMode::Batch => {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents-batch+json"),
            );
            let data: usize = events.iter().map(|(_, e)| e.data.len()).sum();
            let mut body = Vec::with_capacity(data + events.len() * event::JSON_ROOM);
            body.push(b'[');
            for (i, (t, e)) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                event::write_json_with(e, &[(TOPIC_ATTRIBUTE, t)], &mut body);
            }
            body.push(b']');
            (Bytes::from(body), format!("batch_{}", first.id))
        }
    };
    // The delivery is a hop of the publisher's trace: same trace id, a new parent id.
    if let Some((n, v)) = first
        .extension("traceparent")
        .and_then(crate::telemetry::tracing::hop)
        .and_then(|child| header("traceparent", &child))
    {
        headers.insert(n, v);
    }
    if let Some((n, v)) = first
        .extension("tracestate")
        .and_then(|v| header("tracestate", v))
    {
        headers.insert(n, v);
    }
    WebhookRequest { headers, body, id }
}

impl WebhookRequest {
    /// Adds `webhook-id`, `webhook-timestamp` and, with a key, `webhook-signature`. Called per
    /// attempt: the id stays, the timestamp and signature are fresh.
    pub fn stamp(&mut self, key: Option<&SigningKey>, now: i64) {
        self.headers.insert(
            "webhook-id",
            HeaderValue::from_str(&self.id).unwrap_or(HeaderValue::from_static("invalid")),
        );
        self.headers
            .insert("webhook-timestamp", HeaderValue::from(now));
        if let Some(key) = key {
            let signature = key.sign(&self.id, now, &self.body);
            self.headers.insert(
                "webhook-signature",
                HeaderValue::from_str(&signature).expect("base64 is a valid header value"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &'static [u8]) -> Event {
        Event {
            id: "evt-1".into(),
            source: "/s".into(),
            ty: "t".into(),
            time: None,
            datacontenttype: Some("text/plain".into()),
            dataschema: None,
            subject: Some("café \"x\"".into()),
            extensions: vec![(
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            )],
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn binary_mode_headers_are_percent_encoded() {
        let r = build(&[("t", &event(b"hi"))], ContentMode::Binary);
        assert_eq!(&r.body[..], b"hi");
        assert_eq!(r.headers["ce-subject"], "caf%C3%A9%20%22x%22");
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(r.headers["ce-specversion"], "1.0");
        assert!(r.headers.contains_key("traceparent"));
    }

    #[test]
    fn batch_is_an_array() {
        let r = build(
            &[("t", &event(b"a")), ("t", &event(b"b"))],
            ContentMode::Batch,
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["data"], "b");
        assert_eq!(r.id, "batch_evt-1");
    }

    #[test]
    fn every_request_names_the_concrete_topic() {
        let (a, b) = (event(b"a"), event(b"b"));
        let r = build(&[("orders.eu", &a)], ContentMode::Binary);
        assert_eq!(r.headers[TOPIC_HEADER], "orders.eu");
        let r = build(&[("orders.eu", &a)], ContentMode::Structured);
        assert_eq!(r.headers[TOPIC_HEADER], "orders.eu");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["sidebustopic"], "orders.eu");
        let r = build(&[("orders.eu", &a), ("orders.us", &b)], ContentMode::Batch);
        assert!(
            !r.headers.contains_key(TOPIC_HEADER),
            "no one topic to name"
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v[0]["sidebustopic"], "orders.eu");
        assert_eq!(v[1]["sidebustopic"], "orders.us");
    }

    #[test]
    fn signature_matches_the_spec_example() {
        // Example from the Standard Webhooks specification.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
