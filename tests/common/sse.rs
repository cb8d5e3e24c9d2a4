//! An SSE client for the tests: a plain streaming HTTP client that parses the stream as the SSE
//! spec says, and the requests, publishes and config the SSE tests share. Shared by
//! `tests/it/sse.rs` and `tests/it/sse_resume.rs`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

use sidebus::backend::consume::ReadPosition;
use sidebus::backend::Capabilities;
use sidebus::delivery::sse::Cursor;

use super::TestServer;

/// The cursor of `topic` at `next` (a memory offset, a JetStream sequence) on a broker of
/// `capabilities`, as a stream of that broker would send it.
pub fn cursor_at(capabilities: Capabilities, next: u64, topic: &str) -> String {
    let kind = capabilities.cursor.expect("a broker with cursors");
    Cursor::new(kind, ReadPosition::Sequence(next))
        .expect("a sequence cursor")
        .encode(topic)
}

/// How long any one expected item may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// What an SSE client sees.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A dispatched event, with the last event id in force after it (what EventSource reports).
    Event {
        id: Option<String>,
        event: Option<String>,
        data: String,
    },
    /// A comment line (`: ...`).
    Comment(String),
}

/// A dispatched event.
#[derive(Debug, Clone)]
pub struct Ev {
    /// The last event id after it.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// `data:` parsed as JSON.
    pub json: Value,
}

impl Ev {
    /// The CloudEvent id.
    pub fn ce_id(&self) -> String {
        self.json["id"].as_str().unwrap_or_default().to_string()
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An SSE reader following the WHATWG parsing rules (fields, comments, `id` persistence).
pub struct Sse {
    body: Body,
    buffer: Vec<u8>,
    items: VecDeque<Item>,
    /// The last event id buffer (persists across blocks).
    id_buffer: Option<String>,
    /// EventSource's last event id: the id buffer as of the last blank line.
    pub last_id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    ended: bool,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "{response:?}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
        assert!(headers.get("content-encoding").is_none());
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
            items: VecDeque::new(),
            id_buffer: None,
            last_id: None,
            event: None,
            data: Vec::new(),
            ended: false,
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.last_id = self.id_buffer.clone();
            let event = self.event.take();
            if !self.data.is_empty() {
                self.items.push_back(Item::Event {
                    id: self.last_id.clone(),
                    event,
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.items
                .push_back(Item::Comment(comment.trim().to_string()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id_buffer = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
    }

    /// The next item, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                let line = String::from_utf8(line).expect("the stream is UTF-8");
                self.line(line.trim_end_matches(['\n', '\r']));
                continue;
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Err(_) => panic!("nothing arrived on the stream for {WAIT:?}"),
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => panic!("reading the stream: {e}"),
                Ok(Some(Ok(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }

    /// The next event, skipping comments; `None` at the end of the stream.
    pub async fn next_event(&mut self) -> Option<Ev> {
        loop {
            match self.next().await? {
                Item::Comment(_) => continue,
                Item::Event { id, event, data } => {
                    let json = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
                    return Some(Ev { id, event, json });
                }
            }
        }
    }

    /// Exactly the next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<Ev> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let next = self.next_event().await;
            out.push(
                next.unwrap_or_else(|| {
                    panic!("the stream ended after {} of {n} events", out.len())
                }),
            );
        }
        out
    }

    /// Asserts that no event is pending: the next item is a keep-alive comment.
    pub async fn expect_idle(&mut self) {
        loop {
            match self.next().await {
                Some(Item::Comment(c)) if c == "keep-alive" => return,
                Some(Item::Comment(_)) => continue,
                other => panic!("expected an idle stream, got {other:?}"),
            }
        }
    }
}

pub fn subscribe_path(broker: &str, topic: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/subscribe/{broker}/{topic}")
    } else {
        format!("/v1/subscribe/{broker}/{topic}?{query}")
    }
}

/// Where SSE requests go: an in-process [`TestServer`], or anything else with a base URL and a
/// client (a sidebus process).
pub trait Target {
    /// The HTTP client to use.
    fn http(&self) -> &reqwest::Client;
    /// The base URL + `path`.
    fn url(&self, path: &str) -> String;
}

impl Target for TestServer {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        TestServer::url(self, path)
    }
}

/// GETs `path` as an SSE client would, with `Last-Event-ID` when given.
pub async fn get(
    server: &impl Target,
    path: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .http()
        .get(server.url(path))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request reaches sidebus")
}

pub async fn connect(server: &impl Target, path: &str, last_event_id: Option<&str>) -> Sse {
    Sse::new(get(server, path, last_event_id).await)
}

/// Connects once a stream slot is free (a closed stream gives its slot back asynchronously).
pub async fn connect_when_free(
    server: &impl Target,
    path: &str,
    last_event_id: Option<&str>,
) -> Sse {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = get(server, path, last_event_id).await;
        if response.status() != 429 {
            return Sse::new(response);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stream slot came free"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes events `ev-<i>` (data `n<i>`, text) for each `i`, keyed by `key(i)`.
pub async fn publish(
    server: &TestServer,
    broker: &str,
    topic: &str,
    range: std::ops::RangeInclusive<usize>,
    key: impl Fn(usize) -> Option<String>,
) {
    for i in range {
        let path = match key(i) {
            Some(k) => format!("/v1/publish/{broker}/{topic}?key={k}"),
            None => format!("/v1/publish/{broker}/{topic}"),
        };
        let id = format!("ev-{i:02}");
        let response = server
            .post(
                &path,
                &[("ce-id", &id), ("content-type", "text/plain")],
                format!("n{i}"),
            )
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
}

pub fn ids(events: &[Ev]) -> Vec<String> {
    events.iter().map(Ev::ce_id).collect()
}

pub fn expected(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("ev-{i:02}")).collect()
}

pub fn memory_config(extra: &str) -> String {
    let keep_alive = if extra.contains("keep_alive") {
        ""
    } else {
        "keep_alive = \"300ms\""
    };
    format!(
        r#"
source = "sidebus://sse-test"
[sse]
{keep_alive}
{extra}
[brokers.mem]
kind = "memory"
"#
    )
}
