//! `POST /v1/publish/{broker}/{topic}` and `.../batch`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::extract::{Path, Query};
use super::idempotency::{parse_key, Begin, Claim, Stored};
use crate::backend::{Outbound, Position, PublishResult};
use crate::api::error::{ApiError, Problem};
use crate::event::{self, Defaults, Event, EventError};
use crate::pipeline::meters::{status_label, Mode};
use crate::api::AppState;
use crate::pipeline::Broker;
use crate::telemetry;
use crate::config::topic::validate_topic;
use crate::event::trace::TraceContext;

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH_JSON: &str = "application/cloudevents-batch+json";
const NDJSON: &str = "application/x-ndjson";
/// Response header set on a replayed idempotent response.
const REPLAYED: &str = "idempotent-replayed";

/// Query parameters of both publish routes.
#[derive(Debug, Deserialize)]
pub struct PublishParams {
    /// Partition key for events that have no `partitionkey` attribute.
    key: Option<String>,
}

/// Body of a successful single publish (and of each successful batch entry).
#[derive(Debug, Serialize)]
struct Published<'a> {
    id: &'a str,
    broker: &'a str,
    topic: &'a str,
    #[serde(flatten)]
    position: Option<&'a Position>,
}

/// One entry of a batch response.
#[derive(Debug, Serialize)]
struct EntryResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    status: u16,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    position: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

/// Body of a batch response.
#[derive(Debug, Serialize)]
struct BatchResponse {
    results: Vec<EntryResult>,
    failed: usize,
}

/// What a publish route was asked to do, before any event is parsed.
struct Request<'a> {
    broker: &'a Broker,
    topic: Arc<str>,
    respond_async: bool,
    defaults: Defaults,
}

fn prepare<'a>(
    state: &'a AppState,
    broker: &str,
    topic: &str,
    params: PublishParams,
    headers: &HeaderMap,
    trace: Option<TraceContext>,
    body: &Result<Bytes, BytesRejection>,
) -> Result<Request<'a>, ApiError> {
    let found = state
        .broker(broker)
        .ok_or_else(|| ApiError::NotFound(format!("no broker named `{broker}` is configured")))?;
    validate_topic(topic).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !state.config().access.may_publish(topic) {
        return Err(ApiError::Forbidden(format!(
            "publishing to topic `{topic}` is not allowed (access.publish)"
        )));
    }
    found
        .backend
        .check_topic(topic)
        .map_err(ApiError::BadRequest)?;
    if let Err(rejection) = body {
        return Err(match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
                "request body exceeds limits.max_body ({} bytes)",
                state.config().limits.max_body
            )),
            _ => ApiError::BadRequest(format!("could not read the request body: {rejection}")),
        });
    }
    let respond_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    let idempotency_key = idempotency_key(headers)?;
    Ok(Request {
        broker: found,
        topic: Arc::from(topic),
        respond_async,
        defaults: Defaults {
            source: state.config().source.clone(),
            ty: "sidebus.event",
            max_event: state.config().limits.max_event,
            partition_key: params.key.filter(|k| !k.is_empty()),
            id_seed: idempotency_key.map(|k| format!("{broker}/{topic}/{k}")),
            trace: Some(trace.unwrap_or_else(TraceContext::new_root)),
        },
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = parse_key(value.as_bytes()).ok_or_else(|| {
        ApiError::BadRequest(
            "Idempotency-Key must be 1-255 visible ASCII characters (inner spaces allowed, no \"), \
             optionally in double quotes"
                .into(),
        )
    })?;
    Ok(Some(key.to_string()))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Hash of everything that makes two requests "the same" for `Idempotency-Key`.
fn fingerprint(route: &str, query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    route.hash(&mut hasher);
    query.hash(&mut hasher);
    for (name, value) in headers {
        if name == header::CONTENT_TYPE || name.as_str().starts_with("ce-") {
            name.as_str().hash(&mut hasher);
            value.as_bytes().hash(&mut hasher);
        }
    }
    body.hash(&mut hasher);
    hasher.finish()
}

/// Looks the request's idempotency key up: a replay or refusal ends the request here.
fn claim_key(
    state: &AppState,
    route: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Result<Option<Claim>, Response>, ApiError> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(Ok(None));
    };
    let print = fingerprint(route, uri.query(), headers, body);
    match state
        .idempotency()
        .begin(format!("{}|{route}|{key}", uri.path()), print)
    {
        Begin::Fresh(claim) => Ok(Ok(Some(claim))),
        Begin::Replay(stored) => {
            let mut response = json_response(stored.status, stored.body);
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(Err(response))
        }
        Begin::InProgress => Err(ApiError::Conflict(format!(
            "a request with Idempotency-Key `{key}` is still being processed"
        ))),
        Begin::Mismatch => Err(ApiError::Unprocessable(format!(
            "Idempotency-Key `{key}` was used with a different request"
        ))),
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serialises a success, remembers it for the idempotency key, and builds the response.
fn succeed(status: StatusCode, body: &impl Serialize, claim: Option<Claim>) -> Response {
    let body = Bytes::from(serde_json::to_vec(body).expect("response bodies serialise"));
    if let Some(claim) = claim {
        claim.complete(Stored {
            status,
            body: body.clone(),
        });
    }
    json_response(status, body)
}

fn observe(state: &AppState, broker: &str, mode: Mode, started: Instant, response: &Response) {
    match state.broker(broker) {
        Some(b) => b
            .pipeline
            .meters()
            .request(mode, response.status(), started.elapsed()),
        // Only configured names become label values, so a client cannot grow the label set.
        None => {
            let mode = mode.label();
            metrics::counter!(telemetry::PUBLISH_REQUESTS, "broker" => "unknown", "mode" => mode, "status" => status_label(response.status()))
                .increment(1);
            metrics::histogram!(telemetry::PUBLISH_LATENCY, "broker" => "unknown", "mode" => mode)
                .record(started.elapsed().as_secs_f64());
        }
    }
}

/// The parts of a publish request its handlers share.
#[derive(Clone, Copy)]
struct Call<'a> {
    state: &'a AppState,
    broker: &'a str,
    topic: &'a str,
    uri: &'a axum::http::Uri,
    headers: &'a HeaderMap,
}

/// Runs a publish inside its span and records its status and latency. `work` gets the trace
/// context the events carry: the request's, continued by the span when spans are exported.
async fn observed<'a, F, Fut>(call: Call<'a>, mode: Mode, work: F) -> Response
where
    F: FnOnce(Call<'a>, Option<TraceContext>) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let started = Instant::now();
    let (broker, topic) = (call.broker, call.topic);
    let span = tracing::debug_span!("publish", %broker, %topic, mode = mode.label());
    let incoming = crate::event::trace::from_headers(call.headers);
    let trace = crate::telemetry::tracing::adopt(&span, incoming.as_ref()).or(incoming);
    let response = work(call, trace)
        .instrument(span)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    observe(call.state, broker, mode, started, &response);
    response
}

/// `POST /v1/publish/{broker}/{topic}`: one event, binary or structured mode.
pub async fn publish_one(
    State(state): State<AppState>,
    Path((broker, topic)): Path<(String, String)>,
    Query(params): Query<PublishParams>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        state: &state,
        broker: &broker,
        topic: &topic,
        uri: &uri,
        headers: &headers,
    };
    observed(call, Mode::Single, |call, trace| {
        publish_one_inner(call, params, trace, body)
    })
    .await
}

async fn publish_one_inner(
    call: Call<'_>,
    params: PublishParams,
    trace: Option<TraceContext>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Call {
        state,
        broker,
        topic,
        uri,
        headers,
    } = call;
    let request = prepare(state, broker, topic, params, headers, trace, &body)?;
    let body = body.expect("prepare rejects unreadable bodies");
    let event = match content_type(headers).as_str() {
        STRUCTURED => event::parse_structured(&body, &body, &request.defaults)?,
        BATCH_JSON | NDJSON => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "batches go to POST /v1/publish/{broker}/{topic}/batch"
            )))
        }
        _ => event::parse_binary(headers, body.clone(), &request.defaults)?,
    };
    let claim = match claim_key(state, "single", uri, headers, &body)? {
        Ok(claim) => claim,
        Err(replay) => return Ok(replay),
    };
    let id = event.id.clone();
    let waiting = request.broker.pipeline.submit(
        vec![Outbound {
            topic: request.topic.clone(),
            event,
        }],
        !request.respond_async,
    )?;
    let published = |position| Published {
        id: &id,
        broker,
        topic,
        position,
    };
    let Some(waiting) = waiting else {
        return Ok(succeed(StatusCode::ACCEPTED, &published(None), claim));
    };
    let mut results = waiting.await.map_err(|_| {
        ApiError::Unavailable("sidebus is stopping".into(), crate::pipeline::RETRY_AFTER)
    })?;
    let position = results.pop().expect("one result per event")?;
    Ok(succeed(StatusCode::OK, &published(Some(&position)), claim))
}

/// `POST /v1/publish/{broker}/{topic}/batch`: a JSON array or NDJSON of structured events.
pub async fn publish_batch(
    State(state): State<AppState>,
    Path((broker, topic)): Path<(String, String)>,
    Query(params): Query<PublishParams>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        state: &state,
        broker: &broker,
        topic: &topic,
        uri: &uri,
        headers: &headers,
    };
    observed(call, Mode::Batch, |call, trace| {
        publish_batch_inner(call, params, trace, body)
    })
    .await
}

async fn publish_batch_inner(
    call: Call<'_>,
    params: PublishParams,
    trace: Option<TraceContext>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Call {
        state,
        broker,
        topic,
        uri,
        headers,
    } = call;
    let request = prepare(state, broker, topic, params, headers, trace, &body)?;
    let body = body.expect("prepare rejects unreadable bodies");
    let parsed: Vec<Result<Event, EventError>> = match content_type(headers).as_str() {
        BATCH_JSON => event::parse_batch_json(&body, &request.defaults)?,
        NDJSON => event::parse_ndjson(&body, &request.defaults),
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "a batch is {BATCH_JSON} or {NDJSON}, not `{other}`"
            )))
        }
    };
    if parsed.is_empty() {
        return Err(ApiError::BadRequest("the batch has no events".into()));
    }
    let max_batch = state.config().limits.max_batch;
    if parsed.len() > max_batch {
        return Err(ApiError::TooLarge(format!(
            "the batch has {} events; the limit (limits.max_batch) is {max_batch}",
            parsed.len()
        )));
    }
    let claim = match claim_key(state, "batch", uri, headers, &body)? {
        Ok(claim) => claim,
        Err(replay) => return Ok(replay),
    };
    let mut ids = Vec::with_capacity(parsed.len());
    let mut outbound = Vec::with_capacity(parsed.len());
    let mut errors: Vec<Option<ApiError>> = Vec::with_capacity(parsed.len());
    for entry in parsed {
        match entry {
            Ok(event) => {
                ids.push(Some(event.id.clone()));
                errors.push(None);
                outbound.push(Outbound {
                    topic: request.topic.clone(),
                    event,
                });
            }
            Err(e) => {
                ids.push(None);
                errors.push(Some(e.into()));
            }
        }
    }
    let accepted = outbound.len();
    let waiting = if accepted > 0 {
        request
            .broker
            .pipeline
            .submit(outbound, !request.respond_async)?
    } else {
        None
    };
    let mut outcomes: std::vec::IntoIter<PublishResult> = match waiting {
        Some(waiting) => waiting.await.map_err(|_| {
            ApiError::Unavailable("sidebus is stopping".into(), crate::pipeline::RETRY_AFTER)
        })?,
        None => Vec::new(),
    }
    .into_iter();
    let ok_status = if request.respond_async {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut failed = 0;
    let results = ids
        .into_iter()
        .zip(errors)
        .map(|(id, error)| {
            let outcome = match error {
                Some(e) => Err(e),
                None if request.respond_async => Ok(None),
                None => outcomes
                    .next()
                    .expect("one result per submitted event")
                    .map(Some)
                    .map_err(ApiError::from),
            };
            match outcome {
                Ok(position) => EntryResult {
                    id,
                    status: ok_status.as_u16(),
                    position,
                    error: None,
                },
                Err(e) => {
                    failed += 1;
                    EntryResult {
                        id,
                        status: e.status().as_u16(),
                        position: None,
                        error: Some(e.problem()),
                    }
                }
            }
        })
        .collect();
    let status = if request.respond_async {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let claim = if failed == 0 { claim } else { None };
    Ok(succeed(status, &BatchResponse { results, failed }, claim))
}
