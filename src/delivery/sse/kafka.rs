//! Where a fresh Kafka SSE stream starts, per partition.
//!
//! A resume cursor must name every partition: a cursor that named only the partitions a client
//! happened to receive events from would resume the others at the latest offset and lose what
//! they got meanwhile. `Backend::read_from` does not report where `Earliest`/`Latest` put each
//! partition, so the stream resolves the offsets itself (partition count and watermarks, one
//! short-lived metadata client) and reads from exactly those offsets.
//!
//! This belongs behind the `Backend` trait (a "resolve start positions" method the Kafka
//! backend implements); it lives here until the trait has one.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;

use crate::backend::consume::ConsumeError;
use crate::config::KafkaConfig;

/// How long one metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The offset every partition of `topic` starts at: the low watermark for `earliest`, else the
/// high watermark. `None` when the topic does not exist.
pub async fn start_offsets(
    config: &KafkaConfig,
    topic: &str,
    earliest: bool,
) -> Result<Option<BTreeMap<i32, i64>>, ConsumeError> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", "sidebus-sse-positions");
    for (key, value) in &config.options {
        client.set(key, value);
    }
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| ConsumeError::Invalid(format!("invalid Kafka client settings: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
            .map_err(|e| ConsumeError::Unavailable(format!("kafka metadata request: {e}")))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error().map(RDKafkaErrorCode::from) {
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
            Some(e) => {
                return Err(ConsumeError::Unavailable(format!(
                    "kafka metadata of `{topic}`: {e}"
                )))
            }
        }
        if found.partitions().is_empty() {
            return Ok(None);
        }
        let mut offsets = BTreeMap::new();
        for partition in found.partitions() {
            let id = partition.id();
            let (low, high) = consumer
                .fetch_watermarks(&topic, id, REQUEST_TIMEOUT)
                .map_err(|e| {
                    ConsumeError::Unavailable(format!("kafka watermarks of {topic}/{id}: {e}"))
                })?;
            offsets.insert(id, if earliest { low.max(0) } else { high.max(0) });
        }
        Ok(Some(offsets))
    })
    .await
    .map_err(|e| ConsumeError::Unavailable(format!("kafka metadata task: {e}")))?
}
