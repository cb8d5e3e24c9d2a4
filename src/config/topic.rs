//! Topic names: the one rule every broker shares.

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic `{name}` is invalid: {reason}")]
pub struct InvalidTopic {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Longest topic name: Kafka's limit, applied on every broker so topics move between them.
pub const MAX_TOPIC_LEN: usize = 249;

/// Accepts 1-249 characters of `[A-Za-z0-9._-]` (Kafka's rule; a dot separates NATS subject tokens).
pub fn validate_topic(name: &str) -> Result<(), InvalidTopic> {
    let fail = |reason| {
        Err(InvalidTopic {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_TOPIC_LEN {
        return fail("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail("only the characters A-Z a-z 0-9 . _ - are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names() {
        for ok in ["a", "orders", "orders.v1", "A_b-c.9", &"x".repeat(249)] {
            assert!(validate_topic(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in ["", "a b", "a/b", "a*", "a>", "é", &"x".repeat(250)] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
    }
}
