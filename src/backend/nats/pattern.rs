//! Wildcard subjects: the one stream that captures a pattern, found or created.
//!
//! A JetStream consumer reads one stream, so a pattern is consumed from the one stream whose
//! subjects cover it. When no stream captures any subject under the pattern, sidebus creates
//! `SIDEBUS_<pattern>` (see [`super::stream_name`]) over the pattern itself, and subjects
//! published under it later land there. A pattern some stream captures only in part, or that
//! several streams share, is refused with the streams named.

use async_nats::jetstream::stream::{Config as StreamConfig, Info, StorageType, Stream};
use futures::TryStreamExt;

use super::{stream_name, NatsBackend};
use crate::backend::consume::ConsumeError;
use crate::config::topic::{covers, overlaps, TopicPattern};

impl NatsBackend {
    /// The stream that captures every subject `pattern` matches.
    pub(super) async fn stream_for_pattern(
        &self,
        pattern: &TopicPattern,
    ) -> Result<Stream, ConsumeError> {
        let streams: Vec<Info> =
            self.jetstream.streams().try_collect().await.map_err(|e| {
                ConsumeError::Unavailable(format!("listing JetStream streams: {e}"))
            })?;
        let touching: Vec<&Info> = streams
            .iter()
            .filter(|info| {
                info.config
                    .subjects
                    .iter()
                    .any(|subject| overlaps(subject, pattern.as_str()))
            })
            .collect();
        let name = match touching.as_slice() {
            [] => return self.create_pattern_stream(pattern).await,
            [one]
                if one
                    .config
                    .subjects
                    .iter()
                    .any(|subject| covers(subject, pattern.as_str())) =>
            {
                one.config.name.clone()
            }
            [one] => {
                return Err(ConsumeError::Invalid(format!(
                    "JetStream stream `{}` captures only part of `{pattern}` (its subjects: {}); \
                     a pattern is read from one stream that captures all of it: widen that \
                     stream's subjects to cover `{pattern}`, or subscribe to each subject",
                    one.config.name,
                    one.config.subjects.join(", ")
                )))
            }
            many => {
                let names: Vec<&str> = many.iter().map(|i| i.config.name.as_str()).collect();
                return Err(ConsumeError::Invalid(format!(
                    "`{pattern}` spans the JetStream streams {}; a pattern is read from one \
                     stream that captures all of it: narrow the pattern, or subscribe to each \
                     stream's subjects",
                    names.join(", ")
                )));
            }
        };
        self.jetstream
            .get_stream(&name)
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("stream {name}: {e}")))
    }

    /// The name of a stream whose subjects cover `subject`, if any (or if streams cannot be
    /// listed now, none).
    pub(super) async fn covering_stream(&self, subject: &str) -> Option<String> {
        let streams: Vec<Info> = self.jetstream.streams().try_collect().await.ok()?;
        streams
            .into_iter()
            .find(|info| info.config.subjects.iter().any(|s| covers(s, subject)))
            .map(|info| info.config.name)
    }

    async fn create_pattern_stream(&self, pattern: &TopicPattern) -> Result<Stream, ConsumeError> {
        let name = stream_name(pattern.as_str());
        if !self.create_streams {
            return Err(ConsumeError::Invalid(format!(
                "no JetStream stream captures `{pattern}` and create_streams is off; create a \
                 stream whose subjects cover it"
            )));
        }
        let config = StreamConfig {
            name: name.clone(),
            subjects: vec![pattern.to_string()],
            storage: StorageType::File,
            duplicate_window: self.dedup_window,
            ..StreamConfig::default()
        };
        let mut stream = self
            .jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("creating stream {name}: {e}")))?;
        let subjects = stream
            .info()
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("stream {name}: {e}")))?
            .config
            .subjects
            .clone();
        if !subjects.iter().any(|s| covers(s, pattern.as_str())) {
            return Err(ConsumeError::Invalid(format!(
                "JetStream stream `{name}`, which sidebus would create for `{pattern}`, exists \
                 with other subjects ({})",
                subjects.join(", ")
            )));
        }
        Ok(stream)
    }
}
