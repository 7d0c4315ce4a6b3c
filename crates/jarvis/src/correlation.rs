//! Correlation IDs: one per request, carried into every task, agent call and health check.
//!
//! An ID given by the caller (`X-Correlation-ID`, or `X-Request-ID`) is kept when it is a sane
//! token; anything else is replaced by a fresh `req-<random>` ID, so a hostile header can never
//! reach a log line. The ID travels as the `correlation_id` field of a `tracing` span (see
//! [`crate::telemetry`]), and as the `X-Correlation-ID` header on outgoing calls.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The header Jarvis reads, echoes and sends.
pub const HEADER: &str = "x-correlation-id";
/// An alternative incoming header, used when `X-Correlation-ID` is absent.
pub const ALT_HEADER: &str = "x-request-id";

/// A validated correlation ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// The longest ID accepted from a caller.
    pub const MAX_LEN: usize = 128;

    /// A fresh ID with the given prefix: `req`, `task`, `hc` …, followed by 12 random
    /// lower-case letters and digits (`req-k3x9q0abf2mz`).
    pub fn generate(prefix: &str) -> CorrelationId {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let suffix: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        CorrelationId(format!("{prefix}-{suffix}"))
    }

    /// Accepts a caller's ID when it is 1–128 characters of `A-Z a-z 0-9 - _ . :`.
    pub fn parse(raw: &str) -> Option<CorrelationId> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| CorrelationId(raw.to_string()))
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_look_like_the_spec() {
        let id = CorrelationId::generate("req");
        assert!(id.as_str().starts_with("req-"));
        assert_eq!(id.as_str().len(), 16);
        assert!(CorrelationId::parse(id.as_str()).is_some());
        assert_ne!(id, CorrelationId::generate("req"));
    }

    #[test]
    fn caller_ids_are_checked() {
        assert!(CorrelationId::parse("req-abc123xyz").is_some());
        assert!(CorrelationId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").is_some());
        for bad in ["", "a b", "x\ny", "{\"inject\":1}", "é", &"a".repeat(129)] {
            assert!(CorrelationId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
