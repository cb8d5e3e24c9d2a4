//! Server-Sent Events settings (`[sse]`): the raw table, its validation and the result.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// Server-Sent Events settings (`[sse]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSse {
    /// How often an idle stream gets a keep-alive comment, so proxies and clients do not time
    /// it out.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Events buffered per stream between the broker reader and the connection.
    pub buffer: usize,
    /// How long a stream's buffer may stay full before the client is disconnected as too slow
    /// (with a final `sidebus.disconnect` event); a reconnect resumes from its last event id.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// Most streams open at once; more are answered 429 with `Retry-After`.
    pub max_streams: usize,
    /// Origins whose pages may open streams (CORS), e.g. `["https://app.example.com"]`, or
    /// `["*"]` for any; empty (the default) allows same-origin pages only.
    pub allowed_origins: Vec<String>,
}

impl Default for RawSse {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            buffer: 256,
            stall_timeout: Duration::from_secs(5),
            max_streams: 1024,
            allowed_origins: Vec::new(),
        }
    }
}

impl RawSse {
    pub(super) fn validate(self) -> Result<SseConfig, ConfigError> {
        if self.keep_alive < Duration::from_millis(10) {
            return Err(invalid("sse.keep_alive", "must be at least 10ms"));
        }
        positive("sse.buffer", self.buffer)?;
        if self.stall_timeout.is_zero() {
            return Err(invalid("sse.stall_timeout", "must be more than 0"));
        }
        positive("sse.max_streams", self.max_streams)?;
        let mut origins = Vec::with_capacity(self.allowed_origins.len());
        for origin in &self.allowed_origins {
            if origin == "*" {
                if self.allowed_origins.len() > 1 {
                    return Err(invalid(
                        "sse.allowed_origins",
                        "`*` allows every origin and cannot be combined with others",
                    ));
                }
                continue;
            }
            let value = origin
                .parse::<http::HeaderValue>()
                .ok()
                .filter(|_| is_origin(origin))
                .ok_or_else(|| {
                    invalid(
                        "sse.allowed_origins",
                        format!("`{origin}` is not an origin like https://app.example.com[:port] (scheme, host and port only)"),
                    )
                })?;
            origins.push(value);
        }
        Ok(SseConfig {
            keep_alive: self.keep_alive,
            buffer: self.buffer,
            stall_timeout: self.stall_timeout,
            max_streams: self.max_streams,
            allow_any_origin: self.allowed_origins.iter().any(|o| o == "*"),
            allowed_origins: origins,
        })
    }
}

/// `scheme://host[:port]` with nothing after it, as browsers send in `Origin`.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let host_ok = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && rest.rsplit_once(':').is_none_or(|(host, port)| {
            !host.is_empty() && (host.ends_with(']') || port.parse::<u16>().is_ok())
        });
    scheme_ok && host_ok
}

/// Validated Server-Sent Events settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SseConfig {
    /// Keep-alive comment interval.
    pub keep_alive: Duration,
    /// Events buffered per stream.
    pub buffer: usize,
    /// How long a full buffer is tolerated before the client is disconnected.
    pub stall_timeout: Duration,
    /// Most concurrent streams.
    pub max_streams: usize,
    /// CORS: any origin may subscribe.
    pub allow_any_origin: bool,
    /// CORS: these origins may subscribe.
    pub allowed_origins: Vec<http::HeaderValue>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::parse;

    #[test]
    fn sse_settings_are_checked() {
        let config = parse(
            "[sse]\nkeep_alive = \"250ms\"\nbuffer = 4\nmax_streams = 2\nallowed_origins = [\"http://127.0.0.1:3000\", \"https://app.example.com\"]\n[brokers.a]\nkind=\"memory\"",
        )
        .unwrap();
        assert_eq!(config.sse.keep_alive, Duration::from_millis(250));
        assert_eq!(config.sse.buffer, 4);
        assert_eq!(config.sse.allowed_origins.len(), 2);
        assert!(!config.sse.allow_any_origin);
        let any = parse("[sse]\nallowed_origins = [\"*\"]\n[brokers.a]\nkind=\"memory\"").unwrap();
        assert!(any.sse.allow_any_origin);
        for (toml, key) in [
            ("[sse]\nbuffer = 0", "sse.buffer"),
            ("[sse]\nmax_streams = 0", "sse.max_streams"),
            ("[sse]\nkeep_alive = \"0s\"", "sse.keep_alive"),
            (
                "[sse]\nallowed_origins = [\"https://a.example/path\"]",
                "sse.allowed_origins",
            ),
            (
                "[sse]\nallowed_origins = [\"a.example\"]",
                "sse.allowed_origins",
            ),
            (
                "[sse]\nallowed_origins = [\"*\", \"https://a.example\"]",
                "sse.allowed_origins",
            ),
        ] {
            let err = parse(&format!("{toml}\n[brokers.a]\nkind=\"memory\""))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
