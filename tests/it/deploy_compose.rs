//! `docker-compose.yml`, checked without a container engine: it passes `docker-compose config`,
//! refers only to what it defines (services, volumes, networks, files), and the sidebus config it
//! mounts is valid and names the compose services.
//!
//! `.ci/run` installs Debian's `docker-compose`.


use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::common::deploy::{array_at, read, root, valid_sidebus_config, yaml, SIDEBUS_PORT};
use serde_json::Value;
use sidebus::config::BrokerConfig;

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
