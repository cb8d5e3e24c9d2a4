//! Logs and spans: the `tracing` subscriber sidebus installs, the OTLP export of its spans
//! (cargo feature `otlp`), and how a span joins the W3C trace an event carries.

#[cfg(feature = "otlp")]
use crate::event::trace::is_valid;
use crate::event::trace::TraceContext;

/// The span exporter, kept until the server has stopped so [`Tracing::shutdown`] can flush it.
#[must_use = "dropping it loses the spans not yet exported"]
pub struct Tracing {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Tracing {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!("exporting the last spans failed: {e}");
            }
        }
    }
}

/// Tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from `[telemetry]`.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] super::otlp::OtlpError),
}

/// Sets up logs — a `RUST_LOG`-style filter from `SIDEBUS_LOG` (default `info`), JSON lines when
/// `json` is true — and, when `telemetry.otlp_endpoint` is set, the export of sidebus's spans
/// whatever the log level.
pub fn init(
    json: bool,
    #[cfg_attr(not(feature = "otlp"), allow(unused_variables))]
    config: &crate::config::TelemetryConfig,
) -> Result<Tracing, TelemetryError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("SIDEBUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = if json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
    #[cfg(feature = "otlp")]
    if let Some(otlp) = &config.otlp {
        let provider = super::otlp::provider(otlp)?;
        let spans = super::otlp::layer(&provider).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sidebus", tracing::Level::DEBUG),
        );
        // Another subscriber may already be installed (embedding); it then keeps the spans.
        let _ = registry.with(spans).try_init();
        return Ok(Tracing {
            provider: Some(provider),
        });
    }
    let _ = registry.try_init();
    Ok(Tracing {
        #[cfg(feature = "otlp")]
        provider: None,
    })
}

/// Makes `span`, not yet entered, the hop of `incoming` in the exported trace and returns the
/// context the work inside it hands on: the span's own ids when spans are exported (cargo
/// feature `otlp` with `telemetry.otlp_endpoint`), otherwise `None`.
pub fn adopt(span: &tracing::Span, incoming: Option<&TraceContext>) -> Option<TraceContext> {
    #[cfg(feature = "otlp")]
    return super::otlp::adopt(span, incoming);
    #[cfg(not(feature = "otlp"))]
    {
        let _ = (span, incoming);
        None
    }
}

/// The `traceparent` sidebus sends on for an event that carries `traceparent`: the current
/// span's when spans are exported and it is part of that trace, otherwise the same trace with a
/// new parent id.
pub fn hop(traceparent: &str) -> Option<String> {
    #[cfg(feature = "otlp")]
    if let Some(own) = super::otlp::current() {
        let trace_id = |tp: &str| tp.split('-').nth(1).map(str::to_owned);
        if is_valid(traceparent) && trace_id(&own.traceparent) == trace_id(traceparent) {
            return Some(own.traceparent);
        }
    }
    TraceContext::child_of(traceparent)
}
