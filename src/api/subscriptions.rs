//! `/v1/subscriptions`: webhook subscriptions managed at runtime.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::extract::{JsonBody, Path};
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::config::SubscriptionSpec;
use crate::policy::access::Action;

/// `PUT /v1/subscriptions/{name}`: create (201) or replace (200); the same spec again is a no-op.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<SubscriptionSpec>,
) -> Result<Response, ApiError> {
    caller.check(Action::ManageSubscriptions, "")?;
    if spec.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(
            "subscription field `name`: must match the name in the path (or be left out)".into(),
        ));
    }
    if !state.live().config.access.may_subscribe(&spec.topic) {
        return Err(ApiError::Forbidden(format!(
            "subscribing to topic `{}` is not allowed (access.subscribe)",
            spec.topic
        )));
    }
    caller.check(Action::Subscribe, &spec.topic)?;
    let created = state.subscriptions().put(&name, spec)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(state.subscriptions().get(&name)?)).into_response())
}

/// `GET /v1/subscriptions`.
pub async fn list(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({ "subscriptions": state.subscriptions().list() })).into_response()
}

/// `GET /v1/subscriptions/{name}`: the spec (secret redacted) and live status.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.subscriptions().get(&name)?).into_response())
}

/// `DELETE /v1/subscriptions/{name}`: stops it; what was in flight goes back to the broker.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.check(Action::ManageSubscriptions, "")?;
    state.subscriptions().delete(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/subscriptions/{name}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.check(Action::ManageSubscriptions, "")?;
    state.subscriptions().set_paused(&name, true)?;
    Ok(Json(state.subscriptions().get(&name)?).into_response())
}

/// `POST /v1/subscriptions/{name}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.check(Action::ManageSubscriptions, "")?;
    state.subscriptions().set_paused(&name, false)?;
    Ok(Json(state.subscriptions().get(&name)?).into_response())
}
