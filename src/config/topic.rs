//! Topic names, the one rule every broker shares, and topic patterns (design §8.4).

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

/// A topic pattern (design §8.4): dot-separated tokens where `*` matches exactly one token and
/// `>`, as the last token, one or more. A pattern without wildcards matches only itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    text: String,
    wildcard: bool,
}

impl TopicPattern {
    /// Parses `text`: a topic name (see [`validate_topic`]), or dot-separated non-empty tokens of
    /// `[A-Za-z0-9_-]` where a token may also be `*`, and the last one `>`.
    pub fn parse(text: &str) -> Result<Self, InvalidTopic> {
        let fail = |reason| {
            Err(InvalidTopic {
                name: text.to_string(),
                reason,
            })
        };
        if !text.contains(['*', '>']) {
            validate_topic(text)?;
            return Ok(Self {
                text: text.to_string(),
                wildcard: false,
            });
        }
        if text.len() > MAX_TOPIC_LEN {
            return fail("it is longer than 249 characters");
        }
        if let Err(reason) = validate_tokens(text, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
        }) {
            return fail(reason);
        }
        Ok(Self {
            text: text.to_string(),
            wildcard: true,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has a `*` or `>` token (and so may match several topics).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether `topic` is one of the topics this pattern matches.
    pub fn matches(&self, topic: &str) -> bool {
        if !self.wildcard {
            return self.text == topic;
        }
        tokens_match(&self.text, topic)
    }

    /// Whether every topic `other` matches is matched by this pattern too.
    pub fn covers(&self, other: &str) -> bool {
        covers(&self.text, other)
    }

    /// Whether some topic is matched by both this pattern and `other`.
    pub fn overlaps(&self, other: &str) -> bool {
        overlaps(&self.text, other)
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether pattern `wide` matches every topic pattern `narrow` matches (both dot-separated, with
/// Checks the token structure every pattern shares (topic patterns, and the CloudEvent `type`
/// patterns of schema rules): not empty, no empty token, `*` and `>` whole tokens, `>` last;
/// `literal` says which bytes a literal token may hold.
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

/// `*` and `>` tokens; a NATS subject is one).
pub fn covers(wide: &str, narrow: &str) -> bool {
    let (mut wide, mut narrow) = (wide.split('.'), narrow.split('.'));
    loop {
        match (wide.next(), narrow.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (_, Some(">")) | (None, Some(_)) | (Some(_), None) => return false,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(n)) if w == n => {}
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both patterns `a` and `b`.
pub fn overlaps(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("*"), Some(_)) | (Some(_), Some("*")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
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
        let table: &[(&str, &str, bool)] = &[
            ("orders", "orders", true),
            ("orders", "orders.eu", false),
            ("orders.*", "orders.eu", true),
            ("orders.*", "orders.eu.x", false),
            ("orders.*", "orders", false),
            ("orders.>", "orders.eu", true),
            ("orders.>", "orders.eu.x", true),
            ("orders.>", "orders", false),
            ("*.eu", "orders.eu", true),
            ("*.eu", "orders.us", false),
            ("orders.*.x", "orders.eu.x", true),
            ("orders.*.x", "orders.eu.y", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("orders.*", "orders..", false),
            ("orders.*", "orders.", false),
        ];
        for (pattern, topic, expected) in table {
            let parsed = TopicPattern::parse(pattern).unwrap();
            assert_eq!(parsed.matches(topic), *expected, "{pattern} ~ {topic}");
            assert_eq!(
                parsed.is_wildcard(),
                pattern.contains(['*', '>']),
                "{pattern}"
            );
        }
    }

    #[test]
    fn patterns_refuse_malformed_wildcards() {
        for bad in [
            "orders*",
            "orders.>.x",
            "orders..*",
            ".*",
            "*.",
            "a.b>",
            "a.*x",
            "a b.*",
            "é.*",
            &format!("{}.*", "x".repeat(248)),
        ] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
        for ok in ["a", "a..b", "*", ">", "a.*.c.>", "A_b-c.*"] {
            assert!(TopicPattern::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn cover_and_overlap() {
        assert!(covers("orders.>", "orders.*"));
        assert!(covers("orders.>", "orders.eu.>"));
        assert!(covers("orders.*", "orders.eu"));
        assert!(covers("orders.*", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("orders.eu", "orders.*"));
        assert!(!covers("orders.*", "orders.eu.x"));
        assert!(overlaps("orders.*", "orders.eu"));
        assert!(overlaps("orders.*", "*.eu"));
        assert!(overlaps("orders.>", "*.eu.x"));
        assert!(!overlaps("orders.*", "orders.eu.x"));
        assert!(!overlaps("orders.*", "payments.>"));
        assert!(!overlaps("orders", "orders.>"));
    }
}
