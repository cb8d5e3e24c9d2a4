//! `helm/sidebus`, checked without a cluster: rendered and linted by Helm's own Go engine (Helm
//! v4 through `helm-python-sdk`) with every object checked against the Kubernetes schemas, with
//! the default values and with the ServiceMonitor enabled, the Deployment, probes, Services,
//! ConfigMap and ServiceMonitor are checked here; and the templates name only values that exist.
//!
//! The Python tools are pinned in `tests/deploy/requirements.txt`; `.ci/run` installs them.


use crate::common::deploy::{read, root, yaml};
use crate::common::helm::{check_service_monitor, check_workload, render, Expected, CHART};
use serde_json::json;
use sidebus::config::BrokerConfig;

#[test]
fn helm_chart_renders_with_default_values() {
    let rendered = render(json!({}));
    let config = check_workload(&rendered, &Expected::defaults());
    assert!(
        !check_service_monitor(&rendered),
        "no ServiceMonitor unless enabled"
    );
    // No brokers configured: sidebus's memory broker named `default`, bounded below the
    // container's memory limit of 256Mi.
    assert_eq!(
        config.brokers.keys().collect::<Vec<_>>(),
        vec!["default"],
        "{:?}",
        config.brokers
    );
    let Some(BrokerConfig::Memory(memory)) = config.brokers.get("default") else {
        panic!("a memory broker: {:?}", config.brokers);
    };
    assert_eq!(memory.max_bytes.as_u64(), 128 << 20);
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
