//! OTLP trace export (cargo feature `otlp`): the `publish`, `batch_flush` and `deliver` spans go
//! to an OpenTelemetry collector as parts of the W3C trace the events carry, so a trace shows the
//! publisher, sidebus and the webhook receiver in one tree.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{OtlpConfig, OtlpProtocol};
use crate::event::trace::TraceContext;

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {source}")]
pub struct OtlpError {
    /// The configured `telemetry.otlp_endpoint`.
    endpoint: String,
    /// What the OTLP exporter reported.
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Builds the tracer provider that batches spans to the collector on its own thread.
pub fn provider(config: &OtlpConfig) -> Result<SdkTracerProvider, OtlpError> {
    let protocol = match config.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&config.endpoint)
        .with_protocol(protocol)
        .build()
        .map_err(|source| OtlpError {
            endpoint: config.endpoint.clone(),
            source,
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns sidebus spans into exported OpenTelemetry spans.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("sidebus"))
}

/// Makes `span`, not yet entered, a child of `incoming` and returns the span's own trace context;
/// `None` when spans are not exported.
pub(crate) fn adopt(span: &tracing::Span, incoming: Option<&TraceContext>) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    if let Some(incoming) = incoming {
        let mut carrier =
            HashMap::from([("traceparent".to_string(), incoming.traceparent.clone())]);
        if let Some(state) = &incoming.tracestate {
            carrier.insert("tracestate".into(), state.clone());
        }
        let parent = TraceContextPropagator::new().extract(&carrier);
        span.set_parent(parent).ok()?;
    }
    of(span)
}

/// The trace context of the current span, when spans are exported.
pub(crate) fn current() -> Option<TraceContext> {
    of(&tracing::Span::current())
}

fn of(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    Some(TraceContext {
        traceparent: carrier.remove("traceparent")?,
        tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
    })
}
