//! The optional API token on `/v1` routes.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;
use crate::api::AppState;

/// Requires `Authorization: Bearer <access.api_token>` on `/v1` paths when a token is set.
/// The comparison takes the same time whatever prefix of the token matches.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config().access.api_token.as_deref() else {
        return next.run(request).await;
    };
    if !request.uri().path().starts_with("/v1/") && request.uri().path() != "/v1" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let valid = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if valid {
        return next.run(request).await;
    }
    let detail = if presented.is_some() {
        "the bearer token is not valid"
    } else {
        "this route requires Authorization: Bearer <token>"
    };
    let mut response = ApiError::Unauthorized(detail.into()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sidebus\""),
    );
    response
}
