//! What an endpoint's answer means for the event (DESIGN §3 "Outcomes").

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::client::SendError;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: acknowledge.
    Delivered,
    /// Worth another attempt; `after` is the endpoint's `Retry-After`, if it gave one.
    Retry {
        /// The endpoint asked to wait this long.
        after: Option<Duration>,
        /// Why, for status and dead letters.
        reason: String,
        /// The HTTP status, when there was a response.
        status: Option<u16>,
    },
    /// 410 Gone: pause the subscription; nothing is acknowledged.
    Pause,
    /// Other 4xx and every 3xx: no retry.
    Permanent {
        /// Why.
        reason: String,
        /// The HTTP status.
        status: u16,
    },
}

/// Classifies a response.
pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let code = status.as_u16();
    match code {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Pause,
        429 | 503 => Outcome::Retry {
            after: retry_after(headers),
            reason: format!("endpoint answered {status}"),
            status: Some(code),
        },
        408 | 425 | 500..=599 => Outcome::Retry {
            after: None,
            reason: format!("endpoint answered {status}"),
            status: Some(code),
        },
        _ => Outcome::Permanent {
            reason: format!("endpoint answered {status}"),
            status: code,
        },
    }
}

/// Classifies a request that got no response (timeout, refused connection, reset).
pub fn from_error(error: &SendError) -> Outcome {
    Outcome::Retry {
        after: None,
        reason: error.to_string(),
        status: None,
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date, capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(http::header::RETRY_AFTER, v.parse().unwrap());
        }
        h
    }

    fn classify(code: u16, retry: Option<&str>) -> Outcome {
        from_response(StatusCode::from_u16(code).unwrap(), &headers(retry))
    }

    #[test]
    fn the_design_table() {
        assert_eq!(classify(200, None), Outcome::Delivered);
        assert_eq!(classify(204, None), Outcome::Delivered);
        assert_eq!(classify(410, None), Outcome::Pause);
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(code, None), Outcome::Retry { after: None, .. }),
                "{code}"
            );
        }
        for code in [301, 302, 304, 400, 401, 403, 404, 409, 422] {
            assert!(
                matches!(classify(code, None), Outcome::Permanent { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only() {
        assert_eq!(
            classify(429, Some("7")),
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "endpoint answered 429 Too Many Requests".into(),
                status: Some(429)
            }
        );
        assert!(matches!(
            classify(503, Some("99999")),
            Outcome::Retry { after: Some(d), .. } if d == MAX_RETRY_AFTER
        ));
        assert!(matches!(
            classify(500, Some("7")),
            Outcome::Retry { after: None, .. }
        ));
    }

    #[test]
    fn retry_after_as_http_date() {
        let later = chrono::Utc::now() + chrono::Duration::seconds(120);
        let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let d = retry_after(&headers(Some(&date))).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after(&headers(Some("soon"))), None);
    }
}
