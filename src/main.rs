use std::path::PathBuf;

/// malloc/free were ~19% of CPU on the single-event path (perf, load harness); mimalloc's
/// thread-local free lists cut that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;

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

/// mimalloc's `arena_eager_commit` option (its position in mimalloc v3's `mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// By default mimalloc commits each arena it reserves in full; committing on demand keeps an
/// idle sidecar at about 4 MiB of heap instead of 12. The option must be set before the first
/// allocation reserves an arena, which happens in the Rust runtime's start-up, before `main`;
/// so this runs as an ELF initializer, after mimalloc's own (priority 101) has read the
/// environment. It allocates nothing. An explicit `MIMALLOC_ARENA_EAGER_COMMIT=1` still wins.
extern "C" fn commit_arena_on_demand() {
    /// mimalloc's default: eager commit where the OS overcommits.
    const MIMALLOC_DEFAULT: std::os::raw::c_long = 2;
    // SAFETY: reads and sets a plain integer option; mimalloc allows this at any time.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) == MIMALLOC_DEFAULT {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static COMMIT_ARENA_ON_DEMAND: extern "C" fn() = commit_arena_on_demand;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
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
