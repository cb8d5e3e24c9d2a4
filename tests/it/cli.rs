//! The `sidebus` binary: starts with no config, refuses a bad one naming the key, and exits 0 on
//! SIGTERM after draining.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{free_port, Sidebus};

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

/// Runs sidebus in a fresh directory with `args`, `bad.toml` holding `toml` (when given) and
/// `env` set, and returns its stderr once it has exited non-zero. The test's own `SIDEBUS_*`
/// variables are removed so only `env` counts; `RUST_BACKTRACE=1` is set because a refused
/// configuration is the user's mistake and no stack trace may bury the message, whatever the
/// shell says.
fn refusal(args: &[&str], toml: Option<&str>, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    if let Some(toml) = toml {
        std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidebus"));
    command
        .current_dir(dir.path())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SIDEBUS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sidebus accepted the configuration {toml:?} with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !status.success(),
        "exit status {status:?}; stderr: {stderr}"
    );
    stderr
}

/// The whole of stderr is `line`, once, with no error chain around it.
fn assert_only_line(stderr: &str, line: &str) {
    assert!(!stderr.contains("Caused by"), "{stderr}");
    assert_eq!(stderr.matches(line).count(), 1, "{stderr}");
    assert_eq!(stderr, format!("{line}\n"));
}

#[test]
fn an_unknown_key_in_the_file_is_named_once_with_the_file_and_the_accepted_keys() {
    let stderr = refusal(
        &["--config", "bad.toml"],
        Some("[brokers.k]\nkind = \"kafka\"\nbootstrap = \"127.0.0.1:9092\"\n"),
        &[],
    );
    assert_only_line(
        &stderr,
        "invalid configuration: `brokers.k.bootstrap` in bad.toml: unknown key, expected one of \
         `bootstrap_servers`, `create_topics`, `options`, `spool`, `topic_prefix`",
    );
}

#[test]
fn an_unknown_key_in_the_environment_is_named_once_by_its_variable() {
    let stderr = refusal(
        &["--config", "bad.toml"],
        Some("[brokers.k]\nkind = \"kafka\"\nbootstrap_servers = \"127.0.0.1:9092\"\n"),
        &[("SIDEBUS_BROKERS__K__BOOTSTRAP", "127.0.0.1:9092")],
    );
    assert_only_line(
        &stderr,
        "invalid configuration: `brokers.k.bootstrap` in environment variable \
         SIDEBUS_BROKERS__K__BOOTSTRAP: unknown key, expected one of `bootstrap_servers`, \
         `create_topics`, `options`, `spool`, `topic_prefix`",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named_once_with_what_was_expected() {
    let cases = [
        (
            "listen = 5\n",
            "invalid configuration: `listen` in bad.toml: wrong type: found integer `5`, \
             expected a string",
        ),
        (
            "limits = { max_body = \"lots\" }\n",
            "invalid configuration: `limits.max_body` in bad.toml: invalid value: found string \
             \"lots\", expected parsable string",
        ),
    ];
    for (toml, line) in cases {
        let stderr = refusal(&["--config", "bad.toml"], Some(toml), &[]);
        assert_only_line(&stderr, line);
    }
}

#[test]
fn a_missing_config_file_is_named_once() {
    let stderr = refusal(&["--config", "nope.toml"], None, &[]);
    assert_only_line(
        &stderr,
        "invalid configuration: config file nope.toml does not exist (--config or SIDEBUS_CONFIG)",
    );
}

#[test]
fn a_value_refused_by_validation_is_named_once() {
    let stderr = refusal(&["--config", "bad.toml"], Some("listen = \"nope\"\n"), &[]);
    assert_only_line(
        &stderr,
        "invalid configuration: `listen`: `nope` is not host:port (invalid socket address syntax)",
    );
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
