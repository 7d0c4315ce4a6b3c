//! Translated streams: a provider's server-sent events (Anthropic's, Gemini's) read as they
//! arrive ([`SseParser`]), turned into OpenAI's `chat.completion.chunk` events by the
//! provider's [`StreamTranslator`], and handed to the caller chunk by chunk
//! ([`TranslatedStream`]). The provider's stream underneath is an [`UpstreamStream`] (the
//! first-byte timeout, the pooled connection); the translated stream takes over its breaker
//! admission and its log line, because only the translation knows whether the provider's
//! events ended well (Anthropic's `message_stop`, no `error` event) and what they counted.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures_util::Stream;

use super::chat::{ChunkWriter, TokenUsage};
use super::{UpstreamStream, Usage};
use crate::breakers::{Admission, Outcome};

/// One server-sent event: its `event:` name, if any, and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` field (lines joined with `\n`).
    pub data: String,
}

/// Splits a byte stream into server-sent events; events may span chunks, and lines end in
/// `\n`, `\r\n` or `\r` (Gemini's end in `\r\n`).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            // A `\r` at the end of the buffer may be the first half of `\r\n`: wait for more.
            if b == b'\r' && i + 1 == self.buf.len() {
                break;
            }
            let line = String::from_utf8_lossy(&self.buf[start..i]).into_owned();
            i += if b == b'\r' && self.buf[i + 1] == b'\n' {
                2
            } else {
                1
            };
            start = i;
            self.line(&line, &mut events);
        }
        self.buf.drain(..start);
        events
    }

    /// The event still open when the stream ended without its blank line, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            self.line(line.trim_end_matches('\r'), &mut events);
        }
        self.line("", &mut events);
        events.pop()
    }

    fn line(&mut self, line: &str, events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(SseEvent {
                    event: self.event.take(),
                    data,
                });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
    }
}

/// A provider's stream event the translator could not take: the provider reported an error
/// mid-stream, or sent something that is not its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFault {
    /// What happened (no key: providers do not echo it in stream events, and it is scrubbed
    /// anyway).
    pub message: String,
    /// The OpenAI-style `code` of the error event the caller gets.
    pub code: String,
}

/// Turns one provider's stream events into OpenAI chunks.
pub trait StreamTranslator: Send {
    /// Takes one event, appending the OpenAI events it makes to `out`. A fault ends the
    /// stream: the caller gets an error event, the breaker a failure.
    fn event(
        &mut self,
        writer: &ChunkWriter,
        event: &SseEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamFault>;

    /// The provider's stream ended: appends what ends the OpenAI stream (the finish chunk if
    /// none was written, the usage chunk, `[DONE]`), or says the stream was incomplete.
    fn end(&mut self, writer: &ChunkWriter, out: &mut Vec<u8>) -> Result<(), StreamFault>;

    /// The tokens the events counted so far.
    fn usage(&self) -> TokenUsage;
}

/// A provider's stream translated to OpenAI's, event by event, without waiting for its end.
/// It tells the breaker how the stream ended (the translator's end accepted: success; an
/// error event, an incomplete stream or a cut: failure; the caller went away: neither) and
/// writes the call's log line, with the tokens the events counted.
pub struct TranslatedStream {
    inner: UpstreamStream,
    admission: Option<Admission>,
    parser: SseParser,
    writer: ChunkWriter,
    translator: Box<dyn StreamTranslator>,
    key: String,
    finished: bool,
    logged: bool,
}

impl TranslatedStream {
    /// Translates `inner` with `translator`; `key` is scrubbed from any fault message.
    pub fn new(
        mut inner: UpstreamStream,
        writer: ChunkWriter,
        translator: Box<dyn StreamTranslator>,
        key: String,
    ) -> TranslatedStream {
        let admission = inner.take_over();
        TranslatedStream {
            inner,
            admission,
            parser: SseParser::default(),
            writer,
            translator,
            key,
            finished: false,
            logged: false,
        }
    }

    fn log(&mut self, outcome: &str) {
        if self.logged {
            return;
        }
        self.logged = true;
        let usage = Usage::from(self.translator.usage());
        self.inner.log(outcome, Some(&usage));
    }

    fn fault(&mut self, fault: StreamFault, out: &mut Vec<u8>) {
        let message = if self.key.is_empty() {
            fault.message
        } else {
            fault.message.replace(&self.key, "[redacted]")
        };
        self.writer.error(out, &message, &fault.code);
        if let Some(a) = self.admission.take() {
            a.record(Outcome::Error, format!("stream error: {message}"));
        }
        self.log("stream error");
        self.finished = true;
    }
}

impl Drop for TranslatedStream {
    fn drop(&mut self) {
        // The caller went away mid-stream: the admission is dropped (neither success nor
        // failure) and the call is still logged once.
        self.log("cancelled by caller");
    }
}

impl Stream for TranslatedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    // The provider cut the stream (the error says so, without URL or key).
                    this.finished = true;
                    if let Some(a) = this.admission.take() {
                        a.record(Outcome::Connection, e.to_string());
                    }
                    this.log("stream cut");
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(bytes))) => {
                    for event in this.parser.push(&bytes) {
                        if let Err(f) = this.translator.event(&this.writer, &event, &mut out) {
                            this.fault(f, &mut out);
                            break;
                        }
                    }
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    let mut result = Ok(());
                    if let Some(event) = this.parser.finish() {
                        result = this.translator.event(&this.writer, &event, &mut out);
                    }
                    match result.and_then(|()| this.translator.end(&this.writer, &mut out)) {
                        Ok(()) => {
                            if let Some(a) = this.admission.take() {
                                a.success();
                            }
                            this.log("answered");
                        }
                        Err(f) => this.fault(f, &mut out),
                    }
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(out))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_string),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_split_across_chunks_and_line_endings() {
        let mut p = SseParser::default();
        assert_eq!(p.push(b"event: message_start\ndata: {\"a\""), []);
        assert_eq!(
            p.push(b":1}\n\n: a comment\n\ndata: x\r"),
            [event(Some("message_start"), "{\"a\":1}")]
        );
        // The `\r` held back was half of `\r\n`.
        assert_eq!(
            p.push(b"\n\r\ndata:y\ndata: z\n\n"),
            [event(None, "x"), event(None, "y\nz")]
        );
        assert_eq!(p.push(b"data: last"), []);
        assert_eq!(p.finish(), Some(event(None, "last")));
        assert_eq!(p.finish(), None);
    }
}
