//! The publish routes' observation: each request runs inside a `publish` span that joins the W3C
//! trace the request carries, and its status and latency are counted per broker. The publish
//! handlers run their work through [`publish`] (a call rather than a route layer, which would
//! cost a boxed future, a clone of the route and a second decoding of the path per request).

use std::future::Future;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Path;
use super::AppState;
use crate::event::trace::{self, TraceContext};
use crate::pipeline::meters::{status_label, Mode};
use crate::telemetry;

/// The trace context a publish hands to its events: the request's `traceparent`, continued by
/// the span when spans are exported; `None` when the request carries none.
#[derive(Debug, Clone)]
pub struct Trace(pub Option<TraceContext>);

/// Who sent a publish request and the trace its events continue.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The authenticated caller.
    pub caller: Caller,
    /// The trace context for the events.
    pub trace: Trace,
}

/// A publish request as [`publish`] hands it to the handler's work.
pub struct Observed {
    /// The path's broker and topic; a path that does not decode is a `400`.
    pub path: Result<(String, String), ApiError>,
    /// Who sent it; a request the guard did not authenticate fails closed with `401`.
    pub publisher: Result<Publisher, ApiError>,
    /// The rest of the request.
    pub parts: Parts,
    /// Its body, not read yet.
    pub body: axum::body::Body,
}

/// Runs a publish request's `work` (`mode` tells which route) inside its span, with the trace
/// context its events carry, and counts its status and latency under its broker.
pub async fn publish<W, F>(state: &AppState, mode: Mode, request: Request, work: W) -> Response
where
    W: FnOnce(Observed) -> F,
    F: Future<Output = Result<Response, ApiError>>,
{
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let path = Path::<(String, String)>::from_request_parts(&mut parts, state)
        .await
        .map(|Path(path)| path);
    let caller = parts.extensions.get::<Caller>().cloned();
    // A path that does not decode is refused by the work; it is counted under `unknown`.
    let (broker, topic) = match &path {
        Ok((broker, topic)) => (broker.as_str(), topic.as_str()),
        Err(_) => ("", ""),
    };
    let meters = state.broker(broker).map(|b| b.pipeline.meters());
    let principal = caller.as_ref().and_then(Caller::name).unwrap_or_default();
    let span = tracing::debug_span!("publish", %broker, %topic, mode = mode.label(), %principal);
    let incoming = trace::from_headers(&parts.headers);
    let context = telemetry::tracing::adopt(&span, incoming.as_ref()).or(incoming);
    let publisher = caller
        .map(|caller| Publisher {
            caller,
            trace: Trace(context),
        })
        .ok_or_else(|| ApiError::Unauthorized("the request was not authenticated".into()));
    let observed = Observed {
        path,
        publisher,
        parts,
        body,
    };
    let response = match work(observed).instrument(span).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let elapsed = started.elapsed();
    match meters {
        Some(meters) => meters.request(mode, response.status(), elapsed),
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
