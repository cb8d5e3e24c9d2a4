//! Who is calling: the bearer token of a principal (or the one `access.api_token`) on `/v1`
//! routes, found before anything else of the request is read.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::audit::Record;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::policy::access::{Action, Principal};

/// The principal a request authenticated as; `None` when the API is open (no token and no
/// principals configured). Every request carries one, as an extension.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Arc<Principal>>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// Fails closed: a request that did not pass [`authenticate`] is never taken as open.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("the request was not authenticated".into()))
    }
}

impl Caller {
    /// `Ok` when the caller may do `action` on `topic`; else the `403` naming the principal,
    /// what it lacks and the topic.
    pub fn check(&self, action: Action, topic: &str) -> Result<(), ApiError> {
        let Some(principal) = &self.0 else {
            return Ok(());
        };
        if principal.may(action, topic) {
            return Ok(());
        }
        let name = &principal.name;
        let key = action.key();
        Err(ApiError::Forbidden(match action {
            Action::ManageSubscriptions => format!(
                "principal `{name}` may not manage subscriptions \
                 (access.principals.{name}.{key} is false)"
            ),
            _ => format!(
                "principal `{name}` may not {key} to topic `{topic}` \
                 (no pattern of access.principals.{name}.{key} matches it)"
            ),
        }))
    }

    /// The principal's name, for logs and spans.
    pub fn name(&self) -> Option<&str> {
        self.0.as_ref().map(|p| &*p.name)
    }
}

/// On `/v1` paths, when principals (or an API token) are configured, requires
/// `Authorization: Bearer <token>` of one of them (`401`, audited as `denied`, otherwise) and
/// records who it is in the request; the refusal when there is one.
pub fn admit(state: &AppState, request: &mut Request) -> Option<Response> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let caller = {
        let live = state.live();
        let principals = &live.principals;
        let path = request.uri().path();
        if !principals.required() || !(path.starts_with("/v1/") || path == "/v1") {
            Ok(Caller(None))
        } else if let Some(principal) = presented.and_then(|token| principals.authenticate(token)) {
            if let Some(requests) = live.requests.get(&principal.name) {
                requests.increment(1);
            }
            Ok(Caller(Some(principal)))
        } else {
            Err(live.audit.clone())
        }
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            None
        }
        Err(audit) => {
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
            if let Some(audit) = audit {
                audit.log(&Record::denied(request, response.status()));
            }
            Some(response)
        }
    }
}
