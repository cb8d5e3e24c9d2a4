//! The memory broker's byte bounds on the `sidebus` binary as a user runs it: a topic written far
//! past `retention_bytes` keeps the resident memory flat and only its newest events, a cursor at
//! a trimmed event resumes at the oldest kept one, and `max_bytes` drops the oldest events of the
//! whole broker, whichever topic holds them.


use crate::common::process::Sidebus;
use crate::common::sse::{connect_when_free, ids, subscribe_path, Target};
use serde_json::Value;

/// Payload of every event.
const EVENT: usize = 256 * 1024;
/// Events written to the first topic: 50 MiB against its bound of 4 MiB.
const WRITTEN: usize = 200;
/// Events written before the first resident-memory reading: twice the topic's bound.
const WARM_UP: usize = 32;
/// Events of one topic that fit in `retention_bytes`: 16 payloads are exactly 4 MiB, so with
/// their attributes (a few hundred bytes each) 15 fit.
const KEPT: usize = 15;

const CONFIG: &str = r#"
source = "sidebus://memory-bounds"
[sse]
keep_alive = "300ms"
max_streams = 1
[brokers.default]
kind = "memory"
retention_bytes = "4MiB"
max_bytes = "8MiB"
"#;

/// A sidebus process and a client for it.
struct Process {
    sidebus: Sidebus,
    http: reqwest::Client,
}

impl Target for Process {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sidebus.base)
    }
}

impl Process {
    /// Publishes event `<topic>-<i>` (`EVENT` bytes of text) and returns its offset.
    async fn publish(&self, topic: &str, i: usize) -> u64 {
        let response = self
            .http
            .post(self.url(&format!("/v1/publish/default/{topic}")))
            .header("ce-id", id(topic, i))
            .header("content-type", "text/plain")
            .body(vec![b'a' + (i % 26) as u8; EVENT])
            .send()
            .await
            .expect("request reaches sidebus");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let body: Value = response.json().await.unwrap();
        body["offset"].as_u64().expect("an offset")
    }

    /// Every event of `topic` still kept, read by SSE from `earliest` (or after `cursor`).
    async fn kept(&self, topic: &str, cursor: Option<&str>, expected: usize) -> Vec<String> {
        let path = subscribe_path("default", topic, "from=earliest");
        let mut stream = connect_when_free(self, &path, cursor).await;
        let events = stream.events(expected).await;
        stream.expect_idle().await;
        ids(&events)
    }
}

fn id(topic: &str, i: usize) -> String {
    format!("{topic}-{i:03}")
}

fn ids_of(topic: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| id(topic, i)).collect()
}

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn byte_bounds_keep_memory_flat_and_the_newest_events() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let sidebus = Sidebus::start(CONFIG, dir.path(), &http).await;
    let process = Process { sidebus, http };
    let at_start = process.sidebus.rss();

    // A cursor at the first event, taken from a stream that then goes away.
    assert_eq!(process.publish("big", 0).await, 0);
    let path = subscribe_path("default", "big", "from=earliest");
    let mut stream = connect_when_free(&process, &path, None).await;
    let first = stream.events(1).await.remove(0);
    assert_eq!(first.ce_id(), id("big", 0));
    let cursor = first.id.expect("a cursor");
    drop(stream);
    // The only stream slot is free again once that stream's reader has stopped, so it holds no
    // events while the topic is written.
    drop(connect_when_free(&process, &subscribe_path("default", "probe", ""), None).await);

    for i in 1..WARM_UP {
        assert_eq!(process.publish("big", i).await, i as u64);
    }
    let warm = process.sidebus.rss();
    for i in WARM_UP..WRITTEN {
        assert_eq!(process.publish("big", i).await, i as u64);
    }
    let end = process.sidebus.rss();
    let written_since = ((WRITTEN - WARM_UP) * EVENT) as u64;
    println!(
        "RSS: {} MiB at start, {} MiB after {WARM_UP} events of 256 KiB, {} MiB after {WRITTEN}",
        at_start / MIB,
        warm / MIB,
        end / MIB
    );
    assert!(
        end < warm + written_since / 2,
        "resident memory grew by {} MiB while {} MiB were written past the bound",
        end.saturating_sub(warm) / MIB,
        written_since / MIB
    );

    let newest = ids_of("big", WRITTEN - KEPT..WRITTEN);
    assert_eq!(
        process.kept("big", None, KEPT).await,
        newest,
        "only the newest 4 MiB of the topic"
    );
    assert_eq!(
        process.kept("big", Some(&cursor), KEPT).await,
        newest,
        "a cursor at a trimmed event resumes at the oldest kept one"
    );

    // Three more topics of 4 MiB each would make 16 MiB with `big`: `max_bytes` (8 MiB, 31 of
    // these events) drops the broker's oldest events first, so all of `big`'s, then the oldest
    // of `b`, which was written next.
    for topic in ["b", "c", "d"] {
        for i in 0..=KEPT {
            process.publish(topic, i).await;
        }
    }
    assert!(process.kept("big", None, 0).await.is_empty());
    assert_eq!(
        process.kept("b", None, 1).await,
        ids_of("b", KEPT..KEPT + 1)
    );
    assert_eq!(
        process.kept("c", None, KEPT).await,
        ids_of("c", 1..KEPT + 1)
    );
    assert_eq!(
        process.kept("d", None, KEPT).await,
        ids_of("d", 1..KEPT + 1)
    );
    assert_eq!(
        process.publish("big", WRITTEN).await,
        WRITTEN as u64,
        "an emptied topic goes on counting where it stopped"
    );
    assert_eq!(
        process.kept("big", Some(&cursor), 1).await,
        ids_of("big", WRITTEN..WRITTEN + 1)
    );
}
