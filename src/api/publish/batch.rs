//! `POST /v1/publish/{broker}/{topic}/batch`: a JSON array or NDJSON of structured events, one
//! result per entry in order; a malformed entry fails alone and the others are produced.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::replay::{claim_key, succeed};
use super::{content_type, prepare, shadow, with_audit, Incoming, BATCH_JSON, NDJSON};
use crate::api::error::{ApiError, Problem};
use crate::api::observe::{self, Observed};
use crate::api::AppState;
use crate::backend::{Position, PublishResult};
use crate::event::{self, Event, EventError};
use crate::pipeline::meters::Mode;
use crate::pipeline::RETRY_AFTER;

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

/// `POST /v1/publish/{broker}/{topic}/batch`.
pub async fn publish_batch(State(state): State<AppState>, request: Request) -> Response {
    observe::publish(&state, Mode::Batch, request, |observed| {
        publish(&state, observed)
    })
    .await
}

async fn publish(state: &AppState, observed: Observed) -> Result<Response, ApiError> {
    let (
        request,
        Incoming {
            topic,
            uri,
            headers,
            ..
        },
    ) = prepare(state, observed).await?;
    let body = &request.body;
    let ty = content_type(&headers);
    let parsed: Vec<Result<Event, EventError>> = if ty.eq_ignore_ascii_case(BATCH_JSON) {
        event::parse_batch_json(body, &request.defaults)?
    } else if ty.eq_ignore_ascii_case(NDJSON) {
        event::parse_ndjson(body, &request.defaults)
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a batch is {BATCH_JSON} or {NDJSON}, not `{ty}`"
        )));
    };
    if parsed.is_empty() {
        return Err(ApiError::BadRequest("the batch has no events".into()));
    }
    let max_batch = request.live.config.limits.max_batch;
    if parsed.len() > max_batch {
        return Err(ApiError::TooLarge(format!(
            "the batch has {} events; the limit (limits.max_batch) is {max_batch}",
            parsed.len()
        )));
    }
    let key = request.idempotency_key.as_deref();
    let claim = match claim_key(state, "batch", &uri, &headers, body, key)? {
        Ok(claim) => claim,
        Err(replay) => return Ok(replay),
    };
    let mut ids = Vec::with_capacity(parsed.len());
    let mut events = Vec::with_capacity(parsed.len());
    let mut errors: Vec<Option<ApiError>> = Vec::with_capacity(parsed.len());
    for entry in parsed {
        let checked = entry
            .map_err(|e| (None, ApiError::from(e)))
            .and_then(|event| {
                let id = event.id.clone();
                request
                    .check_schema(&topic, event)
                    .map_err(|e| (Some(id), e))
            });
        match checked {
            Ok(event) => {
                ids.push(Some(event.id.clone()));
                errors.push(None);
                events.push(event);
            }
            Err((id, e)) => {
                ids.push(id);
                errors.push(Some(e));
            }
        }
    }
    let accepted = events.len();
    let bytes = events.iter().map(|e| e.data.len()).sum();
    request.admit(&topic, accepted, bytes)?;
    let audited = request.audited(events.iter().map(|e| e.id.clone()), accepted, bytes);
    let waiting = if accepted > 0 {
        let (outbound, copies) = request.outbound(events);
        let waiting = request
            .broker
            .pipeline
            .submit(outbound, !request.respond_async)?;
        shadow::copy(request.broker, copies);
        waiting
    } else {
        None
    };
    let mut outcomes: std::vec::IntoIter<PublishResult> = match waiting {
        Some(waiting) => waiting
            .await
            .map_err(|_| ApiError::Unavailable("sidebus is stopping".into(), RETRY_AFTER))?,
        None => Vec::new(),
    }
    .into_iter();
    // Without a receiver (respond-async, spool idle) nothing is known yet of the outcomes.
    let known = outcomes.len() > 0;
    let mut failed = 0;
    let mut spooled = 0;
    let results = ids
        .into_iter()
        .zip(errors)
        .map(|(id, error)| {
            let outcome = match error {
                Some(e) => Err(e),
                None if !known => Ok(None),
                None => outcomes
                    .next()
                    .expect("one result per submitted event")
                    .map(Some)
                    .map_err(ApiError::from),
            };
            match outcome {
                Ok(position) => {
                    let is_spooled = position.as_ref().is_some_and(|p| p.spooled);
                    spooled += usize::from(is_spooled);
                    let status = match request.respond_async || is_spooled {
                        true => StatusCode::ACCEPTED,
                        false => StatusCode::OK,
                    };
                    EntryResult {
                        id,
                        status: status.as_u16(),
                        position,
                        error: None,
                    }
                }
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
    // 202 when nothing reached the broker yet: respond-async, or every event spooled.
    let status = match request.respond_async || (spooled > 0 && spooled == accepted) {
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    let claim = if failed == 0 { claim } else { None };
    Ok(with_audit(
        succeed(status, &BatchResponse { results, failed }, claim),
        audited,
    ))
}
