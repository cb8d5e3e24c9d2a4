//! `POST /v1/publish/{broker}/{topic}`: one event, binary or structured mode.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::replay::{claim_key, succeed};
use super::{
    content_type, prepare, shadow, with_audit, Incoming, Published, BATCH_JSON, NDJSON, STRUCTURED,
};
use crate::api::error::ApiError;
use crate::api::observe::{self, Observed};
use crate::api::AppState;
use crate::event;
use crate::pipeline::meters::Mode;
use crate::pipeline::RETRY_AFTER;

/// `POST /v1/publish/{broker}/{topic}`: answers once the broker acknowledged the event, or at
/// once with `Prefer: respond-async`.
pub async fn publish_one(State(state): State<AppState>, request: Request) -> Response {
    observe::publish(&state, Mode::Single, request, |observed| {
        publish(&state, observed)
    })
    .await
}

async fn publish(state: &AppState, observed: Observed) -> Result<Response, ApiError> {
    let (
        request,
        Incoming {
            broker,
            topic,
            uri,
            headers,
        },
    ) = prepare(state, observed).await?;
    let body = &request.body;
    let ty = content_type(&headers);
    let event = if ty.eq_ignore_ascii_case(STRUCTURED) {
        event::parse_structured(body, body, &request.defaults)?
    } else if ty.eq_ignore_ascii_case(BATCH_JSON) || ty.eq_ignore_ascii_case(NDJSON) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "batches go to POST /v1/publish/{broker}/{topic}/batch"
        )));
    } else {
        event::parse_binary(&headers, body.clone(), &request.defaults)?
    };
    let bytes = event.data.len();
    request.admit(&topic, 1, bytes)?;
    let event = request.check_schema(&topic, event)?;
    let key = request.idempotency_key.as_deref();
    let claim = match claim_key(state, "single", &uri, &headers, body, key)? {
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
