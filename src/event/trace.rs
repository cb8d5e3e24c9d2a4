//! W3C trace context (`traceparent` / `tracestate`) carried as the CloudEvents
//! distributed-tracing extension from the publish request to the webhook request.

use http::{HeaderMap, HeaderName};

/// A trace context as found on a request or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    pub traceparent: String,
    /// Vendor state, passed on unchanged.
    pub tracestate: Option<String>,
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

fn random_hex(bytes: usize) -> String {
    let mut out = [b'0'; 32];
    let out = &mut out[..bytes * 2];
    fill_random_hex(out);
    std::str::from_utf8(out).expect("hex is ASCII").to_owned()
}

/// Fills `out` (at most 32 digits) with random lowercase hex: a trace or parent id, made per
/// request, so without formatting machinery.
fn fill_random_hex(out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = uuid::Uuid::new_v4().as_u128();
    let last = out.len() - 1;
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = HEX[(random >> ((last - i) * 4)) as usize & 0xf];
    }
}

/// Checks the `00` version format of a traceparent (lowercase hex, non-zero ids).
pub fn is_valid(traceparent: &str) -> bool {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

impl TraceContext {
    /// A new trace (sampled), for requests that bring none.
    pub fn new_root() -> Self {
        let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-01";
        fill_random_hex(&mut traceparent[3..35]);
        fill_random_hex(&mut traceparent[36..52]);
        Self {
            traceparent: std::str::from_utf8(&traceparent)
                .expect("hex is ASCII")
                .to_owned(),
            tracestate: None,
        }
    }

    /// The same trace with a new parent id: what a hop (sidebus delivering) sends on.
    pub fn child_of(traceparent: &str) -> Option<String> {
        if !is_valid(traceparent) {
            return None;
        }
        let mut parts: Vec<&str> = traceparent.split('-').collect();
        let span = random_hex(8);
        parts[2] = &span;
        Some(parts.join("-"))
    }
}

/// The trace context of a request's `traceparent`/`tracestate` headers, if valid.
pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
    let traceparent = headers.get(&TRACEPARENT)?.to_str().ok()?.trim().to_string();
    if !is_valid(&traceparent) {
        return None;
    }
    let tracestate = headers
        .get(&TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Some(TraceContext {
        traceparent,
        tracestate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_valid_and_children_keep_the_trace() {
        let root = TraceContext::new_root();
        assert!(is_valid(&root.traceparent), "{}", root.traceparent);
        let child = TraceContext::child_of(&root.traceparent).unwrap();
        assert!(is_valid(&child));
        assert_eq!(child[..35], root.traceparent[..35]);
        assert_ne!(child, root.traceparent);
    }

    #[test]
    fn invalid_parents_are_refused() {
        for bad in [
            "",
            "00-0000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
