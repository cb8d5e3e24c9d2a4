//! The two kinds of server the load goes to, each in its own process as a user runs it:
//! sidebus's release binary, and the bare discard handler that gives the HTTP floor (this
//! harness's own binary, run again with [`BARE_LISTEN`] set).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;

use crate::args::Args;
use crate::brokers::BrokerSetup;
use crate::child::{free_addr, get, Server};
use crate::schema::{ORDER_AVSC, ORDER_JSON_SCHEMA};
use crate::{AWAY, BROKER, SCHEMA_AVRO_TYPE, SCHEMA_JSON_TYPE, SOURCE, SPOOLED};

/// Longest the pipeline may take to empty between phases.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

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

impl Server {
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

/// Starts the bare handler in its own process.
pub(crate) async fn start_bare(args: &Args) -> Server {
    let addr = free_addr();
    let mut command = Command::new(std::env::current_exe().expect("this binary's path"));
    command.env(BARE_LISTEN, addr.to_string());
    let log = std::env::temp_dir().join(format!("sidebus-bench-{}-bare.log", std::process::id()));
    let mut server = Server::spawn(command, addr, log, args.server_threads);
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
    Server::sidebus(&config, dir.join("sidebus.log"), args.server_threads).await
}
