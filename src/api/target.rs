//! The broker and topic a publish or subscribe request names, resolved and checked in one order
//! for both directions: a configured broker (404), a valid topic name (400), allowed for the
//! direction by `[access]` and by the caller's principal (403), and acceptable to that broker
//! (400).

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::config::topic::{validate_topic, TopicPattern};
use crate::pipeline::Broker;
use crate::policy::access::Action;

/// Which way events flow, for the allow-lists of `[access]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `POST /v1/publish/...`: checked against `access.publish`.
    Publish,
    /// SSE streams and subscriptions: checked against `access.subscribe`.
    Subscribe,
}

/// The broker named `broker`, once `topic` passes every check for `direction`. Subscribing
/// takes a topic pattern (`orders.*`) where the broker can consume one.
pub fn resolve<'a>(
    state: &'a AppState,
    caller: &Caller,
    broker: &str,
    topic: &str,
    direction: Direction,
) -> Result<&'a Broker, ApiError> {
    let found = state
        .broker(broker)
        .ok_or_else(|| ApiError::NotFound(format!("no broker named `{broker}` is configured")))?;
    let mut wildcard = false;
    match direction {
        Direction::Publish => validate_topic(topic).map(|_| ()),
        Direction::Subscribe => TopicPattern::parse(topic).map(|pattern| {
            wildcard = pattern.is_wildcard();
        }),
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if wildcard {
        if let Some(reason) = found.backend.capabilities().no_wildcards {
            return Err(ApiError::BadRequest(format!(
                "`{topic}` is a topic pattern: {reason}"
            )));
        }
    }
    let live = state.live();
    let access = &live.config.access;
    let (allowed, verb, list) = match direction {
        Direction::Publish => (access.may_publish(topic), "publishing to", "access.publish"),
        Direction::Subscribe => (
            access.may_subscribe(topic),
            "subscribing to",
            "access.subscribe",
        ),
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "{verb} topic `{topic}` is not allowed ({list})"
        )));
    }
    caller.check(
        match direction {
            Direction::Publish => Action::Publish,
            Direction::Subscribe => Action::Subscribe,
        },
        topic,
    )?;
    let physical = live.topics.physical(broker, topic);
    if *physical != *topic {
        let valid = match direction {
            Direction::Publish => validate_topic(&physical),
            Direction::Subscribe => TopicPattern::parse(&physical).map(|_| ()),
        };
        valid.map_err(|e| {
            ApiError::BadRequest(format!(
                "topic `{topic}` cannot be used on broker `{broker}`: the name it maps to \
                 ([[topics]], topic_prefix) is invalid: {}",
                e.reason
            ))
        })?;
    }
    found
        .backend
        .check_topic(&physical)
        .map_err(ApiError::BadRequest)?;
    Ok(found)
}
