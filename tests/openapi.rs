//! Holds the server to `openapi/openapi.yaml`: the spec names exactly the routes the router
//! serves, and every answer a real request gets is a documented status whose JSON body has
//! the shape the spec's schema gives it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

const PUBLISH: &str = "/v1/publish/{broker}/{topic}";
const PUBLISH_BATCH: &str = "/v1/publish/{broker}/{topic}/batch";
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";
const BROKERS: &str = "/v1/brokers";
const SUBSCRIPTIONS: &str = "/v1/subscriptions";
const SUBSCRIPTION: &str = "/v1/subscriptions/{name}";
const SUBSCRIPTION_PAUSE: &str = "/v1/subscriptions/{name}/pause";
const SUBSCRIPTION_RESUME: &str = "/v1/subscriptions/{name}/resume";
const SUBSCRIBE_SSE: &str = "/v1/subscribe/{broker}/{topic}";

/// A webhook endpoint nothing listens on: deliveries to it fail, which does not matter here.
const ENDPOINT: &str = "http://127.0.0.1:9/events";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// One memory broker and one subscription declared in the file; runtime subscriptions are
/// saved in `state_dir`.
fn config(state_dir: &Path) -> String {
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

/// An AMQP broker on a port nothing listens on: sidebus starts, reports it down, and answers
/// publishes to it with 503.
fn down_config(state_dir: &Path) -> String {
    format!(
        r#"
state_dir = "{}"
[brokers.down]
kind = "amqp"
url = "amqp://guest:guest@127.0.0.1:1/%2f"
"#,
        state_dir.display()
    )
}

/// Sends `method path` with `headers` and `body`.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = server.http.request(method, server.url(path)).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("request reaches sidebus")
}

/// The names in a `GET /v1/subscriptions` answer.
fn names(list: &Value) -> Vec<&str> {
    list["subscriptions"]
        .as_array()
        .expect("subscriptions is an array")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// `base` with the members of `patch` set.
fn patched(base: &Value, patch: Value) -> Value {
    let mut value = base.clone();
    for (k, v) in patch.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

/// A request expected to fail: path, headers, body and the status it gets.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

/// Response headers of this API that must be documented wherever they are sent.
const API_HEADERS: &[&str] = &["retry-after", "idempotent-replayed"];

/// The parsed OpenAPI document and the checks made against it.
struct Spec {
    doc: Value,
    /// `(method, path)` of every operation a request was checked against.
    hit: Mutex<BTreeSet<(String, String)>>,
}

impl Spec {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi/openapi.yaml is readable");
        let doc: Value = serde_norway::from_str(&text).expect("openapi.yaml parses as YAML");
        Self {
            doc,
            hit: Mutex::new(BTreeSet::new()),
        }
    }

    /// Follows local `$ref`s (`#/components/...`) until a non-reference value.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
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
    fn operations(&self) -> BTreeSet<(String, String)> {
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

    fn operation(&self, method: &str, path: &str) -> &Value {
        self.doc["paths"]
            .get(path)
            .and_then(|item| item.get(method))
            .unwrap_or_else(|| panic!("the spec has no operation {method} {path}"))
    }

    /// The spec's response object for `status`, falling back to `4XX`-style ranges and `default`.
    fn response_spec(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let responses = &self.operation(method, path)["responses"];
        let range = format!("{}XX", status / 100);
        [status.to_string(), range, "default".to_string()]
            .iter()
            .find_map(|key| responses.get(key))
            .map(|r| self.resolve(r))
    }

    /// Checks a real answer to `method path` against the spec; returns its JSON body, if any.
    async fn check(&self, method: &str, path: &str, response: reqwest::Response) -> Option<Value> {
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
    fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
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

fn routes() -> BTreeSet<(String, String)> {
    sidebus::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[test]
fn spec_routes_are_exactly_the_served_routes() {
    let spec = Spec::load();
    assert_eq!(spec.doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    assert_eq!(
        spec.operations(),
        routes(),
        "openapi/openapi.yaml and sidebus::api::ROUTES differ"
    );
    assert_eq!(
        routes(),
        [
            ("post", PUBLISH),
            ("post", PUBLISH_BATCH),
            ("get", HEALTHZ),
            ("get", READYZ),
            ("get", METRICS),
            ("get", BROKERS),
            ("get", SUBSCRIPTIONS),
            ("get", SUBSCRIPTION),
            ("put", SUBSCRIPTION),
            ("delete", SUBSCRIPTION),
            ("post", SUBSCRIPTION_PAUSE),
            ("post", SUBSCRIPTION_RESUME),
            ("get", SUBSCRIBE_SSE),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect(),
        "this test's route constants are out of date"
    );
}

#[test]
fn spec_is_well_formed() {
    let spec = Spec::load();
    // Every $ref resolves.
    fn walk(spec: &Spec, value: &Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    spec.resolve(value);
                }
                map.values().for_each(|v| walk(spec, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(spec, v)),
            _ => {}
        }
    }
    walk(&spec, &spec.doc);
    let mut ids = BTreeSet::new();
    for (method, path) in spec.operations() {
        let op = spec.operation(&method, &path);
        let id = op["operationId"]
            .as_str()
            .expect("every operation has an operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{method} {path}: response key {status} is not a status code"
            );
            let response = spec.resolve(response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}"
            );
            let code: u16 = status.parse().unwrap();
            if code >= 400 {
                let content = response["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}: errors are problem+json"
                );
            }
            if code == 429 || code == 503 {
                assert!(
                    response["headers"].get("Retry-After").is_some(),
                    "{method} {path} {status} documents Retry-After"
                );
            }
        }
        // Every path parameter is declared.
        let mut declared: BTreeSet<String> = BTreeSet::new();
        let item = &spec.doc["paths"][&path];
        for params in [&item["parameters"], &op["parameters"]] {
            for p in params.as_array().into_iter().flatten() {
                let p = spec.resolve(p);
                if p["in"] == "path" {
                    declared.insert(p["name"].as_str().unwrap().to_string());
                }
            }
        }
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, in_path, "{method} {path}: path parameters");
    }
}

#[test]
fn checker_catches_what_it_should() {
    let spec = Spec::load();
    let schema = serde_json::json!({"$ref": "#/components/schemas/PublishResult"});
    assert!(spec
        .validate(
            &schema,
            &serde_json::json!({"id":"a","broker":"b","topic":"t","offset":3})
        )
        .is_empty());
    let errors = spec.validate(
        &schema,
        &serde_json::json!({"id":"a","topic":1,"extra":true}),
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    let batch = serde_json::json!({"$ref": "#/components/schemas/BatchResult"});
    let ok = serde_json::json!({"results":[{"id":"a","status":200},{"status":400,"error":{
        "type":"urn:sidebus:problem:bad-request","title":"t","status":400,"detail":"d"}}],"failed":1});
    assert!(spec.validate(&batch, &ok).is_empty());
    let neither = serde_json::json!({"results":[{"status":500}],"failed":1});
    assert!(!spec.validate(&batch, &neither).is_empty());
    let brokers = serde_json::json!({"$ref": "#/components/schemas/Broker"});
    let down = serde_json::json!({"name":"x","kind":"amqp","connected":false,"last_error":null});
    assert!(spec.validate(&brokers, &down).is_empty());
    let bad = serde_json::json!({"name":"x","kind":"mqtt","connected":"no","last_error":1});
    assert_eq!(spec.validate(&brokers, &bad).len(), 3);
    let subscription = json!({"$ref": "#/components/schemas/Subscription"});
    let view = json!({"name":"s","origin":"runtime","broker":"b","topic":"t","endpoint":ENDPOINT,
        "start":"latest","ordering":"key","max_in_flight":64,"timeout":"10s",
        "retry":{"max_attempts":8,"initial_backoff":"200ms","max_backoff":"30s"},
        "content_mode":"binary","max_batch":100,"secret":"whsec_***",
        "status":{"state":"running","delivered":0,"retried":0,"failed":0,"dead_lettered":0,
            "in_flight":0,"lag":null,"last_error":null}});
    assert!(spec.validate(&subscription, &view).is_empty());
    let mut bad = patched(
        &view,
        json!({"origin":"file","secret":SECRET,"endpont":"x"}),
    );
    bad["status"]["state"] = json!("stopped");
    bad["status"]["lag"] = json!("none");
    bad["retry"] = json!({"max_attempts":8});
    let errors = spec.validate(&subscription, &bad);
    assert_eq!(errors.len(), 7, "{errors:?}");
    let request = json!({"$ref": "#/components/schemas/SubscriptionSpec"});
    assert!(spec
        .validate(
            &request,
            &json!({"broker":"b","topic":"t","endpoint":ENDPOINT})
        )
        .is_empty());
    let errors = spec.validate(&request, &json!({"broker":"b","topic":"t","max_batch":0}));
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let spec = Spec::load();
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(state.path())).await;
    let topic = common::unique_topic("openapi");
    let one = format!("/v1/publish/default/{topic}");
    let batch = format!("{one}/batch");
    let text = [("content-type", "text/plain")];
    let structured = [("content-type", "application/cloudevents+json")];
    let batch_json = [("content-type", "application/cloudevents-batch+json")];
    let ndjson = [("content-type", "application/x-ndjson")];

    // POST /v1/publish/{broker}/{topic}
    let body = spec
        .check("post", PUBLISH, server.post(&one, &text, "hello").await)
        .await
        .unwrap();
    assert_eq!(
        (body["broker"].as_str(), body["offset"].as_i64()),
        (Some("default"), Some(0))
    );
    let async_headers = [("content-type", "text/plain"), ("prefer", "respond-async")];
    let response = server.post(&one, &async_headers, "later").await;
    assert_eq!(response.status(), 202);
    spec.check("post", PUBLISH, response).await;
    let event = r#"{"specversion":"1.0","id":"s1","type":"t","ext1":5,"data":{"a":1}}"#;
    let body = spec
        .check("post", PUBLISH, server.post(&one, &structured, event).await)
        .await
        .unwrap();
    assert_eq!(body["id"], "s1");
    let keyed = [("content-type", "text/plain"), ("idempotency-key", "k-1")];
    let first = spec
        .check("post", PUBLISH, server.post(&one, &keyed, "pay").await)
        .await;
    let replay = server.post(&one, &keyed, "pay").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let again = spec.check("post", PUBLISH, replay).await;
    assert_eq!(first, again);
    let errors: Vec<Case> = vec![
        (one.clone(), keyed.to_vec(), b"other".to_vec(), 422),
        (
            one.clone(),
            vec![("idempotency-key", "")],
            b"x".to_vec(),
            400,
        ),
        ("/v1/publish/nope/t".into(), vec![], b"x".to_vec(), 404),
        (
            "/v1/publish/default/bad%20topic".into(),
            vec![],
            b"x".to_vec(),
            400,
        ),
        (
            one.clone(),
            vec![("ce-specversion", "0.3")],
            b"x".to_vec(),
            400,
        ),
        (one.clone(), structured.to_vec(), b"{}".to_vec(), 400),
        (one.clone(), text.to_vec(), vec![b'x'; 2048], 413),
        (one.clone(), text.to_vec(), vec![b'x'; 70_000], 413),
        (one.clone(), batch_json.to_vec(), b"[]".to_vec(), 415),
    ];
    for (path, headers, body, status) in errors {
        let response = server.post(&path, &headers, body).await;
        assert_eq!(response.status(), status, "POST {path} {headers:?}");
        let problem = spec.check("post", PUBLISH, response).await.unwrap();
        assert_eq!(problem["status"], status);
    }

    // POST /v1/publish/{broker}/{topic}/batch
    let entries = r#"[{"specversion":"1.0","id":"a","data":1},{"id":"broken"},{"specversion":"1.0","data_base64":"AAEC"}]"#;
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &batch_json, entries).await,
        )
        .await
        .unwrap();
    assert_eq!(body["failed"], 1);
    assert_eq!(body["results"][1]["status"], 400);
    let lines = "{\"specversion\":\"1.0\",\"id\":\"n1\",\"data\":1}\n{oops\n";
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &ndjson, lines).await,
        )
        .await
        .unwrap();
    assert_eq!(body["results"][0]["id"], "n1");
    let big = format!(
        "{{\"specversion\":\"1.0\",\"data\":\"{}\"}}\n",
        "x".repeat(2000)
    );
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &ndjson, big).await,
        )
        .await
        .unwrap();
    assert_eq!(body["results"][0]["status"], 413);
    let async_batch = [
        ("content-type", "application/x-ndjson"),
        ("prefer", "respond-async"),
    ];
    let response = server.post(&batch, &async_batch, lines).await;
    assert_eq!(response.status(), 202);
    let body = spec.check("post", PUBLISH_BATCH, response).await.unwrap();
    assert_eq!(body["results"][0]["status"], 202);
    let keyed = [
        ("content-type", "application/x-ndjson"),
        ("idempotency-key", "b-1"),
    ];
    let line = "{\"specversion\":\"1.0\",\"data\":1}\n";
    let first = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &keyed, line).await,
        )
        .await;
    let replay = server.post(&batch, &keyed, line).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(first, spec.check("post", PUBLISH_BATCH, replay).await);
    let errors: Vec<Case> = vec![
        (
            batch.clone(),
            keyed.to_vec(),
            b"{\"specversion\":\"1.0\"}".to_vec(),
            422,
        ),
        (batch.clone(), batch_json.to_vec(), b"[]".to_vec(), 400),
        (
            batch.clone(),
            batch_json.to_vec(),
            b"{\"a\":1}".to_vec(),
            400,
        ),
        (batch.clone(), text.to_vec(), b"x".to_vec(), 415),
        (
            "/v1/publish/nope/t/batch".into(),
            ndjson.to_vec(),
            line.into(),
            404,
        ),
        (
            batch.clone(),
            ndjson.to_vec(),
            line.repeat(11).into_bytes(),
            413,
        ),
    ];
    for (path, headers, body, status) in errors {
        let response = server.post(&path, &headers, body).await;
        assert_eq!(response.status(), status, "POST {path} {headers:?}");
        spec.check("post", PUBLISH_BATCH, response).await;
    }

    // Admin routes.
    let get = |path: &'static str| {
        let request = server.http.get(server.url(path));
        async move { request.send().await.unwrap() }
    };
    let body = spec
        .check("get", HEALTHZ, get(HEALTHZ).await)
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    let body = spec.check("get", READYZ, get(READYZ).await).await.unwrap();
    assert_eq!(body["brokers"][0]["name"], "default");
    let metrics = get(METRICS).await;
    assert_eq!(metrics.status(), 200);
    spec.check("get", METRICS, metrics).await;
    let body = spec
        .check("get", BROKERS, get(BROKERS).await)
        .await
        .unwrap();
    assert_eq!(body["brokers"][0]["kind"], "memory");

    // A broker that is down: 503 with Retry-After from publish and readiness.
    let down = TestServer::start_unready(&down_config(state.path())).await;
    let response = down.post("/v1/publish/down/t", &text, "x").await;
    assert_eq!(response.status(), 503);
    spec.check("post", PUBLISH, response).await;
    let response = down
        .post(
            "/v1/publish/down/t/batch",
            &ndjson,
            format!("{line}{{oops\n"),
        )
        .await;
    let body = spec.check("post", PUBLISH_BATCH, response).await.unwrap();
    assert_eq!(body["results"][0]["status"], 503, "{body}");
    assert_eq!(body["failed"], 2);
    let response = down.http.get(down.url(READYZ)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    spec.check("get", READYZ, response).await;
    let response = down.http.get(down.url(BROKERS)).send().await.unwrap();
    let body = spec.check("get", BROKERS, response).await.unwrap();
    assert_eq!(body["brokers"][0]["connected"], false);

    subscriptions(&spec, &server, state.path()).await;
    sse(&spec, &server).await;

    let hit = spec.hit.lock().unwrap().clone();
    assert_eq!(hit, routes(), "every route was exercised");
}

#[tokio::test]
async fn paths_and_methods_not_served_are_problem_json() {
    let spec = Spec::load();
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(state.path())).await;
    let problem = serde_json::json!({"$ref": "#/components/schemas/Problem"});
    let requests = [
        (reqwest::Method::GET, "/nothing-here", 404, "no-route"),
        (
            reqwest::Method::POST,
            "/v1/publish/default/a/b/c",
            404,
            "no-route",
        ),
        (
            reqwest::Method::GET,
            "/v1/publish/default/t",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/brokers",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::POST,
            "/v1/subscriptions",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/subscriptions/from-config/pause",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::PUT,
            "/v1/subscriptions/a/b/c",
            404,
            "no-route",
        ),
    ];
    for (method, path, status, slug) in requests {
        let response = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        let errors = spec.validate(&problem, &body);
        assert!(errors.is_empty(), "{method} {path}: {errors:?}");
        assert_eq!(body["type"], format!("urn:sidebus:problem:{slug}"));
    }
}

/// Every subscription route, answered as documented: create, replace, refuse, read, list,
/// pause, resume, delete, a delivery that fails, and a state directory that cannot be written.
async fn subscriptions(spec: &Spec, server: &TestServer, state_dir: &Path) {
    let sub = "/v1/subscriptions/orders-hook";
    let missing = "/v1/subscriptions/missing";
    let topic = common::unique_topic("openapi-sub");
    let get = |path: &str| {
        let request = server.http.get(server.url(path));
        async move { request.send().await.expect("request reaches sidebus") }
    };

    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config"]);
    assert_eq!(list["subscriptions"][0]["origin"], "config");

    // PUT: create with defaults, the same again, replace with every field.
    let minimal = json!({"broker": "default", "topic": topic, "endpoint": ENDPOINT});
    let response = send(server, Method::PUT, sub, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 201);
    let mut created = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    assert_eq!(
        (&created["name"], &created["origin"]),
        (&json!("orders-hook"), &json!("runtime"))
    );
    let defaults = json!({"start": "latest", "ordering": "key", "max_in_flight": 64,
        "timeout": "10s", "content_mode": "binary", "max_batch": 100,
        "retry": {"max_attempts": 8, "initial_backoff": "200ms", "max_backoff": "30s"}});
    for (field, value) in defaults.as_object().unwrap() {
        assert_eq!(&created[field], value, "default of {field}: {created}");
    }
    for unset in ["group", "dead_letter", "secret", "rate_limit"] {
        assert!(created.get(unset).is_none(), "{unset} is absent: {created}");
    }
    let response = send(server, Method::PUT, sub, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 200, "the same spec again is no change");
    let mut again = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    created.as_object_mut().unwrap().remove("status");
    again.as_object_mut().unwrap().remove("status");
    assert_eq!(again, created);
    let full = json!({"name": "orders-hook", "broker": "default", "topic": topic,
        "endpoint": ENDPOINT, "group": "billing", "start": "earliest", "ordering": "none",
        "max_in_flight": 4, "timeout": "2s",
        "retry": {"max_attempts": 3, "initial_backoff": "50ms", "max_backoff": "1s"},
        "dead_letter": format!("{topic}.dlq"), "content_mode": "batch", "max_batch": 10,
        "secret": SECRET, "rate_limit": 100});
    let response = send(server, Method::PUT, sub, JSON, full.to_string()).await;
    assert_eq!(response.status(), 200, "replaced");
    let replaced = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    for (field, value) in full.as_object().unwrap() {
        let shown = if field == "secret" {
            &json!("whsec_***")
        } else {
            value
        };
        assert_eq!(&replaced[field], shown, "{field}: {replaced}");
    }
    let saved = std::fs::read_to_string(state_dir.join("subscriptions.json"))
        .expect("runtime subscriptions are saved in state_dir");
    assert!(
        saved.contains("orders-hook") && !saved.contains("from-config"),
        "{saved}"
    );

    // PUT refused: 400 naming the field, 415, 409; nothing changes.
    let bad = |patch: Value| patched(&minimal, patch).to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (sub, bad(json!({"endpont": ENDPOINT})), "endpont"),
        (
            sub,
            json!({"broker": "default", "topic": topic}).to_string(),
            "endpoint",
        ),
        (sub, bad(json!({"broker": "nope"})), "broker"),
        (
            sub,
            bad(json!({"endpoint": "ftp://127.0.0.1/x"})),
            "endpoint",
        ),
        (sub, bad(json!({"max_in_flight": 0})), "max_in_flight"),
        (sub, bad(json!({"max_in_flight": "many"})), "max_in_flight"),
        (sub, bad(json!({"timeout": "soon"})), "timeout"),
        (
            sub,
            bad(json!({"retry": {"max_attempts": 0}})),
            "retry.max_attempts",
        ),
        (sub, bad(json!({"ordering": "random"})), "ordering"),
        (sub, bad(json!({"dead_letter": topic})), "dead_letter"),
        (sub, bad(json!({"secret": "plain"})), "secret"),
        (sub, bad(json!({"rate_limit": 0})), "rate_limit"),
        (sub, bad(json!({"name": "other"})), "name"),
        ("/v1/subscriptions/bad%20name", minimal.to_string(), "name"),
        (sub, "{".into(), ""),
        (sub, "[]".into(), ""),
    ];
    for (path, body, field) in cases {
        let response = send(server, Method::PUT, path, JSON, body.clone()).await;
        assert_eq!(response.status(), 400, "PUT {path} {body}");
        let problem = spec.check("put", SUBSCRIPTION, response).await.unwrap();
        assert_eq!(problem["type"], "urn:sidebus:problem:bad-request");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{body}: `{detail}` names {field}");
    }
    for headers in [&[("content-type", "text/plain")][..], &[]] {
        let response = send(server, Method::PUT, sub, headers, minimal.to_string()).await;
        assert_eq!(response.status(), 415, "{headers:?}");
        spec.check("put", SUBSCRIPTION, response).await;
    }
    let from_config = "/v1/subscriptions/from-config";
    let response = send(server, Method::PUT, from_config, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 409);
    spec.check("put", SUBSCRIPTION, response).await;

    // GET one, GET all.
    let shown = spec
        .check("get", SUBSCRIPTION, get(sub).await)
        .await
        .unwrap();
    assert_eq!(
        shown["max_in_flight"], 4,
        "refused PUTs changed nothing: {shown}"
    );
    let response = get(missing).await;
    assert_eq!(response.status(), 404);
    spec.check("get", SUBSCRIPTION, response).await;
    let response = get("/v1/subscriptions/bad%20name").await;
    assert_eq!(response.status(), 404);
    spec.check("get", SUBSCRIPTION, response).await;
    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config", "orders-hook"]);

    // Pause and resume, runtime and config subscriptions alike.
    for name in ["orders-hook", "from-config"] {
        let pause = format!("/v1/subscriptions/{name}/pause");
        let resume = format!("/v1/subscriptions/{name}/resume");
        for _ in 0..2 {
            let response = send(server, Method::POST, &pause, &[], "").await;
            assert_eq!(response.status(), 200);
            let body = spec
                .check("post", SUBSCRIPTION_PAUSE, response)
                .await
                .unwrap();
            assert_eq!(body["status"]["state"], "paused", "{body}");
        }
        let shown = get(&format!("/v1/subscriptions/{name}")).await;
        let shown = spec.check("get", SUBSCRIPTION, shown).await.unwrap();
        assert_eq!(shown["status"]["state"], "paused");
        let response = send(server, Method::POST, &resume, &[], "").await;
        assert_eq!(response.status(), 200);
        let body = spec
            .check("post", SUBSCRIPTION_RESUME, response)
            .await
            .unwrap();
        assert_ne!(body["status"]["state"], "paused", "{body}");
    }
    for (path, route) in [
        (format!("{missing}/pause"), SUBSCRIPTION_PAUSE),
        (format!("{missing}/resume"), SUBSCRIPTION_RESUME),
    ] {
        let response = send(server, Method::POST, &path, &[], "").await;
        assert_eq!(response.status(), 404);
        spec.check("post", route, response).await;
    }

    // DELETE.
    let response = send(server, Method::DELETE, from_config, &[], "").await;
    assert_eq!(response.status(), 409);
    spec.check("delete", SUBSCRIPTION, response).await;
    let response = send(server, Method::DELETE, sub, &[], "").await;
    assert_eq!(response.status(), 204);
    spec.check("delete", SUBSCRIPTION, response).await;
    for (method, response) in [
        ("delete", send(server, Method::DELETE, sub, &[], "").await),
        (
            "delete",
            send(server, Method::DELETE, missing, &[], "").await,
        ),
        ("get", get(sub).await),
    ] {
        assert_eq!(response.status(), 404, "{method} after delete");
        spec.check(method, SUBSCRIPTION, response).await;
    }
    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config"]);

    // A delivery that fails: the status shows the retries, the failure and the last error.
    let failing = "/v1/subscriptions/failing-hook";
    let failing_topic = common::unique_topic("openapi-failing");
    let spec_body = json!({"broker": "default", "topic": failing_topic, "endpoint": ENDPOINT,
        "start": "earliest", "timeout": "1s",
        "retry": {"max_attempts": 2, "initial_backoff": "10ms", "max_backoff": "20ms"}});
    let response = send(server, Method::PUT, failing, JSON, spec_body.to_string()).await;
    assert_eq!(response.status(), 201);
    spec.check("put", SUBSCRIPTION, response).await;
    let text = [("content-type", "text/plain")];
    let published = server
        .post(&format!("/v1/publish/default/{failing_topic}"), &text, "x")
        .await;
    assert_eq!(published.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = spec
            .check("get", SUBSCRIPTION, get(failing).await)
            .await
            .unwrap();
        let status = &shown["status"];
        if status["failed"] == 1 {
            assert!(status["retried"].as_u64() >= Some(1), "{shown}");
            assert!(status["last_error"].is_string(), "{shown}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = send(server, Method::DELETE, failing, &[], "").await;
    assert_eq!(response.status(), 204);

    // A state directory that cannot be written: 503 with Retry-After.
    let blocker = state_dir.join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = TestServer::start(&config(&blocker.join("state"))).await;
    let stuck = "/v1/subscriptions/unsaved";
    let response = send(&unwritable, Method::PUT, stuck, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 503);
    spec.check("put", SUBSCRIPTION, response).await;
    let response = send(
        &unwritable,
        Method::POST,
        &format!("{stuck}/pause"),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), 503);
    spec.check("post", SUBSCRIPTION_PAUSE, response).await;
    let response = send(
        &unwritable,
        Method::POST,
        &format!("{stuck}/resume"),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), 503);
    spec.check("post", SUBSCRIPTION_RESUME, response).await;
    let response = send(&unwritable, Method::DELETE, stuck, &[], "").await;
    assert_eq!(response.status(), 503);
    spec.check("delete", SUBSCRIPTION, response).await;
}

/// A request to the SSE route expected to fail: path, headers and the status it gets.
type SseCase = (String, Vec<(&'static str, String)>, u16);

/// `GET /v1/subscribe/{broker}/{topic}`: the refusals through `check`; a stream never ends, so
/// for the 200 only its status, headers and media type are held to the spec.
async fn sse(spec: &Spec, server: &TestServer) {
    let topic = common::unique_topic("openapi-sse");
    let stream = format!("/v1/subscribe/default/{topic}");
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let mut request = server.http.get(server.url(&path));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let accept = || ("accept", "text/event-stream".to_string());
    let response = get(stream.clone(), vec![accept()]).await.unwrap();
    assert_eq!(response.status(), 200);
    spec.hit
        .lock()
        .unwrap()
        .insert(("get".to_string(), SUBSCRIBE_SSE.to_string()));
    let documented = spec.response_spec("get", SUBSCRIBE_SSE, 200).unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        documented["content"].get(content_type).is_some(),
        "{content_type} is not documented"
    );
    for (name, header) in documented["headers"].as_object().unwrap() {
        let schema = &spec.resolve(header)["schema"];
        let value = response.headers()[name.to_ascii_lowercase().as_str()]
            .to_str()
            .unwrap();
        let errors = spec.validate(schema, &Value::from(value));
        assert!(errors.is_empty(), "header {name}: {errors:?}");
    }
    drop(response);
    let cursor = sidebus::delivery::sse::Position::JetStream(1).encode(&topic);
    let cases: Vec<SseCase> = vec![
        (stream.clone(), vec![], 406),
        (
            stream.clone(),
            vec![accept(), ("last-event-id", "nope".into())],
            400,
        ),
        (
            stream.clone(),
            vec![accept(), ("last-event-id", cursor)],
            400,
        ),
        (format!("{stream}?from=soon"), vec![accept()], 400),
        (format!("/v1/subscribe/nope/{topic}"), vec![accept()], 404),
    ];
    for (path, headers, status) in cases {
        let response = get(path.clone(), headers).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        spec.check("get", SUBSCRIBE_SSE, response).await;
    }
}
