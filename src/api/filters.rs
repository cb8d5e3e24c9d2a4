//! `POST /v1/filters/evaluate`: a CESQL expression evaluated against a CloudEvent, as a
//! subscription's `sql` filter would be, so a user checks a filter with curl before deploying it.

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::JsonBody;
use super::AppState;
use crate::event::{self, Defaults};
use crate::policy::cesql::{self, ErrorKind, EvalError, Value};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluate {
    /// A CESQL v1.0 expression.
    expression: String,
    /// A structured CloudEvent (JSON), with the attributes CloudEvents 1.0 requires.
    event: serde_json::Value,
}

/// What the expression yielded and the first error it raised (DESIGN §8.3).
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// The value: `null` only when the expression does not parse.
    result: Option<Value>,
    /// The first error, with its CESQL kind; `null` when there was none.
    error: Option<EvalError>,
}

/// `POST /v1/filters/evaluate`.
pub async fn evaluate(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<Evaluate>,
) -> Result<Json<Evaluation>, ApiError> {
    let json = Bytes::from(serde_json::to_vec(&request.event).expect("a JSON value serialises"));
    let live = state.live();
    let defaults = Defaults {
        source: live.config.source.clone(),
        ty: "sidebus.event",
        max_event: live.config.limits.max_event,
        partition_key: None,
        id_seed: None,
        trace: None,
    };
    let event = event::parse_structured(&json, &json, &defaults)
        .map_err(|e| ApiError::BadRequest(format!("event: {e}")))?;
    let evaluation = match cesql::parse(&request.expression) {
        Ok(expression) => {
            let (value, error) = expression.evaluate(&event);
            Evaluation {
                result: Some(value),
                error,
            }
        }
        Err(e) => Evaluation {
            result: None,
            error: Some(EvalError {
                kind: ErrorKind::Parse,
                detail: e.to_string(),
            }),
        },
    };
    Ok(Json(evaluation))
}
