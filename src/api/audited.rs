//! The audit layer: after a state-changing request (a publish, a subscription's create,
//! replace, delete, pause or resume) or a refusal (`403`), writes its audit line. `401`s are
//! written by the auth layer, which answers them before this one runs ([`Record::denied`]).

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::audit::{now, Audited, Record};
use super::auth::Caller;
use super::AppState;

/// The action a route and method stand for, when it changes state.
fn action(method: &Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("POST", super::PUBLISH | super::PUBLISH_BATCH) => "publish",
        ("PUT", super::SUBSCRIPTION) => "subscription.put",
        ("DELETE", super::SUBSCRIPTION) => "subscription.delete",
        ("POST", super::SUBSCRIPTION_PAUSE) => "subscription.pause",
        ("POST", super::SUBSCRIPTION_RESUME) => "subscription.resume",
        _ => return None,
    })
}

/// Runs `request` through `next`, and writes its audit line when it needs one and the audit
/// log is kept (nothing is looked at when it is not).
pub async fn around(state: &AppState, request: Request, next: Next) -> Response {
    let audit = state.live().audit.clone();
    let Some(audit) = audit else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, state).await;
    let request = Request::from_parts(parts, body);
    let matched = request.extensions().get::<MatchedPath>();
    let route = matched.map(MatchedPath::as_str).unwrap_or_default();
    let action = action(request.method(), route);
    let mut record = Record {
        principal: request
            .extensions()
            .get::<Caller>()
            .and_then(|c| c.name().map(str::to_string)),
        ..Record::of(&request)
    };
    for (key, value) in params.iter().flat_map(|p| p.iter()) {
        let value = Some(value.to_string());
        match key {
            "broker" => record.broker = value,
            "topic" => record.topic = value,
            "name" => record.subscription = value,
            _ => {}
        }
    }
    let response = next.run(request).await;
    let status = response.status();
    record.action = match action {
        _ if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED => "denied",
        Some(action) => action,
        None => return response,
    };
    if record.action != "denied" {
        record.request = None;
    }
    if let Some(facts) = response.extensions().get::<Audited>() {
        record.physical_topic = facts.physical_topic.as_deref().map(str::to_string);
        record.events = facts.events;
        record.bytes = facts.bytes;
        record.ids = facts.ids.clone();
    }
    record.status = status.as_u16();
    record.time = now();
    audit.log(&record);
    response
}
