//! Server-Sent Events read with a plain streaming HTTP client that parses the stream as the SSE
//! spec says (`common::sse`): the key filter, typed events, consumer groups, the slow-consumer
//! disconnect, keep-alives, CORS, and the refusals (400, 406, 429). Resuming and the brokers
//! other than memory are in `tests/it/sse_resume.rs`.

use std::time::Duration;

use crate::common::sse::{
    connect, connect_when_free, cursor_at, expected, get, ids, memory_config, publish,
    subscribe_path, Ev, Item, WAIT,
};
use crate::common::{assert_problem, unique_topic, TestServer};
use sidebus::backend::{memory, nats};

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
    let cursor = cursor_at(memory::CAPABILITIES, 3, &topic);
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
        (cursor_at(nats::CAPABILITIES, 3, &topic), "does not belong"),
        (
            cursor_at(memory::CAPABILITIES, 3, "another-topic"),
            "another topic",
        ),
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
    let good = cursor_at(memory::CAPABILITIES, 0, &topic);
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
