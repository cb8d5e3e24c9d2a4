//! `POST /v1/publish/{broker}/{topic}` ([`single`]) and `.../batch` ([`batch`]): what both
//! routes share, from the request to the events' defaults; `Idempotency-Key` replays are in
//! [`replay`]. Both run their work through `api::observe`, for the span and request metrics.

mod batch;
mod replay;
mod shadow;
mod single;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::audit::{Audited, MAX_IDS};
use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::extract::{Body, Query};
use super::live::Live;
use super::observe::{Observed, Publisher, Trace};
use super::target::{resolve, Direction};
use super::AppState;
use crate::backend::{Outbound, Position};
use crate::event::trace::TraceContext;
use crate::event::{Defaults, Event};
use crate::pipeline::Broker;
use crate::policy::topics::Route;

pub use batch::publish_batch;
pub use single::publish_one;

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH_JSON: &str = "application/cloudevents-batch+json";
const NDJSON: &str = "application/x-ndjson";

/// Query parameters of both publish routes.
#[derive(Debug, Deserialize)]
pub struct PublishParams {
    /// Partition key for events that have no `partitionkey` attribute.
    key: Option<String>,
}

/// Body of a successful single publish (and of each successful batch entry): the id, broker and
/// topic, then the position's fields.
#[derive(Debug)]
struct Published<'a> {
    id: &'a str,
    broker: &'a str,
    topic: &'a str,
    position: Option<&'a Position>,
}

impl Serialize for Published<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("broker", self.broker)?;
        map.serialize_entry("topic", self.topic)?;
        if let Some(position) = self.position {
            position.serialize_fields(&mut map)?;
        }
        map.end()
    }
}

/// What the routes read of a publish request besides what [`prepare`] made of it.
struct Incoming {
    broker: String,
    topic: String,
    uri: Uri,
    headers: HeaderMap,
}

/// What a publish route was asked to do, before any event is parsed.
struct Request<'a> {
    broker: &'a Broker,
    caller: Caller,
    /// The policy this request runs under, from start to end.
    live: Arc<Live>,
    /// Where its events go: the physical topic, and the shadow copy's.
    route: Route,
    respond_async: bool,
    /// The request's `Idempotency-Key`, read once.
    idempotency_key: Option<String>,
    defaults: Defaults,
    body: Bytes,
}

/// Reads a publish request in the order its refusals are reported: the path, the query, the
/// caller, then the broker and topic are resolved, and only then may the body be refused: an
/// unknown broker or a forbidden topic is reported before a body that is too large.
async fn prepare<'a>(
    state: &'a AppState,
    observed: Observed,
) -> Result<(Request<'a>, Incoming), ApiError> {
    let Observed {
        path,
        publisher,
        mut parts,
        body,
    } = observed;
    let (broker, topic) = path?;
    let Query(params) = Query::<PublishParams>::from_request_parts(&mut parts, state).await?;
    let Publisher {
        caller,
        trace: Trace(trace),
    } = publisher?;
    let headers = std::mem::take(&mut parts.headers);
    let uri = std::mem::take(&mut parts.uri);
    let body = Body::from_request(axum::extract::Request::from_parts(parts, body), state).await;
    let found = resolve(state, &caller, &broker, &topic, Direction::Publish)?;
    let Body(body) = body?;
    let respond_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    let idempotency_key = replay::idempotency_key(&headers)?;
    let live = state.live_full();
    // One event is taken from the quotas before the body is parsed: a caller over its quota
    // costs this check and no more.
    if !live.quotas.is_empty() {
        live.quotas.reserve(caller.name(), &broker, &topic)?;
    }
    let route = live.topics.route(&broker, &Arc::from(topic.as_str()));
    let id_seed = idempotency_key
        .as_ref()
        .map(|k| format!("{broker}/{topic}/{k}"));
    let request = Request {
        broker: found,
        caller,
        route,
        respond_async,
        idempotency_key,
        defaults: Defaults {
            source: live.config.source.clone(),
            ty: "sidebus.event",
            max_event: live.config.limits.max_event,
            partition_key: params.key.filter(|k| !k.is_empty()),
            id_seed,
            trace: Some(trace.unwrap_or_else(TraceContext::new_root)),
        },
        live,
        body,
    };
    Ok((
        request,
        Incoming {
            broker,
            topic,
            uri,
            headers,
        },
    ))
}

impl Request<'_> {
    /// Takes the rest of `events` events (the first was reserved by [`prepare`]) and `bytes`
    /// payload bytes from every quota that applies to the caller and the topic, or refuses the
    /// whole request with 429.
    fn admit(&self, topic: &str, events: usize, bytes: usize) -> Result<(), ApiError> {
        let quotas = &self.live.quotas;
        if quotas.is_empty() {
            return Ok(());
        }
        let broker = &self.broker.name;
        Ok(quotas.admit_reserved(self.caller.name(), broker, topic, events, bytes)?)
    }

    /// Checks `event` against the first schema rule that matches it (and encodes it when the
    /// rule says `native`); a violation is counted under the rule and answered 422.
    fn check_schema(&self, topic: &str, event: Event) -> Result<Event, ApiError> {
        let schemas = self.live.schemas.schemas();
        if schemas.is_empty() {
            return Ok(event);
        }
        schemas
            .apply(&self.broker.name, topic, event)
            .map_err(|violation| {
                metrics::counter!(crate::telemetry::SCHEMA_REJECTED, "rule" => violation.rule.to_string())
                    .increment(1);
                ApiError::SchemaViolation {
                    detail: match violation.failures.as_slice() {
                        [only] => format!("{violation}: {} {}", only.pointer, only.detail),
                        failures => format!("{violation}: {} members fail", failures.len()),
                    },
                    errors: violation
                        .failures
                        .into_iter()
                        .map(|f| FieldError {
                            pointer: f.pointer,
                            detail: f.detail,
                        })
                        .collect(),
                }
            })
    }

    /// `events` as the broker gets them, on the physical topic; and their copies for the
    /// shadow topic when the rule names one (empty otherwise), for [`shadow::copy`] once the
    /// events themselves were taken.
    fn outbound(&self, events: Vec<Event>) -> (Vec<Outbound>, Vec<Outbound>) {
        let copies = match &self.route.shadow {
            Some(shadow) => events
                .iter()
                .map(|event| Outbound {
                    topic: shadow.clone(),
                    event: event.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        let outbound = events
            .into_iter()
            .map(|event| Outbound {
                topic: self.route.physical.clone(),
                event,
            })
            .collect();
        (outbound, copies)
    }

    /// What the audit log records of this publish, when it is kept.
    fn audited(
        &self,
        ids: impl Iterator<Item = String>,
        events: usize,
        bytes: usize,
    ) -> Option<Audited> {
        self.live.audit.as_ref()?;
        Some(Audited {
            physical_topic: Some(self.route.physical.clone()),
            events,
            bytes,
            ids: ids.take(MAX_IDS).collect(),
        })
    }
}

/// `response` carrying what the audit log records of it, when the log is kept.
fn with_audit(mut response: Response, audited: Option<Audited>) -> Response {
    if let Some(audited) = audited {
        response.extensions_mut().insert(audited);
    }
    response
}

/// The media type of the body, without parameters, as sent (compare it ignoring case).
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
}
