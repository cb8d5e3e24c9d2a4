//! The publish routes' observation as one layer: each request runs inside a `publish` span that
//! joins the W3C trace the request carries, and its status and latency are counted per broker.
//! Handlers get the trace context the events carry as the [`Trace`] extension.

use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::event::trace::{self, TraceContext};
use crate::pipeline::meters::{status_label, Mode};
use crate::telemetry;

/// The trace context a publish hands to its events: the request's `traceparent`, continued by
/// the span when spans are exported; `None` when the request carries none.
#[derive(Debug, Clone)]
pub struct Trace(pub Option<TraceContext>);

/// What the layers found out about a publish request before its handler runs: who sent it and
/// the trace its events continue.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The authenticated caller.
    pub caller: Caller,
    /// The trace context for the events.
    pub trace: Trace,
}

impl<S: Send + Sync> FromRequestParts<S> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let trace = parts
            .extensions
            .get::<Trace>()
            .cloned()
            .unwrap_or(Trace(None));
        Ok(Self { caller, trace })
    }
}

/// Wraps a publish route (`batch` tells which): span, trace context, request metrics.
pub async fn publish(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    path: Result<Path<(String, String)>, PathRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let mode = match matched {
        Some(route) if route.as_str() == super::PUBLISH_BATCH => Mode::Batch,
        _ => Mode::Single,
    };
    // A path that does not decode is refused by the handler's own extractor; it is counted
    // under `unknown`.
    let (broker, topic) = path.map(|Path(p)| p).unwrap_or_default();
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let principal = caller.name().unwrap_or_default();
    let span = tracing::debug_span!("publish", %broker, %topic, mode = mode.label(), %principal);
    let incoming = trace::from_headers(request.headers());
    let context = telemetry::tracing::adopt(&span, incoming.as_ref()).or(incoming);
    request.extensions_mut().insert(Trace(context));
    let response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    match state.broker(&broker) {
        Some(b) => b
            .pipeline
            .meters()
            .request(mode, response.status(), elapsed),
        // Only configured names become label values, so a client cannot grow the label set.
        None => {
            let mode = mode.label();
            metrics::counter!(telemetry::PUBLISH_REQUESTS, "broker" => "unknown", "mode" => mode, "status" => status_label(response.status()))
                .increment(1);
            metrics::histogram!(telemetry::PUBLISH_LATENCY, "broker" => "unknown", "mode" => mode)
                .record(elapsed.as_secs_f64());
        }
    }
    response
}
