//! `application/cloudevents-batch+json` bodies for the load and RSS harnesses, which POST the
//! same batch over and over. Structured events must carry their own `id`, and a body sent again
//! with the same ids would be dropped as duplicates by JetStream (`Nats-Msg-Id`) instead of
//! stored, so every request gets fresh ids: the body is built once and only its ids are
//! rewritten per request (one copy of the body, no formatting).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Digits of an id after its prefix: a `u64` counter, zero-padded.
const ID_DIGITS: usize = 20;

/// Events numbered so far in this process; each request takes the next `n` numbers.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A batch of `n` structured events whose ids change on every [`BatchBody::next`].
pub(crate) struct BatchBody {
    text: Vec<u8>,
    /// Where each entry's id digits start in `text`.
    ids: Vec<usize>,
}

impl BatchBody {
    /// `n` events, each `{"specversion":"1.0","id":"<run>-<digits>",<members>}`: `members` are
    /// the remaining members of the JSON object (`source`, `type`, `data`, ...). `<run>` is the
    /// time of this call, so a later run into a stream an earlier one left behind (a crashed
    /// run does not delete its stream) repeats no id either.
    pub(crate) fn new(n: usize, members: &str) -> Self {
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_nanos();
        let head = format!(r#"{{"specversion":"1.0","id":"{run:x}-"#);
        let head = head.as_bytes();
        let mut text = Vec::with_capacity(n * (head.len() + ID_DIGITS + members.len() + 4) + 2);
        let mut ids = Vec::with_capacity(n);
        text.push(b'[');
        for i in 0..n {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(head);
            ids.push(text.len());
            text.extend_from_slice(&[b'0'; ID_DIGITS]);
            text.extend_from_slice(b"\",");
            text.extend_from_slice(members.as_bytes());
            text.push(b'}');
        }
        text.push(b']');
        Self { text, ids }
    }

    /// The body with ids no earlier request of this process used.
    pub(crate) fn next(&self) -> Bytes {
        let first = NEXT_ID.fetch_add(self.ids.len() as u64, Ordering::Relaxed);
        let mut text = self.text.clone();
        for (number, &at) in (first..).zip(&self.ids) {
            write_digits(&mut text[at..at + ID_DIGITS], number);
        }
        Bytes::from(text)
    }
}

/// Writes `number` into `slot` as decimal digits, zero-padded to its width.
fn write_digits(slot: &mut [u8], mut number: u64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (number % 10) as u8;
        number /= 10;
    }
}
