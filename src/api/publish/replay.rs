//! `Idempotency-Key` on the publish routes: a retried request within the window gets the first
//! response again (marked `idempotent-replayed: true`) and produces nothing new.

use std::hash::{Hash, Hasher};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;

use crate::api::error::ApiError;
use crate::api::idempotency::{parse_key, Begin, Claim, Stored};
use crate::api::AppState;

/// Response header set on a replayed idempotent response.
const REPLAYED: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, if it has one; a malformed key is `400`.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
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

/// Looks the request's idempotency `key` up: a replay or refusal ends the request here.
pub(super) fn claim_key(
    state: &AppState,
    route: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&str>,
) -> Result<Result<Option<Claim>, Response>, ApiError> {
    let Some(key) = key else {
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
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serialises a success, remembers it for the idempotency key, and builds the response.
pub(super) fn succeed(status: StatusCode, body: &impl Serialize, claim: Option<Claim>) -> Response {
    let mut json = Vec::with_capacity(256);
    serde_json::to_writer(&mut json, body).expect("response bodies serialise");
    let body = Bytes::from(json);
    if let Some(claim) = claim {
        claim.complete(Stored {
            status,
            body: body.clone(),
        });
    }
    json_response(status, body)
}
