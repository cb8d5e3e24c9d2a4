//! Positional reads of a Kafka topic.
//!
//! A positional read assigns every partition of the topic, without a group and without commits:
//! at the cursor's next offsets (partitions it does not name, and `latest`, at the end offsets
//! looked up when the read starts, so nothing produced after that is missed); a cursor older
//! than retention starts at the earliest offset retained.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::consume::{
    close, consumer_config, lag_fn, partition_count, to_event, unavailable, KafkaConsumer,
};
use super::group::Context;
use super::metadata::watermarks;
use crate::backend::consume::{ConsumeError, Consumer, Delivery, NoSettle, ReadFrom, Spot};

/// Capacity of a positional reader's channel.
const READ_CHANNEL: usize = 256;

/// Reads `topic` from `from` without a group: every partition is assigned at its start offset.
pub(super) async fn read_from(
    base: &ClientConfig,
    topic: &str,
    from: ReadFrom,
) -> Result<Consumer, ConsumeError> {
    let named: BTreeMap<i32, i64> = match &from {
        ReadFrom::Sequence(_) => {
            return Err(ConsumeError::Invalid(
                "a Kafka cursor is an offset per partition, not a sequence".into(),
            ))
        }
        ReadFrom::Offsets(offsets) => offsets.clone(),
        ReadFrom::Earliest | ReadFrom::Latest => BTreeMap::new(),
    };
    if let Some((p, o)) = named.iter().find(|(p, o)| **p < 0 || **o < 0) {
        return Err(ConsumeError::Invalid(format!(
            "invalid Kafka position {p}:{o}: partitions and offsets are not negative"
        )));
    }
    let mut config = consumer_config(base);
    config
        .set(
            "group.id",
            format!("sidebus-reader-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    let lag = Arc::new(AtomicI64::new(-1));
    let context = Context {
        topic: topic.to_string(),
        group: None,
        lag: lag.clone(),
    };
    let consumer: Arc<KafkaConsumer> = Arc::new(
        KafkaConsumer::from_config_and_context(&config, context)
            .map_err(|e| ConsumeError::Invalid(format!("invalid Kafka consumer settings: {e}")))?,
    );
    match assign(&consumer, topic, &from, named).await {
        Ok(()) => {}
        Err(e) => {
            close(consumer);
            return Err(e);
        }
    }
    let (tx, rx) = mpsc::channel(READ_CHANNEL);
    let (stop, mut stopped) = oneshot::channel();
    let topic: Arc<str> = Arc::from(topic);
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                _ = &mut stopped => break,
                message = consumer.recv() => match message {
                    Ok(message) => Ok(Delivery {
                        topic: topic.clone(),
                        event: to_event(&message),
                        spot: Spot {
                            partition: message.partition(),
                            offset: message.offset(),
                        },
                        redelivered: false,
                        settle: Box::new(NoSettle),
                    }),
                    Err(error) => Err(unavailable("kafka", error)),
                },
            };
            tokio::select! {
                _ = &mut stopped => break,
                sent = tx.send(item) => if sent.is_err() { break },
            }
        }
        close(consumer);
    });
    let mut out = Consumer::new(rx, stop);
    out.lag = lag_fn(lag);
    Ok(out)
}

/// Assigns every partition of `topic` at its start: named offsets, else the earliest or the
/// current end (resolved now, so everything produced after this returns is read).
async fn assign(
    consumer: &Arc<KafkaConsumer>,
    topic: &str,
    from: &ReadFrom,
    named: BTreeMap<i32, i64>,
) -> Result<(), ConsumeError> {
    let count = partition_count(consumer, topic).await?;
    if let Some(p) = named.keys().find(|p| **p >= count) {
        return Err(ConsumeError::Invalid(format!(
            "Kafka topic `{topic}` has {count} partitions; the cursor names partition {p}"
        )));
    }
    let earliest = matches!(from, ReadFrom::Earliest);
    let resolver = consumer.clone();
    let topic_name = topic.to_string();
    let tpl = tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        for partition in 0..count {
            let offset = match named.get(&partition) {
                Some(offset) => Offset::Offset(*offset),
                None if earliest => Offset::Beginning,
                None => {
                    let (_, high) = watermarks(resolver.client(), &topic_name, partition)?;
                    Offset::Offset(high)
                }
            };
            tpl.add_partition_offset(&topic_name, partition, offset)
                .map_err(|e| ConsumeError::Invalid(format!("kafka position: {e}")))?;
        }
        Ok::<_, ConsumeError>(tpl)
    })
    .await
    .map_err(|e| unavailable("kafka watermark task", e))??;
    consumer
        .assign(&tpl)
        .map_err(|e| unavailable("assigning Kafka partitions", e))
}
