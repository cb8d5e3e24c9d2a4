//! Quotas (design §8.6): a principal's rate admits about what it allows over several seconds; a
//! `[[quotas]]` rule counts a batch's events and bytes and refuses a batch whole; every refusal
//! is `429` with `Retry-After`, the rate-limit headers and a problem body, and nothing refused
//! reaches the broker.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{assert_problem, sha256_hex, TestServer};

const TOKEN: &str = "quota-test-token-01";

/// Events the memory broker holds on `topic`, as topic discovery counts them.
async fn stored(server: &TestServer, topic: &str) -> u64 {
    let topics: Value = server
        .http
        .get(server.url("/v1/brokers/events/topics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .map_or(0, |t| t["messages"].as_u64().unwrap())
}

async fn assert_quota_refusal(response: reqwest::Response, policy: &str) -> Value {
    let headers = response.headers().clone();
    let problem = assert_problem(response, 429).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:quota-exceeded");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(headers["ratelimit-policy"], policy);
    let state = headers["ratelimit"].to_str().unwrap();
    let name = policy.split(';').next().unwrap();
    assert!(state.starts_with(&format!("{name};r=0;t=")), "{state}");
    problem
}

#[tokio::test]
async fn a_principal_quota_admits_its_rate_over_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        r#"
state_dir = "{}"
[brokers.events]
kind = "memory"
[access.principals.checkout]
token_sha256 = "{}"
publish = [">"]
quota = {{ events_per_second = 20 }}
"#,
        dir.path().display(),
        sha256_hex(TOKEN)
    ))
    .await;
    let url = server.url("/v1/publish/events/paced");
    let started = Instant::now();
    let (mut admitted, mut refused) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(3) {
        let r = server
            .http
            .post(&url)
            .bearer_auth(TOKEN)
            .body("x")
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {
                if refused == 0 {
                    let problem = assert_quota_refusal(r, "\"checkout-events\";q=20;w=1").await;
                    let detail = problem["detail"].as_str().unwrap();
                    assert!(
                        detail.starts_with(
                            "the quota of principal `checkout` allows 20 events per second"
                        ),
                        "{detail}"
                    );
                }
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The bucket starts full (20) and refills at 20/s.
    let expected = 20.0 + 20.0 * elapsed;
    println!("principal quota 20/s: {admitted} admitted, {refused} refused in {elapsed:.2} s (expected {expected:.0})");
    assert!(
        (admitted as f64) >= expected * 0.9 && (admitted as f64) <= expected * 1.05 + 1.0,
        "{admitted} admitted in {elapsed:.2} s, expected about {expected:.0}"
    );
    assert!(refused > 0);
    assert_eq!(
        stored(&server, "paced").await,
        admitted,
        "nothing refused is on the broker"
    );

    server.stop().await;
}

#[tokio::test]
async fn a_rule_counts_batch_events_and_bytes_and_refuses_a_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        r#"
state_dir = "{}"
[brokers.events]
kind = "memory"
[[quotas]]
name = "limited"
broker = "events"
topics = ["limited.*"]
events_per_second = 1
burst = 10
[[quotas]]
name = "heavy"
topics = ["heavy"]
bytes_per_second = "4KiB"
"#,
        dir.path().display()
    ))
    .await;
    let batch = |n: usize, size: usize| {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"specversion": "1.0", "id": format!("e{i}"), "source": "/t", "type": "t", "data": "x".repeat(size)}))
            .collect();
        Value::Array(events).to_string()
    };
    let post = |path: &'static str, body: String| {
        let url = server.url(path);
        let http = server.http.clone();
        async move {
            http.post(url)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // A batch larger than the burst never fits (the one event taken before parsing stays
    // taken); the burst's other 9 take a batch of 7, then 2 more; the next batch is refused
    // whole, and so is any request before its body is parsed: a malformed batch is 429 too.
    let never = post("/v1/publish/events/limited.a/batch", batch(11, 10)).await;
    let problem = assert_quota_refusal(never, "\"limited-events\";q=1;w=1").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("never fits"),
        "{problem}"
    );
    assert_eq!(
        post("/v1/publish/events/limited.a/batch", batch(7, 10))
            .await
            .status(),
        200
    );
    assert_eq!(
        post("/v1/publish/events/limited.b/batch", batch(2, 10))
            .await
            .status(),
        200
    );
    let refused = post("/v1/publish/events/limited.a/batch", batch(2, 10)).await;
    assert_quota_refusal(refused, "\"limited-events\";q=1;w=1").await;
    let malformed = post("/v1/publish/events/limited.a/batch", "[{oops".into()).await;
    assert_quota_refusal(malformed, "\"limited-events\";q=1;w=1").await;
    assert_eq!(stored(&server, "limited.a").await, 7);
    assert_eq!(stored(&server, "limited.b").await, 2);
    // Other topics are not covered.
    assert_eq!(
        post("/v1/publish/events/free/batch", batch(50, 10))
            .await
            .status(),
        200
    );

    // Bytes are payload bytes: three 1 KiB events fit in 4 KiB, a fourth and fifth do not.
    assert_eq!(
        post("/v1/publish/events/heavy/batch", batch(3, 1024))
            .await
            .status(),
        200
    );
    let refused = post("/v1/publish/events/heavy/batch", batch(2, 1024)).await;
    assert_quota_refusal(refused, "\"heavy-bytes\";q=4096;w=1").await;
    assert_eq!(stored(&server, "heavy").await, 3);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("sidebus_quota_rejected_total{quota=\"limited\"} 3"),
        "{metrics}"
    );
    server.stop().await;
}
