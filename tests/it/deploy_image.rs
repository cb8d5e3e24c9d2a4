//! The `Dockerfile`, read by BuildKit's own parser (through `tests/deploy/tools.py`), builds in
//! stages and runs sidebus as a non-root user on port 8642, and its HEALTHCHECK asks `/healthz`
//! of a running sidebus.
//!
//! The Python tools are pinned in `tests/deploy/requirements.txt`; `.ci/run` installs them.


use std::process::{Command, Stdio};

use crate::common::deploy::{array_at, read, root, tool, Sidebus};
use sidebus::RawConfig;

struct Instruction {
    cmd: String,
    flags: Vec<String>,
    value: Vec<String>,
    original: String,
}

/// The Dockerfile as BuildKit's parser reads it, split into its stages.
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let parsed = tool(&["dockerfile", "Dockerfile"]);
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for i in array_at(&parsed, "/instructions") {
        let strings = |key: &str| -> Vec<String> {
            i[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let instruction = Instruction {
            cmd: i["cmd"].as_str().unwrap().to_string(),
            flags: strings("flags"),
            value: strings("value"),
            original: i["original"].as_str().unwrap().to_string(),
        };
        if instruction.cmd == "FROM" {
            stages.push(Vec::new());
        }
        // ARGs before the first FROM belong to no stage.
        if let Some(stage) = stages.last_mut() {
            stage.push(instruction);
        }
    }
    stages
}

/// `.dockerignore` as written here: `*` first, then `!path` exceptions (last match wins).
fn docker_context_includes(path: &str) -> bool {
    let mut included = true;
    for line in read(".dockerignore").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, line),
        };
        let pattern = pattern.trim_end_matches('/');
        let matches = pattern == "*"
            || path == pattern
            || path.starts_with(&format!("{pattern}/"))
            || (pattern.ends_with("/*") && path.starts_with(pattern.trim_end_matches('*')));
        if matches {
            included = negated;
        }
    }
    included
}

#[test]
fn dockerfile_builds_in_stages_and_runs_as_non_root_on_8642() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a multi-stage build");
    let stage_name = |stage: &[Instruction]| -> Option<String> {
        let from = &stage[0].value;
        (from.len() == 3 && from[1].eq_ignore_ascii_case("as")).then(|| from[2].clone())
    };
    let build = &stages[0];
    let runtime = stages.last().unwrap();
    let build_name = stage_name(build).expect("the build stage is named");

    // The build stage: Rust on Debian, with what rdkafka-sys and OpenSSL need, locked.
    assert!(
        build[0].value[0].starts_with("rust:"),
        "{}",
        build[0].original
    );
    assert!(build[0].value[0].contains("slim"), "{}", build[0].original);
    let build_runs: String = build
        .iter()
        .filter(|i| i.cmd == "RUN")
        .map(|i| i.value.join(" ") + "\n")
        .collect();
    for package in ["build-essential", "pkg-config", "libssl-dev", "zlib1g-dev"] {
        assert!(
            build_runs.contains(package),
            "the build stage installs {package}"
        );
    }
    assert!(build_runs.contains("cargo build --release --locked"));

    // The Rust image is at least the crate's rust-version.
    let rust_version = read("Dockerfile")
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION=")
        .to_string();
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        version(&rust_version) >= version(msrv),
        "rust:{rust_version} is older than rust-version {msrv}"
    );

    // Everything COPYed from the context exists and is not excluded by .dockerignore.
    for stage in &stages {
        for copy in stage.iter().filter(|i| i.cmd == "COPY") {
            if copy.flags.iter().any(|f| f.starts_with("--from")) {
                continue;
            }
            for source in &copy.value[..copy.value.len() - 1] {
                let source = source.trim_end_matches('/');
                assert!(root().join(source).exists(), "COPY {source}: missing");
                assert!(
                    docker_context_includes(source),
                    "COPY {source}: excluded by .dockerignore"
                );
            }
        }
    }
    assert!(
        !docker_context_includes("target"),
        "target/ stays out of the context"
    );

    // The runtime stage: slim Debian, the binary from the build stage, non-root, port 8642.
    assert!(
        runtime[0].value[0].starts_with("debian:") && runtime[0].value[0].contains("slim"),
        "{}",
        runtime[0].original
    );
    assert!(
        runtime.iter().any(|i| i.cmd == "COPY"
            && i.flags.contains(&format!("--from={build_name}"))
            && i.value.iter().any(|v| v.contains("sidebus"))),
        "the runtime stage copies the binary from {build_name}"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.cmd == "USER")
        .expect("the runtime stage sets USER");
    let uid = user.value[0].split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {uid}: a numeric non-root user, so Kubernetes can verify runAsNonRoot"
    );
    let exposed: Vec<&str> = runtime
        .iter()
        .filter(|i| i.cmd == "EXPOSE")
        .flat_map(|i| i.value.iter().map(String::as_str))
        .collect();
    assert!(exposed.contains(&"8642"), "EXPOSE 8642: {exposed:?}");
    let env: String = runtime
        .iter()
        .filter(|i| i.cmd == "ENV")
        .map(|i| i.value.join(" ") + " ")
        .collect();
    assert!(
        env.contains("SIDEBUS_LISTEN 0.0.0.0:8642"),
        "SIDEBUS_LISTEN: {env}"
    );
    let healthcheck = runtime
        .iter()
        .find(|i| i.cmd == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    assert!(healthcheck.original.contains("/healthz"));
    let entrypoint = runtime
        .iter()
        .find(|i| i.cmd == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert!(entrypoint.value[0].ends_with("/sidebus") || entrypoint.value[0] == "sidebus");
}

/// The image's HEALTHCHECK command, run as Docker runs it (exec form, with the image's
/// SIDEBUS_LISTEN pointing at the port), passes against a running sidebus and fails without one.
#[tokio::test]
async fn dockerfile_healthcheck_asks_healthz() {
    let stages = dockerfile_stages();
    let healthcheck = stages
        .last()
        .unwrap()
        .iter()
        .find(|i| i.cmd == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    let [kind, command @ ..] = &healthcheck.value[..] else {
        panic!("{}", healthcheck.original)
    };
    assert_eq!(kind, "CMD", "exec form");
    let command = command.to_vec();
    let run = move |port: u16| {
        let command = command.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(&command[0])
                .args(&command[1..])
                .env("SIDEBUS_LISTEN", format!("0.0.0.0:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
        })
    };

    let state_dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        state_dir: state_dir.path().to_path_buf(),
        ..RawConfig::default()
    };
    let server = Sidebus::start(raw).await;
    let port = server.port;
    let healthy = run(port).await.unwrap();
    assert!(healthy.success(), "HEALTHCHECK against sidebus: {healthy}");
    server.stop().await;

    // Nothing listens on that port any more.
    let unhealthy = run(port).await.unwrap();
    assert!(!unhealthy.success(), "HEALTHCHECK without sidebus passed");
}
