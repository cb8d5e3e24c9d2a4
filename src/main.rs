use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

sidebus::mimalloc_on_demand!();

/// HTTP-to-event-broker sidecar.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, sidebus runs one memory broker named `default`.
    #[arg(long, env = "SIDEBUS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding the config's `listen`.
    #[arg(long)]
    listen: Option<String>,
    /// State directory, overriding the config's `state_dir`.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "SIDEBUS_LOG_FORMAT_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut raw = sidebus::RawConfig::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        raw.listen = listen;
    }
    if let Some(state_dir) = cli.state_dir {
        raw.state_dir = state_dir;
    }
    let config = raw.validate()?;
    let tracing = sidebus::telemetry::init(cli.log_json, &config.telemetry)?;
    let result = sidebus::run(config, shutdown_signal()).await;
    tracing.shutdown();
    result.context("sidebus stopped with an error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received; draining");
}
