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

/// A topic pattern (design §8, "Topic patterns"): dot-separated tokens where `*` matches exactly
/// one token and `>`, as the last token, one or more. A pattern without wildcards matches only
/// itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    text: String,
}

impl TopicPattern {
    /// Parses `text`: a topic name (see [`validate_topic`]) whose tokens may also be `*`, and
    /// the last one `>`.
    pub fn parse(text: &str) -> Result<Self, InvalidTopic> {
        validate_tokens(text, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
        })
        .map_err(|reason| InvalidTopic {
            name: text.to_string(),
            reason,
        })?;
        if text.len() > MAX_TOPIC_LEN {
            return Err(InvalidTopic {
                name: text.to_string(),
                reason: "it is longer than 249 characters",
            });
        }
        Ok(Self {
            text: text.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` is one of the topics this pattern matches.
    pub fn matches(&self, topic: &str) -> bool {
        tokens_match(&self.text, topic)
    }
}

/// Checks the token structure every pattern shares: no empty token, `*` and `>` whole tokens,
/// `>` last; `literal` says which bytes a literal token may hold.
pub fn validate_tokens(text: &str, literal: impl Fn(u8) -> bool) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    let tokens: Vec<&str> = text.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            "" => {
                return Err(
                    "a pattern's tokens are not empty (no leading, trailing or double dots)",
                )
            }
            "*" => {}
            ">" if i + 1 == tokens.len() => {}
            ">" => return Err("`>` may only be the last token of a pattern"),
            _ if token.contains(['*', '>']) => {
                return Err("`*` and `>` are whole tokens of a pattern (`orders.*`, not `orders*`)")
            }
            _ if !token.bytes().all(&literal) => {
                return Err("only the characters A-Z a-z 0-9 . _ - * > are allowed")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether dot-separated `name` matches `pattern` (`*` one token, a last `>` one or more).
pub fn tokens_match(pattern: &str, name: &str) -> bool {
    let mut name = name.split('.');
    for token in pattern.split('.') {
        match (token, name.next()) {
            (_, None) => return false,
            (">", Some(_)) => return true,
            ("*", Some(t)) if !t.is_empty() => {}
            (literal, Some(t)) if literal == t => {}
            _ => return false,
        }
    }
    name.next().is_none()
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

    #[test]
    fn patterns_match_by_token() {
        let p = |t: &str| TopicPattern::parse(t).unwrap();
        assert!(p("orders.*").matches("orders.eu"));
        assert!(!p("orders.*").matches("orders.eu.x"));
        assert!(!p("orders.*").matches("orders"));
        assert!(p("orders.>").matches("orders.eu.x"));
        assert!(!p("orders.>").matches("orders"));
        assert!(p("orders").matches("orders"));
        assert!(!p("orders").matches("orders.eu"));
        for bad in ["", "a..b", "a.>.b", "a*", "a b"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
