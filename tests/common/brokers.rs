//! Real brokers for tests: NATS JetStream and RabbitMQ on this machine, and a Kafka-protocol
//! broker (librdkafka's mock cluster on loopback, or `SIDEBUS_TEST_KAFKA`).

use std::time::Duration;

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// NATS URL: `SIDEBUS_TEST_NATS` or the machine's JetStream server.
pub fn nats_url() -> String {
    std::env::var("SIDEBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// AMQP URL: `SIDEBUS_TEST_AMQP` or the machine's RabbitMQ.
pub fn amqp_url() -> String {
    std::env::var("SIDEBUS_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A native NATS client; panics with how to start the server when it is not reachable.
pub async fn nats_client() -> async_nats::Client {
    let url = nats_url();
    match async_nats::connect(&url).await {
        Ok(client) => client,
        Err(e) => panic!(
            "NATS JetStream is not reachable at {url} ({e}); start it with: \
             nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
        ),
    }
}

/// A native AMQP channel; panics with how to start RabbitMQ when it is not reachable.
pub async fn amqp_channel() -> lapin::Channel {
    let url = amqp_url();
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ is not reachable at {url} ({e}); start it with: rabbitmq-server -detached")
        });
    let channel = connection.create_channel().await.unwrap();
    // The connection lives as long as the channel is used; keep it out of Drop.
    std::mem::forget(connection);
    channel
}

/// Declares an exclusive queue bound to exchange `topic` (declared durable fanout, as sidebus
/// does) and returns a consumer of it.
pub async fn amqp_consumer(channel: &lapin::Channel, topic: &str) -> lapin::Consumer {
    use lapin::options::*;
    use lapin::types::FieldTable;
    channel
        .exchange_declare(
            topic.into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            topic.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
}

/// Reads `n` deliveries, failing after 30 s.
pub async fn amqp_read(consumer: &mut lapin::Consumer, n: usize) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} AMQP messages arrived", out.len()));
        out.push(next.expect("consumer open").expect("delivery"));
    }
    out
}

/// A Kafka-protocol broker for one test.
pub struct Kafka {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Kafka {
    /// `SIDEBUS_TEST_KAFKA` when set, else a fresh librdkafka mock cluster of one broker.
    pub fn start() -> Self {
        match std::env::var("SIDEBUS_TEST_KAFKA") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self {
                bootstrap,
                _mock: None,
            },
            _ => Self::start_mock(),
        }
    }

    /// A fresh librdkafka mock cluster of one broker, even when `SIDEBUS_TEST_KAFKA` is set:
    /// for tests that stop the broker.
    pub fn start_mock() -> Self {
        let mock = MockCluster::new(1).expect("librdkafka mock cluster starts");
        Self {
            bootstrap: mock.bootstrap_servers(),
            _mock: Some(mock),
        }
    }

    /// The mock cluster, when this is one.
    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self._mock.as_ref()
    }

    /// Creates `topic` with `partitions` partitions (the mock cluster has no CreateTopics API,
    /// so it is told directly).
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        if let Some(mock) = &self._mock {
            mock.create_topic(topic, partitions, 1)
                .expect("mock topic created");
            return;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap_or_else(|e| panic!("Kafka at {} is not reachable: {e}", self.bootstrap));
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// Reads `n` messages from the start of every partition of `topic`, failing after 30 s.
    pub fn read(&self, topic: &str, partitions: i32, n: usize) -> Vec<OwnedMessage> {
        let mut out = Vec::with_capacity(n);
        if n > 0 {
            self.read_until(topic, partitions, |m| {
                out.push(m.clone());
                out.len() == n
            });
        }
        out
    }

    /// Reads from the start of every partition of `topic`, handing each message to `done`
    /// until it returns true; fails after 30 s without a message.
    pub fn read_until(
        &self,
        topic: &str,
        partitions: i32,
        mut done: impl FnMut(&OwnedMessage) -> bool,
    ) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set(
                "group.id",
                format!("test-{}", uuid::Uuid::now_v7().simple()),
            )
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut read = 0;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no Kafka message for 30 s after {read} from {topic}"
            );
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                read += 1;
                deadline = std::time::Instant::now() + Duration::from_secs(30);
                if done(&message.expect("kafka message").detach()) {
                    return;
                }
            }
        }
    }
}

/// The Kafka headers of `message` as (name, value) strings.
pub fn kafka_headers(message: &OwnedMessage) -> Vec<(String, String)> {
    use rdkafka::message::Headers;
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Kafka {
    /// Leaves the mock cluster running until the process exits. A test's consumer tasks are
    /// dropped only when its runtime shuts down, after the test body and this value have gone,
    /// and closing a group consumer waits for its group coordinator: once, under CPU load, a
    /// consumer whose mock cluster had been destroyed waited more than 15 minutes.
    fn drop(&mut self) {
        std::mem::forget(self._mock.take());
    }
}

/// The machine's nats-server, or the one `NATS_SERVER_BIN` names.
fn default_nats_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// A private nats-server with JetStream on a free loopback port, for tests that stop a broker.
pub struct PrivateNats {
    /// Its port.
    pub port: u16,
    store: tempfile::TempDir,
    config: Option<std::path::PathBuf>,
    binary: String,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_on_a_free_port(None, default_nats_binary())
    }

    /// Starts `binary` (another nats-server release) and waits until it accepts connections.
    pub fn start_release(binary: &std::path::Path) -> Self {
        assert!(
            binary.exists(),
            "no nats-server at {}; install it with: python3 -m pip install --target \
             target/nats-server-2.15 -r tests/nats/requirements.txt",
            binary.display()
        );
        Self::start_on_a_free_port(None, binary.display().to_string())
    }

    /// Starts one from a config file holding its listen address, its JetStream store and
    /// `extra` (nats-server config syntax, e.g. a `tls { }` block).
    pub fn start_with_config(extra: &str) -> Self {
        Self::start_on_a_free_port(Some(extra), default_nats_binary())
    }

    /// Another process may take the free port before the server binds it; then it tries
    /// another port rather than talking to a server that is not its own.
    fn start_on_a_free_port(extra: Option<&str>, binary: String) -> Self {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut server = Self {
                port,
                store: tempfile::tempdir().unwrap(),
                config: None,
                binary: binary.clone(),
                child: None,
            };
            if let Some(extra) = extra {
                let path = server.store.path().join("nats-server.conf");
                let config = format!(
                    "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: {:?}\n}}\n{extra}",
                    server.store.path(),
                );
                std::fs::write(&path, config).unwrap();
                server.config = Some(path);
            }
            match server.launch() {
                Ok(()) => return server,
                Err(output) if output.contains("address already in use") => continue,
                Err(output) => panic!("private nats-server exited:\n{output}"),
            }
        }
        panic!("no free port for a private nats-server in 5 tries");
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:<port>`: the client insists on TLS.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as an outage would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered. Returns
    /// once every thread of the server has stopped: `kill` returns when the signal is queued,
    /// and on a busy machine the server's other threads went on answering publishes for some
    /// milliseconds after it.
    pub fn freeze(&self) {
        self.signal("-STOP");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.stopped() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not stop within 20 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether every thread of the server is stopped (state `T` in `/proc/<pid>/task/*/stat`).
    fn stopped(&self) -> bool {
        let pid = self.child.as_ref().expect("server running").id();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's /proc");
        tasks
            .map(|task| task.unwrap().path().join("stat"))
            .all(|stat| {
                // The state follows the command name, which is in parentheses and may hold spaces.
                let stat = std::fs::read_to_string(stat).unwrap_or_default();
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T'))
            })
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts the server again on the same port, store and config.
    pub fn restart(&mut self) {
        if let Err(output) = self.launch() {
            panic!("private nats-server exited:\n{output}");
        }
    }

    /// Runs the server and waits until its own log says it is ready (a connection alone could
    /// reach another process on the port); `Err` with its log when it exits first.
    fn launch(&mut self) -> Result<(), String> {
        let binary = &self.binary;
        let mut command = std::process::Command::new(binary);
        match &self.config {
            Some(config) => command.arg("-c").arg(config),
            None => command
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(self.store.path()),
        };
        let log = self.store.path().join("nats-server.log");
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary} ({e}); install it with: apt-get install nats-server")
            });
        let child = self.child.insert(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if child.try_wait().unwrap().is_some() {
                self.child = None;
                return Err(output);
            }
            if output.contains("Server is ready") {
                return Ok(());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "private nats-server did not start:\n{output}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}
