//! sidebus: an HTTP-to-event-broker sidecar. Services POST CloudEvents to sidebus on localhost;
//! a batching pipeline produces them to Kafka, NATS JetStream, AMQP or the embedded memory broker.
#![warn(missing_docs)]

pub mod allocator;
pub mod api;
pub mod backend;
pub mod config;
pub mod delivery;
pub mod error_text;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod policy;
pub mod quota;
pub mod reload;
pub mod schemas;
pub mod spool;
pub mod telemetry;

use std::future::Future;

pub use api::AppState;
pub use config::{Config, RawConfig};
pub use reload::ConfigSource;

/// The HTTP application over `state`; tests serve it on port 0.
pub fn app(state: AppState) -> api::App {
    api::router(state)
}

/// Why sidebus could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A broker's settings were refused by its client library, a schema rule or a spool could
    /// not be loaded, a principal's token is missing from the environment or the audit file
    /// cannot be opened; the message names which.
    #[error(transparent)]
    Start(#[from] api::StartError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    /// Requests or events were still unfinished when `shutdown_grace` ran out.
    #[error(
        "shutdown took longer than shutdown_grace ({0:?}); unfinished events were not acknowledged"
    )]
    GraceExceeded(std::time::Duration),
}

/// `listener` with `TCP_NODELAY` on every accepted connection: responses and SSE events are
/// small writes that must not wait for the peer's delayed ACK. The benchmarks serve their
/// in-process sidebus and bare handlers through it too, so both are measured alike.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// Runs sidebus until `shutdown` resolves, then stops intake, lets requests in flight finish and
/// waits until every accepted event has its broker result. With a `source`, `SIGHUP` and
/// changes to its file reload the configuration.
pub async fn run(
    config: Config,
    source: Option<ConfigSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let addr = config.listen;
    let grace = config.shutdown_grace;
    let state = AppState::build(config).await?;
    tokio::spawn(allocator::release_when_idle());
    if let Some(source) = source {
        state.set_source(source.path.as_deref(), &source.read());
        tokio::spawn(reload::watch(state.clone(), source));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    tracing::info!(%addr, "sidebus listening");
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let streams = delivery::sse::Streams::new(state.live().config.sse.max_streams);
    let app = api::router_with(state.clone(), streams.clone());
    let stop_serving = async move {
        shutdown.await;
        let _ = signalled.send(true);
        // SSE streams never end by themselves; graceful shutdown would wait for them.
        streams.close();
    };
    let listener = nodelay(listener);
    let serve_then_drain = async {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop_serving)
            .await
            .map_err(RunError::Serve)?;
        state.drain().await;
        Ok::<(), RunError>(())
    };
    let grace_over = async {
        let _ = on_signal.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        finished = serve_then_drain => finished?,
        _ = grace_over => {
            tracing::warn!(?grace, "shutdown grace period over; exiting with work unfinished");
            return Err(RunError::GraceExceeded(grace));
        }
    }
    tracing::info!("sidebus stopped");
    Ok(())
}
