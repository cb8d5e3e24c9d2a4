//! `GET /v1/subscribe/{broker}/{topic}`: a topic as Server-Sent Events.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::Caller;
use super::extract::{Path, Query};
use super::target::{resolve, Direction};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::backend::Capabilities;
use crate::config::topic::validate_topic;
use crate::config::SseConfig;
use crate::config::StartFrom;
use crate::delivery::sse::{self, StreamRequest, Streams};
use crate::policy::cesql;

/// The media type of the stream.
pub const EVENT_STREAM: &str = "text/event-stream";
/// `Retry-After` when every stream slot is taken.
const STREAMS_RETRY_AFTER: Duration = Duration::from_secs(2);

/// `GET /v1/subscribe/{broker}/{topic}`.
pub async fn subscribe(
    State(state): State<AppState>,
    Extension(streams): Extension<Streams>,
    caller: Caller,
    Path((broker, topic)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match open(
        &state, &caller, &streams, &broker, &topic, &params, &headers,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn open(
    state: &AppState,
    caller: &Caller,
    streams: &Streams,
    broker: &str,
    topic: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if !accepts_event_stream(headers) {
        return Err(ApiError::NotAcceptable(
            "this route answers only text/event-stream; send `Accept: text/event-stream`".into(),
        ));
    }
    let found = resolve(state, caller, broker, topic, Direction::Subscribe)?;
    let abilities = (found.backend.kind(), found.backend.capabilities());
    let live = state.live();
    // The stream reads, and its cursors name, the physical topic: after a flip to another
    // one, a cursor of the old topic is refused rather than read at the wrong positions.
    let physical = live.topics.physical(broker, topic);
    let request = parse(abilities, &physical, params, headers).map_err(|e| match e {
        // A service never sees the physical name, not even in why its cursor was refused.
        ApiError::BadRequest(detail) if physical != topic => {
            ApiError::BadRequest(detail.replace(&*physical, topic))
        }
        other => other,
    })?;
    let Some(slot) = streams.try_acquire() else {
        return Err(ApiError::TooManyStreams(
            format!(
                "{} streams are open, the most sse.max_streams allows; retry later",
                streams.max()
            ),
            STREAMS_RETRY_AFTER,
        ));
    };
    let presentation = sse::Presentation {
        schemas: live.schemas.clone(),
        topics: live.topics.clone(),
    };
    let settings = live.config.sse.clone();
    drop(live);
    let body = sse::open(found, request, &settings, streams, slot, presentation).await?;
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Reads the query and the `Last-Event-ID` header into a stream request for a broker of config
/// kind and capabilities `broker`.
fn parse(
    broker: (&str, Capabilities),
    topic: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<StreamRequest, ApiError> {
    const KNOWN: &[&str] = &[
        "from",
        "key",
        "group",
        "typed",
        "lastEventId",
        "filter",
        "decode",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter `{unknown}`; this route takes {}",
            KNOWN.join(", ")
        )));
    }
    let from = match params.get("from").map(String::as_str) {
        None | Some("latest") => StartFrom::Latest,
        Some("earliest") => StartFrom::Earliest,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "from=`{other}`: must be `earliest` or `latest`"
            )))
        }
    };
    let typed = flag(params, "typed", false)?;
    let decode = flag(params, "decode", true)?;
    let key = params.get("key").filter(|k| !k.is_empty()).cloned();
    let group = params.get("group").filter(|g| !g.is_empty()).cloned();
    if let Some(group) = &group {
        validate_topic(group).map_err(|_| {
            ApiError::BadRequest(format!(
                "group=`{group}`: a group name is 1-249 characters of [A-Za-z0-9._-]"
            ))
        })?;
    }
    // Last-Event-ID (sent by EventSource on reconnect) wins over ?lastEventId= (set by a page
    // resuming from a saved position), and a cursor wins over ?from=.
    let header_cursor = match headers.get("last-event-id") {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::BadRequest("Last-Event-ID is not a sidebus cursor (not ASCII)".into())
        })?),
        None => None,
    }
    .map(str::trim)
    .filter(|c| !c.is_empty());
    let cursor = header_cursor.or_else(|| {
        params
            .get("lastEventId")
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
    });
    let filter = match params.get("filter").filter(|f| !f.trim().is_empty()) {
        Some(text) => Some(cesql::parse(text).map_err(|e| ApiError::InvalidFilter {
            detail: format!("filter: invalid CESQL expression {text:?} {e}"),
            position: Some(e.position),
        })?),
        None => None,
    };
    let mut request = StreamRequest::new(broker, topic, cursor, from, key, group, typed)
        .map_err(ApiError::BadRequest)?;
    request.filter = filter;
    request.decode = decode;
    Ok(request)
}

/// A `true` / `false` query parameter, `default` when absent.
fn flag(params: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name}=`{other}`: must be `true` or `false`"
        ))),
    }
}

/// Whether `Accept` names `text/event-stream` (with a non-zero quality).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(EVENT_STREAM) && !zero
        })
}

/// The CORS layer of the route, when `sse.allowed_origins` names any.
pub fn cors(settings: &SseConfig) -> Option<CorsLayer> {
    let origin = if settings.allow_any_origin {
        AllowOrigin::any()
    } else if settings.allowed_origins.is_empty() {
        return None;
    } else {
        AllowOrigin::list(settings.allowed_origins.iter().cloned())
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET])
            .allow_headers([
                header::ACCEPT,
                header::AUTHORIZATION,
                header::CACHE_CONTROL,
                header::HeaderName::from_static("last-event-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::consume::ReadPosition;
    use crate::backend::memory;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn accept_must_name_the_event_stream() {
        assert!(accepts_event_stream(&accept("text/event-stream")));
        assert!(accepts_event_stream(&accept(
            "application/json, Text/Event-Stream;q=0.5"
        )));
        assert!(!accepts_event_stream(&accept("*/*")));
        assert!(!accepts_event_stream(&accept("text/event-stream;q=0")));
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }

    #[test]
    fn the_header_cursor_wins_over_the_parameter() {
        let broker = (memory::KIND, memory::CAPABILITIES);
        let at = |next| {
            let kind = memory::CAPABILITIES.cursor.expect("memory cursors");
            sse::Cursor::new(kind, ReadPosition::Sequence(next)).expect("a sequence cursor")
        };
        let newer = at(9).encode("t");
        let older = at(3).encode("t");
        let mut headers = accept(EVENT_STREAM);
        headers.insert("last-event-id", newer.parse().unwrap());
        let params = HashMap::from([
            ("lastEventId".to_string(), older.clone()),
            ("from".to_string(), "earliest".to_string()),
        ]);
        let request = parse(broker, "t", &params, &headers).unwrap();
        assert_eq!(request.start, sse::Start::Cursor(at(9)));
        let request = parse(broker, "t", &params, &accept(EVENT_STREAM)).unwrap();
        assert_eq!(request.start, sse::Start::Cursor(at(3)));
        let bad = HashMap::from([("from".to_string(), "middle".to_string())]);
        assert!(parse(broker, "t", &bad, &HeaderMap::new()).is_err());
        let unknown = HashMap::from([("form".to_string(), "earliest".to_string())]);
        assert!(parse(broker, "t", &unknown, &HeaderMap::new()).is_err());
    }
}
