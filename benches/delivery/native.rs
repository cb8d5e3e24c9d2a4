//! Phases (d) and (e): an async-nats JetStream pull consumer reading the same events as sidebus
//! and acking each, what a delivery's broker half costs without sidebus; and the stream's
//! clean-up.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;

use crate::measure::Measured;
use crate::{PHASE_LIMIT, STALL_LIMIT};

/// A client of the NATS server at `url` and its JetStream context; panics saying how to start
/// the server when it is not there.
async fn context(url: &str) -> (async_nats::Client, async_nats::jetstream::Context) {
    let client = async_nats::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "NATS JetStream is not reachable at {url} ({e}); start it with: \
             nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
        )
    });
    let jetstream = async_nats::jetstream::new(client.clone());
    (client, jetstream)
}

/// Deletes the topic's stream; `quiet` when it may well not exist.
pub(crate) async fn delete_stream(url: &str, topic: &str, quiet: bool) {
    let (_client, jetstream) = context(url).await;
    let stream = sidebus::backend::nats::stream_name(topic);
    match tokio::time::timeout(Duration::from_secs(30), jetstream.delete_stream(&stream)).await {
        Ok(Ok(_)) => {
            if !quiet {
                println!("deleted JetStream stream {stream}");
            }
        }
        Ok(Err(e)) if !quiet => eprintln!("delivery: deleting stream {stream}: {e}"),
        Err(_) => eprintln!("delivery: deleting stream {stream}: timed out"),
        Ok(Err(_)) => {}
    }
}

/// An ephemeral pull consumer with `max_ack_pending` reads `events` events of the topic's stream
/// from the start and acks each; timed from the consumer's creation.
pub(crate) async fn consume(
    url: String,
    topic: String,
    events: usize,
    max_ack_pending: usize,
) -> Measured {
    let (client, jetstream) = context(&url).await;
    let name = sidebus::backend::nats::stream_name(&topic);
    let stream = jetstream
        .get_stream(&name)
        .await
        .unwrap_or_else(|e| panic!("stream {name}: {e}"));
    let started = Instant::now();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: topic,
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: max_ack_pending as i64,
            inactive_threshold: Duration::from_secs(60),
            ..pull::Config::default()
        })
        .await
        .unwrap_or_else(|e| panic!("native consumer on {name}: {e}"));
    let mut messages = consumer
        .messages()
        .await
        .unwrap_or_else(|e| panic!("native consumer on {name}: {e}"));
    let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
    let mut count = 0u64;
    while count < events as u64 {
        let next = tokio::time::timeout(STALL_LIMIT, messages.next());
        match tokio::time::timeout_at(deadline, next).await {
            Ok(Ok(Some(Ok(message)))) => {
                if let Err(e) = message.ack().await {
                    eprintln!("delivery: native ack: {e}");
                    break;
                }
                count += 1;
            }
            Ok(Ok(Some(Err(e)))) => {
                eprintln!("delivery: native consumer: {e}");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => {
                eprintln!("delivery: native consumer stalled at {count} events");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), client.flush()).await;
    let wall = started.elapsed();
    drop(messages);
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        stream.delete_consumer(&consumer.cached_info().name),
    )
    .await;
    Measured::new(count, 0, wall, count >= events as u64)
}
