use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

sidebus::mimalloc_on_demand!();

/// HTTP-to-event-broker sidecar.
#[derive(Debug, Clone, Parser)]
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
    /// How often the config file is read for changes, which are then applied live (`0s`: only
    /// on SIGHUP).
    #[arg(long, env = "SIDEBUS_CONFIG_POLL", default_value = "1s", value_parser = humantime::parse_duration)]
    config_poll: std::time::Duration,
    /// Log as JSON lines.
    #[arg(long, env = "SIDEBUS_LOG_FORMAT_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let log_json = cli.log_json;
    let reload = cli.clone();
    let config = match configure(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let tracing = sidebus::telemetry::tracing::init(log_json, &config.telemetry)?;
    let source = sidebus::ConfigSource {
        path: reload.config.clone(),
        poll: Some(reload.config_poll).filter(|p| !p.is_zero()),
        load: Box::new(move || configure(reload.clone())),
    };
    let result = sidebus::run(config, Some(source), shutdown_signal()).await;
    tracing.shutdown();
    result.context("sidebus stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

/// The file, the environment and the flags, checked. A refusal is printed by `main` as its
/// own message alone: it is the user's mistake, so anyhow's `Error:`/`Caused by:` framing and
/// a `RUST_BACKTRACE` stack trace would only bury it.
fn configure(cli: Cli) -> Result<sidebus::Config, sidebus::config::ConfigError> {
    let mut raw = sidebus::RawConfig::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        raw.listen = listen;
    }
    if let Some(state_dir) = cli.state_dir {
        raw.state_dir = state_dir;
    }
    raw.validate()
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
