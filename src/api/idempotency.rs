//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): the first successful
//! response to a key is replayed to retries within the window; a retry while the first attempt
//! runs gets 409, and the same key with a different request gets 422.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use tokio::time::Instant;

/// Longest `Idempotency-Key`, quotes excluded.
pub const MAX_KEY_LEN: usize = 255;

/// The key of an `Idempotency-Key` header value, or `None` when it is malformed: 1-255
/// characters of visible ASCII other than `"`, with inner spaces allowed, optionally wrapped
/// in one pair of double quotes (the structured-field string form the IETF draft uses).
pub fn parse_key(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let key = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let visible = |b: u8| (0x21..=0x7e).contains(&b) && b != b'"';
    let bytes = key.as_bytes();
    let well_formed = (1..=MAX_KEY_LEN).contains(&bytes.len())
        && visible(bytes[0])
        && visible(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| b == b' ' || visible(b));
    well_formed.then_some(key)
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Status of the first response.
    pub status: StatusCode,
    /// JSON body of the first response.
    pub body: Bytes,
}

#[derive(Debug)]
enum Entry {
    Running { fingerprint: u64 },
    Done { fingerprint: u64, response: Stored },
}

#[derive(Debug, Default)]
struct Keys {
    entries: HashMap<String, Entry>,
    /// Completion order with expiry, for bounded, oldest-first forgetting.
    expiries: VecDeque<(Instant, String)>,
}

/// The outcome of presenting a key.
#[derive(Debug)]
pub enum Begin {
    /// First time: run the request and [`Claim::complete`] it.
    Fresh(Claim),
    /// Seen and finished: answer with this.
    Replay(Stored),
    /// Seen and still running.
    InProgress,
    /// Seen with a different request.
    Mismatch,
}

/// Bounded window of idempotency keys.
#[derive(Debug)]
pub struct IdempotencyStore {
    window: Duration,
    max_keys: usize,
    keys: Mutex<Keys>,
}

impl IdempotencyStore {
    /// Keys are remembered for `window`, at most `max_keys` of them.
    pub fn new(window: Duration, max_keys: usize) -> Arc<Self> {
        Arc::new(Self {
            window,
            max_keys,
            keys: Mutex::new(Keys::default()),
        })
    }

    /// Presents `key` for a request whose content hashes to `fingerprint`.
    pub fn begin(self: &Arc<Self>, key: String, fingerprint: u64) -> Begin {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        self.forget_expired(&mut keys, now);
        match keys.entries.get(&key) {
            Some(Entry::Running { fingerprint: f }) if *f == fingerprint => Begin::InProgress,
            Some(Entry::Done {
                fingerprint: f,
                response,
            }) if *f == fingerprint => Begin::Replay(response.clone()),
            Some(_) => Begin::Mismatch,
            None => {
                keys.entries
                    .insert(key.clone(), Entry::Running { fingerprint });
                Begin::Fresh(Claim {
                    store: self.clone(),
                    key: Some(key),
                    fingerprint,
                })
            }
        }
    }

    fn forget_expired(&self, keys: &mut Keys, now: Instant) {
        while let Some((expiry, _)) = keys.expiries.front() {
            let over_capacity = keys.entries.len() >= self.max_keys;
            if *expiry > now && !over_capacity {
                break;
            }
            let (_, key) = keys.expiries.pop_front().expect("front exists");
            if matches!(keys.entries.get(&key), Some(Entry::Done { .. })) {
                keys.entries.remove(&key);
            }
        }
    }
}

/// The right to run a request for a key; dropping it without completing frees the key so a
/// retry runs again (used for failures worth retrying: 429, 5xx).
#[derive(Debug)]
pub struct Claim {
    store: Arc<IdempotencyStore>,
    key: Option<String>,
    fingerprint: u64,
}

impl Claim {
    /// Records the response to replay for this key.
    pub fn complete(mut self, response: Stored) {
        let Some(key) = self.key.take() else { return };
        let mut keys = self.store.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.expiries
            .push_back((Instant::now() + self.store.window, key.clone()));
        keys.entries.insert(
            key,
            Entry::Done {
                fingerprint: self.fingerprint,
                response,
            },
        );
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut keys = self.store.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &'static str) -> Stored {
        Stored {
            status: StatusCode::OK,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn keys_are_visible_ascii_optionally_quoted() {
        let long = "k".repeat(MAX_KEY_LEN);
        let quoted_long = format!("\"{long}\"");
        for (value, key) in [
            ("order-42", Some("order-42")),
            ("\"order-42\"", Some("order-42")),
            ("a b", Some("a b")),
            ("\"a b\"", Some("a b")),
            (" k ", Some("k")),
            (long.as_str(), Some(long.as_str())),
            (quoted_long.as_str(), Some(long.as_str())),
        ] {
            assert_eq!(parse_key(value.as_bytes()), key, "{value:?}");
        }
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for value in [
            "",
            "\"\"",
            "\"",
            "\"abc",
            "a\"b",
            "\" a\"",
            "caf\u{e9}",
            "a\u{1}b",
            too_long.as_str(),
        ] {
            assert_eq!(parse_key(value.as_bytes()), None, "{value:?}");
        }
    }

    #[tokio::test]
    async fn replays_conflicts_and_mismatches() {
        let store = IdempotencyStore::new(Duration::from_secs(60), 10);
        let Begin::Fresh(claim) = store.begin("k".into(), 1) else {
            panic!("first use is fresh")
        };
        assert!(matches!(store.begin("k".into(), 1), Begin::InProgress));
        claim.complete(stored("a"));
        assert!(matches!(store.begin("k".into(), 1), Begin::Replay(s) if s == stored("a")));
        assert!(matches!(store.begin("k".into(), 2), Begin::Mismatch));
    }

    #[tokio::test]
    async fn dropped_claim_frees_the_key() {
        let store = IdempotencyStore::new(Duration::from_secs(60), 10);
        drop(store.begin("k".into(), 1));
        assert!(matches!(store.begin("k".into(), 1), Begin::Fresh(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_expire_after_the_window() {
        let store = IdempotencyStore::new(Duration::from_secs(60), 10);
        let Begin::Fresh(claim) = store.begin("k".into(), 1) else {
            panic!()
        };
        claim.complete(stored("a"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(store.begin("k".into(), 1), Begin::Fresh(_)));
    }

    #[tokio::test]
    async fn capacity_forgets_the_oldest() {
        let store = IdempotencyStore::new(Duration::from_secs(60), 2);
        for k in ["a", "b", "c"] {
            let Begin::Fresh(claim) = store.begin(k.into(), 1) else {
                panic!()
            };
            claim.complete(stored("x"));
        }
        assert!(matches!(store.begin("a".into(), 1), Begin::Fresh(_)));
        assert!(matches!(store.begin("c".into(), 1), Begin::Replay(_)));
    }
}
