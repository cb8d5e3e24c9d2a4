//! `[brokers.<name>.spool]`: the durable local log a broker's publishes go to while the broker
//! cannot take them (design §8.9).

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// The smallest spool: a few large events.
const MIN_BYTES: u64 = 64 << 10;

/// A broker's spool. Without one, a publish the broker cannot take is `503`/`504`; with one it
/// is written to `state_dir/spool/<broker>/`, answered `202`, and forwarded in order once the
/// broker is back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most bytes the spool's files may hold (records and their 8-byte frames); a publish that
    /// does not fit is `507` with `Retry-After`. Space is freed as the broker acknowledges
    /// forwarded events.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

fn default_max_bytes() -> ByteSize {
    ByteSize::gib(1)
}

impl SpoolConfig {
    /// Checks the bound; `key` names the table in errors.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.max_bytes.as_u64() < MIN_BYTES {
            return Err(invalid(
                format!("{key}.max_bytes"),
                format!("must be at least 64KiB, got {}", self.max_bytes),
            ));
        }
        Ok(())
    }

    /// Bytes of one segment file: an eighth of the bound, between 64 KiB and 64 MiB, so space
    /// comes back in steps small against the bound.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes.as_u64() / 8).clamp(MIN_BYTES, 64 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_checked_and_segments_follow_it() {
        let spool = |max: &str| SpoolConfig {
            max_bytes: max.parse().unwrap(),
        };
        assert!(spool("1GiB").validate("brokers.b.spool").is_ok());
        let err = spool("1KiB").validate("brokers.b.spool").unwrap_err();
        assert!(
            err.to_string().contains("brokers.b.spool.max_bytes"),
            "{err}"
        );
        assert_eq!(spool("1GiB").segment_bytes(), 64 << 20);
        assert_eq!(spool("1MiB").segment_bytes(), 128 << 10);
        assert_eq!(spool("64KiB").segment_bytes(), 64 << 10);
    }
}
