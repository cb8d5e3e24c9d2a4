//! Health, readiness, broker status and metrics.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::api::error::ApiError;
use crate::api::AppState;
use crate::pipeline::RETRY_AFTER;
use crate::spool::Backlog;

/// One entry of `GET /v1/brokers`.
#[derive(Debug, Serialize)]
struct BrokerInfo {
    name: String,
    kind: &'static str,
    connected: bool,
    last_error: Option<String>,
    /// What the broker's spool holds, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    spool: Option<Backlog>,
}

/// Body of `GET /v1/brokers`.
#[derive(Debug, Serialize)]
struct Brokers {
    brokers: Vec<BrokerInfo>,
}

fn broker_infos(state: &AppState) -> Vec<BrokerInfo> {
    state
        .brokers()
        .map(|b| {
            let status = b.backend.status();
            BrokerInfo {
                name: b.name.clone(),
                kind: b.backend.kind(),
                connected: status.connected,
                last_error: status.last_error,
                spool: b.pipeline.spool().map(|s| s.backlog()),
            }
        })
        .collect()
}

/// `GET /healthz`: the process is alive; says nothing about brokers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when every configured broker is reachable — or, for a broker with a
/// spool, while its spool has room —, else 503 naming the others.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let brokers = broker_infos(&state);
    let down: Vec<String> = brokers
        .iter()
        .filter(|b| !b.connected)
        .filter(|b| b.spool.as_ref().is_none_or(|s| s.bytes >= s.max_bytes))
        .map(|b| match &b.last_error {
            Some(e) => format!("{} ({e})", b.name),
            None => b.name.clone(),
        })
        .collect();
    if down.is_empty() {
        let mut body = serde_json::json!({ "status": "ready", "brokers": brokers });
        if let Some(audit) = &state.live().audit {
            body["audit_failures"] = serde_json::json!(audit.failures());
        }
        Json(body).into_response()
    } else {
        ApiError::Unavailable(
            format!("brokers not reachable: {}", down.join(", ")),
            RETRY_AFTER,
        )
        .into_response()
    }
}

/// `GET /v1/brokers`: each broker's kind, reachability and last error.
pub async fn brokers(State(state): State<AppState>) -> Response {
    Json(Brokers {
        brokers: broker_infos(&state),
    })
    .into_response()
}

/// `GET /v1/config`: the configuration in force — its file's hash, when it was applied, the
/// last reload that failed and what changed but needs a restart. Never a secret.
pub async fn config(State(state): State<AppState>) -> Response {
    Json(state.config_status()).into_response()
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.render_metrics().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
