//! Logging and CloudWatch metrics lines: level, format, log directory, EMF interval and namespace.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::setting::{settings, Default, FileKey, FromParsed, Kind, Parsed, Reader, Setting};
use super::ConfigError;

/// The minimum level of log lines that are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default: one line per notable event and per request.
    Info,
    /// Diagnostic detail.
    Debug,
    /// Everything, including dependencies' chatter.
    Trace,
}

impl LogLevel {
    /// The matching `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

impl FromParsed for LogLevel {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Choice("error") => LogLevel::Error,
            Parsed::Choice("warn") => LogLevel::Warn,
            Parsed::Choice("debug") => LogLevel::Debug,
            Parsed::Choice("trace") => LogLevel::Trace,
            _ => LogLevel::Info,
        }
    }
}

/// How log lines look on stdout. The log file is always JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch-compatible). The default.
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

impl FromParsed for LogFormat {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Choice("pretty") => LogFormat::Pretty,
            _ => LogFormat::Json,
        }
    }
}

settings! {
    /// `LOG_LEVEL`.
    LOG_LEVEL = Setting {
        var: "LOG_LEVEL",
        kind: Kind::Choice(&[&["error"], &["warn", "warning"], &["info"], &["debug"], &["trace"]]),
        default: Default::Value("info"),
        file: Some(FileKey {
            table: "server",
            key: "logLevel",
            get: |f| f.server.log_level.clone().map(Into::into),
        }),
        view: "logLevel",
        help: "minimum level; dependencies log at warn unless `trace`",
        ..Setting::PLAIN
    };
    /// `LOG_FORMAT`.
    LOG_FORMAT = Setting {
        var: "LOG_FORMAT",
        kind: Kind::Choice(&[&["json"], &["pretty", "text"]]),
        default: Default::Value("json"),
        view: "logFormat",
        help: "stdout format (the file is always JSON)",
        ..Setting::PLAIN
    };
    /// `JARVIS_LOG_DIR`.
    LOG_DIR = Setting {
        var: "JARVIS_LOG_DIR",
        kind: Kind::Path,
        default: Default::Value("logs"),
        file: Some(FileKey {
            table: "server",
            key: "logDir",
            get: |f| f.server.log_dir.as_ref().map(|p| p.display().to_string().into()),
        }),
        view: "logDir",
        help: "directory of `jarvis-combined.log` (rotated by size: `.1` … `.5`)",
        ..Setting::PLAIN
    };
    /// `JARVIS_EMF_INTERVAL_MS`.
    EMF_INTERVAL_MS = Setting {
        var: "JARVIS_EMF_INTERVAL_MS",
        kind: Kind::Int { min: 0, max: 86_400_000 },
        default: Default::Value("60000"),
        view: "emfIntervalMs",
        help: "how often a CloudWatch EMF metrics line is written to stdout (0: never)",
        ..Setting::PLAIN
    };
    /// `JARVIS_METRICS_NAMESPACE`.
    METRICS_NAMESPACE = Setting {
        var: "JARVIS_METRICS_NAMESPACE",
        kind: Kind::Text {
            check: namespace,
            accepted: "≤ 255 characters of `A-Z a-z 0-9 . _ - / # :`, not starting with `AWS/`",
        },
        default: Default::Value("Jarvis"),
        view: "metricsNamespace",
        help: "CloudWatch namespace of the EMF metrics",
        ..Setting::PLAIN
    };
    /// `JARVIS_TRACE_RETENTION_HOURS`.
    TRACE_RETENTION_HOURS = Setting {
        var: "JARVIS_TRACE_RETENTION_HOURS",
        kind: Kind::Int { min: 0, max: 87_600 },
        default: Default::Value("168"),
        view: "traceRetentionHours",
        help: "how long trace events (requests, gateway and agent calls, breaker decisions) are \
               kept for `GET /api/v1/traces/{id}` (0: forever)",
        ..Setting::PLAIN
    };
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    OTLP_ENDPOINT = Setting {
        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
        kind: Kind::Text {
            check: otlp_endpoint,
            accepted: "an `http://` or `https://` URL (spans go to `<url>/v1/traces`)",
        },
        view: "otlpEndpoint",
        help: "with it, spans (request, task attempt, agent call, model call, health check) are \
               exported over OTLP/HTTP (protobuf) to this collector",
        ..Setting::PLAIN
    };
    /// `OTEL_SERVICE_NAME`.
    SERVICE_NAME = Setting {
        var: "OTEL_SERVICE_NAME",
        kind: Kind::Text {
            check: service_name,
            accepted: "1–128 printable characters",
        },
        default: Default::Value("jarvis"),
        view: "otelServiceName",
        help: "`service.name` of the exported spans (only with `OTEL_EXPORTER_OTLP_ENDPOINT`)",
        ..Setting::PLAIN
    };
}

/// Log lines and metrics lines.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Minimum log level.
    pub log_level: LogLevel,
    /// Stdout log format.
    pub log_format: LogFormat,
    /// Directory of `jarvis-combined.log`.
    pub log_dir: PathBuf,
    /// How often CloudWatch EMF metric lines are logged (zero: never).
    pub emf_interval: Duration,
    /// The CloudWatch namespace of those metrics.
    pub metrics_namespace: String,
    /// How long trace events are kept, in hours (zero: forever).
    pub trace_retention_hours: u32,
    /// Where spans are exported over OTLP/HTTP (none: not exported).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans.
    pub service_name: String,
}

impl TelemetrySettings {
    /// Reads the group.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<TelemetrySettings, ConfigError> {
        Ok(TelemetrySettings {
            log_level: r.get(&LOG_LEVEL)?,
            log_format: r.get(&LOG_FORMAT)?,
            log_dir: r.get(&LOG_DIR)?,
            emf_interval: r.get(&EMF_INTERVAL_MS)?,
            metrics_namespace: r.get(&METRICS_NAMESPACE)?,
            trace_retention_hours: r.get(&TRACE_RETENTION_HOURS)?,
            otlp_endpoint: r.opt(&OTLP_ENDPOINT)?,
            service_name: r.get(&SERVICE_NAME)?,
        })
    }
}

fn otlp_endpoint(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err("an http:// or https:// URL".into()),
    }
}

fn service_name(raw: &str) -> Result<(), String> {
    if !raw.is_empty() && raw.chars().count() <= 128 && !raw.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("1-128 printable characters".into())
    }
}

fn namespace(ns: &str) -> Result<(), String> {
    if ns.len() <= 255
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/#:".contains(c))
        && !ns.starts_with("AWS/")
    {
        Ok(())
    } else {
        Err("a CloudWatch namespace (A-Z a-z 0-9 . _ - / # :, not starting with AWS/)".into())
    }
}
