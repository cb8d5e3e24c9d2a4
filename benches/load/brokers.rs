//! The brokers a run publishes to: reaching them, creating the topic, stream or exchange and
//! queue, emptying them between phases and deleting them at the end.

use std::sync::Arc;
use std::time::Duration;

use crate::args::{Args, BrokerKind};
use crate::native::Native;
use crate::OP_TIMEOUT;

pub(crate) enum BrokerSetup {
    Memory,
    Kafka {
        bootstrap: String,
        /// Kept alive for the whole run when the broker is librdkafka's mock cluster.
        _mock: Option<
            rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        >,
    },
    Nats {
        url: String,
        jetstream: async_nats::jetstream::Context,
        stream: String,
    },
    Amqp {
        url: String,
        connection: lapin::Connection,
        channel: lapin::Channel,
        queue: String,
    },
}

impl BrokerSetup {
    /// Reaches the broker and creates what the run publishes to.
    pub(crate) async fn start(args: &Args, topic: &str) -> Self {
        match args.broker {
            BrokerKind::Memory => BrokerSetup::Memory,
            BrokerKind::Kafka => kafka_setup(args, topic).await,
            BrokerKind::Nats => nats_setup(topic).await,
            BrokerKind::Amqp => amqp_setup(topic).await,
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            BrokerSetup::Memory => "memory (inside sidebus)".into(),
            BrokerSetup::Kafka { bootstrap, _mock } => match _mock {
                Some(_) => format!("kafka: librdkafka mock cluster, in-process, {bootstrap}"),
                None => format!("kafka: {bootstrap}"),
            },
            BrokerSetup::Nats { url, stream, .. } => format!("nats: {url}, stream {stream}"),
            BrokerSetup::Amqp { url, queue, .. } => {
                format!("amqp: {}, durable queue {queue}", redact(url))
            }
        }
    }

    /// Empties what the run publishes into, before each phase that publishes: a queue or
    /// stream that earlier phases filled (up to its cap, where the broker starts dropping the
    /// oldest) costs the broker more per message, which would tilt later phases against earlier.
    pub(crate) async fn empty(&self) {
        match self {
            BrokerSetup::Memory | BrokerSetup::Kafka { .. } => {}
            BrokerSetup::Nats {
                jetstream, stream, ..
            } => {
                let stream = jetstream
                    .get_stream(stream)
                    .await
                    .unwrap_or_else(|e| panic!("looking up stream {stream}: {e}"));
                stream.purge().await.expect("purging the stream");
            }
            BrokerSetup::Amqp { channel, queue, .. } => {
                channel
                    .queue_purge(
                        queue.as_str().into(),
                        lapin::options::QueuePurgeOptions::default(),
                    )
                    .await
                    .expect("purging the queue");
            }
        }
    }

    /// The native client for the native phase, or `None` for the memory broker.
    pub(crate) async fn native(&self, topic: &str) -> Option<Arc<Native>> {
        Some(Arc::new(match self {
            BrokerSetup::Memory => return None,
            BrokerSetup::Kafka { bootstrap, .. } => {
                let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .set("client.id", "bench-native")
                    // The same settings as sidebus's producer (src/backend/kafka/mod.rs).
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "0")
                    .set("message.timeout.ms", "30000")
                    .create()
                    .expect("native Kafka producer");
                Native::Kafka {
                    producer,
                    topic: topic.to_string(),
                }
            }
            BrokerSetup::Nats { jetstream, .. } => Native::Nats {
                jetstream: jetstream.clone(),
                subject: topic.to_string(),
            },
            BrokerSetup::Amqp { channel, .. } => Native::Amqp {
                channel: channel.clone(),
                exchange: topic.to_string(),
            },
        }))
    }

    pub(crate) async fn cleanup(&self, topic: &str) {
        match self {
            BrokerSetup::Memory | BrokerSetup::Kafka { .. } => {}
            BrokerSetup::Nats {
                jetstream, stream, ..
            } => {
                if let Err(e) = jetstream.delete_stream(stream).await {
                    eprintln!("load: deleting stream {stream}: {e}");
                }
            }
            BrokerSetup::Amqp {
                connection,
                channel,
                queue,
                ..
            } => {
                use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                if let Err(e) = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await
                {
                    eprintln!("load: deleting queue {queue}: {e}");
                }
                if let Err(e) = channel
                    .exchange_delete(topic.into(), ExchangeDeleteOptions::default())
                    .await
                {
                    eprintln!("load: deleting exchange {topic}: {e}");
                }
                let _ = connection.close(200, "bench done".into()).await;
            }
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

async fn kafka_setup(args: &Args, topic: &str) -> BrokerSetup {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    if let Ok(bootstrap) = std::env::var("SIDEBUS_TEST_KAFKA") {
        if !bootstrap.is_empty() {
            let admin: AdminClient<rdkafka::client::DefaultClientContext> =
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create()
                    .expect("Kafka admin client");
            let results = admin
                .create_topics(
                    &[NewTopic::new(
                        topic,
                        args.partitions,
                        TopicReplication::Fixed(1),
                    )],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                )
                .await
                .unwrap_or_else(|e| panic!("Kafka at {bootstrap} is not reachable: {e}"));
            for r in results {
                r.unwrap_or_else(|(t, e)| panic!("creating Kafka topic {t}: {e}"));
            }
            return BrokerSetup::Kafka {
                bootstrap,
                _mock: None,
            };
        }
    }
    // The mock cluster creates topics through its own API (CreateTopics requests to it time out).
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka mock cluster");
    mock.create_topic(topic, args.partitions, 1)
        .expect("creating the topic on the mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let mock = Some(mock);
    BrokerSetup::Kafka {
        bootstrap,
        _mock: mock,
    }
}

async fn nats_setup(topic: &str) -> BrokerSetup {
    use async_nats::jetstream::stream::{Config, StorageType};
    let url = std::env::var("SIDEBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "NATS JetStream is not reachable at {url} ({e}); start it with: \
             nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
        )
    });
    // The same context settings as sidebus's (src/backend/nats.rs).
    let jetstream = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(OP_TIMEOUT)
        .max_ack_inflight(1 << 20)
        .build(client);
    // The stream sidebus would create for the topic (file storage, 120 s duplicate window =
    // the default idempotency window), bounded so the run's disk use is too; both sidebus and the
    // native client publish into it.
    let stream = sidebus::backend::nats::stream_name(topic);
    jetstream
        .get_or_create_stream(Config {
            name: stream.clone(),
            subjects: vec![topic.to_string()],
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_bytes: 1 << 30,
            ..Config::default()
        })
        .await
        .unwrap_or_else(|e| panic!("creating JetStream stream {stream}: {e}"));
    BrokerSetup::Nats {
        url,
        jetstream,
        stream,
    }
}

async fn amqp_setup(topic: &str) -> BrokerSetup {
    use lapin::options::ConfirmSelectOptions;
    let url = std::env::var("SIDEBUS_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at {} ({e}); start it with: rabbitmq-server -detached",
                redact(&url)
            )
        });
    let channel = connection.create_channel().await.expect("AMQP channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("publisher confirms");
    let queue = format!("{topic}.bench");
    crate::amqp::bound_queue(&channel, topic, &queue).await;
    BrokerSetup::Amqp {
        url,
        connection,
        channel,
        queue,
    }
}
