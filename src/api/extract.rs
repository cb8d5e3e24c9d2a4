//! axum's `Path` and `Query` extractors with their rejections as problem+json: axum answers a
//! path segment whose percent-encoding is not UTF-8, or a query string that does not
//! deserialize (`?key=a&key=b`), with a `text/plain` 400, and every sidebus error is
//! `application/problem+json`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;

/// The path parameters, deserialized; a rejection is a problem+json `400`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Its other rejections (a route without the parameters its handler asks for) are
        // programming errors that tests catch; they too become a problem+json answer.
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "path: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The query string, deserialized; a rejection is a problem+json `400`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}
