//! The deployment files, checked without a container engine or a cluster:
//! - `docker-compose.yml` passes `docker-compose config`, refers only to what it defines
//!   (services, volumes, networks, files), and the sidebus config it mounts is valid and names
//!   the compose services;
//! - the `Dockerfile`, read by BuildKit's own parser, builds in stages and runs sidebus as a
//!   non-root user on port 8642;
//! - the example receiver (`deploy/receiver.py`) logs what sidebus delivers with the compose
//!   config's subscriptions (brokers swapped for the memory broker);
//! - `helm/sidebus` is rendered and linted by Helm's own Go engine (Helm v4 through
//!   `helm-python-sdk`), every object is checked against the Kubernetes schemas, and the
//!   Deployment, probes, Services, ConfigMap and ServiceMonitor are checked here.
//!
//! The Python tools are pinned in `tests/deploy/requirements.txt`; `.ci/run` installs them and
//! Debian's `docker-compose`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use sidebus::config::{BrokerConfig, MemoryConfig};
use sidebus::RawConfig;

const SIDEBUS_PORT: u64 = 8642;
const CHART: &str = "helm/sidebus";
/// Release and namespace `tests/deploy/tools.py` renders with.
const RELEASE: &str = "demo";
const NAMESPACE: &str = "shop";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every YAML document in `text`, as JSON values (empty documents left out).
fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml(text: &str, what: &str) -> Value {
    let mut docs = yaml_documents(text, what);
    assert_eq!(docs.len(), 1, "{what} should be one YAML document");
    docs.remove(0)
}

/// Runs `tests/deploy/tools.py` with `args` and returns its JSON answer.
fn tool(args: &[&str]) -> Value {
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

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

fn array_at<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list at {pointer} in {value:#}"))
}

/// The TOML text parses and validates as a sidebus config.
fn valid_sidebus_config(text: &str, what: &str) -> sidebus::Config {
    RawConfig::from_toml(text)
        .and_then(RawConfig::validate)
        .unwrap_or_else(|e| panic!("{what} is not a valid sidebus config: {e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// A volume entry of a service: `source:target[:mode]` or the long form.
fn volume_source(entry: &Value) -> Option<String> {
    match entry {
        Value::String(short) => {
            let parts: Vec<&str> = short.split(':').collect();
            (parts.len() >= 2).then(|| parts[0].to_string())
        }
        Value::Object(long) => long.get("source").and_then(Value::as_str).map(String::from),
        other => panic!("unexpected volume entry {other}"),
    }
}

fn volume_target(entry: &Value) -> String {
    match entry {
        Value::String(short) => short.split(':').nth(1).unwrap_or(short).to_string(),
        Value::Object(long) => long["target"].as_str().unwrap().to_string(),
        other => panic!("unexpected volume entry {other}"),
    }
}

/// Names a service refers to under `key`, written as a list or as a map.
fn names_under(service: &Value, key: &str) -> Vec<String> {
    match service.get(key) {
        None => vec![],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().expect("a name").to_string())
            .collect(),
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        Some(other) => panic!("unexpected {key}: {other}"),
    }
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|kv| {
                let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect(),
        Some(other) => panic!("unexpected environment: {other}"),
    }
}

#[test]
fn compose_file_refers_only_to_what_it_defines() {
    let compose = yaml(&read("docker-compose.yml"), "docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for expected in ["kafka", "nats", "rabbitmq", "sidebus", "receiver"] {
        assert!(names.contains(expected), "no {expected} service");
    }
    let volumes: BTreeSet<String> = compose
        .get("volumes")
        .and_then(Value::as_object)
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let networks: BTreeSet<String> = compose
        .get("networks")
        .and_then(Value::as_object)
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let mut used_volumes = BTreeSet::new();

    for (name, service) in services {
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name} has neither image nor build"
        );
        for dependency in names_under(service, "depends_on") {
            assert!(
                names.contains(dependency.as_str()),
                "{name} depends on undefined service {dependency}"
            );
            let condition = service
                .pointer(&format!("/depends_on/{dependency}/condition"))
                .and_then(Value::as_str);
            if condition == Some("service_healthy") {
                assert!(
                    services[&dependency].get("healthcheck").is_some(),
                    "{name} waits for {dependency} to be healthy, which has no healthcheck"
                );
            }
        }
        for network in names_under(service, "networks") {
            assert!(
                networks.contains(&network),
                "{name} uses undefined network {network}"
            );
        }
        for entry in service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(source) = volume_source(entry) else {
                continue; // an anonymous volume
            };
            if source.starts_with('.') || source.starts_with('/') {
                assert!(
                    root().join(&source).exists(),
                    "{name} mounts {source}, which does not exist"
                );
            } else {
                assert!(
                    volumes.contains(&source),
                    "{name} uses undefined volume {source}"
                );
                used_volumes.insert(source);
            }
        }
        if let Some(build) = service.get("build") {
            let (context, dockerfile) = match build {
                Value::String(context) => (context.clone(), "Dockerfile".to_string()),
                Value::Object(b) => (
                    b.get("context")
                        .and_then(Value::as_str)
                        .unwrap_or(".")
                        .to_string(),
                    b.get("dockerfile")
                        .and_then(Value::as_str)
                        .unwrap_or("Dockerfile")
                        .to_string(),
                ),
                other => panic!("unexpected build: {other}"),
            };
            let context = root().join(context);
            assert!(
                context.is_dir(),
                "{name}: build context {context:?} missing"
            );
            assert!(
                context.join(&dockerfile).is_file(),
                "{name}: {dockerfile} missing"
            );
        }
    }
    assert_eq!(
        used_volumes, volumes,
        "every top-level volume is used, and only those"
    );
}

/// Compose itself accepts the file: `docker-compose config` validates it against the Compose
/// schema and resolves its references without a Docker engine (Debian's `docker-compose`;
/// `SIDEBUS_TEST_COMPOSE="docker compose"` uses the v2 plugin instead).
#[test]
fn compose_file_passes_compose_config() {
    let command = std::env::var("SIDEBUS_TEST_COMPOSE").unwrap_or_else(|_| "docker-compose".into());
    let mut words = command.split_whitespace();
    let program = words.next().unwrap();
    let output = Command::new(program)
        .args(words)
        .args(["--file", "docker-compose.yml", "config", "--quiet"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("running {command}: {e}; install it with `apt-get install docker-compose`")
        });
    assert!(
        output.status.success(),
        "{command} config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn compose_sidebus_config_is_valid_and_names_the_compose_services() {
    let compose = yaml(&read("docker-compose.yml"), "docker-compose.yml");
    let services = compose["services"].as_object().unwrap();
    let sidebus = &services["sidebus"];
    assert!(
        sidebus.get("build").is_some(),
        "sidebus is built from the Dockerfile"
    );

    // SIDEBUS_CONFIG names a file mounted from the repository.
    let config_path = environment(sidebus)
        .remove("SIDEBUS_CONFIG")
        .expect("SIDEBUS_CONFIG is set");
    let mount = array_at(sidebus, "/volumes")
        .iter()
        .find(|v| volume_target(v) == config_path)
        .unwrap_or_else(|| panic!("nothing is mounted at {config_path}"));
    let source = volume_source(mount).unwrap();
    let text = std::fs::read_to_string(root().join(&source)).unwrap();
    let config = valid_sidebus_config(&text, &source);

    // The port is published and the listener is not loopback-only.
    assert_eq!(config.listen.port() as u64, SIDEBUS_PORT);
    assert!(config.listen.ip().is_unspecified(), "{}", config.listen);
    assert!(
        array_at(sidebus, "/ports")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.ends_with(":8642"))),
        "port 8642 is published"
    );

    // The three brokers, each reached by its compose service name.
    let kinds: BTreeSet<&str> = config.brokers.values().map(BrokerConfig::kind).collect();
    assert_eq!(kinds, BTreeSet::from(["kafka", "nats", "amqp"]));
    let service_of = |address: &str| -> String {
        let host_port = address.rsplit('@').next().unwrap();
        let host_port = host_port.split("://").last().unwrap();
        host_port.split([':', '/']).next().unwrap().to_string()
    };
    for (name, broker) in &config.brokers {
        let address = match broker {
            BrokerConfig::Kafka(k) => k.bootstrap_servers.clone(),
            BrokerConfig::Nats(n) => n.url.clone(),
            BrokerConfig::Amqp(a) => a.url.clone(),
            BrokerConfig::Memory(_) => continue,
        };
        let host = service_of(&address);
        assert!(
            services.contains_key(&host),
            "broker {name} points at {host}, which is no compose service"
        );
        assert!(
            names_under(sidebus, "depends_on").contains(&host),
            "sidebus does not wait for {host}"
        );
    }
    // The AMQP user is the one RabbitMQ is started with (guest may only log in locally).
    let rabbit = environment(&services["rabbitmq"]);
    let amqp_url = config
        .brokers
        .values()
        .find_map(|b| match b {
            BrokerConfig::Amqp(a) => Some(a.url.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        amqp_url.starts_with(&format!(
            "amqp://{}:{}@",
            rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"]
        )),
        "{amqp_url}"
    );

    // Every subscription pushes to the example receiver.
    assert!(!config.subscriptions.is_empty());
    for sub in &config.subscriptions {
        let host = service_of(&sub.endpoint);
        assert_eq!(host, "receiver", "{:?} pushes elsewhere", sub.name);
    }
    let receiver = &services["receiver"];
    assert!(array_at(receiver, "/volumes")
        .iter()
        .any(|v| volume_source(v).as_deref() == Some("./deploy/receiver.py")));

    // Kafka runs in KRaft mode: it is its own controller, no ZooKeeper anywhere.
    let kafka = environment(&services["kafka"]);
    assert_eq!(kafka["KAFKA_PROCESS_ROLES"], "broker,controller");
    assert!(kafka.contains_key("KAFKA_CONTROLLER_QUORUM_VOTERS"));
    assert!(kafka["KAFKA_ADVERTISED_LISTENERS"].contains("//kafka:9092"));
    assert!(!services.keys().any(|s| s.contains("zookeeper")));
    // NATS runs with JetStream.
    let nats_command = array_at(&services["nats"], "/command");
    assert!(nats_command
        .iter()
        .any(|a| a == "--jetstream" || a == "-js"));
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

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

// ---------------------------------------------------------------------------------------------
// deploy/receiver.py with the compose config's subscriptions

/// sidebus served in-process on a loopback port.
struct Sidebus {
    base: String,
    port: u16,
    state: sidebus::AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Sidebus {
    async fn start(raw: RawConfig) -> Self {
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

    async fn stop(self) {
        self.server.abort();
        self.state.drain().await;
    }
}

/// The example receiver, listening on a loopback port; killed on drop.
struct ExampleReceiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ExampleReceiver {
    fn start() -> Self {
        let python = std::env::var("SIDEBUS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(root().join("deploy/receiver.py"))
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs deploy/receiver.py");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver did not say its port: {first:?}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, port, lines }
    }

    /// The logged requests: each a `--- POST /path (n bytes)` line and what follows it.
    fn requests(&self) -> BTreeMap<String, Vec<String>> {
        let mut requests: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = None;
        for line in self.lines.lock().unwrap().iter() {
            if let Some(head) = line.strip_prefix("--- POST ") {
                let path = head.split(' ').next().unwrap().to_string();
                requests.insert(path.clone(), Vec::new());
                current = Some(path);
            } else if let Some(path) = &current {
                requests.get_mut(path).unwrap().push(line.clone());
            }
        }
        requests
    }
}

impl Drop for ExampleReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn example_receiver_logs_deliveries_of_the_compose_subscriptions() {
    let receiver = ExampleReceiver::start();
    let state_dir = tempfile::tempdir().unwrap();

    // deploy/sidebus.toml with each broker swapped for a memory broker of the same name and the
    // receiver's compose address for the local one.
    let mut raw = RawConfig::from_toml(&read("deploy/sidebus.toml")).unwrap();
    for broker in raw.brokers.values_mut() {
        *broker = BrokerConfig::Memory(MemoryConfig::default());
    }
    for sub in &mut raw.subscriptions {
        sub.endpoint = sub.endpoint.replace(
            "http://receiver:8080",
            &format!("http://127.0.0.1:{}", receiver.port),
        );
        // Events published before a consumer is attached are delivered too.
        sub.start = sidebus::backend::consume::StartFrom::Earliest;
    }
    raw.state_dir = state_dir.path().to_path_buf();
    let names: Vec<String> = raw
        .subscriptions
        .iter()
        .map(|s| s.name.clone().unwrap())
        .collect();
    let server = Sidebus::start(raw).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    // The publishes the compose config's header suggests.
    let publishes = [
        (
            "kafka/orders?key=customer-7",
            "application/json",
            r#"{"total":42}"#,
        ),
        ("nats/jobs", "text/plain", "resize img-7"),
        ("rabbitmq/tasks", "text/plain", "send mail"),
    ];
    for (path, content_type, body) in publishes {
        let response = http
            .post(format!("{base}/v1/publish/{path}"))
            .header("content-type", content_type)
            .header("ce-type", "com.example.demo")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{path}: {:?}",
            response.text().await
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let requests = loop {
        let requests = receiver.requests();
        if ["/orders", "/jobs", "/tasks"]
            .iter()
            .all(|p| requests.contains_key(*p))
        {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver logged {:?}",
            receiver.lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Binary mode: attributes as ce-* headers, signed with the subscription's secret.
    let orders = requests["/orders"].join("\n");
    for expected in [
        "ce-type: com.example.demo",
        "ce-partitionkey: customer-7",
        "content-type: application/json",
        "webhook-signature: v1,",
        r#"{"total":42}"#,
    ] {
        assert!(orders.contains(expected), "{expected} in\n{orders}");
    }
    assert!(requests["/jobs"].iter().any(|l| l == "resize img-7"));
    // Structured mode: the whole CloudEvent as JSON.
    let tasks = requests["/tasks"].join("\n");
    assert!(tasks.contains("content-type: application/cloudevents+json"));
    let event: Value = serde_json::from_str(requests["/tasks"].last().unwrap()).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["data"], "send mail");

    // The receiver's 204 counts as delivered.
    for name in &names {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status: Value = http
                .get(format!("{base}/v1/subscriptions/{name}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if status["status"]["delivered"] == 1 {
                assert_eq!(status["status"]["failed"], 0, "{status:#}");
                break;
            }
            assert!(Instant::now() < deadline, "{status:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// helm/sidebus

/// The chart rendered by Helm with `values` over values.yaml.
struct Rendered {
    /// Every object, with the template it came from.
    objects: Vec<(String, Value)>,
    notes: String,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, o)| o["kind"] == kind)
            .map(|(_, o)| o)
            .collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "one {kind}: {found:#?}");
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }
}

fn chart_yaml() -> Value {
    yaml(&read(&format!("{CHART}/Chart.yaml")), "Chart.yaml")
}

fn render(values: Value) -> Rendered {
    let chart = root().join(CHART);
    let out = tool(&["render", chart.to_str().unwrap(), &values.to_string()]);
    assert!(
        str_at(&out, "/helm_version").starts_with("v4."),
        "{}",
        out["helm_version"]
    );
    assert_eq!(out["release"], RELEASE);
    assert_eq!(out["namespace"], NAMESPACE);

    // helm lint --strict: nothing above INFO (severity 1).
    let lint = &out["lint"];
    assert_eq!(lint["errors"], json!([]), "helm lint: {lint:#}");
    let findings: Vec<&Value> = array_at(lint, "/messages")
        .iter()
        .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
        .collect();
    assert!(
        findings.is_empty(),
        "helm lint with {values}: {findings:#?}"
    );

    // Every object satisfies the Kubernetes schema of its kind; only custom resources lack one.
    let schema = &out["schema"];
    assert_eq!(schema["errors"], json!([]), "schema errors with {values}");
    for skipped in array_at(schema, "/skipped") {
        assert_eq!(skipped, "monitoring.coreos.com/v1/ServiceMonitor");
    }

    let chart_meta = chart_yaml();
    let chart_label = format!(
        "{}-{}",
        str_at(&chart_meta, "/name"),
        str_at(&chart_meta, "/version")
    );
    let mut objects = Vec::new();
    let mut notes = String::new();
    for (template, text) in out["manifests"].as_object().unwrap() {
        let text = text.as_str().unwrap();
        if template.ends_with("NOTES.txt") {
            notes = text.to_string();
            continue;
        }
        for object in yaml_documents(text, template) {
            // Kubernetes-shaped, named as a DNS label, labelled as the chart's.
            let kind = str_at(&object, "/kind");
            assert!(!str_at(&object, "/apiVersion").is_empty());
            let name = str_at(&object, "/metadata/name");
            assert!(
                !name.is_empty()
                    && name.len() <= 63
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !name.starts_with('-')
                    && !name.ends_with('-'),
                "{template}: {kind} name {name:?}"
            );
            assert_eq!(str_at(&object, "/metadata/namespace"), NAMESPACE);
            let labels = &object["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "sidebus", "{template}");
            assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{template}");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{template}");
            assert_eq!(labels["helm.sh/chart"], chart_label.as_str(), "{template}");
            objects.push((template.clone(), object));
        }
    }
    let counted = array_at(schema, "/checked").len() + array_at(schema, "/skipped").len();
    assert_eq!(
        counted,
        objects.len(),
        "every object went through the schemas"
    );
    assert!(!notes.trim().is_empty(), "NOTES.txt renders");
    Rendered { objects, notes }
}

/// `labels` (a map) includes every pair of `selector`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn container<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["name"] == name)
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// The port a probe or Service names (by name or number) is one the container declares.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    let ports = array_at(container, "/ports");
    let found = match port {
        Value::String(name) => ports.iter().find(|p| p["name"] == name.as_str()),
        Value::Number(n) => ports
            .iter()
            .find(|p| p["containerPort"].as_u64() == n.as_u64()),
        other => panic!("port {other}"),
    };
    found.unwrap_or_else(|| panic!("port {port} is not declared by {}", container["name"]))
        ["containerPort"]
        .as_u64()
        .unwrap()
}

/// What a rendering should contain.
struct Expected {
    app_image: String,
    app_port: u64,
    sidebus_image: String,
    native_sidecar: bool,
}

impl Expected {
    /// values.yaml's application and image, sidebus as a regular container.
    fn defaults() -> Self {
        let app_version = str_at(&chart_yaml(), "/appVersion").to_string();
        Self {
            app_image: "traefik/whoami:v1.10".into(),
            app_port: 80,
            sidebus_image: format!("sidebus:{app_version}"),
            native_sidecar: false,
        }
    }
}

/// The sidebus sidecar and the application in one pod, wired to the ConfigMap; returns the
/// sidebus config rendered into the ConfigMap.
fn check_workload(rendered: &Rendered, expected: &Expected) -> sidebus::Config {
    let native_sidecar = expected.native_sidecar;
    let deployment = rendered.one("Deployment");
    assert_eq!(deployment["apiVersion"], "apps/v1");
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(
        selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels),
        "the Deployment selects its own pods"
    );
    let spec = &pod["spec"];
    let containers = array_at(spec, "/containers");
    let init_containers = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let app = container(containers, "app").expect("the application container");
    assert_eq!(app["image"], expected.app_image.as_str());
    assert_eq!(resolve_port(app, &json!("http")), expected.app_port);
    assert_eq!(env_value(app, "SIDEBUS_URL"), Some("http://127.0.0.1:8642"));

    let sidebus = if native_sidecar {
        assert!(container(containers, "sidebus").is_none());
        let sidebus = container(&init_containers, "sidebus").expect("sidebus init container");
        assert_eq!(
            sidebus["restartPolicy"], "Always",
            "a native sidecar restarts"
        );
        sidebus.clone()
    } else {
        assert_eq!(containers.len(), 2, "the application and sidebus");
        assert!(init_containers.is_empty());
        container(containers, "sidebus")
            .expect("sidebus container")
            .clone()
    };
    assert_eq!(sidebus["image"], expected.sidebus_image.as_str());
    assert_eq!(resolve_port(&sidebus, &json!("sidebus")), SIDEBUS_PORT);
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &sidebus[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            resolve_port(&sidebus, &get["port"]),
            SIDEBUS_PORT,
            "{probe}"
        );
    }
    assert_eq!(
        env_value(&sidebus, "SIDEBUS_LISTEN"),
        Some("0.0.0.0:8642"),
        "probes reach sidebus on the pod IP"
    );
    let security = &sidebus["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert!(pod["metadata"]["annotations"]["checksum/sidebus-config"]
        .as_str()
        .is_some_and(|c| c.len() == 64));

    // SIDEBUS_CONFIG is the sidebus.toml of the chart's ConfigMap, mounted read-only.
    let config_path = PathBuf::from(env_value(&sidebus, "SIDEBUS_CONFIG").expect("SIDEBUS_CONFIG"));
    let mount = array_at(&sidebus, "/volumeMounts")
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("SIDEBUS_CONFIG lies in a mounted volume");
    assert_eq!(mount["readOnly"], true);
    let volume = array_at(spec, "/volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume is defined");
    let configmap_name = str_at(volume, "/configMap/name");
    let configmap = rendered.named("ConfigMap", configmap_name);
    let key = config_path.file_name().unwrap().to_str().unwrap();
    let toml = str_at(configmap, &format!("/data/{key}"));
    let config = valid_sidebus_config(toml, "the ConfigMap's sidebus.toml");
    assert_eq!(config.listen.port() as u64, SIDEBUS_PORT);
    assert!(config.listen.ip().is_unspecified());
    // state_dir is the writable state volume (the root filesystem is read-only).
    let state_mount = array_at(&sidebus, "/volumeMounts")
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == config.state_dir)
        .expect("state_dir is a mounted volume");
    assert_ne!(state_mount["readOnly"], true);

    // The application's Service reaches the application container.
    let service = rendered
        .of_kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["labels"]["app.kubernetes.io/component"] == "app")
        .expect("the application's Service");
    assert!(selects(&service["spec"]["selector"], pod_labels));
    let port = &array_at(service, "/spec/ports")[0];
    assert_eq!(resolve_port(app, &port["targetPort"]), expected.app_port);

    // The pods run as the chart's ServiceAccount.
    let account = str_at(spec, "/serviceAccountName");
    rendered.named("ServiceAccount", account);
    config
}

/// The ServiceMonitor scrapes /metrics on the sidebus port through a Service that selects the
/// pods; returns whether there was one.
fn check_service_monitor(rendered: &Rendered) -> bool {
    let monitors = rendered.of_kind("ServiceMonitor");
    let metrics_services: Vec<&Value> = rendered
        .of_kind("Service")
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["app.kubernetes.io/component"] == "sidebus-metrics")
        .collect();
    if monitors.is_empty() {
        assert!(
            metrics_services.is_empty(),
            "no metrics Service without a ServiceMonitor"
        );
        return false;
    }
    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let deployment = rendered.one("Deployment");
    let pod = &deployment["spec"]["template"];
    let sidebus = array_at(pod, "/spec/containers")
        .iter()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|c| c["name"] == "sidebus")
        .unwrap();
    let selected: Vec<&&Value> = metrics_services
        .iter()
        .filter(|s| {
            selects(
                &monitor["spec"]["selector"]["matchLabels"],
                &s["metadata"]["labels"],
            )
        })
        .collect();
    assert_eq!(
        selected.len(),
        1,
        "the ServiceMonitor selects the metrics Service"
    );
    let service = selected[0];
    assert!(selects(
        &service["spec"]["selector"],
        &pod["metadata"]["labels"]
    ));
    let endpoints = array_at(monitor, "/spec/endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    let port = array_at(service, "/spec/ports")
        .iter()
        .find(|p| p["name"] == endpoints[0]["port"])
        .expect("the endpoint names a port of the Service");
    assert_eq!(resolve_port(sidebus, &port["targetPort"]), SIDEBUS_PORT);
    true
}

#[test]
fn helm_chart_renders_with_default_values() {
    let rendered = render(json!({}));
    let config = check_workload(&rendered, &Expected::defaults());
    assert!(
        !check_service_monitor(&rendered),
        "no ServiceMonitor unless enabled"
    );
    // No brokers configured: sidebus's memory broker named `default`.
    assert_eq!(
        config.brokers.keys().collect::<Vec<_>>(),
        vec!["default"],
        "{:?}",
        config.brokers
    );
    assert!(config.subscriptions.is_empty());
    assert!(rendered.notes.contains("127.0.0.1:8642"));
}

#[test]
fn helm_chart_renders_a_service_monitor_when_enabled() {
    let rendered = render(json!({
        "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } }
    }));
    check_workload(&rendered, &Expected::defaults());
    assert!(check_service_monitor(&rendered));
    assert_eq!(
        rendered.one("ServiceMonitor")["metadata"]["labels"]["release"],
        "prometheus"
    );
}

#[test]
fn helm_chart_renders_brokers_subscriptions_and_limits_into_a_valid_config() {
    let values = json!({
        "sidebus": {
            "nativeSidecar": true,
            "config": {
                "source": "sidebus://checkout",
                "limits": { "max_batch": 500, "pipeline_depth": 4096, "max_body": "8MiB" },
                "pipeline": { "linger": "2ms", "max_batch_events": 256 },
                "brokers": {
                    "events": {
                        "kind": "kafka",
                        "bootstrap_servers": "kafka-bootstrap.kafka:9092",
                        "create_topics": { "partitions": 6, "replication_factor": 3 },
                        "options": { "compression.type": "lz4" }
                    },
                    "jobs": { "kind": "nats", "url": "nats://nats.nats:4222" },
                    "tasks": { "kind": "amqp", "url": "amqp://u:p@rabbitmq.rabbitmq:5672/%2f" }
                },
                "subscriptions": [{
                    "name": "orders-to-app",
                    "broker": "events",
                    "topic": "orders",
                    "endpoint": "http://127.0.0.1:80/events",
                    "max_in_flight": 16,
                    "dead_letter": "orders.dlq",
                    "retry": { "max_attempts": 8, "initial_backoff": "200ms", "max_backoff": "30s" },
                    "rate_limit": 100
                }]
            }
        }
    });
    let rendered = render(values);
    let config = check_workload(
        &rendered,
        &Expected {
            native_sidecar: true,
            ..Expected::defaults()
        },
    );
    assert_eq!(
        config.brokers.keys().collect::<Vec<_>>(),
        vec!["events", "jobs", "tasks"],
        "values replace the default memory broker"
    );
    // Whole numbers stay integers through Helm's float values and toToml.
    assert_eq!(config.limits.max_batch, 500);
    assert_eq!(config.limits.pipeline_depth, 4096);
    assert_eq!(config.limits.max_body, 8 * 1024 * 1024);
    assert_eq!(config.pipeline.max_batch_events, 256);
    assert_eq!(config.pipeline.linger, Duration::from_millis(2));
    assert_eq!(config.source, "sidebus://checkout");
    match &config.brokers["events"] {
        BrokerConfig::Kafka(kafka) => {
            assert_eq!(kafka.create_topics.as_ref().unwrap().partitions, 6);
            assert_eq!(kafka.options["compression.type"], "lz4");
        }
        other => panic!("events: {other:?}"),
    }
    let [sub] = &config.subscriptions[..] else {
        panic!("{:?}", config.subscriptions)
    };
    assert_eq!(sub.max_in_flight, 16);
    assert_eq!(sub.retry.max_attempts, 8);
    assert_eq!(sub.rate_limit, Some(100));

    // A changed config rolls the pods.
    let default = render(json!({}));
    let checksum = |r: &Rendered| {
        r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/sidebus-config"]
            .clone()
    };
    assert_ne!(checksum(&rendered), checksum(&default));
}

/// The values example in the README's Deploy section renders, as the README says.
#[test]
fn helm_chart_renders_the_readme_example() {
    let readme = read("README.md");
    let deploy = &readme[readme
        .find("\n## Deploy")
        .expect("README has a Deploy section")..];
    let helm = &deploy[deploy.find("### Kubernetes (Helm)").expect("a Helm part")..];
    let start = helm.find("```yaml\n").expect("a values example") + "```yaml\n".len();
    let example = &helm[start..start + helm[start..].find("```").unwrap()];
    let values = yaml(example, "the README's values example");
    let rendered = render(values.clone());
    let config = check_workload(
        &rendered,
        &Expected {
            app_image: format!(
                "{}:{}",
                str_at(&values, "/app/image/repository"),
                str_at(&values, "/app/image/tag")
            ),
            app_port: values["app"]["port"].as_u64().unwrap(),
            sidebus_image: format!(
                "{}:{}",
                str_at(&values, "/sidebus/image/repository"),
                str_at(&values, "/sidebus/image/tag")
            ),
            native_sidecar: values["sidebus"]["nativeSidecar"] == true,
        },
    );
    assert!(check_service_monitor(&rendered));
    let configured: Vec<&String> = values["sidebus"]["config"]["brokers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(config.brokers.keys().collect::<Vec<_>>(), configured);
    assert_eq!(
        config.subscriptions.len(),
        array_at(&values, "/sidebus/config/subscriptions").len()
    );
    // The application's webhook is on the port the application listens on.
    for sub in &config.subscriptions {
        assert!(
            sub.endpoint
                .starts_with(&format!("http://127.0.0.1:{}/", values["app"]["port"])),
            "{}",
            sub.endpoint
        );
    }
}

/// Every `.Values.a.b` a template names exists in values.yaml (`sidebus.config` below the keys
/// given there is free-form: it is sidebus.toml).
#[test]
fn helm_templates_reference_only_values_that_exist() {
    let values = yaml(&read(&format!("{CHART}/values.yaml")), "values.yaml");
    let templates = root().join(CHART).join("templates");
    let mut referenced = 0;
    for entry in std::fs::read_dir(&templates).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".Values.") {
            let rest = &text[at + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let reference = rest[..end].trim_end_matches('.');
            let mut node = &values;
            for key in reference.split('.') {
                node = node.get(key).unwrap_or_else(|| {
                    panic!(
                        "{}: .Values.{reference} is not in values.yaml",
                        path.display()
                    )
                });
            }
            referenced += 1;
        }
    }
    assert!(referenced > 20, "found only {referenced} references");
}
