//! The two HTTP servers the load goes to: sidebus itself, and the bare discard handler that
//! gives the HTTP ceiling.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use sidebus::{AppState, RawConfig};

use crate::args::{Args, BrokerKind};
use crate::brokers::BrokerSetup;
use crate::schema::{ORDER_AVSC, ORDER_JSON_SCHEMA};
use crate::{AWAY, BROKER, SCHEMA_AVRO_TYPE, SCHEMA_JSON_TYPE, SOURCE, SPOOLED};

/// Longest the pipeline may take to empty between phases.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn bare_router() -> axum::Router {
    async fn discard(body: Bytes) -> StatusCode {
        drop(body);
        StatusCode::OK
    }
    axum::Router::new().fallback(discard)
}

pub(crate) async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(sidebus::nodelay(listener), app).await {
            eprintln!("load: server on {addr} stopped: {e}");
        }
    });
    addr
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
fn schema_rules(state_dir: &std::path::Path) -> String {
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

/// Starts an in-process sidebus with `policy` for `topic`.
pub(crate) async fn start_sidebus(
    args: &Args,
    setup: &BrokerSetup,
    policy: Policy,
    topic: &str,
) -> (SocketAddr, AppState) {
    let toml = sidebus_toml(args, setup, policy, topic);
    let config = RawConfig::from_toml(&toml)
        .and_then(RawConfig::validate)
        .unwrap_or_else(|e| panic!("bench config is invalid: {e}\n{toml}"));
    let state = AppState::build(config)
        .await
        .expect("sidebus backends build");
    let addr = serve(sidebus::app(state.clone())).await;
    (addr, state)
}

pub(crate) async fn wait_connected(state: &AppState, name: &str, kind: BrokerKind) {
    let broker = state.broker(name).expect("a bench broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = broker.backend.status();
        if status.connected {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "sidebus's {} broker did not connect within 30 s: {:?}",
                kind.name(),
                status.last_error
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until sidebus's pipeline holds nothing (events accepted with respond-async included).
pub(crate) async fn drain(state: &AppState) -> Duration {
    let started = Instant::now();
    while state.brokers().any(|b| b.pipeline.in_flight() > 0) && started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}
