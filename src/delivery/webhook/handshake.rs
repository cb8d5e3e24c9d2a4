//! The CloudEvents Webhook abuse-protection handshake (CloudEvents "HTTP 1.1 Web Hooks for Event
//! Delivery", §4): before the first delivery, sidebus asks the endpoint with `OPTIONS` whether it
//! accepts events from this origin, and at what rate. An endpoint that does not answer 2xx with
//! `WebHook-Allowed-Origin` naming the origin (or `*`) gets nothing; a `WebHook-Allowed-Rate`
//! below the requested rate caps delivery.

use std::num::NonZeroU32;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};

use super::client::{SendError, WebhookClient};

const REQUEST_ORIGIN: &str = "webhook-request-origin";
const REQUEST_RATE: &str = "webhook-request-rate";
const ALLOWED_ORIGIN: &str = "webhook-allowed-origin";
const ALLOWED_RATE: &str = "webhook-allowed-rate";

/// The origin sidebus names in `WebHook-Request-Origin`: the host of the configured `source`
/// (`sidebus://checkout` → `checkout`), or the whole `source` when it has no `scheme://`.
pub fn origin_of(source: &str) -> String {
    let rest = source.split_once("://").map_or(source, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if host.is_empty() {
        source.to_string()
    } else {
        host.to_string()
    }
}

/// What the endpoint agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Most requests per minute the endpoint accepts, when it named fewer than requested (or
    /// named a rate while none was requested); `None` when it set no lower limit.
    pub cap_per_minute: Option<NonZeroU32>,
}

/// Asks `endpoint` whether it accepts deliveries from `origin` at `rate_per_minute`.
pub async fn ask(
    client: &WebhookClient,
    endpoint: &http::Uri,
    origin: &str,
    rate_per_minute: Option<u32>,
    timeout: Duration,
) -> Result<Grant, String> {
    let mut headers = HeaderMap::new();
    let origin_value = HeaderValue::from_str(origin)
        .map_err(|_| format!("the origin `{origin}` is not a valid header value"))?;
    headers.insert(REQUEST_ORIGIN, origin_value);
    if let Some(rate) = rate_per_minute {
        headers.insert(REQUEST_RATE, HeaderValue::from(rate));
    }
    let answer = client
        .options(endpoint, headers, timeout)
        .await
        .map_err(|e| refusal_of_error(&e))?;
    verdict(answer.status, &answer.headers, origin, rate_per_minute)
}

fn refusal_of_error(e: &SendError) -> String {
    format!("webhook handshake: the endpoint could not be asked: {e}")
}

/// The endpoint's answer to the handshake, judged.
pub fn verdict(
    status: StatusCode,
    headers: &HeaderMap,
    origin: &str,
    requested_per_minute: Option<u32>,
) -> Result<Grant, String> {
    if !status.is_success() {
        return Err(format!(
            "webhook handshake refused: the endpoint answered OPTIONS with {status}"
        ));
    }
    let allowed = headers.get(ALLOWED_ORIGIN).and_then(|v| v.to_str().ok());
    match allowed.map(str::trim) {
        Some("*") => {}
        Some(named) if named.eq_ignore_ascii_case(origin) => {}
        Some(named) => {
            return Err(format!(
                "webhook handshake refused: WebHook-Allowed-Origin is `{named}`, not `{origin}`"
            ))
        }
        None => {
            return Err(
                "webhook handshake refused: the endpoint's answer has no WebHook-Allowed-Origin"
                    .into(),
            )
        }
    }
    let allowed_rate = headers
        .get(ALLOWED_RATE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| *v != "*")
        .and_then(|v| v.parse::<u32>().ok())
        .and_then(NonZeroU32::new);
    let cap_per_minute = match (allowed_rate, requested_per_minute) {
        (Some(allowed), Some(requested)) if allowed.get() >= requested => None,
        (allowed, _) => allowed,
    };
    Ok(Grant { cap_per_minute })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn the_origin_is_the_host_of_the_source() {
        assert_eq!(origin_of("sidebus://checkout"), "checkout");
        assert_eq!(origin_of("https://shop.example/orders"), "shop.example");
        assert_eq!(origin_of("/checkout"), "/checkout");
        assert_eq!(origin_of("checkout"), "checkout");
    }

    #[test]
    fn the_endpoint_must_name_the_origin_or_a_star() {
        let ok = StatusCode::OK;
        let granted = |h: &[(&'static str, &'static str)]| verdict(ok, &headers(h), "shop", None);
        assert!(granted(&[("webhook-allowed-origin", "shop")]).is_ok());
        assert!(granted(&[("webhook-allowed-origin", "*")]).is_ok());
        let other = granted(&[("webhook-allowed-origin", "elsewhere")]).unwrap_err();
        assert!(other.contains("`elsewhere`, not `shop`"), "{other}");
        assert!(granted(&[])
            .unwrap_err()
            .contains("no WebHook-Allowed-Origin"));
        let refused = verdict(
            StatusCode::FORBIDDEN,
            &headers(&[("webhook-allowed-origin", "shop")]),
            "shop",
            None,
        );
        assert!(refused.unwrap_err().contains("403"));
    }

    #[test]
    fn a_lower_allowed_rate_caps_delivery() {
        let ok = StatusCode::OK;
        let grant = |rate: &'static str, requested| {
            verdict(
                ok,
                &headers(&[
                    ("webhook-allowed-origin", "*"),
                    ("webhook-allowed-rate", rate),
                ]),
                "shop",
                requested,
            )
            .unwrap()
            .cap_per_minute
            .map(NonZeroU32::get)
        };
        assert_eq!(grant("60", Some(600)), Some(60));
        assert_eq!(grant("600", Some(600)), None);
        assert_eq!(grant("6000", Some(600)), None);
        assert_eq!(grant("*", Some(600)), None);
        assert_eq!(
            grant("120", None),
            Some(120),
            "a rate named unasked still caps"
        );
    }
}
