//! A test server for the documented subset of the Confluent Schema Registry REST API that
//! sidebus uses (`GET /subjects/{subject}/versions/latest`, `GET /schemas/ids/{id}`), behind
//! HTTP Basic auth. No real registry can run here; this one follows the API reference's shapes:
//! `schemaType` is absent for Avro, `JSON` or `PROTOBUF` otherwise. Also the schema fixtures
//! and the independent readers the schema tests decode with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use base64::Engine;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;

/// An order as a JSON Schema.
pub const ORDER_JSON: &str = r#"{"type": "object", "required": ["id", "total"],
  "properties": {"id": {"type": "string"}, "total": {"type": "number", "minimum": 0},
    "lines": {"type": "array", "items": {"type": "object", "required": ["sku"],
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}}}}"#;

/// The order as an Avro record.
pub const ORDER_AVSC: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
  "fields": [{"name": "id", "type": "string"}, {"name": "total", "type": "double"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "tag", "type": ["null", "bytes"], "default": null}]}"#;

/// The order as a Protobuf message, `shop.v1.Order`.
pub const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop.v1;
message Order {
  string id = 1;
  double total = 2;
  repeated Line lines = 3;
  message Line { string sku = 1; int64 qty = 2; }
}
"#;

/// Writes the three schema files into `dir`.
pub fn schema_files(dir: &std::path::Path) {
    std::fs::write(dir.join("order.json"), ORDER_JSON).unwrap();
    std::fs::write(dir.join("order.avsc"), ORDER_AVSC).unwrap();
    std::fs::write(dir.join("order.proto"), ORDER_PROTO).unwrap();
}

/// `[[schemas]]` rules for broker `broker`: `<prefix>.json.*` JSON Schema, `<prefix>.avro.*`
/// native Avro, `<prefix>.proto.*` native Protobuf.
pub fn rules(dir: &std::path::Path, broker: &str, prefix: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[[schemas]]
name = "{prefix}-json"
broker = "{broker}"
topics = ["{prefix}.json.*"]
json_schema = "{d}/order.json"
[[schemas]]
name = "{prefix}-avro"
broker = "{broker}"
topics = ["{prefix}.avro.*"]
avro = "{d}/order.avsc"
encoding = "native"
[[schemas]]
name = "{prefix}-proto"
broker = "{broker}"
topics = ["{prefix}.proto.*"]
types = ["shop.order.>"]
protobuf = {{ file = "{d}/order.proto", message = "shop.v1.Order" }}
encoding = "native"
"#
    )
}

/// The independent Avro reader: apache-avro's datum reader with the schema parsed here.
pub fn read_avro(bytes: &[u8]) -> apache_avro::types::Value {
    let schema = apache_avro::Schema::parse_str(ORDER_AVSC).unwrap();
    apache_avro::from_avro_datum(&schema, &mut &bytes[..], None).unwrap()
}

/// The independent Protobuf reader: the file compiled from disk, `DynamicMessage::decode`.
pub fn read_proto(dir: &std::path::Path, bytes: &[u8]) -> DynamicMessage {
    let set = protox::compile([dir.join("order.proto")], [dir]).unwrap();
    let pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
    let message = pool.get_message_by_name("shop.v1.Order").unwrap();
    DynamicMessage::decode(message, bytes).unwrap()
}

pub fn proto_field(message: &DynamicMessage, name: &str) -> prost_reflect::Value {
    message.get_field_by_name(name).unwrap().into_owned()
}

/// One registered schema.
#[derive(Clone)]
pub struct Registered {
    /// Global id.
    pub id: u32,
    /// `None` = Avro; `JSON` or `PROTOBUF`.
    pub schema_type: Option<&'static str>,
    /// The schema text.
    pub schema: String,
}

#[derive(Default)]
struct Inner {
    subjects: HashMap<String, Registered>,
    ids: HashMap<u32, Registered>,
    /// Paths requested, in order (authorised or not).
    requests: Mutex<Vec<String>>,
    /// `Authorization` header every request must carry.
    authorization: String,
}

/// The registry; dropped with the test.
pub struct TestRegistry {
    /// Base URL.
    pub url: String,
    inner: Arc<Inner>,
}

impl TestRegistry {
    /// Serves `subjects` (each also by its id) and `extra` (by id only), requiring
    /// `user:password` as Basic auth.
    pub async fn start(
        subjects: Vec<(&str, Registered)>,
        extra: Vec<Registered>,
        user: &str,
        password: &str,
    ) -> Self {
        let mut inner = Inner {
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            ..Inner::default()
        };
        for (subject, registered) in subjects {
            inner.ids.insert(registered.id, registered.clone());
            inner.subjects.insert(subject.to_string(), registered);
        }
        for registered in extra {
            inner.ids.insert(registered.id, registered);
        }
        let inner = Arc::new(inner);
        let app = axum::Router::new()
            .route("/subjects/{subject}/versions/latest", get(latest))
            .route("/schemas/ids/{id}", get(by_id))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}"),
            inner,
        }
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner.requests.lock().unwrap().clone()
    }
}

/// Records the request; `false` when it lacks the expected `Authorization`.
fn authorised(inner: &Inner, headers: &HeaderMap, path: String) -> bool {
    inner.requests.lock().unwrap().push(path);
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    given == Some(inner.authorization.as_str())
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error_code": 401, "message": "Unauthorized"})),
    )
        .into_response()
}

fn answer(registered: &Registered, subject: Option<&str>) -> Response {
    let mut body = json!({"schema": registered.schema});
    if let Some(t) = registered.schema_type {
        body["schemaType"] = json!(t);
    }
    if let Some(subject) = subject {
        body["subject"] = json!(subject);
        body["version"] = json!(1);
        body["id"] = json!(registered.id);
    }
    (
        [("content-type", "application/vnd.schemaregistry.v1+json")],
        Json(body),
    )
        .into_response()
}

fn not_found(code: u32, message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

async fn latest(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorised(
        &inner,
        &headers,
        format!("/subjects/{subject}/versions/latest"),
    ) {
        return unauthorised();
    }
    match inner.subjects.get(&subject) {
        Some(registered) => answer(registered, Some(&subject)),
        None => not_found(40401, "Subject not found."),
    }
}

async fn by_id(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&inner, &headers, format!("/schemas/ids/{id}")) {
        return unauthorised();
    }
    match inner.ids.get(&id) {
        Some(registered) => answer(registered, None),
        None => not_found(40403, "Schema not found"),
    }
}
