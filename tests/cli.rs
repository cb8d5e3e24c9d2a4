//! The `sidebus` binary: starts with no config, refuses a bad one naming the key, and exits 0 on
//! SIGTERM after draining.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{free_port, Sidebus};

#[test]
fn invalid_config_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[brokers.x]\nkind = \"nats\"\nurl = \"nats://a\"\nurll = 1\n",
            "urll",
        ),
        (
            "[brokers.x]\nkind = \"amqp\"\nurl = \"http://nope\"\n",
            "brokers.x.url",
        ),
        ("[pipeline]\nlinger = \"soon\"\n", "linger"),
    ];
    for (i, (toml, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sidebus"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
    }
}

#[tokio::test]
async fn runs_with_no_config_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sidebus = Sidebus::spawn(free_port(), None, dir.path());
    let http = reqwest::Client::new();
    sidebus.wait_ready(&http).await;
    let response = http
        .post(format!("{}/v1/publish/default/demo", sidebus.base))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["offset"], 0);
    assert_eq!(body["broker"], "default");
    let exit = sidebus.terminate(Duration::from_secs(60)).await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn help_names_the_flags() {
    let mut out = String::new();
    Command::new(env!("CARGO_BIN_EXE_sidebus"))
        .arg("--help")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    for flag in ["--config", "--listen", "--state-dir"] {
        assert!(out.contains(flag), "{out}");
    }
}
