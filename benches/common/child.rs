//! Servers the load and delivery harnesses run as child processes, as a user runs them —
//! sidebus's release binary (the one `cargo bench` builds) or a harness's own bare handler — so
//! that what `/proc/<pid>` reports of them (CPU, peak RSS) is theirs alone. The including crate
//! also needs `common/memory.rs` as `memory`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest a server may take to answer after it was started.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A server process of the harness; killed when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    child: Child,
    /// Where its standard error goes, shown when it fails to start.
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `command`, which will listen on `addr`, on `threads` tokio workers
    /// (`TOKIO_WORKER_THREADS`), its standard error written to `log`.
    pub(crate) fn spawn(
        mut command: Command,
        addr: SocketAddr,
        log: PathBuf,
        threads: usize,
    ) -> Self {
        let stderr = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = command
            .env("TOKIO_WORKER_THREADS", threads.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting a server process");
        Self {
            addr,
            pid: child.id(),
            child,
            log,
        }
    }

    /// Starts sidebus's binary with the config file `config` on `threads` workers (the config
    /// file is read once: no polling for changes), and waits until `/readyz` says its brokers
    /// are connected.
    pub(crate) async fn sidebus(config: &Path, log: PathBuf, threads: usize) -> Self {
        let addr = free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sidebus"));
        command
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--config-poll", "0s"]);
        let mut server = Self::spawn(command, addr, log, threads);
        server.wait_answering("/readyz").await;
        server
    }

    /// Waits until `path` answers 200; panics with the server's log when it exits first or
    /// takes longer than [`START_LIMIT`].
    pub(crate) async fn wait_answering(&mut self, path: &str) {
        let started = Instant::now();
        loop {
            if let Some((status, _)) = get(self.addr, path).await {
                if status == 200 {
                    return;
                }
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > START_LIMIT {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "the server on {} did not answer {path} with 200 ({exited:?}):\n{log}",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Resets process `pid`'s peak RSS (VmHWM) so each phase reports its own; false if refused.
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// VmHWM of process `pid` in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    crate::memory::status_kib(&pid.to_string(), "VmHWM:")
}

/// A free loopback address for a server to listen on.
pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// `GET path` over a fresh HTTP/1.0 connection: the status and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}
