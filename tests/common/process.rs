//! The real `sidebus` binary as a child process, for tests of signals and crashes.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running `sidebus`; killed on drop so none outlives a failed test.
pub struct Sidebus {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sidebus {
    /// Starts the binary listening on `port`, with `--config` when given, in `dir`.
    pub fn spawn(port: u16, config: Option<&std::path::Path>, dir: &std::path::Path) -> Self {
        Self::spawn_with(port, config, dir, &[])
    }

    /// [`Sidebus::spawn`] with more command-line arguments.
    pub fn spawn_with(
        port: u16,
        config: Option<&std::path::Path>,
        dir: &std::path::Path,
        args: &[&str],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sidebus"));
        command
            .args(args)
            .current_dir(dir)
            .env("SIDEBUS_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        Self {
            child: Some(command.spawn().expect("the sidebus binary runs")),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Writes `toml` as `dir/sidebus.toml`, starts the binary with it on a free port and waits
    /// until it is ready.
    pub async fn start(toml: &str, dir: &std::path::Path, http: &reqwest::Client) -> Self {
        let config = dir.join("sidebus.toml");
        std::fs::write(&config, toml).unwrap();
        let sidebus = Self::spawn(free_port(), Some(&config), dir);
        sidebus.wait_ready(http).await;
        sidebus
    }

    /// GETs `path` and parses the JSON body.
    pub async fn get_json(&self, http: &reqwest::Client, path: &str) -> serde_json::Value {
        http.get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request reaches sidebus")
            .json()
            .await
            .expect("a JSON body")
    }

    /// Polls `/readyz` until it answers 200, failing after 30 s.
    pub async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match http.get(format!("{}/readyz", self.base)).send().await {
                Ok(r) if r.status() == 200 => return,
                _ if std::time::Instant::now() > deadline => panic!("sidebus did not become ready"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Resident memory of the process, in bytes (from `/proc/<pid>/status`).
    pub fn rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Sends SIGTERM and waits for the exit status; panics (and kills the process) when it is
    /// still running after `limit`.
    pub async fn terminate(mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sidebus still running {limit:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Sidebus {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
