//! The two kinds of server the load goes to, each in its own process as a user runs it:
//! sidebus's release binary, and the bare discard handler that gives the HTTP floor (this
//! harness's own binary, run again with [`BARE_LISTEN`] set).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args::Args;
use crate::brokers::BrokerSetup;
use crate::schema::{ORDER_AVSC, ORDER_JSON_SCHEMA};
use crate::{AWAY, BROKER, SCHEMA_AVRO_TYPE, SCHEMA_JSON_TYPE, SOURCE, SPOOLED};

/// Longest the pipeline may take to empty between phases.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Longest a server may take to answer after it was started.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Set to an address, this binary serves the bare handler there and nothing else.
pub(crate) const BARE_LISTEN: &str = "SIDEBUS_LOAD_BARE_LISTEN";

fn bare_router() -> axum::Router {
    async fn discard(body: Bytes) -> StatusCode {
        drop(body);
        StatusCode::OK
    }
    axum::Router::new().fallback(discard)
}

/// Serves the bare handler on `listen` until killed, on a runtime of `TOKIO_WORKER_THREADS`
/// workers like sidebus's, accepting as sidebus does.
pub(crate) fn serve_bare(listen: &str) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the bare handler's runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("binding {listen}: {e}"));
        axum::serve(sidebus::nodelay(listener), bare_router())
            .await
            .expect("the bare handler serves");
    });
    std::process::exit(0)
}

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
    fn spawn(mut command: Command, addr: SocketAddr, log: PathBuf, args: &Args) -> Self {
        let stderr = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = command
            .env("TOKIO_WORKER_THREADS", args.server_threads.to_string())
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

    /// Waits until `path` answers 200 (any answer when `None`).
    async fn wait_answering(&mut self, path: &str) {
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

    /// Waits until the pipelines of the sidebus at `addr` hold nothing (events taken with
    /// respond-async included): the sum of `sidebus_pipeline_depth` is zero.
    pub(crate) async fn drain_at(addr: SocketAddr) -> Duration {
        let started = Instant::now();
        while started.elapsed() < DRAIN_LIMIT {
            let held: f64 = get(addr, "/metrics")
                .await
                .map(|(_, body)| {
                    body.lines()
                        .filter(|l| l.starts_with("sidebus_pipeline_depth"))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum()
                })
                .unwrap_or(f64::NAN);
            if held == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    }
}

/// A free loopback address for a server to listen on.
fn free_addr() -> SocketAddr {
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

/// Starts the bare handler in its own process.
pub(crate) async fn start_bare(args: &Args) -> Server {
    let addr = free_addr();
    let mut command = Command::new(std::env::current_exe().expect("this binary's path"));
    command.env(BARE_LISTEN, addr.to_string());
    let log = std::env::temp_dir().join(format!("sidebus-bench-{}-bare.log", std::process::id()));
    let mut server = Server::spawn(command, addr, log, args);
    server.wait_answering("/").await;
    server
}

/// What a sidebus of the harness has configured beyond its brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Nothing: phases a to d_spool.
    None,
    /// Phase c_gov: one principal and a quota.
    Governance,
    /// Phase c_pol: that, plus a topic rule for the bench topic and an audit log file.
    Full,
}

fn sidebus_toml(args: &Args, setup: &BrokerSetup, policy: Policy, topic: &str) -> String {
    let kib = |bytes: usize| bytes.div_ceil(1024);
    let max_event = kib(args.size.max(1 << 20));
    let max_body = kib((args.batch * (args.size + 512) * 2).max(4 << 20));
    let pipeline_bytes = max_body.max(32 << 10);
    let state_dir = state_dir(policy);
    let broker = match setup {
        BrokerSetup::Memory => format!(
            "kind = \"memory\"\nretention = {}\n",
            args.memory_retention.max(1)
        ),
        BrokerSetup::Kafka { bootstrap, .. } => {
            format!("kind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\n")
        }
        BrokerSetup::Nats { url, .. } => format!("kind = \"nats\"\nurl = \"{url}\"\n"),
        BrokerSetup::Amqp { url, .. } => format!("kind = \"amqp\"\nurl = \"{url}\"\n"),
    };
    // The spool phases: the same broker with a spool, and a broker that is never there.
    let spooled = match setup {
        BrokerSetup::Memory => String::new(),
        _ => format!(
            "[brokers.{SPOOLED}]\n{broker}[brokers.{SPOOLED}.spool]\nmax_bytes = \"4GiB\"\n"
        ),
    };
    format!(
        "source = \"{SOURCE}\"\nstate_dir = \"{}\"\n\
         limits = {{ max_body = \"{max_body}KiB\", max_event = \"{max_event}KiB\", max_batch = 1000, pipeline_depth = 65536, pipeline_bytes = \"{pipeline_bytes}KiB\" }}\n\
         {}\n[brokers.{BROKER}]\n{broker}{spooled}\
         [brokers.{AWAY}]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:1\"\n[brokers.{AWAY}.spool]\nmax_bytes = \"4GiB\"\n{}",
        state_dir.display(),
        args.sidebus_toml,
        schema_rules(&state_dir),
    ) + &match policy {
        Policy::None => String::new(),
        Policy::Governance => governance(),
        Policy::Full => governance() + &mapping_and_audit(&state_dir, topic),
    }
}

/// Phase c_pol's additions: the bench topic mapped by a rule (to itself, so the broker setup
/// holds for it) and every publish written to the audit log file.
fn mapping_and_audit(state_dir: &std::path::Path, topic: &str) -> String {
    format!(
        "
[[topics]]
name = \"{topic}\"
broker = \"{BROKER}\"
physical = \"{topic}\"
\
         [audit]
path = \"{}\"
",
        state_dir.join("audit").join("audit.jsonl").display()
    )
}

/// The token phase c_gov sends.
pub(crate) const BENCH_TOKEN: &str = "bench-principal-token";

/// Phase c_gov's sidebus: one principal, whose token every request must carry, with a quota
/// (high enough never to refuse, so that its buckets are checked on every request).
fn governance() -> String {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(BENCH_TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "\n[access.principals.bench]\ntoken_sha256 = \"{digest}\"\npublish = [\">\"]\n\
         quota = {{ events_per_second = 1000000000, bytes_per_second = \"4000MiB\" }}\n"
    )
}

/// A sidebus's state directory for this run (schema files, spools); removed at the end.
pub(crate) fn state_dir(policy: Policy) -> std::path::PathBuf {
    let suffix = match policy {
        Policy::None => "",
        Policy::Governance => "-governed",
        Policy::Full => "-policy",
    };
    std::env::temp_dir().join(format!("sidebus-bench-{}{suffix}", std::process::id()))
}

/// The schema phases' two rules, picked by CloudEvent type so that every phase publishes to the
/// same topic: a JSON Schema check and native Avro encoding of the order event.
pub(crate) fn schema_rules(state_dir: &std::path::Path) -> String {
    let dir = state_dir.join("schemas");
    std::fs::create_dir_all(&dir).expect("bench schema directory");
    let json = dir.join("order.json");
    let avro = dir.join("order.avsc");
    std::fs::write(&json, ORDER_JSON_SCHEMA).expect("writing the bench JSON Schema");
    std::fs::write(&avro, ORDER_AVSC).expect("writing the bench Avro schema");
    format!(
        "\n[[schemas]]\nname = \"bench-json\"\ntopics = [\"*\"]\ntypes = [\"{SCHEMA_JSON_TYPE}\"]\n\
         json_schema = \"{}\"\n\
         [[schemas]]\nname = \"bench-avro\"\ntopics = [\"*\"]\ntypes = [\"{SCHEMA_AVRO_TYPE}\"]\n\
         avro = \"{}\"\nencoding = \"native\"\n",
        json.display(),
        avro.display()
    )
}

/// Starts sidebus's release binary with `policy` for `topic`, and waits until `/readyz` says
/// its brokers are connected.
pub(crate) async fn start_sidebus(
    args: &Args,
    setup: &BrokerSetup,
    policy: Policy,
    topic: &str,
) -> Server {
    let toml = sidebus_toml(args, setup, policy, topic);
    let dir = state_dir(policy);
    std::fs::create_dir_all(&dir).expect("the bench state directory");
    let config = dir.join("sidebus.toml");
    std::fs::write(&config, toml).expect("writing the bench config");
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidebus"));
    command
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--config-poll", "0s"]);
    let mut server = Server::spawn(command, addr, dir.join("sidebus.log"), args);
    server.wait_answering("/readyz").await;
    server
}
