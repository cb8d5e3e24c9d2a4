//! SSE as a person uses it: a page in headless Chromium, served from another origin (CORS),
//! opens an `EventSource` on sidebus, receives events, survives sidebus closing the connection
//! (sidebus stops, and another sidebus starts on the same port), and resumes with no gap and no
//! repeat. The test drives Chromium through chromedriver's WebDriver HTTP API and reads what the
//! page received from a JavaScript array.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them); their
//! paths can be overridden with `CHROMIUM_BIN` and `CHROMEDRIVER_BIN`. Without them the test
//! fails, saying how to install them.


use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::brokers::nats_url;
use crate::common::unique_topic;
use serde_json::{json, Value};
use sidebus::delivery::sse::Streams;
use sidebus::{AppState, RawConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long any one expected condition may take.
const WAIT: Duration = Duration::from_secs(60);

/// A sidebus instance on a given listener, whose SSE streams end when it stops (as SIGTERM
/// does in `sidebus::run`).
struct Sidebus {
    addr: SocketAddr,
    state: AppState,
    streams: Streams,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Sidebus {
    async fn start(listener: TcpListener, toml: &str) -> Self {
        let config = RawConfig::from_toml(toml)
            .expect("test config parses")
            .validate()
            .expect("test config is valid");
        let streams = Streams::new(config.sse.max_streams);
        let state = AppState::build(config).await.expect("backends build");
        let addr = listener.local_addr().unwrap();
        let app = sidebus::api::router_with(state.clone(), streams.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let closing = streams.clone();
        let served = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    closing.close();
                })
                .await
                .unwrap();
        });
        let sidebus = Self {
            addr,
            state,
            streams,
            stop,
            served,
            http: reqwest::Client::new(),
        };
        sidebus.wait_ready().await;
        sidebus
    }

    async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = self.http.get(&url).send().await.unwrap();
            if response.status() == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sidebus did not become ready: {}; is NATS JetStream running at {}? start it \
                 with: nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server",
                response.text().await.unwrap_or_default(),
                nats_url()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn publish(&self, topic: &str, range: std::ops::RangeInclusive<usize>) {
        for i in range {
            let response = self
                .http
                .post(format!("http://{}/v1/publish/jobs/{topic}", self.addr))
                .header("ce-id", format!("ev-{i:02}"))
                .header("content-type", "text/plain")
                .body(format!("n{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
        }
    }

    /// Stops serving: every open stream gets its final event and ends, then the pipelines drain.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.served.await.unwrap();
        // Each stream's reader lets go of its slot just after the stream ends.
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.streams.open() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a stream outlived its server"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state.drain().await;
    }
}

/// A binary from the environment variable `var`, else the Debian path.
fn binary(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found; this test drives a real browser. Install it with: \
         apt-get install -y chromium chromium-driver (Debian package `{package}`), or set {var}",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver and one browser session; the session is ended and chromedriver killed on drop,
/// also when the test fails.
struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium", "chromium");
        let chromedriver = binary(
            "CHROMEDRIVER_BIN",
            "/usr/bin/chromedriver",
            "chromium-driver",
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            port,
            session: None,
            http: reqwest::Client::new(),
            _profile: profile,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = browser
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await;
            if let Ok(status) = status {
                let body: Value = status.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser
            .command(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args}
                }}}),
            )
            .await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser.session = Some(session);
        browser
    }

    /// A WebDriver command; returns its `value`.
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {body}");
        body["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session.as_deref().unwrap())
    }

    async fn goto(&self, url: &str) {
        self.command(
            reqwest::Method::POST,
            &self.session_path("/url"),
            json!({"url": url}),
        )
        .await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            &self.session_path("/execute/sync"),
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// What the page has seen so far.
    async fn page(&self) -> Value {
        self.eval(
            "return {received: window.received, opens: window.opens, errors: window.errors, \
             disconnects: window.disconnects, reopened: window.reopened};",
        )
        .await
    }

    /// Polls the page until `done` holds, failing with what it saw after `WAIT`.
    async fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let page = self.page().await;
            if done(&page) {
                return page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never got {what}; it saw {page:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromedriver closes Chromium), with a plain blocking request since
        // drop cannot await.
        if let Some(session) = self.session.take() {
            if let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    socket,
                    "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The page: subscribes with EventSource and records every message. EventSource reconnects by
/// itself with `Last-Event-ID`; should the browser give up (readyState CLOSED), the page
/// reopens from the last id it saw through `?lastEventId=`, as a real page would.
fn page_html(stream_url: &str) -> String {
    format!(
        r#"<!doctype html>
<meta charset="utf-8">
<title>sidebus SSE</title>
<p>events: <span id="count">0</span></p>
<script>
window.received = [];
window.opens = 0;
window.errors = 0;
window.disconnects = [];
window.reopened = 0;
const base = {stream_url:?};
function subscribe(url) {{
  const source = new EventSource(url);
  source.onopen = () => {{ window.opens += 1; }};
  source.onmessage = (message) => {{
    const event = JSON.parse(message.data);
    window.received.push({{id: event.id, data: event.data, lastEventId: message.lastEventId}});
    document.getElementById("count").textContent = String(window.received.length);
  }};
  source.addEventListener("sidebus.disconnect", (message) => {{
    window.disconnects.push(JSON.parse(message.data).reason);
  }});
  source.onerror = () => {{
    window.errors += 1;
    if (source.readyState === EventSource.CLOSED) {{
      const seen = window.received;
      const last = seen.length ? seen[seen.length - 1].lastEventId : "";
      const next = last ? base + "?lastEventId=" + encodeURIComponent(last) : base;
      window.reopened += 1;
      setTimeout(() => subscribe(next), 500);
    }}
  }};
}}
subscribe(base);
</script>
"#
    )
}

/// Serves the page on its own loopback port: another origin than sidebus.
fn serve_page(listener: TcpListener, html: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let served = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, served)
}

fn received_ids(page: &Value) -> Vec<String> {
    page["received"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|e| e["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn count(page: &Value) -> usize {
    page["received"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_in_chromium_resumes_across_a_sidebus_restart_with_no_gap_and_no_repeat() {
    let topic = unique_topic("sse.browser");
    // Bind sidebus's port first; the page is served from another port (origin).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sidebus_addr = listener.local_addr().unwrap();
    let page_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", page_listener.local_addr().unwrap());
    let config = format!(
        r#"
source = "sidebus://browser-test"
[sse]
keep_alive = "1s"
allowed_origins = ["{page_origin}"]
[brokers.jobs]
kind = "nats"
url = "{}"
"#,
        nats_url()
    );
    let first = Sidebus::start(listener, &config).await;
    let stream_url = format!("http://{sidebus_addr}/v1/subscribe/jobs/{topic}");
    let (page_addr, page_server) = serve_page(page_listener, page_html(&stream_url));

    let browser = Browser::start().await;
    browser.goto(&format!("http://{page_addr}/")).await;
    browser
        .wait_for("an open stream", |p| p["opens"].as_u64() >= Some(1))
        .await;

    first.publish(&topic, 1..=10).await;
    browser
        .wait_for("the first 10 events", |p| count(p) >= 10)
        .await;

    // sidebus stops: the stream ends with a final event, and the port is closed for a while.
    first.stop().await;
    browser
        .wait_for("the shutdown notice", |p| {
            p["disconnects"]
                .as_array()
                .is_some_and(|d| d.iter().any(|r| r == "shutting-down"))
        })
        .await;
    // Another sidebus on the same port; events published through it before and after the page
    // is back.
    let listener = bind_again(sidebus_addr).await;
    let second = Sidebus::start(listener, &config).await;
    second.publish(&topic, 11..=15).await;
    browser
        .wait_for("a reconnect", |p| p["opens"].as_u64() >= Some(2))
        .await;
    second.publish(&topic, 16..=20).await;
    let page = browser.wait_for("all 20 events", |p| count(p) >= 20).await;
    eprintln!(
        "page: opens {}, errors {}, reopened by hand {}, disconnects {}",
        page["opens"], page["errors"], page["reopened"], page["disconnects"]
    );

    let want: Vec<String> = (1..=20).map(|i| format!("ev-{i:02}")).collect();
    assert_eq!(received_ids(&page), want, "no gap and no repeat: {page:#}");
    for (i, event) in page["received"].as_array().unwrap().iter().enumerate() {
        assert_eq!(event["data"], format!("n{}", i + 1));
        assert!(
            !event["lastEventId"].as_str().unwrap_or_default().is_empty(),
            "every message carries its cursor: {event}"
        );
    }
    // Nothing more is coming: a last event arrives right after the 20th, alone.
    second.publish(&topic, 21..=21).await;
    let page = browser.wait_for("event 21", |p| count(p) >= 21).await;
    let want: Vec<String> = (1..=21).map(|i| format!("ev-{i:02}")).collect();
    assert_eq!(received_ids(&page), want, "{page:#}");

    drop(browser);
    second.stop().await;
    page_server.abort();
}

/// Binds `addr` again once the stopped server has let go of it.
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot bind {addr} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
