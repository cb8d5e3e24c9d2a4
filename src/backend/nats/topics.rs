//! Discovery: the subjects JetStream streams capture.

use futures::TryStreamExt;

use super::NatsBackend;
use crate::backend::consume::ConsumeError;
use crate::backend::TopicInfo;

impl NatsBackend {
    /// Every subject a stream captures, with the stream's message count where the stream
    /// captures that subject alone (a stream over several subjects does not count per subject).
    pub(super) async fn topics(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<TopicInfo>, ConsumeError> {
        let streams: Vec<_> =
            self.jetstream.streams().try_collect().await.map_err(|e| {
                ConsumeError::Unavailable(format!("listing JetStream streams: {e}"))
            })?;
        let mut topics: Vec<TopicInfo> = streams
            .iter()
            .flat_map(|info| {
                let alone = info.config.subjects.len() == 1;
                info.config.subjects.iter().map(move |subject| TopicInfo {
                    name: subject.clone(),
                    partitions: None,
                    messages: alone.then_some(info.state.messages),
                })
            })
            .filter(|topic| prefix.is_none_or(|p| topic.name.starts_with(p)))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }
}
