//! The one API error type and its RFC 9457 `application/problem+json` rendering.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backend::consume::ConsumeError;
use crate::backend::PublishError;
use crate::delivery::RegistryError;
use crate::event::EventError;
use crate::pipeline::{SubmitError, RETRY_AFTER};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything an API request can fail with; each variant has one status and problem type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The event or body is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// A filter that does not compile (400); `position` is the 1-based character offset of a
    /// CESQL parse error in its expression.
    #[error("{detail}")]
    InvalidFilter {
        /// What is wrong.
        detail: String,
        /// Where in the expression, when it does not parse.
        position: Option<usize>,
    },
    /// A missing or wrong API token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The topic is not allowed for this direction (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown broker or route (404).
    #[error("{0}")]
    NotFound(String),
    /// No route matches the path (404).
    #[error("{0}")]
    NoRoute(String),
    /// The method is not served on this path (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// An idempotent request with the same key is still being processed (409).
    #[error("{0}")]
    Conflict(String),
    /// The body, an event or the batch exceeds a limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The route cannot answer in a media type `Accept` names (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The content type is not one this route takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An `Idempotency-Key` was reused with a different request (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The event breaks the schema its topic requires (422); `errors` points at each failing
    /// member, as RFC 9457's `errors` extension does.
    #[error("{detail}")]
    SchemaViolation {
        /// What went wrong, as a whole.
        detail: String,
        /// One entry per failing member.
        errors: Vec<FieldError>,
    },
    /// The pipeline is full; retry after the given delay (429).
    #[error("{0}")]
    TooManyRequests(String, Duration),
    /// Every SSE stream slot is taken; retry after the given delay (429).
    #[error("{0}")]
    TooManyStreams(String, Duration),
    /// The broker cannot do what was asked (501).
    #[error("{0}")]
    NotImplemented(String),
    /// The broker refused the event (502).
    #[error("{0}")]
    BadGateway(String),
    /// The broker is unreachable or sidebus is stopping; retry after the given delay (503).
    #[error("{0}")]
    Unavailable(String, Duration),
    /// The state directory could not be written (503).
    #[error("{0}")]
    StateUnwritable(String),
    /// The broker did not acknowledge in time (504).
    #[error("{0}")]
    GatewayTimeout(String),
    /// The broker could not take the event and its spool is full or failing (507).
    #[error("{0}")]
    SpoolFull(String),
    /// A quota has no room for the request now (429, with the rate-limit headers).
    #[error(transparent)]
    QuotaExceeded(#[from] crate::quota::Exceeded),
}

/// The problem+json body.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Problem {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words a user can act on.
    pub detail: String,
    /// For a filter that does not parse: the 1-based character offset in its expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Where in the request it went wrong, one entry per member (RFC 9457 §3.2 extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One failing member of a request: a JSON Pointer into the (structured) event and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the member, e.g. `/data/total`.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidFilter { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) | ApiError::SchemaViolation { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests(..)
            | ApiError::TooManyStreams(..)
            | ApiError::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(..) | ApiError::StateUnwritable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::SpoolFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Malformed event or request"),
            ApiError::InvalidFilter { .. } => ("invalid-filter", "Filter does not compile"),
            ApiError::Unauthorized(_) => ("unauthorized", "Missing or invalid API token"),
            ApiError::Forbidden(_) => ("forbidden", "Topic not allowed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::NoRoute(_) => ("no-route", "No such route"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict with the current state"),
            ApiError::TooLarge(_) => ("too-large", "Request or event too large"),
            ApiError::NotAcceptable(_) => ("not-acceptable", "Not acceptable"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported content type")
            }
            ApiError::Unprocessable(_) => ("idempotency-mismatch", "Idempotency key reused"),
            ApiError::SchemaViolation { .. } => ("schema-violation", "Event violates its schema"),
            ApiError::TooManyRequests(..) => ("pipeline-full", "Pipeline full"),
            ApiError::TooManyStreams(..) => ("too-many-streams", "Too many streams"),
            ApiError::NotImplemented(_) => ("not-implemented", "Not supported by this broker"),
            ApiError::BadGateway(_) => ("broker-rejected", "Broker rejected the event"),
            ApiError::Unavailable(..) => ("broker-unavailable", "Broker unavailable"),
            ApiError::StateUnwritable(_) => ("state-unwritable", "State directory not writable"),
            ApiError::GatewayTimeout(_) => ("broker-timeout", "Broker acknowledgement timed out"),
            ApiError::SpoolFull(_) => ("spool-full", "Broker unavailable and spool full"),
            ApiError::QuotaExceeded(_) => ("quota-exceeded", "Quota exceeded"),
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        Problem {
            problem_type: format!("urn:sidebus:problem:{slug}"),
            title: title.to_string(),
            status: self.status().as_u16(),
            detail: self.to_string(),
            position: match self {
                ApiError::InvalidFilter { position, .. } => *position,
                _ => None,
            },
            errors: match self {
                ApiError::SchemaViolation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests(_, d)
            | ApiError::TooManyStreams(_, d)
            | ApiError::Unavailable(_, d) => Some(*d),
            ApiError::StateUnwritable(_) => Some(RETRY_AFTER),
            ApiError::SpoolFull(_) => Some(crate::spool::FULL_RETRY_AFTER),
            ApiError::QuotaExceeded(e) => Some(e.wait.max(Duration::from_secs(1))),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).expect("a problem always serialises");
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(delay) = self.retry_after() {
            // Whole seconds, rounded up: a client that waits that long finds room.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let ApiError::QuotaExceeded(e) = &self {
            for (name, value) in [("ratelimit-policy", &e.policy), ("ratelimit", &e.state)] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            }
        }
        response
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Invalid(msg) => ApiError::BadRequest(msg),
            e @ EventError::MissingAttribute(_) => ApiError::BadRequest(e.to_string()),
            e @ EventError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Spec(_) => ApiError::BadRequest(e.to_string()),
            RegistryError::Filter(ref filter) => ApiError::InvalidFilter {
                position: filter.position,
                detail: e.to_string(),
            },
            RegistryError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RegistryError::FromConfig(_) => ApiError::Conflict(e.to_string()),
            RegistryError::Persist { .. } => ApiError::StateUnwritable(e.to_string()),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Unavailable(_) => ApiError::Unavailable(e.to_string(), RETRY_AFTER),
            PublishError::Rejected(_) => ApiError::BadGateway(e.to_string()),
            PublishError::Timeout(_) => ApiError::GatewayTimeout(e.to_string()),
            PublishError::InvalidTopic(msg) => ApiError::BadRequest(msg),
            PublishError::SpoolRefused(_) => ApiError::SpoolFull(e.to_string()),
        }
    }
}

impl From<ConsumeError> for ApiError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Unavailable(_) => ApiError::Unavailable(e.to_string(), RETRY_AFTER),
            ConsumeError::Invalid(msg) => ApiError::BadRequest(msg),
            ConsumeError::Unsupported(msg) => ApiError::NotImplemented(msg),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Full { .. } => ApiError::TooManyRequests(e.to_string(), RETRY_AFTER),
            SubmitError::Closed => ApiError::Unavailable(e.to_string(), RETRY_AFTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problem_json_with_retry_after() {
        let response =
            ApiError::TooManyRequests("full".into(), Duration::from_secs(2)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem.status, 429);
        assert_eq!(problem.problem_type, "urn:sidebus:problem:pipeline-full");
        assert_eq!(problem.detail, "full");
        assert!(!String::from_utf8_lossy(&body).contains("errors"));
    }

    #[tokio::test]
    async fn a_schema_violation_points_at_each_member() {
        let error = ApiError::SchemaViolation {
            detail: "the event breaks schema `orders`".into(),
            errors: vec![FieldError {
                pointer: "/data/total".into(),
                detail: "\"x\" is not of type \"number\"".into(),
            }],
        };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:sidebus:problem:schema-violation");
        assert_eq!(problem["errors"][0]["pointer"], "/data/total");
        assert_eq!(problem["errors"].as_array().unwrap().len(), 1);
    }
}
