//! `Content-Encoding` of request bodies: `gzip`, `deflate`, `br` and `zstd` are decoded as they
//! are read (tower-http's request decompression), so `limits.max_body` bounds the decoded size
//! and a small body that inflates past it is refused without being inflated further. Any other
//! encoding is refused here, as problem+json, before the body is touched.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The encodings request bodies may have, as `Accept-Encoding` names them to a refused client.
pub const ACCEPTED: &str = "gzip, deflate, br, zstd, identity";

/// The refusal (415) of a body in an encoding sidebus cannot decode; an accepted one is written
/// in lower case, as the decompression layer expects it.
pub fn refuse_unknown(request: &mut Request) -> Option<Response> {
    let value = request.headers().get(header::CONTENT_ENCODING)?;
    let token = value
        .to_str()
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match token.as_str() {
        "gzip" | "deflate" | "br" | "zstd" | "identity" => {
            request.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(&token).expect("an accepted token is a header value"),
            );
            None
        }
        _ => {
            let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let mut response = ApiError::UnsupportedMediaType(format!(
                "Content-Encoding `{shown}` is not supported; send one of {ACCEPTED}"
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
            Some(response)
        }
    }
}
