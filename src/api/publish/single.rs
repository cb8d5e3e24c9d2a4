//! `POST /v1/publish/{broker}/{topic}`: one event, binary or structured mode.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::replay::{claim_key, succeed};
use super::{
    content_type, prepare, shadow, with_audit, PublishParams, Published, BATCH_JSON, NDJSON,
    STRUCTURED,
};
use crate::api::error::ApiError;
use crate::api::extract::{Body, Path, Query};
use crate::api::observe::Publisher;
use crate::api::AppState;
use crate::event;
use crate::pipeline::RETRY_AFTER;

/// `POST /v1/publish/{broker}/{topic}`: answers once the broker acknowledged the event, or at
/// once with `Prefer: respond-async`.
pub async fn publish_one(
    State(state): State<AppState>,
    Path((broker, topic)): Path<(String, String)>,
    Query(params): Query<PublishParams>,
    publisher: Publisher,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Result<Response, ApiError> {
    let request = prepare(&state, publisher, &broker, &topic, params, &headers, body)?;
    let body = &request.body;
    let event = match content_type(&headers).as_str() {
        STRUCTURED => event::parse_structured(body, body, &request.defaults)?,
        BATCH_JSON | NDJSON => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "batches go to POST /v1/publish/{broker}/{topic}/batch"
            )))
        }
        _ => event::parse_binary(&headers, body.clone(), &request.defaults)?,
    };
    let bytes = event.data.len();
    request.admit(&topic, 1, bytes)?;
    let event = request.check_schema(&topic, event)?;
    let claim = match claim_key(&state, "single", &uri, &headers, body)? {
        Ok(claim) => claim,
        Err(replay) => return Ok(replay),
    };
    let id = event.id.clone();
    let audited = request.audited(std::iter::once(id.clone()), 1, bytes);
    let (outbound, copies) = request.outbound(vec![event]);
    let waiting = request
        .broker
        .pipeline
        .submit(outbound, !request.respond_async)?;
    shadow::copy(request.broker, copies);
    let published = |position| Published {
        id: &id,
        broker: &broker,
        topic: &topic,
        position,
    };
    let Some(waiting) = waiting else {
        let response = succeed(StatusCode::ACCEPTED, &published(None), claim);
        return Ok(with_audit(response, audited));
    };
    let mut results = waiting
        .await
        .map_err(|_| ApiError::Unavailable("sidebus is stopping".into(), RETRY_AFTER))?;
    let position = results.pop().expect("one result per event")?;
    let status = match request.respond_async || position.spooled {
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    Ok(with_audit(
        succeed(status, &published(Some(&position)), claim),
        audited,
    ))
}
