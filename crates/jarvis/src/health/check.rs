//! One health check: an HTTP request or a TCP connect, made through the service's breaker.
//!
//! [`Checker::check`] asks the breaker named after the service for admission first. When the
//! circuit is OPEN the service is not called and the result is exactly what docs/api.md,
//! Health checks says (`down`, "Circuit breaker OPEN", latency 0). Otherwise the check runs
//! under its own correlation ID (`hc-<random>`), sent as `X-Correlation-ID` and carried by its
//! log lines, and its outcome is reported to the breaker: connection errors, timeouts, 5xx and
//! unexpected status codes (and a body that fails its condition) count against the service; a
//! slow but correct answer is `degraded` and does not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::spec::ServiceSpec;
use crate::breakers::{BreakerRegistry, Outcome};
use crate::correlation::{CorrelationId, HEADER};
pub use crate::model::check::{CheckResult, Status};

/// The message of a check refused by an open circuit (docs/api.md, Health checks).
pub const BREAKER_OPEN_MESSAGE: &str = "Circuit breaker OPEN";

/// The most of an answer's body a check reads (bodies are read to keep connections reusable).
const MAX_BODY: usize = 64 * 1024;

/// Which kind of check a URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP(S) request.
    Http,
    /// A TCP connect to `tcp://host:port`.
    Tcp,
}

impl Kind {
    /// The kind of a service's check.
    pub fn of(spec: &ServiceSpec) -> Kind {
        if spec.url.starts_with("tcp://") {
            Kind::Tcp
        } else {
            Kind::Http
        }
    }

    /// `http` or `tcp` (a metric label and the API's `componentType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
        }
    }
}

/// What a check observed before it was classified.
struct Observed {
    status: Status,
    message: String,
    /// What the breaker is told; `None` for a success.
    failure: Option<(Outcome, String)>,
}

/// Makes checks. One per application: its HTTP client keeps connections to services open and
/// reuses them across checks.
pub struct Checker {
    client: reqwest::Client,
    breakers: Arc<BreakerRegistry>,
}

impl Checker {
    /// The breakers checks go through.
    pub fn breakers(&self) -> &Arc<BreakerRegistry> {
        &self.breakers
    }

    /// Consecutive failures that open the circuit of the service named `name`.
    pub fn failure_threshold(&self, name: &str) -> u32 {
        self.breakers.failure_threshold(name)
    }

    /// A checker whose calls go through `breakers`.
    pub fn new(breakers: Arc<BreakerRegistry>) -> anyhow::Result<Checker> {
        let client = reqwest::Client::builder()
            // Link-local and cloud metadata addresses are not called (crate::resolver).
            .dns_resolver(crate::resolver::refusing())
            // A health check is about the service itself: no proxy from the environment, no
            // redirect following (a 3xx is up only when listed in expectedStatus).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("jarvis-health/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Checker { client, breakers })
    }

    /// Checks `spec` once through its breaker under the correlation ID `id`. Never fails:
    /// every problem is a `down` result.
    pub async fn check(&self, spec: &ServiceSpec, id: CorrelationId) -> CheckResult {
        let admission = match self.breakers.acquire(&spec.name) {
            Ok(a) => a,
            Err(_) => {
                return CheckResult {
                    service: spec.name.clone(),
                    status: Status::Down,
                    message: BREAKER_OPEN_MESSAGE.to_string(),
                    latency_ms: 0,
                    timestamp: crate::clock::now(),
                    breaker_open: true,
                    correlation_id: Some(id),
                }
            }
        };
        let span = tracing::info_span!(
            "health_check",
            correlation_id = %id,
            service = %spec.name,
        );
        let started = Instant::now();
        let started_at = crate::clock::now();
        // The check's span: a root in the trace of its `hc-` ID, sent as `traceparent`.
        let trace = crate::trace::context::TraceContext::for_correlation(id.as_str());
        let observed = async {
            let timeout = Duration::from_millis(spec.timeout_ms);
            let observed = match Kind::of(spec) {
                Kind::Http => self.http(spec, &id, &trace, timeout).await,
                Kind::Tcp => tcp(spec, timeout).await,
            };
            tracing::debug!(
                status = observed.status.as_str(),
                message = %observed.message,
                duration_ms = started.elapsed().as_millis() as u64,
                trial = admission.is_trial(),
                "health check finished"
            );
            observed
        }
        .instrument(span)
        .await;
        // Durations are recorded by kind (`jarvis_health_check_duration_seconds`), not in the
        // breaker's per-name histogram: one histogram per service would hold memory for every
        // service ever checked (20,000 at scale) and multiply series.
        let elapsed = started.elapsed();
        let latency_ms = elapsed.as_millis() as u64;
        let mut status = observed.status;
        let mut message = observed.message;
        match observed.failure {
            None => admission.success(),
            Some((outcome, reason)) => match outcome {
                // Unexpected statuses below 500 are failures of a health check even though the
                // default classifier ignores 4xx for ordinary calls.
                Outcome::Status(code) if code < 500 => admission.failure(reason),
                other => admission.record(other, reason),
            },
        }
        if status == Status::Up {
            if let Some(limit) = spec.degraded_latency_ms {
                if latency_ms > limit {
                    status = Status::Degraded;
                    message = format!("slow: {latency_ms} ms (degraded above {limit} ms)");
                }
            }
        }
        if crate::trace::otel::enabled() {
            crate::trace::otel::record(crate::trace::otel::SpanRecord {
                name: "health check",
                kind: opentelemetry::trace::SpanKind::Client,
                context: trace,
                parent: None,
                start: started_at,
                end: crate::clock::now(),
                attributes: vec![
                    ("jarvis.service", spec.name.to_string()),
                    ("jarvis.status", status.as_str().to_string()),
                    ("jarvis.correlation_id", id.to_string()),
                ],
                error: (status == Status::Down).then(|| message.clone()),
            });
        }
        CheckResult {
            service: spec.name.clone(),
            status,
            message,
            latency_ms,
            timestamp: crate::clock::now(),
            breaker_open: false,
            correlation_id: Some(id),
        }
    }

    async fn http(
        &self,
        spec: &ServiceSpec,
        id: &CorrelationId,
        trace: &crate::trace::context::TraceContext,
        timeout: Duration,
    ) -> Observed {
        let method =
            reqwest::Method::from_bytes(spec.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let request = self
            .client
            .request(method, &spec.url)
            .header(HEADER, id.as_str())
            .header(crate::trace::context::TRACEPARENT, trace.to_string())
            .timeout(timeout)
            .send();
        // The client's own timeout covers the whole exchange; this one also bounds reading the
        // body, which a half-answering service could otherwise stretch.
        let exchange = async {
            let response = request.await?;
            let code = response.status().as_u16();
            let body = read_body(response).await?;
            Ok::<_, reqwest::Error>((code, body))
        };
        let (code, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return timed_out(timeout),
            Ok(Err(e)) if e.is_timeout() => return timed_out(timeout),
            Ok(Err(e)) => {
                let reason = describe(&e);
                return down(Outcome::Connection, reason);
            }
            Ok(Ok(answer)) => answer,
        };
        let expected = if spec.expected_status.is_empty() {
            (200..300).contains(&code)
        } else {
            spec.expected_status.contains(&code)
        };
        if !expected {
            return down(
                Outcome::Status(code),
                format!("HTTP {code} (unexpected status)"),
            );
        }
        if let Some(condition) = &spec.expect_body {
            let verdict = serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| format!("body is not JSON ({e})"))
                .and_then(|v| condition.check(&v));
            if let Err(why) = verdict {
                return down(Outcome::Error, why);
            }
        }
        Observed {
            status: Status::Up,
            message: format!("HTTP {code}"),
            failure: None,
        }
    }
}

fn down(outcome: Outcome, reason: String) -> Observed {
    Observed {
        status: Status::Down,
        message: reason.clone(),
        failure: Some((outcome, reason)),
    }
}

fn timed_out(timeout: Duration) -> Observed {
    down(
        Outcome::Timeout,
        format!("timeout after {} ms", timeout.as_millis()),
    )
}

/// A short reason for a client error: the innermost cause (`Connection refused (os error 111)`)
/// rather than reqwest's nested chain.
fn describe(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {inner}")
}

/// Reads at most [`MAX_BODY`] bytes of the body.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// Connects to `host:port` as the HTTP clients do (`resolver`): the name's link-local and
/// cloud metadata addresses are left out, and a name that has only those is refused, so a TCP
/// check never reaches one through DNS. The addresses left are tried in order.
async fn connect_callable(target: &str) -> std::io::Result<tokio::net::TcpStream> {
    let host = target
        .rsplit_once(':')
        .map_or(target, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host(target).await?.collect();
    let kept = crate::resolver::keep_callable(host, found)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
    let mut last = None;
    for addr in kept {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )
    }))
}

/// A TCP connect check: up when the connection is accepted within the timeout.
async fn tcp(spec: &ServiceSpec, timeout: Duration) -> Observed {
    let Some(target) = spec.url.strip_prefix("tcp://") else {
        return down(Outcome::Error, "not a tcp:// URL".into());
    };
    let target = target.trim_end_matches('/');
    match tokio::time::timeout(timeout, connect_callable(target)).await {
        Err(_) => timed_out(timeout),
        Ok(Err(e)) => down(Outcome::Connection, format!("connection failed: {e}")),
        Ok(Ok(stream)) => {
            drop(stream);
            Observed {
                status: Status::Up,
                message: "TCP connect OK".into(),
                failure: None,
            }
        }
    }
}
