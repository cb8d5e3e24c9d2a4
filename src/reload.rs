//! What sets off a live reconfiguration (design §8.8): `SIGHUP`, and a change of the config
//! file's bytes. The file is polled rather than watched through inotify: a Kubernetes ConfigMap
//! is updated by swapping a symlink two levels up, which an inotify watch on the file misses,
//! and one read of a small file a second costs nothing measurable. A change is applied once
//! the bytes have stopped changing, so a file caught halfway through an in-place write is not
//! read as invalid.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::AppState;
use crate::config::{Config, ConfigError};

/// How long the bytes must stay the same before a change is applied.
const SETTLE: Duration = Duration::from_millis(100);

/// Where the configuration comes from, and how to read it again exactly as at startup (the
/// file, then the environment, then the command line).
pub struct ConfigSource {
    /// The file, when there is one; without one only `SIGHUP` reloads (the environment).
    pub path: Option<PathBuf>,
    /// How often the file is read for changes; `None`: only on `SIGHUP`.
    pub poll: Option<Duration>,
    /// Reads and validates the configuration.
    pub load: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
}

impl ConfigSource {
    /// The file's bytes now (empty without a file or when it cannot be read).
    pub fn read(&self) -> Vec<u8> {
        self.path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default()
    }

    /// The bytes once two reads [`SETTLE`] apart agree.
    async fn settled(&self) -> Vec<u8> {
        let mut bytes = self.read();
        loop {
            tokio::time::sleep(SETTLE).await;
            let again = self.read();
            if again == bytes {
                return bytes;
            }
            bytes = again;
        }
    }
}

/// Reloads `state` on every `SIGHUP` and every change of the file, until the process ends.
pub async fn watch(state: AppState, source: ConfigSource) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reloads follow the file only");
            None
        }
    };
    let mut seen = source.read();
    loop {
        let signalled = async {
            match &mut hangup {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signalled => tracing::info!("SIGHUP: reloading the configuration"),
            _ = poll(source.poll) => {
                if source.path.is_none() || source.read() == seen {
                    continue;
                }
                tracing::info!("the configuration file changed: reloading");
            }
        }
        seen = source.settled().await;
        let config = (source.load)().map_err(|e| e.to_string());
        let _ = state.reload(config, &seen).await;
    }
}

/// Resolves after `every`, or never.
async fn poll(every: Option<Duration>) {
    match every {
        Some(every) => tokio::time::sleep(every).await,
        None => std::future::pending().await,
    }
}
