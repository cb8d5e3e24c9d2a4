//! Topic metadata and watermarks: the one place sidebus asks a Kafka cluster what its topics
//! are and where their partitions begin and end. Every call blocks on a request (at most
//! [`METADATA_TIMEOUT`]); async callers run them on the blocking pool.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};

use crate::backend::consume::ConsumeError;

/// How long a metadata or watermark request may take.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cluster says of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TopicState {
    /// The topic does not exist.
    Missing,
    /// The topic exists but has no usable partitions yet (a leader being elected), with the
    /// error the broker gave, if any.
    Unready(Option<RDKafkaErrorCode>),
    /// The topic and its partition count (partitions are numbered from 0).
    Ready(i32),
}

/// Asks the cluster about `topic`.
pub(super) fn topic_state<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<TopicState, ConsumeError> {
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| ConsumeError::Unavailable(format!("kafka metadata request: {e}")))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(TopicState::Missing);
    };
    Ok(match found.error().map(RDKafkaErrorCode::from) {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => TopicState::Missing,
        Some(error) => TopicState::Unready(Some(error)),
        None if found.partitions().is_empty() => TopicState::Unready(None),
        None => TopicState::Ready(found.partitions().len() as i32),
    })
}

/// The low and high watermark of one partition: the oldest offset retained and the offset the
/// next message will get.
pub(super) fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), ConsumeError> {
    client
        .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
        .map_err(|e| {
            ConsumeError::Unavailable(format!("kafka watermarks of {topic}/{partition}: {e}"))
        })
}

/// The offset every partition of `topic` starts at: the low watermark for `earliest`, else the
/// high watermark. `None` when the topic does not exist or has no partitions yet.
pub(super) fn start_offsets<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    earliest: bool,
) -> Result<Option<BTreeMap<i32, i64>>, ConsumeError> {
    let count = match topic_state(client, topic)? {
        TopicState::Ready(count) => count,
        TopicState::Missing | TopicState::Unready(None) => return Ok(None),
        TopicState::Unready(Some(e)) => {
            return Err(ConsumeError::Unavailable(format!(
                "kafka metadata of `{topic}`: {e}"
            )))
        }
    };
    let mut offsets = BTreeMap::new();
    for partition in 0..count {
        let (low, high) = watermarks(client, topic, partition)?;
        offsets.insert(partition, if earliest { low.max(0) } else { high.max(0) });
    }
    Ok(Some(offsets))
}

/// Every topic of the cluster and its partition count.
pub(super) fn topics<C: ClientContext>(client: &Client<C>) -> KafkaResult<Vec<(String, u32)>> {
    let metadata = client.fetch_metadata(None, METADATA_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as u32))
        .collect())
}
