//! A test server for the documented subset of the Confluent Schema Registry REST API that
//! sidebus uses (`GET /subjects/{subject}/versions/latest`, `GET /schemas/ids/{id}`), behind
//! HTTP Basic auth. No real registry can run here; this one follows the API reference's shapes:
//! `schemaType` is absent for Avro, `JSON` or `PROTOBUF` otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use base64::Engine;
use serde_json::json;

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
