//! Principals (design §8.6): two callers with different tokens and scopes against one sidebus —
//! each status with its headers and problem body, the token from the environment, and what stays
//! open without a token.

use serde_json::{json, Value};

use crate::common::sse::{get, subscribe_path};
use crate::common::{assert_problem, sha256_hex, TestServer};

const CHECKOUT_TOKEN: &str = "checkout-token-0001";
const BILLING_TOKEN: &str = "billing-token-0002";

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
state_dir = "{}"
[brokers.events]
kind = "memory"

[access.principals.checkout]
token_sha256 = "{}"
publish = ["orders.*"]

[access.principals.billing]
token_sha256 = "{}"
subscribe = ["orders.>"]
manage_subscriptions = true
"#,
        dir.display(),
        sha256_hex(CHECKOUT_TOKEN),
        sha256_hex(BILLING_TOKEN)
    )
}

async fn request(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = server.http.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn forbidden(response: reqwest::Response) -> String {
    let problem = assert_problem(response, 403).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:forbidden");
    problem["detail"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_principals_each_get_what_their_scope_allows() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;

    // No token, or a wrong one: 401 with a challenge; probes stay open.
    for token in [None, Some("checkout-token-0000"), Some("")] {
        let r = request(
            &server,
            post.clone(),
            "/v1/publish/events/orders.eu",
            token,
            None,
        )
        .await;
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"sidebus\"");
        let problem = assert_problem(r, 401).await;
        assert_eq!(problem["type"], "urn:sidebus:problem:unauthorized");
    }
    for open in ["/healthz", "/readyz", "/metrics"] {
        let r = request(&server, reqwest::Method::GET, open, None, None).await;
        assert_eq!(r.status(), 200, "{open}");
    }

    // checkout publishes to orders.* and nothing else.
    let r = request(
        &server,
        post.clone(),
        "/v1/publish/events/orders.eu",
        Some(CHECKOUT_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let detail = forbidden(
        request(
            &server,
            post.clone(),
            "/v1/publish/events/payments",
            Some(CHECKOUT_TOKEN),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        detail,
        "principal `checkout` may not publish to topic `payments` (no pattern of \
         access.principals.checkout.publish matches it)"
    );
    // `*` is one token: orders.eu.west is not under orders.*.
    let r = request(
        &server,
        post.clone(),
        "/v1/publish/events/orders.eu.west",
        Some(CHECKOUT_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let stream = get(
        &server_with(&server, CHECKOUT_TOKEN),
        &subscribe_path("events", "orders.eu", ""),
        None,
    )
    .await;
    let detail = forbidden(stream).await;
    assert!(
        detail.contains("may not subscribe to topic `orders.eu`"),
        "{detail}"
    );
    let spec =
        json!({"broker": "events", "topic": "orders.eu", "endpoint": "http://127.0.0.1:9/x"});
    let detail = forbidden(
        request(
            &server,
            put.clone(),
            "/v1/subscriptions/s1",
            Some(CHECKOUT_TOKEN),
            Some(spec.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(
        detail,
        "principal `checkout` may not manage subscriptions \
         (access.principals.checkout.manage_subscriptions is false)"
    );

    // billing subscribes and manages, but does not publish.
    let r = request(
        &server,
        put.clone(),
        "/v1/subscriptions/s1",
        Some(BILLING_TOKEN),
        Some(spec),
    )
    .await;
    assert_eq!(r.status(), 201);
    let wide = json!({"broker": "events", "topic": "orders.*", "endpoint": "http://127.0.0.1:9/x"});
    let r = request(
        &server,
        put.clone(),
        "/v1/subscriptions/s2",
        Some(BILLING_TOKEN),
        Some(wide),
    )
    .await;
    assert_eq!(r.status(), 201, "orders.> covers the pattern orders.*");
    let elsewhere =
        json!({"broker": "events", "topic": "payments", "endpoint": "http://127.0.0.1:9/x"});
    let detail = forbidden(
        request(
            &server,
            put.clone(),
            "/v1/subscriptions/s3",
            Some(BILLING_TOKEN),
            Some(elsewhere),
        )
        .await,
    )
    .await;
    assert!(
        detail.contains("principal `billing` may not subscribe to topic `payments`"),
        "{detail}"
    );
    let r = request(
        &server,
        post.clone(),
        "/v1/subscriptions/s1/pause",
        Some(BILLING_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = request(
        &server,
        post.clone(),
        "/v1/subscriptions/s1/pause",
        Some(CHECKOUT_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = request(
        &server,
        reqwest::Method::DELETE,
        "/v1/subscriptions/s1",
        Some(CHECKOUT_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = request(
        &server,
        reqwest::Method::DELETE,
        "/v1/subscriptions/s1",
        Some(BILLING_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let detail = forbidden(
        request(
            &server,
            post.clone(),
            "/v1/publish/events/orders.eu",
            Some(BILLING_TOKEN),
            None,
        )
        .await,
    )
    .await;
    assert!(
        detail.starts_with("principal `billing` may not publish"),
        "{detail}"
    );
    let stream = get(
        &server_with(&server, BILLING_TOKEN),
        &subscribe_path("events", "orders.eu", "from=earliest"),
        None,
    )
    .await;
    assert_eq!(stream.status(), 200);
    drop(stream);
    let r = request(
        &server,
        reqwest::Method::DELETE,
        "/v1/subscriptions/s2",
        Some(BILLING_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);

    // Reading is open to every principal.
    let r = request(
        &server,
        reqwest::Method::GET,
        "/v1/subscriptions",
        Some(CHECKOUT_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// `token_env`: the token comes from the environment at startup; a variable that is not set
/// stops startup naming the principal.
#[tokio::test]
async fn a_token_from_the_environment_and_one_that_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidebus.toml");
    std::fs::write(
        &path,
        "[access.principals.ops]\ntoken_env = \"SIDEBUS_TEST_OPS_TOKEN\"\npublish = [\">\"]\n",
    )
    .unwrap();
    let run = |token: Option<&str>, port: u16| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sidebus"));
        command
            .arg("--config")
            .arg(&path)
            .current_dir(dir.path())
            .env("SIDEBUS_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("SIDEBUS_TEST_OPS_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(token) = token {
            command.env("SIDEBUS_TEST_OPS_TOKEN", token);
        }
        command
    };
    let output = run(None, 0).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "access.principals.ops.token_env: the environment variable \
             `SIDEBUS_TEST_OPS_TOKEN` is not set or empty"
        ),
        "{stderr}"
    );

    let port = crate::common::process::free_port();
    let mut child = run(Some("ops-token-from-env"), port).spawn().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sidebus did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let publish = |token: &'static str| {
        http.post(format!("{base}/v1/publish/default/ops.x"))
            .bearer_auth(token)
            .body("x")
            .send()
    };
    assert_eq!(publish("ops-token-from-env").await.unwrap().status(), 200);
    assert_eq!(publish("ops-token-from-en").await.unwrap().status(), 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An SSE target that sends `token`.
struct WithToken<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
}

fn server_with<'a>(server: &'a TestServer, token: &str) -> WithToken<'a> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    WithToken {
        server,
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
    }
}

impl crate::common::sse::Target for WithToken<'_> {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}
