//! Structured logging: JSON lines with a correlation ID on every line.
//!
//! Every line written by Jarvis is one flat JSON object with `timestamp`, `level`, `message`,
//! `target` and `correlationId`, plus the fields of the event and of the spans it happened in
//! (camelCased, so `duration_ms` is written `durationMs`). A CloudWatch filter such as
//! `{ $.correlationId = "req-abc123xyz" }` therefore finds every line of one request, including
//! the lines of the tasks and agent calls it caused, because that work runs inside spans that
//! carry the same `correlation_id` field.
//!
//! Lines outside any request or task carry the instance's own ID (`sys-<instance>`), so that
//! `grep correlationId logs/jarvis-combined.log` matches every line.
//!
//! The layer also keeps the most recent lines of each correlation ID in a bounded ring in
//! memory ([`recent_lines`]), so that the trace API can show this instance's log lines of a
//! request without reading the log file.
//!
//! This is written by hand instead of using `tracing-subscriber`'s JSON formatter because that
//! formatter nests span fields under `span`/`spans`, while CloudWatch filters and the user's
//! checklist need `correlationId` at the top level of every line.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{Config, LogFormat};

/// The span field that carries a correlation ID. Spans set it; the log layer lifts it to the
/// top-level `correlationId` key of every line inside the span.
pub const CORRELATION_FIELD: &str = "correlation_id";

/// The name of the combined log file inside the log directory.
pub const LOG_FILE_NAME: &str = "jarvis-combined.log";

/// Keeps the background log writers alive; dropping it flushes every buffered line.
#[must_use = "dropping the guard stops and flushes the log writers"]
pub struct TelemetryGuard {
    _guards: Vec<WorkerGuard>,
}

/// Installs the global subscriber: JSON to `logs/jarvis-combined.log` always, and JSON or
/// pretty lines to stdout. Returns a guard to keep until shutdown.
pub fn init(config: &Config) -> anyhow::Result<TelemetryGuard> {
    crate::files::create_dir(&config.telemetry.log_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the log directory {}: {e}",
            config.telemetry.log_dir.display()
        )
    })?;
    let file = RotatingFile::open(
        config.telemetry.log_dir.join(LOG_FILE_NAME),
        DEFAULT_MAX_BYTES,
        DEFAULT_KEEP,
    )?;
    // The file is the audit trail: never drop its lines (the buffer applies back-pressure).
    let (file_writer, file_guard) = NonBlockingBuilder::default().lossy(false).finish(file);
    // Stdout may be a pipe nobody reads: drop lines rather than stall request handling.
    let (stdout_writer, stdout_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .finish(io::stdout());

    let level = LevelFilter::from_level(config.telemetry.log_level.as_tracing());
    // Dependencies are noisy at debug level; keep them at warn unless tracing everything.
    let deps = if config.telemetry.log_level == crate::config::LogLevel::Trace {
        LevelFilter::TRACE
    } else {
        LevelFilter::WARN
    };
    let filter = Targets::new()
        .with_default(level)
        .with_target("sqlx", deps)
        .with_target("hyper", deps)
        .with_target("hyper_util", deps)
        .with_target("reqwest", deps)
        .with_target("h2", deps)
        .with_target("rustls", deps);

    let system_id = format!("sys-{}", config.server.instance_id);
    let registry = tracing_subscriber::registry().with(filter);
    match config.telemetry.log_format {
        LogFormat::Json => registry
            .with(JsonLayer::new(system_id, vec![file_writer, stdout_writer]))
            .try_init()?,
        LogFormat::Pretty => registry
            .with(JsonLayer::new(system_id, vec![file_writer]))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(stdout_writer)
                    // Colours for a person at a terminal; a file or a pipe gets plain text.
                    .with_ansi(io::IsTerminal::is_terminal(&io::stdout()))
                    .with_target(false),
            )
            .try_init()?,
    }
    Ok(TelemetryGuard {
        _guards: vec![file_guard, stdout_guard],
    })
}

/// The fields recorded on a span, kept in the span's extensions for the formatter.
struct SpanFields(Map<String, Value>);

/// A `tracing` layer that writes each event as one flat JSON line to every writer.
pub struct JsonLayer {
    system_id: String,
    writers: Vec<NonBlocking>,
}

impl JsonLayer {
    /// A layer that writes lines to `writers`; `system_id` is the correlation ID of lines that
    /// happen outside every correlated span.
    pub fn new(system_id: String, writers: Vec<NonBlocking>) -> JsonLayer {
        JsonLayer { system_id, writers }
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = JsonVisitor(Map::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(map)) = ext.get_mut::<SpanFields>() {
                let mut visitor = JsonVisitor(std::mem::take(map));
                values.record(&mut visitor);
                *map = visitor.0;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert("message".into(), Value::String(String::new()));
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_string()),
        );

        // Span fields from the root outwards, so inner spans win over outer ones.
        let mut context = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in fields {
                        context.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        for (k, v) in visitor.0 {
            context.insert(k, v);
        }

        let correlation = context
            .remove(CORRELATION_FIELD)
            .unwrap_or_else(|| Value::String(self.system_id.clone()));
        if let Some(message) = context.remove("message") {
            line.insert("message".into(), message);
        }
        let recent = match &correlation {
            Value::String(id) if *id != self.system_id => Some(id.clone()),
            _ => None,
        };
        LOG_VOLUME.count(*event.metadata().level(), recent.is_some());
        line.insert("correlationId".into(), correlation);
        for (k, v) in context {
            let key = camel_case(&k);
            // The fixed keys are never overwritten by a field of the same name.
            if !line.contains_key(&key) {
                line.insert(key, v);
            }
        }

        let line = Value::Object(line);
        let mut bytes = match serde_json::to_vec(&line) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Some(id) = recent {
            RECENT.push(id, line);
        }
        bytes.push(b'\n');
        for w in &self.writers {
            // A failed write of a log line has nowhere better to be reported.
            let _ = w.clone().write_all(&bytes);
        }
    }
}

/// Log lines written, per level, and how many of them belong to a request or a task (a
/// correlation ID other than the process's own): the log volume and the correlation coverage
/// the CloudWatch lines report (`crate::emf`). Process-wide, like the log itself.
pub struct LogVolume {
    /// Lines per level: error, warn, info, debug, trace.
    lines: [std::sync::atomic::AtomicU64; 5],
    correlated: std::sync::atomic::AtomicU64,
}

/// Lines per level so far, and the correlated ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogTotals {
    /// Lines per level: error, warn, info, debug, trace.
    pub lines: [u64; 5],
    /// Lines that belong to a request or a task.
    pub correlated: u64,
}

impl LogTotals {
    /// Every line.
    pub fn total(&self) -> u64 {
        self.lines.iter().sum()
    }
}

impl LogVolume {
    fn count(&self, level: tracing::Level, correlated: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let i = match level {
            tracing::Level::ERROR => 0,
            tracing::Level::WARN => 1,
            tracing::Level::INFO => 2,
            tracing::Level::DEBUG => 3,
            tracing::Level::TRACE => 4,
        };
        self.lines[i].fetch_add(1, Relaxed);
        if correlated {
            self.correlated.fetch_add(1, Relaxed);
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> LogTotals {
        use std::sync::atomic::Ordering::Relaxed;
        LogTotals {
            lines: std::array::from_fn(|i| self.lines[i].load(Relaxed)),
            correlated: self.correlated.load(Relaxed),
        }
    }
}

/// The process's log volume (see [`LogVolume`]).
pub static LOG_VOLUME: LogVolume = LogVolume {
    lines: [const { std::sync::atomic::AtomicU64::new(0) }; 5],
    correlated: std::sync::atomic::AtomicU64::new(0),
};

/// Correlation IDs whose recent lines are kept at most (the oldest ID is forgotten first).
pub const RECENT_IDS: usize = 4_096;
/// Lines kept per correlation ID at most (the oldest line is forgotten first).
pub const RECENT_LINES_PER_ID: usize = 64;

/// The recent log lines of each correlation ID, bounded in IDs and in lines per ID.
struct RecentLines {
    inner: std::sync::Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    by_id: std::collections::HashMap<String, std::collections::VecDeque<Value>>,
    order: std::collections::VecDeque<String>,
}

impl RecentLines {
    fn push(&self, id: String, line: Value) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if let Some(lines) = inner.by_id.get_mut(&id) {
            if lines.len() >= RECENT_LINES_PER_ID {
                lines.pop_front();
            }
            lines.push_back(line);
            return;
        }
        while inner.order.len() >= RECENT_IDS {
            if let Some(old) = inner.order.pop_front() {
                inner.by_id.remove(&old);
            }
        }
        inner.order.push_back(id.clone());
        inner
            .by_id
            .insert(id, std::collections::VecDeque::from([line]));
    }

    fn get(&self, id: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .by_id
            .get(id)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

static RECENT: std::sync::LazyLock<RecentLines> = std::sync::LazyLock::new(|| RecentLines {
    inner: std::sync::Mutex::new(RecentInner::default()),
});

/// This process's most recent log lines under `correlation_id` (at most
/// [`RECENT_LINES_PER_ID`], oldest first; lines of IDs older than the last [`RECENT_IDS`] are
/// gone), as the JSON objects written to the log.
pub fn recent_lines(correlation_id: &str) -> Vec<Value> {
    RECENT.get(correlation_id)
}

/// Collects `tracing` field values as JSON values.
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.0.insert(field.name().to_string(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}").into());
    }
}

/// `duration_ms` → `durationMs`; names without underscores are unchanged.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DEFAULT_KEEP: usize = 5;

/// An append-only log file rotated by size: `jarvis-combined.log` is always the current file
/// (so `grep … logs/jarvis-combined.log` works), older ones are `.1` (newest) to `.N`.
///
/// Written by hand because `tracing-appender` rotates by time only and always adds a date
/// suffix to the current file's name.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appending) or creates `path`.
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let file = crate::files::open_append(&path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            max_bytes,
            keep,
            file,
            written,
        })
    }

    fn rotated(path: &Path, n: usize) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.keep).rev() {
            let from = Self::rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, Self::rotated(&self.path, n + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = crate::files::open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl RotatingFile {
    /// Takes back the last `n` bytes written (the start of a line a full disk cut off).
    fn take_back(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let Ok(meta) = self.file.metadata() {
            if let Some(len) = meta.len().checked_sub(n as u64) {
                let _ = self.file.set_len(len);
            }
        }
    }
}

impl Write for RotatingFile {
    /// Writes the whole of `buf` or nothing. The log writer hands over one whole line per call;
    /// on a full disk a line used to be cut where the space ended, and the first line written
    /// once there was space again ran on from that fragment, so that neither could be read
    /// (bench/chaos, disk-full-log). A write that fails part-way takes back what it wrote.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let mut done = 0;
        while done < buf.len() {
            match self.file.write(&buf[done..]) {
                Ok(0) => {
                    self.take_back(done);
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.take_back(done);
                    return Err(e);
                }
            }
        }
        self.written += done as u64;
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_cases_field_names() {
        assert_eq!(camel_case("duration_ms"), "durationMs");
        assert_eq!(camel_case("correlation_id"), "correlationId");
        assert_eq!(camel_case("status"), "status");
        assert_eq!(camel_case("_private"), "private");
    }

    #[test]
    fn recent_lines_are_bounded_per_id_and_in_ids() {
        let ring = RecentLines {
            inner: std::sync::Mutex::new(RecentInner::default()),
        };
        for i in 0..RECENT_LINES_PER_ID + 5 {
            ring.push("a".into(), Value::from(i));
        }
        let a = ring.get("a");
        assert_eq!(a.len(), RECENT_LINES_PER_ID);
        assert_eq!(a[0], Value::from(5));
        for i in 0..RECENT_IDS {
            ring.push(format!("id-{i}"), Value::from(i));
        }
        assert!(ring.get("a").is_empty(), "the oldest ID is forgotten first");
        assert_eq!(ring.get(&format!("id-{}", RECENT_IDS - 1)).len(), 1);
        assert_eq!(ring.inner.lock().unwrap().by_id.len(), RECENT_IDS);
    }

    #[test]
    fn rotates_by_size_and_keeps_the_current_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE_NAME);
        let mut f = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for _ in 0..10 {
            f.write_all(&[b'x'; 40]).unwrap();
        }
        assert!(path.exists());
        assert!(RotatingFile::rotated(&path, 1).exists());
        assert!(RotatingFile::rotated(&path, 2).exists());
        assert!(!RotatingFile::rotated(&path, 3).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
    }
}
