//! Server-Sent Events over real brokers, read with a plain streaming HTTP client that parses
//! the stream as the SSE spec says: exact resume on another instance (memory, NATS JetStream,
//! Kafka with 3 partitions), AMQP queues, the key filter, typed events, consumer groups, the
//! slow-consumer disconnect, keep-alives, CORS, and the refusals (400, 406, 429).

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use common::brokers::{amqp_url, nats_url, Kafka};
use common::{assert_problem, unique_topic, TestServer};
use futures::{Stream, StreamExt};
use serde_json::Value;
use sidebus::delivery::sse::Position;

/// How long any one expected item may take.
const WAIT: Duration = Duration::from_secs(30);

/// What an SSE client sees.
#[derive(Debug, Clone, PartialEq)]
enum Item {
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
struct Ev {
    /// The last event id after it.
    id: Option<String>,
    /// The `event:` field.
    event: Option<String>,
    /// `data:` parsed as JSON.
    json: Value,
}

impl Ev {
    /// The CloudEvent id.
    fn ce_id(&self) -> String {
        self.json["id"].as_str().unwrap_or_default().to_string()
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An SSE reader following the WHATWG parsing rules (fields, comments, `id` persistence).
struct Sse {
    body: Body,
    buffer: Vec<u8>,
    items: VecDeque<Item>,
    /// The last event id buffer (persists across blocks).
    id_buffer: Option<String>,
    /// EventSource's last event id: the id buffer as of the last blank line.
    last_id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    ended: bool,
}

impl Sse {
    fn new(response: reqwest::Response) -> Self {
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
    async fn next(&mut self) -> Option<Item> {
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
    async fn next_event(&mut self) -> Option<Ev> {
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
    async fn events(&mut self, n: usize) -> Vec<Ev> {
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
    async fn expect_idle(&mut self) {
        loop {
            match self.next().await {
                Some(Item::Comment(c)) if c == "keep-alive" => return,
                Some(Item::Comment(_)) => continue,
                other => panic!("expected an idle stream, got {other:?}"),
            }
        }
    }
}

fn subscribe_path(broker: &str, topic: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/subscribe/{broker}/{topic}")
    } else {
        format!("/v1/subscribe/{broker}/{topic}?{query}")
    }
}

/// GETs `path` as an SSE client would, with `Last-Event-ID` when given.
async fn get(server: &TestServer, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = server
        .http
        .get(server.url(path))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request reaches sidebus")
}

async fn connect(server: &TestServer, path: &str, last_event_id: Option<&str>) -> Sse {
    Sse::new(get(server, path, last_event_id).await)
}

/// Connects once a stream slot is free (a closed stream gives its slot back asynchronously).
async fn connect_when_free(server: &TestServer, path: &str, last_event_id: Option<&str>) -> Sse {
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
async fn publish(
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

fn ids(events: &[Ev]) -> Vec<String> {
    events.iter().map(Ev::ce_id).collect()
}

fn expected(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("ev-{i:02}")).collect()
}

fn memory_config(extra: &str) -> String {
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

/// Reads 20 of 50 events from `a`, disconnects, resumes on `b` with Last-Event-ID and checks
/// that exactly events 21 to 50 follow, in order, and nothing after them.
async fn resume_in_order(a: &TestServer, b: &TestServer, broker: &str, topic: &str) {
    let mut first = connect(a, &subscribe_path(broker, topic, "from=earliest"), None).await;
    let head = first.events(20).await;
    assert_eq!(ids(&head), expected(1..=20));
    for (i, ev) in head.iter().enumerate() {
        assert_eq!(ev.json["data"], format!("n{}", i + 1));
        assert_eq!(ev.json["specversion"], "1.0");
        assert!(ev.event.is_none(), "untyped streams name no event");
        assert!(ev.id.is_some(), "every event carries a cursor");
    }
    let cursor = head.last().unwrap().id.clone().unwrap();
    drop(first);
    // Last-Event-ID wins over ?from=earliest.
    let mut second = connect(
        b,
        &subscribe_path(broker, topic, "from=earliest"),
        Some(&cursor),
    )
    .await;
    let tail = second.events(30).await;
    assert_eq!(ids(&tail), expected(21..=50), "no gap, no repeat");
    second.expect_idle().await;
}

#[tokio::test]
async fn memory_resumes_exactly_on_another_instance() {
    let a = TestServer::start(&memory_config("")).await;
    let b = TestServer::start(&memory_config("")).await;
    let topic = unique_topic("sse.mem");
    // The memory broker lives in each process: both hold the same 50 events at the same offsets.
    publish(&a, "mem", &topic, 1..=50, |_| None).await;
    publish(&b, "mem", &topic, 1..=50, |_| None).await;
    resume_in_order(&a, &b, "mem", &topic).await;
}

fn nats_config() -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[sse]
keep_alive = "300ms"
[brokers.jobs]
kind = "nats"
url = "{}"
"#,
        nats_url()
    )
}

#[tokio::test]
async fn nats_resumes_exactly_on_another_instance() {
    let a = TestServer::start(&nats_config()).await;
    let b = TestServer::start(&nats_config()).await;
    let topic = unique_topic("sse.nats");
    publish(&a, "jobs", &topic, 1..=50, |_| None).await;
    resume_in_order(&a, &b, "jobs", &topic).await;
}

#[tokio::test]
async fn nats_latest_sees_only_new_events_and_its_cursor_resumes() {
    let server = TestServer::start(&nats_config()).await;
    let topic = unique_topic("sse.nats.latest");
    publish(&server, "jobs", &topic, 1..=3, |_| None).await;
    let mut stream = connect(&server, &subscribe_path("jobs", &topic, ""), None).await;
    publish(&server, "jobs", &topic, 4..=6, |_| None).await;
    let got = stream.events(2).await;
    assert_eq!(ids(&got), expected(4..=5));
    drop(stream);
    let mut again = connect(
        &server,
        &subscribe_path("jobs", &topic, ""),
        got[1].id.as_deref(),
    )
    .await;
    assert_eq!(ids(&again.events(1).await), expected(6..=6));
    again.expect_idle().await;
}

fn kafka_config(kafka: &Kafka) -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[pipeline]
ack_timeout = "10s"
[sse]
keep_alive = "300ms"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
"#,
        kafka.bootstrap
    )
}

/// Per key, the events in publish order.
fn by_key(events: &[Ev], keys: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ev in events {
        out.entry(keys[&ev.ce_id()].clone())
            .or_default()
            .push(ev.ce_id());
    }
    out
}

#[tokio::test]
async fn kafka_with_three_partitions_resumes_exactly_on_another_instance() {
    let kafka = Kafka::start();
    let topic = unique_topic("sse.kafka");
    kafka.create_topic(&topic, 3).await;
    let a = TestServer::start(&kafka_config(&kafka)).await;
    let b = TestServer::start(&kafka_config(&kafka)).await;
    let key = |i: usize| format!("k{}", i % 7);
    publish(&a, "events", &topic, 1..=50, |i| Some(key(i))).await;
    let keys: BTreeMap<String, String> = (1..=50).map(|i| (format!("ev-{i:02}"), key(i))).collect();

    let mut first = connect(&a, &subscribe_path("events", &topic, "from=earliest"), None).await;
    let head = first.events(20).await;
    let cursor = head.last().unwrap().id.clone().unwrap();
    drop(first);
    let mut second = connect(&b, &subscribe_path("events", &topic, ""), Some(&cursor)).await;
    let tail = second.events(30).await;
    second.expect_idle().await;

    let head_ids: BTreeSet<String> = ids(&head).into_iter().collect();
    let tail_ids: BTreeSet<String> = ids(&tail).into_iter().collect();
    assert_eq!(
        head_ids.len() + tail_ids.len(),
        50,
        "no repeat within a stream"
    );
    assert!(
        head_ids.is_disjoint(&tail_ids),
        "no repeat across the reconnect"
    );
    let all: BTreeSet<String> = head_ids.union(&tail_ids).cloned().collect();
    assert_eq!(all, expected(1..=50).into_iter().collect(), "no gap");
    // Each key lives in one partition: across both streams its events keep publish order.
    let mut both = head.clone();
    both.extend(tail);
    for (k, events) in by_key(&both, &keys) {
        let mut sorted = events.clone();
        sorted.sort();
        assert_eq!(events, sorted, "order of key {k}");
    }
}

#[tokio::test]
async fn kafka_latest_cursor_names_every_partition() {
    let kafka = Kafka::start();
    let topic = unique_topic("sse.kafka.latest");
    kafka.create_topic(&topic, 3).await;
    let a = TestServer::start(&kafka_config(&kafka)).await;
    let b = TestServer::start(&kafka_config(&kafka)).await;
    publish(&a, "events", &topic, 1..=5, |i| Some(format!("old{i}"))).await;
    let mut first = connect(&a, &subscribe_path("events", &topic, ""), None).await;
    // The first block announces where the stream began, before any event.
    assert_eq!(first.next().await, Some(Item::Comment("sidebus".into())));
    while first.last_id.is_none() {
        let item = first.next().await;
        assert!(
            matches!(item, Some(Item::Comment(_))),
            "a fresh Kafka stream announces its start before any event: {item:?}"
        );
    }
    let announced = first.last_id.clone().unwrap();
    publish(&a, "events", &topic, 6..=17, |i| Some(format!("k{i}"))).await;
    let one = first.events(1).await;
    drop(first);
    // Resuming from the announcement alone, or after one event, misses nothing on any partition.
    let mut from_start = connect(&b, &subscribe_path("events", &topic, ""), Some(&announced)).await;
    let all = from_start.events(12).await;
    from_start.expect_idle().await;
    let mut got: Vec<String> = ids(&all);
    got.sort();
    assert_eq!(got, expected(6..=17));
    let mut after_one = connect(
        &b,
        &subscribe_path("events", &topic, ""),
        one[0].id.as_deref(),
    )
    .await;
    let rest = after_one.events(11).await;
    after_one.expect_idle().await;
    let mut got: Vec<String> = ids(&rest);
    got.push(one[0].ce_id());
    got.sort();
    assert_eq!(got, expected(6..=17));
}

fn amqp_config() -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[sse]
keep_alive = "300ms"
[brokers.tasks]
kind = "amqp"
url = "{}"
"#,
        amqp_url()
    )
}

#[tokio::test]
async fn amqp_streams_consume_queues_without_replay() {
    let server = TestServer::start(&amqp_config()).await;
    let topic = unique_topic("sse.amqp");
    // An exclusive queue: events published while connected, no cursors.
    let mut stream = connect(&server, &subscribe_path("tasks", &topic, ""), None).await;
    publish(&server, "tasks", &topic, 1..=5, |_| None).await;
    let got = stream.events(5).await;
    assert_eq!(ids(&got), expected(1..=5));
    assert!(
        got.iter().all(|e| e.id.is_none()),
        "AMQP events carry no cursor"
    );
    drop(stream);
    // A cursor or ?from=earliest would promise a replay AMQP cannot give.
    let cursor = Position::Memory(1).encode(&topic);
    let body = assert_problem(
        get(&server, &subscribe_path("tasks", &topic, ""), Some(&cursor)).await,
        400,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("AMQP has no replay"),
        "{body}"
    );
    assert_problem(
        get(
            &server,
            &subscribe_path("tasks", &topic, "from=earliest"),
            None,
        )
        .await,
        400,
    )
    .await;
    // A group is the durable queue `<group>.<topic>`: it keeps events while no one is connected.
    let group = format!("g{}", uuid::Uuid::now_v7().simple());
    let path = subscribe_path("tasks", &topic, &format!("group={group}"));
    let mut member = connect(&server, &path, None).await;
    publish(&server, "tasks", &topic, 6..=8, |_| None).await;
    assert_eq!(ids(&member.events(3).await), expected(6..=8));
    // Idle: the connection took the last event and asked for more, so it is acknowledged.
    member.expect_idle().await;
    drop(member);
    publish(&server, "tasks", &topic, 9..=10, |_| None).await;
    let mut member = connect(&server, &path, None).await;
    assert_eq!(ids(&member.events(2).await), expected(9..=10));
    member.expect_idle().await;
    drop(member);
    let channel = common::brokers::amqp_channel().await;
    let _ = channel
        .queue_delete(
            format!("{group}.{topic}").as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

#[tokio::test]
async fn the_key_filter_passes_one_key_and_resumes_within_it() {
    let server = TestServer::start(&memory_config("")).await;
    let topic = unique_topic("sse.key");
    let key = |i: usize| Some(["a", "b", "c"][i % 3].to_string());
    publish(&server, "mem", &topic, 1..=30, key).await;
    let b_ids: Vec<String> = (1..=30)
        .filter(|i| i % 3 == 1)
        .map(|i| format!("ev-{i:02}"))
        .collect();
    let path = subscribe_path("mem", &topic, "from=earliest&key=b");
    let mut stream = connect(&server, &path, None).await;
    let head = stream.events(4).await;
    assert_eq!(ids(&head), b_ids[..4]);
    assert!(head.iter().all(|e| e.json["partitionkey"] == "b"));
    drop(stream);
    let mut stream = connect(&server, &path, head[3].id.as_deref()).await;
    assert_eq!(ids(&stream.events(6).await), b_ids[4..]);
    stream.expect_idle().await;
}

#[tokio::test]
async fn typed_streams_name_events_and_binary_data_is_base64() {
    let server = TestServer::start(&memory_config("")).await;
    let topic = unique_topic("sse.typed");
    let response = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[
                ("ce-id", "bin-1"),
                ("ce-type", "com.example.blob.stored"),
                ("content-type", "application/octet-stream"),
            ],
            vec![0xffu8, 0, 1],
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut typed = connect(
        &server,
        &subscribe_path("mem", &topic, "from=earliest&typed=true"),
        None,
    )
    .await;
    let ev = typed.next_event().await.unwrap();
    assert_eq!(ev.event.as_deref(), Some("com.example.blob.stored"));
    assert_eq!(ev.json["type"], "com.example.blob.stored");
    assert_eq!(ev.json["data_base64"], "/wAB");
    assert_eq!(ev.json["datacontenttype"], "application/octet-stream");
    let mut plain = connect(
        &server,
        &subscribe_path("mem", &topic, "from=earliest"),
        None,
    )
    .await;
    assert_eq!(plain.next_event().await.unwrap().event, None);
}

#[tokio::test]
async fn a_group_shares_events_and_acknowledges_what_was_sent() {
    let server = TestServer::start(&memory_config("buffer = 4")).await;
    let topic = unique_topic("sse.group");
    let path = subscribe_path("mem", &topic, "group=billing&from=earliest");
    let mut one = connect(&server, &path, None).await;
    let mut two = connect(&server, &path, None).await;
    publish(&server, "mem", &topic, 1..=40, |_| None).await;
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {seen:?} arrived"
        );
        let next = tokio::select! {
            e = one.next_event() => e,
            e = two.next_event() => e,
        };
        let ev = next.expect("streams stay open");
        assert!(ev.id.is_none(), "a group stream sends no cursor");
        seen.push(ev.ce_id());
    }
    seen.sort();
    assert_eq!(seen, expected(1..=40), "each event to one member, once");
    one.expect_idle().await;
    two.expect_idle().await;
    drop(one);
    drop(two);
    // Everything sent was acknowledged: a new member of the group gets nothing old.
    let mut three = connect(&server, &path, None).await;
    three.expect_idle().await;
    publish(&server, "mem", &topic, 41..=41, |_| None).await;
    assert_eq!(ids(&three.events(1).await), expected(41..=41));
    // A cursor does not apply to a group stream.
    let cursor = Position::Memory(3).encode(&topic);
    assert_problem(get(&server, &path, Some(&cursor)).await, 400).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_and_resumes() {
    let server = TestServer::start(&memory_config(
        "buffer = 2\nstall_timeout = \"300ms\"\nmax_streams = 1\nkeep_alive = \"60s\"",
    ))
    .await;
    let topic = unique_topic("sse.slow");
    // More than the socket buffers on both sides hold, so a client that reads nothing stalls
    // the stream.
    let big = "x".repeat(64 * 1024);
    let total = 400;
    for i in 1..=total {
        let response = server
            .post(
                &format!("/v1/publish/mem/{topic}"),
                &[
                    ("ce-id", &format!("ev-{i:03}")),
                    ("content-type", "text/plain"),
                ],
                big.clone(),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let path = subscribe_path("mem", &topic, "from=earliest");
    let mut slow = connect(&server, &path, None).await;
    // The stream's slot is freed once sidebus has given up on it (max_streams = 1).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let probe = get(&server, &subscribe_path("mem", &topic, ""), None).await;
        if probe.status() == 200 {
            break;
        }
        assert_eq!(probe.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled stream was never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now read: contiguous events from the start, then the final event, then the end.
    let mut got = Vec::new();
    let last = loop {
        match slow.next_event().await {
            Some(ev) if ev.event.is_none() => got.push(ev),
            Some(ev) => break ev,
            None => panic!("the stream ended without a final event"),
        }
    };
    assert_eq!(last.event.as_deref(), Some("sidebus.disconnect"));
    assert_eq!(last.json["reason"], "slow-consumer", "{}", last.json);
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the final event"
    );
    let n = got.len();
    assert!(
        n < total,
        "the client was cut off before the end ({n} events)"
    );
    let want: Vec<String> = (1..=n).map(|i| format!("ev-{i:03}")).collect();
    assert_eq!(ids(&got), want);
    // The final event carries no id: the client's last event id is its last real event.
    assert_eq!(slow.last_id, got.last().and_then(|e| e.id.clone()));
    drop(slow);
    let mut resumed = connect_when_free(&server, &path, slow_last_id(&got)).await;
    assert_eq!(
        resumed.next_event().await.unwrap().ce_id(),
        format!("ev-{:03}", n + 1)
    );
}

fn slow_last_id(got: &[Ev]) -> Option<&str> {
    got.last().and_then(|e| e.id.as_deref())
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alives() {
    let server = TestServer::start(&memory_config("keep_alive = \"100ms\"")).await;
    let topic = unique_topic("sse.idle");
    let mut stream = connect(&server, &subscribe_path("mem", &topic, ""), None).await;
    let mut keep_alives = 0;
    while keep_alives < 3 {
        match stream.next().await {
            Some(Item::Comment(c)) if c == "keep-alive" => keep_alives += 1,
            Some(Item::Comment(_)) => {}
            other => panic!("an idle stream sent {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_cursors_and_requests_are_refused() {
    let server = TestServer::start(&memory_config("")).await;
    let topic = unique_topic("sse.bad");
    let path = subscribe_path("mem", &topic, "");
    for (cursor, says) in [
        ("garbage!".to_string(), "malformed"),
        ("AQEAAAAA".to_string(), "malformed"),
        (Position::JetStream(3).encode(&topic), "does not belong"),
        (Position::Memory(3).encode("another-topic"), "another topic"),
    ] {
        let body = assert_problem(get(&server, &path, Some(&cursor)).await, 400).await;
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
        let query = format!("lastEventId={cursor}");
        let body = assert_problem(
            get(&server, &subscribe_path("mem", &topic, &query), None).await,
            400,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
    }
    // The header wins over the parameter.
    let good = Position::Memory(0).encode(&topic);
    let response = get(
        &server,
        &subscribe_path("mem", &topic, "lastEventId=garbage"),
        Some(&good),
    )
    .await;
    assert_eq!(response.status(), 200);
    drop(response);
    assert_problem(
        get(
            &server,
            &subscribe_path("mem", &topic, "from=yesterday"),
            None,
        )
        .await,
        400,
    )
    .await;
    assert_problem(
        get(&server, &subscribe_path("mem", "bad topic!", ""), None).await,
        400,
    )
    .await;
    assert_problem(
        get(&server, &subscribe_path("nope", &topic, ""), None).await,
        404,
    )
    .await;
    let body = assert_problem(
        server.http.get(server.url(&path)).send().await.unwrap(),
        406,
    )
    .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("text/event-stream"));
}

#[tokio::test]
async fn streams_beyond_the_limit_get_429() {
    let server = TestServer::start(&memory_config("max_streams = 2")).await;
    let topic = unique_topic("sse.limit");
    let path = subscribe_path("mem", &topic, "");
    let one = connect(&server, &path, None).await;
    let _two = connect(&server, &path, None).await;
    let response = get(&server, &path, None).await;
    assert_eq!(response.headers()["retry-after"], "2");
    let body = assert_problem(response, 429).await;
    assert_eq!(body["type"], "urn:sidebus:problem:too-many-streams");
    drop(one);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = get(&server, &path, None).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cors_lets_configured_origins_subscribe() {
    let server =
        TestServer::start(&memory_config("allowed_origins = [\"http://127.0.0.1:9\"]")).await;
    let topic = unique_topic("sse.cors");
    let url = server.url(&subscribe_path("mem", &topic, ""));
    let allowed = server
        .http
        .get(&url)
        .header("accept", "text/event-stream")
        .header("origin", "http://127.0.0.1:9")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
    drop(allowed);
    let other = server
        .http
        .get(&url)
        .header("accept", "text/event-stream")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    drop(other);
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://127.0.0.1:9")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{preflight:?}");
    let allow_headers = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allow_headers.contains("last-event-id"), "{allow_headers}");
}
