//! `helm/sidebus` rendered and linted by Helm's own Go engine (Helm v4 through
//! `helm-python-sdk`, driven by `tests/deploy/tools.py`), every object checked against the
//! Kubernetes schemas, and the checks every rendering gets: the Deployment, probes, Services,
//! ConfigMap and ServiceMonitor. Shared by `tests/it/deploy_helm.rs` and
//! `tests/it/deploy_helm_config.rs`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::deploy::{
    array_at, read, root, str_at, tool, valid_sidebus_config, yaml, yaml_documents, SIDEBUS_PORT,
};

pub const CHART: &str = "helm/sidebus";
/// Release and namespace `tests/deploy/tools.py` renders with.
pub const RELEASE: &str = "demo";
pub const NAMESPACE: &str = "shop";

/// The chart rendered by Helm with `values` over values.yaml.
pub struct Rendered {
    /// Every object, with the template it came from.
    pub objects: Vec<(String, Value)>,
    pub notes: String,
}

impl Rendered {
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, o)| o["kind"] == kind)
            .map(|(_, o)| o)
            .collect()
    }

    pub fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "one {kind}: {found:#?}");
        found[0]
    }

    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }
}

pub fn chart_yaml() -> Value {
    yaml(&read(&format!("{CHART}/Chart.yaml")), "Chart.yaml")
}

pub fn render(values: Value) -> Rendered {
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
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn container<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["name"] == name)
}

pub fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// The port a probe or Service names (by name or number) is one the container declares.
pub fn resolve_port(container: &Value, port: &Value) -> u64 {
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
pub struct Expected {
    pub app_image: String,
    pub app_port: u64,
    pub sidebus_image: String,
    pub native_sidecar: bool,
}

impl Expected {
    /// values.yaml's application and image, sidebus as a regular container.
    pub fn defaults() -> Self {
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
pub fn check_workload(rendered: &Rendered, expected: &Expected) -> sidebus::Config {
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
pub fn check_service_monitor(rendered: &Rendered) -> bool {
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
