//! Shared helpers of the deployment tests (`tests/deploy_*.rs`): repository files read as YAML,
//! `tests/deploy/tools.py` (the Python tools pinned in `tests/deploy/requirements.txt`) run for
//! its JSON answer, sidebus configs validated, and sidebus served in-process on a loopback port.

use std::future::IntoFuture;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use sidebus::RawConfig;

pub const SIDEBUS_PORT: u64 = 8642;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every YAML document in `text`, as JSON values (empty documents left out).
pub fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn yaml(text: &str, what: &str) -> Value {
    let mut docs = yaml_documents(text, what);
    assert_eq!(docs.len(), 1, "{what} should be one YAML document");
    docs.remove(0)
}

/// Runs `tests/deploy/tools.py` with `args` and returns its JSON answer.
pub fn tool(args: &[&str]) -> Value {
    let python = std::env::var("SIDEBUS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(root().join("tests/deploy/tools.py"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {python} (set SIDEBUS_TEST_PYTHON): {e}"));
    assert!(
        output.status.success(),
        "tests/deploy/tools.py {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("tools.py answers JSON")
}

pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

pub fn array_at<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list at {pointer} in {value:#}"))
}

/// The TOML text parses and validates as a sidebus config.
pub fn valid_sidebus_config(text: &str, what: &str) -> sidebus::Config {
    RawConfig::from_toml(text)
        .and_then(RawConfig::validate)
        .unwrap_or_else(|e| panic!("{what} is not a valid sidebus config: {e}\n{text}"))
}

/// sidebus served in-process on a loopback port.
pub struct Sidebus {
    pub base: String,
    pub port: u16,
    state: sidebus::AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Sidebus {
    pub async fn start(raw: RawConfig) -> Self {
        let state = sidebus::AppState::build(raw.validate().unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(axum::serve(listener, sidebus::app(state.clone())).into_future());
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            state,
            server,
        }
    }

    pub async fn stop(self) {
        self.server.abort();
        self.state.drain().await;
    }
}
