//! `openapi/openapi.yaml` loaded, and the checks made against it: a real answer held to the
//! documented status, headers and body schema (with a small JSON Schema checker), the routes
//! sidebus serves, and the config the OpenAPI tests serve. Shared by `tests/it/openapi_spec.rs` and
//! `tests/it/openapi_routes.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

pub const PUBLISH: &str = "/v1/publish/{broker}/{topic}";
pub const PUBLISH_BATCH: &str = "/v1/publish/{broker}/{topic}/batch";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const BROKERS: &str = "/v1/brokers";
pub const BROKER_TOPICS: &str = "/v1/brokers/{broker}/topics";
pub const FILTERS_EVALUATE: &str = "/v1/filters/evaluate";
pub const SUBSCRIPTIONS: &str = "/v1/subscriptions";
pub const SUBSCRIPTION: &str = "/v1/subscriptions/{name}";
pub const SUBSCRIPTION_PAUSE: &str = "/v1/subscriptions/{name}/pause";
pub const SUBSCRIPTION_RESUME: &str = "/v1/subscriptions/{name}/resume";
pub const SUBSCRIBE_SSE: &str = "/v1/subscribe/{broker}/{topic}";
pub const CONFIG: &str = "/v1/config";

/// A webhook endpoint nothing listens on: deliveries to it fail, which does not matter here.
pub const ENDPOINT: &str = "http://127.0.0.1:9/events";
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One memory broker and one subscription declared in the file; runtime subscriptions are
/// saved in `state_dir`.
pub fn config(state_dir: &Path) -> String {
    format!(
        r#"
source = "sidebus://openapi-test"
state_dir = "{}"
limits = {{ max_body = "64KiB", max_event = "1KiB", max_batch = 10, pipeline_depth = 100 }}
[brokers.default]
kind = "memory"
[[subscriptions]]
name = "from-config"
broker = "default"
topic = "openapi-config-sub"
endpoint = "{ENDPOINT}"
"#,
        state_dir.display()
    )
}

/// `base` with the members of `patch` set.
pub fn patched(base: &Value, patch: Value) -> Value {
    let mut value = base.clone();
    for (k, v) in patch.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

/// Response headers of this API that must be documented wherever they are sent.
const API_HEADERS: &[&str] = &["retry-after", "idempotent-replayed"];

/// The parsed OpenAPI document and the checks made against it.
pub struct Spec {
    pub doc: Value,
    /// `(method, path)` of every operation a request was checked against.
    pub hit: Mutex<BTreeSet<(String, String)>>,
}

impl Spec {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi/openapi.yaml is readable");
        let doc: Value = serde_norway::from_str(&text).expect("openapi.yaml parses as YAML");
        Self {
            doc,
            hit: Mutex::new(BTreeSet::new()),
        }
    }

    /// Follows local `$ref`s (`#/components/...`) until a non-reference value.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are used: {reference}"));
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {reference} does not resolve"));
        }
        panic!("$ref cycle at {value}")
    }

    /// `(method, path)` of every operation in the spec.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        const METHODS: &[&str] = &[
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        let paths = self.doc["paths"].as_object().expect("spec has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("path item is an object");
                item.keys()
                    .filter(|k| METHODS.contains(&k.as_str()))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect()
    }

    pub fn operation(&self, method: &str, path: &str) -> &Value {
        self.doc["paths"]
            .get(path)
            .and_then(|item| item.get(method))
            .unwrap_or_else(|| panic!("the spec has no operation {method} {path}"))
    }

    /// The spec's response object for `status`, falling back to `4XX`-style ranges and `default`.
    pub fn response_spec(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let responses = &self.operation(method, path)["responses"];
        let range = format!("{}XX", status / 100);
        [status.to_string(), range, "default".to_string()]
            .iter()
            .find_map(|key| responses.get(key))
            .map(|r| self.resolve(r))
    }

    /// Checks a real answer to `method path` against the spec; returns its JSON body, if any.
    pub async fn check(
        &self,
        method: &str,
        path: &str,
        response: reqwest::Response,
    ) -> Option<Value> {
        self.hit
            .lock()
            .unwrap()
            .insert((method.to_string(), path.to_string()));
        let status = response.status().as_u16();
        let what = format!("{} {path} -> {status}", method.to_uppercase());
        let documented = self
            .response_spec(method, path, status)
            .unwrap_or_else(|| panic!("{what}: status {status} is not documented"));
        let headers = response.headers().clone();
        let declared_headers: Vec<String> = documented
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        for (name, header) in documented
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let header = self.resolve(header);
            let value = headers.get(name.as_str()).map(|v| v.to_str().unwrap());
            if header["required"] == true {
                assert!(value.is_some(), "{what}: required header {name} is missing");
            }
            if let Some(value) = value {
                let schema = &header["schema"];
                let typed = match self.resolve(schema)["type"].as_str() {
                    Some("integer") => Value::from(
                        value
                            .parse::<i64>()
                            .unwrap_or_else(|_| panic!("{what}: {name}: {value} is no integer")),
                    ),
                    _ => Value::from(value),
                };
                let errors = self.validate(schema, &typed);
                assert!(errors.is_empty(), "{what}: header {name}: {errors:?}");
            }
        }
        for name in API_HEADERS {
            if headers.contains_key(*name) {
                assert!(
                    declared_headers.iter().any(|h| h == name),
                    "{what}: sends {name}, which the spec does not document for this response"
                );
            }
        }
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.bytes().await.unwrap();
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            assert!(body.is_empty(), "{what}: the spec documents no body");
            return None;
        };
        let content_type =
            content_type.unwrap_or_else(|| panic!("{what}: a body without Content-Type"));
        let essence = content_type.split(';').next().unwrap().trim();
        let media = content
            .get(essence)
            .unwrap_or_else(|| panic!("{what}: content type {essence} is not documented"));
        if !(essence.ends_with("/json") || essence.ends_with("+json")) {
            return None;
        }
        let json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
        let errors = self.validate(&media["schema"], &json);
        assert!(
            errors.is_empty(),
            "{what}: body does not match the spec:\n  {}\nbody: {json}",
            errors.join("\n  ")
        );
        Some(json)
    }

    /// Every way `value` breaks `schema`; empty when it conforms.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate_at(schema, value, "$", &mut errors);
        errors
    }

    /// A small JSON Schema checker covering what the spec uses: `$ref`, `type` (one or a list),
    /// `const`, `enum`, `required`, `properties`, `additionalProperties: false`, `items`,
    /// `minItems`, `minLength`/`maxLength`, `minimum`/`maximum`, `allOf`/`anyOf`/`oneOf`.
    /// `pattern`, `format` and `patternProperties` are not evaluated (an object with
    /// `patternProperties` accepts any extra member).
    fn validate_at(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(schema) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                errors.push(format!("{at}: no value is allowed here"));
            }
            return;
        };
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                other => panic!("bad `type` in the spec: {other}"),
            };
            if !allowed.iter().any(|t| has_type(value, t)) {
                errors.push(format!("{at}: {value} is not of type {allowed:?}"));
                return;
            }
        }
        if let Some(expected) = schema.get("const") {
            if expected != value {
                errors.push(format!("{at}: {value} is not {expected}"));
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                errors.push(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if schema.get("minLength").and_then(Value::as_u64) > Some(len) {
                errors.push(format!("{at}: {value} is too short"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    errors.push(format!("{at}: {value} is too long"));
                }
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    errors.push(format!("{at}: {value} is below {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    errors.push(format!("{at}: {value} is above {max}"));
                }
            }
        }
        if let Some(object) = value.as_object() {
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: required property `{name}` is missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false))
                && !schema.contains_key("patternProperties");
            for (name, member) in object {
                let at = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => self.validate_at(property, member, &at, errors),
                    None if closed => errors.push(format!("{at}: property is not in the spec")),
                    None => {
                        if let Some(extra) = schema.get("additionalProperties") {
                            if extra.is_object() {
                                self.validate_at(extra, member, &at, errors);
                            }
                        }
                    }
                }
            }
        }
        if let Some(array) = value.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (array.len() as u64) < min {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
            }
            if let Some(items) = schema.get("items") {
                for (i, item) in array.iter().enumerate() {
                    self.validate_at(items, item, &format!("{at}[{i}]"), errors);
                }
            }
        }
        for sub in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate_at(sub, value, at, errors);
        }
        for (keyword, want) in [("anyOf", 1..=usize::MAX), ("oneOf", 1..=1)] {
            let Some(subs) = schema.get(keyword).and_then(Value::as_array) else {
                continue;
            };
            let outcomes: Vec<Vec<String>> = subs
                .iter()
                .map(|sub| {
                    let mut sub_errors = Vec::new();
                    self.validate_at(sub, value, at, &mut sub_errors);
                    sub_errors
                })
                .collect();
            let matched = outcomes.iter().filter(|e| e.is_empty()).count();
            if !want.contains(&matched) {
                errors.push(format!(
                    "{at}: {matched} of the {keyword} schemas match (errors: {outcomes:?})"
                ));
            }
        }
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        other => panic!("unknown JSON Schema type `{other}` in the spec"),
    }
}

pub fn routes() -> BTreeSet<(String, String)> {
    sidebus::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}
