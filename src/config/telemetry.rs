//! Trace export settings (`[telemetry]`): the raw table, its validation and the result.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// Trace export settings (`[telemetry]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    /// OTLP/HTTP traces URL of an OpenTelemetry collector, used as written (e.g.
    /// `http://127.0.0.1:4318/v1/traces`). When set, the `publish`, `batch_flush` and `deliver`
    /// spans are exported, joined to the trace context the events carry. Needs a sidebus built
    /// with the `otlp` cargo feature; unset (the default) exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Encoding of the export requests: `http/protobuf` (the OTLP default) or `http/json`.
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of the exported spans; default `sidebus`.
    pub service_name: Option<String>,
}

/// Encoding of OTLP/HTTP export requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// `application/x-protobuf` bodies, what every collector accepts.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `application/json` bodies.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// Validated trace export settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// Where spans go; `None` exports nothing.
    pub otlp: Option<OtlpConfig>,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// OTLP/HTTP traces URL.
    pub endpoint: String,
    /// Request encoding.
    pub protocol: OtlpProtocol,
    /// `service.name` resource attribute.
    pub service_name: String,
}

impl RawTelemetry {
    pub(super) fn validate(self) -> Result<TelemetryConfig, ConfigError> {
        if let Some(name) = self.service_name.as_deref().filter(|n| n.is_empty()) {
            return Err(invalid(
                "telemetry.service_name",
                format!("`{name}` must not be empty"),
            ));
        }
        let Some(endpoint) = self.otlp_endpoint else {
            return Ok(TelemetryConfig::default());
        };
        if !cfg!(feature = "otlp") {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                "this sidebus was built without the `otlp` cargo feature \
                 (build with `--features otlp`)",
            ));
        }
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not a URL ({e})"),
            )
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
        Ok(TelemetryConfig {
            otlp: Some(OtlpConfig {
                endpoint,
                protocol: self.otlp_protocol,
                service_name: self.service_name.unwrap_or_else(|| "sidebus".into()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: &str) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: Some(endpoint.into()),
            ..RawTelemetry::default()
        }
    }

    #[test]
    fn nothing_is_exported_by_default() {
        assert!(RawTelemetry::default().validate().unwrap().otlp.is_none());
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn an_endpoint_must_be_an_http_url() {
        let ok = raw("http://127.0.0.1:4318/v1/traces").validate().unwrap();
        let otlp = ok.otlp.unwrap();
        assert_eq!(otlp.service_name, "sidebus");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        for bad in ["127.0.0.1:4318", "grpc://collector:4317", "http://"] {
            let err = raw(bad).validate().unwrap_err().to_string();
            assert!(err.contains("telemetry.otlp_endpoint"), "{bad}: {err}");
        }
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn an_endpoint_needs_the_otlp_feature() {
        let err = raw("http://127.0.0.1:4318/v1/traces")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features otlp"), "{err}");
    }
}
