//! OpenTelemetry export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans of requests, task
//! attempts, agent calls, model calls and health checks are sent over OTLP/HTTP (protobuf, to
//! `<endpoint>/v1/traces`) so that Jaeger, Tempo or AWS X-Ray (through the ADOT collector)
//! show the same timeline as `GET /api/v1/traces/{id}`.
//!
//! The spans are made here, not by `tracing-opentelemetry`: their IDs must be the ones Jarvis
//! sends in `traceparent` (an agent's own spans then hang under Jarvis's agent-call span), and
//! their parents the ones the trace context says, across instances. A span is one bounded
//! channel send on the path that ends it (nothing at all when export is off); an exporter task
//! batches them (up to 512, or what arrived within a second) into the `opentelemetry-otlp`
//! exporter, which sends them with the process's `reqwest` client on the tokio runtime. The
//! sender is process-wide: the first application that starts with an endpoint owns it.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, watch};

use super::context::TraceContext;

/// Spans waiting for the exporter at most; more are dropped, never waited for.
const QUEUE: usize = 8_192;
/// Spans per export at most.
const BATCH: usize = 512;
/// How long the exporter gathers a batch after its first span.
const LINGER: Duration = Duration::from_secs(1);

static SPANS: OnceLock<mpsc::Sender<SpanRecord>> = OnceLock::new();

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// `request`, `task attempt`, `agent call`, `model call`, `health check`.
    pub name: &'static str,
    /// Server (a request), client (an outgoing call) or internal (an attempt).
    pub kind: SpanKind,
    /// Its trace and its own span ID.
    pub context: TraceContext,
    /// The parent span, when there is one.
    pub parent: Option<[u8; 8]>,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// Attributes (string values).
    pub attributes: Vec<(&'static str, String)>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Whether spans are exported (one atomic load).
pub fn enabled() -> bool {
    SPANS.get().is_some()
}

/// Queues a finished span for export (dropped when export is off or the queue is full).
pub fn record(span: SpanRecord) {
    if let Some(tx) = SPANS.get() {
        let _ = tx.try_send(span);
    }
}

/// The exporter: run it with [`OtelExporter::run`].
pub struct OtelExporter {
    rx: mpsc::Receiver<SpanRecord>,
    exporter: opentelemetry_otlp::SpanExporter,
    endpoint: String,
}

/// Starts export to `endpoint` (the OTLP base URL; spans go to `<endpoint>/v1/traces`) as
/// `service_name`. `None` when another application of this process already exports.
pub fn start(endpoint: &str, service_name: &str) -> anyhow::Result<Option<OtelExporter>> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(10))
        .with_http_client(ReqwestClient(client))
        .build()?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(service_name.to_string())
            .build(),
    );
    let (tx, rx) = mpsc::channel(QUEUE);
    if SPANS.set(tx).is_err() {
        return Ok(None);
    }
    Ok(Some(OtelExporter {
        rx,
        exporter,
        endpoint: url,
    }))
}

impl OtelExporter {
    /// Exports queued spans in batches until `stop` turns true, then exports what is left.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(endpoint = %self.endpoint, "exporting spans over OTLP/HTTP");
        let scope = InstrumentationScope::builder("jarvis")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let mut failing = false;
        loop {
            let first = tokio::select! {
                s = self.rx.recv() => s,
                _ = stop.changed() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    _ => break,
                }
            }
            failing = self.export(batch, &scope, failing).await;
        }
        let mut rest = Vec::new();
        while let Ok(s) = self.rx.try_recv() {
            rest.push(s);
        }
        if !rest.is_empty() {
            self.export(rest, &scope, failing).await;
        }
        let _ = self.exporter.shutdown();
    }

    /// Exports one batch; returns whether it failed (a failure is logged once until an
    /// export succeeds again).
    async fn export(
        &self,
        batch: Vec<SpanRecord>,
        scope: &InstrumentationScope,
        failing: bool,
    ) -> bool {
        let n = batch.len();
        let data = batch.into_iter().map(|s| span_data(s, scope)).collect();
        match self.exporter.export(data).await {
            Ok(()) => {
                if failing {
                    tracing::info!(endpoint = %self.endpoint, "OTLP export works again");
                }
                false
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, spans = n, "OTLP export failed; spans dropped");
                }
                true
            }
        }
    }
}

fn span_data(s: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let flags = if s.context.flags & 1 == 1 {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(s.context.trace_id),
            SpanId::from_bytes(s.context.span_id),
            flags,
            false,
            TraceState::default(),
        ),
        parent_span_id: s.parent.map(SpanId::from_bytes).unwrap_or(SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: s.kind,
        name: s.name.into(),
        start_time: s.start.into(),
        end_time: s.end.max(s.start).into(),
        attributes: s
            .attributes
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match s.error {
            Some(e) => Status::error(e),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The exporter's HTTP client: the `reqwest` Jarvis already uses (the OTLP crate's own
/// `reqwest` feature would pull a second major version of it).
#[derive(Debug)]
struct ReqwestClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let mut answer = opentelemetry_http::Response::builder()
            .status(status)
            .body(bytes)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}
