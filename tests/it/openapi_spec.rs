//! Holds `openapi/openapi.yaml` to the router: the spec names exactly the routes sidebus serves,
//! it is well formed, and the schema checker the OpenAPI tests use catches what it should.

use std::collections::BTreeSet;

use crate::common::openapi::{
    patched, routes, Spec, BROKERS, BROKER_TOPICS, CONFIG, ENDPOINT, FILTERS_EVALUATE, HEALTHZ,
    METRICS, PUBLISH, PUBLISH_BATCH, READYZ, SECRET, SUBSCRIBE_SSE, SUBSCRIPTION, SUBSCRIPTIONS,
    SUBSCRIPTION_PAUSE, SUBSCRIPTION_RESUME,
};
use serde_json::{json, Value};

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
            ("get", BROKER_TOPICS),
            ("get", SUBSCRIPTIONS),
            ("get", SUBSCRIPTION),
            ("put", SUBSCRIPTION),
            ("delete", SUBSCRIPTION),
            ("post", SUBSCRIPTION_PAUSE),
            ("post", SUBSCRIPTION_RESUME),
            ("get", SUBSCRIBE_SSE),
            ("post", FILTERS_EVALUATE),
            ("get", CONFIG),
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
        "status":{"state":"running","delivered":0,"retried":0,"failed":0,"dead_lettered":0,"filtered":0,
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
