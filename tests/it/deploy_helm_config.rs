//! `helm/sidebus` values rendered into the sidebus config of the chart's ConfigMap (by Helm's
//! own engine, checked as in `tests/it/deploy_helm.rs`): brokers, subscriptions and limits from the
//! values, and the values example in the Deploy section of docs/operations.md.
//!
//! The Python tools are pinned in `tests/deploy/requirements.txt`; `.ci/run` installs them.

use std::time::Duration;

use crate::common::deploy::{array_at, read, str_at, yaml};
use crate::common::helm::{check_service_monitor, check_workload, render, Expected, Rendered};
use serde_json::{json, Value};
use sidebus::config::BrokerConfig;

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
    assert_eq!(sub.rate_limit.and_then(|r| r.events_per_second), Some(100));

    // A changed config rolls the pods.
    let default = render(json!({}));
    let checksum = |r: &Rendered| {
        r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/sidebus-config"]
            .clone()
    };
    assert_ne!(checksum(&rendered), checksum(&default));
    // With live reload chosen instead, the pods stay and read the updated ConfigMap.
    let live = render(json!({"sidebus": {"rollOnConfigChange": false}}));
    assert_eq!(checksum(&live), Value::Null);
}

/// The values example in the docs' Deploy section renders, as the docs say.
#[test]
fn helm_chart_renders_the_documented_example() {
    let operations = read("docs/operations.md");
    let deploy = &operations[operations
        .find("\n## Deploy")
        .expect("docs/operations.md has a Deploy section")..];
    let helm = &deploy[deploy.find("### Kubernetes (Helm)").expect("a Helm part")..];
    let start = helm.find("```yaml\n").expect("a values example") + "```yaml\n".len();
    let example = &helm[start..start + helm[start..].find("```").unwrap()];
    let values = yaml(example, "the docs' values example");
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
