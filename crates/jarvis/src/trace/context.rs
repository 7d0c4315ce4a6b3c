//! W3C trace context (`traceparent`, <https://www.w3.org/TR/trace-context/>): accepted on
//! requests, kept with the correlation ID, passed on to agents, health checks and model
//! providers with a new span ID per outgoing call.
//!
//! A malformed `traceparent` is ignored (the specification says so: a receiver that cannot
//! parse it starts a new trace). When a request brings none, Jarvis starts one whose trace ID
//! is derived from the correlation ID (the first 16 bytes of its SHA-256), so that work done
//! later under the same ID — on any instance — joins the same trace without storing anything.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

/// The header name.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`: trace ID, parent span ID, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span this context names (the caller's span, or one of Jarvis's).
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header value; `None` when it is not a valid one.
    pub fn parse(raw: &str) -> Option<TraceContext> {
        let raw = raw.trim();
        let mut parts = raw.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; a later version may add fields after them.
        if version == "00" && (parts.next().is_some() || raw.len() != 55) {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(is_lower_hex(trace) && is_lower_hex(span) && is_lower_hex(flags)) {
            return None;
        }
        let mut ctx = TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        decode_hex(trace, &mut ctx.trace_id)?;
        decode_hex(span, &mut ctx.span_id)?;
        if ctx.trace_id == [0; 16] || ctx.span_id == [0; 8] {
            return None;
        }
        Some(ctx)
    }

    /// The trace Jarvis starts for a correlation ID: its trace ID derived from the ID, a new
    /// span, sampled.
    pub fn for_correlation(correlation_id: &str) -> TraceContext {
        let digest = Sha256::digest(correlation_id.as_bytes());
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&digest[..16]);
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        TraceContext {
            trace_id,
            span_id: new_span_id(),
            flags: 1,
        }
    }

    /// The context of a new span in the same trace (one per outgoing call).
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// The trace ID as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span ID as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// The header value: `00-<trace>-<span>-<flags>`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

/// A request's trace context as the correlation middleware made it: the request's own span,
/// a child of the caller's `traceparent` (`given`), or the root of the trace derived from the
/// correlation ID (then it needs no storing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTrace {
    /// The request's span.
    pub context: TraceContext,
    /// Whether the caller sent a `traceparent`.
    pub given: bool,
}

impl RequestTrace {
    /// What a task submitted by the request keeps (`tasks.traceparent`): the request's span
    /// in the caller's trace, or nothing when the trace is derived from the correlation ID.
    pub fn stored(&self) -> Option<String> {
        self.given.then(|| self.context.to_string())
    }
}

tokio::task_local! {
    /// The trace context of the work running in this task (a gateway call, an `ai` agent's
    /// attempt): outgoing model-provider calls take a child span of it.
    static CURRENT: TraceContext;
}

/// Runs `f` with `context` as the current trace context (see [`current`]).
pub async fn scope<F: std::future::Future>(context: TraceContext, f: F) -> F::Output {
    CURRENT.scope(context, f).await
}

/// The current trace context, when [`scope`] set one.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// The `traceparent` to send on an outgoing call made for `correlation_id`: a new span in the
/// given trace (a request's or a task's), else in the trace derived from the ID.
pub fn outgoing(parent: Option<&str>, correlation_id: &str) -> String {
    parent
        .and_then(TraceContext::parse)
        .map(|c| c.child())
        .unwrap_or_else(|| TraceContext::for_correlation(correlation_id))
        .to_string()
}

/// The `traceparent` of an outgoing call made inside [`scope`] (else in the trace derived
/// from `correlation_id`): a new span each call.
pub fn outgoing_current(correlation_id: &str) -> String {
    current()
        .map(|c| c.child())
        .unwrap_or_else(|| TraceContext::for_correlation(correlation_id))
        .to_string()
}

fn new_span_id() -> [u8; 8] {
    let mut rng = rand::rng();
    loop {
        let id: [u8; 8] = rng.random();
        if id != [0; 8] {
            return id;
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode_hex(s: &str, out: &mut [u8]) -> Option<()> {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_the_specification_example() {
        let c = TraceContext::parse(GOOD).unwrap();
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(c.flags, 1);
        assert_eq!(c.to_string(), GOOD);
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(TraceContext::parse(&format!("01{}-more", &GOOD[2..])).is_some());
    }

    #[test]
    fn children_keep_the_trace_and_change_the_span() {
        let c = TraceContext::parse(GOOD).unwrap();
        let child = TraceContext::parse(&outgoing(Some(GOOD), "req-x")).unwrap();
        assert_eq!(child.trace_id, c.trace_id);
        assert_ne!(child.span_id, c.span_id);
        // Without one: the trace of the correlation ID, the same on every call.
        let a = TraceContext::parse(&outgoing(None, "req-x")).unwrap();
        let b = TraceContext::parse(&outgoing(Some("bad"), "req-x")).unwrap();
        assert_eq!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id, TraceContext::for_correlation("req-y").trace_id);
    }
}
