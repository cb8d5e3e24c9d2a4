//! What a broker kind can do, described as data so the layers above decide from capabilities
//! and never from broker names.

/// What a broker kind can do beyond publishing and group subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// How positions of this broker are written into SSE resume cursors; `None` where a read has
    /// no position a client could resume from.
    pub cursor: Option<CursorKind>,
    /// Set when the broker keeps no history, so a topic cannot be read again from its oldest
    /// event or from a cursor: why not, in words for the user.
    pub no_replay: Option<NoReplay>,
    /// Set when the broker cannot consume a topic pattern (`orders.*`) at all: why not, in words
    /// for the user (a subscription or stream on a pattern is refused with `400`).
    pub no_wildcards: Option<&'static str>,
    /// Set when the broker consumes patterns through groups but cannot read one from a
    /// position (an SSE stream without `?group=`): why not, in words for the user.
    pub no_wildcard_read: Option<&'static str>,
}

/// Why a broker cannot read a topic again, as the user is told when a stream asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoReplay {
    /// The refusal of a cursor (`Last-Event-ID`), with what to do instead.
    pub cursor: &'static str,
    /// The refusal of `?from=earliest`.
    pub earliest: &'static str,
}

/// The tag of one broker kind's positions inside a resume cursor. Cursors are issued to clients
/// and come back from any sidebus instance, so a kind's byte and layout never change and a byte
/// is never reused for another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorKind {
    /// The kind byte written after the cursor version (1 memory, 2 JetStream, 3 Kafka).
    pub byte: u8,
    /// What cursor error messages call a cursor of this kind ("it is a Kafka cursor").
    pub name: &'static str,
    /// How the position is laid out after the kind byte.
    pub layout: CursorLayout,
}

/// How a position is written into a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorLayout {
    /// One number for the whole topic ([`ReadPosition::Sequence`](super::consume::ReadPosition)).
    Sequence,
    /// An offset per partition ([`ReadPosition::Offsets`](super::consume::ReadPosition)).
    Offsets,
}

/// One topic a broker has, as `list_topics` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicInfo {
    /// The topic (Kafka topic, JetStream subject, memory topic).
    pub name: String,
    /// Partitions, where the broker has them (Kafka).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Events the broker holds for the topic now, where it says (JetStream, memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
}
