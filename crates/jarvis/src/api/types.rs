//! The shapes of the answers that the command line reads back: each type here is what a handler
//! serializes into the envelope's `data` and what
//! `jarvis breakers|schedules|health|tasks|services|agents` deserializes, so the server and the CLI cannot drift apart. docs/api.md is the contract; the
//! round-trip tests below (serialize as the API does, deserialize as the CLI does, same value
//! and same bytes) guard it. Field order is the order on the wire.
//!
//! The handlers build these values (`api::breakers`, `api::schedules`, `api::health`,
//! `api::tasks`); this module holds only the shapes. Strings that a handler takes from a fixed
//! set (`"OPEN"`, `"up"`, …) are `Cow<'static, str>`: borrowed when serving, so answering
//! 20,000 services allocates no more than before, and owned when read back.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::health::Overall;
use crate::schedules::Missed;
use crate::tasks::TaskStatus;

pub use super::alerts::{
    AlertView, AlertsView, NotificationView, NotificationsView, SilenceView, SilencesView,
};
pub use super::traces::{TraceEventView, TraceView};
pub use crate::history::stats::{FailureReason, ParametersSource};
pub use crate::history::{Stats, StoredExecution};
pub use crate::learning::RecommendationView;
pub use crate::model::agent::AgentSpec;
pub use crate::model::service::ServiceSpec;

/// A time as chrono's `Serialize` writes it on the wire (RFC 3339 in UTC with `Z`, with the
/// fraction digits the value needs: none, 3, 6 or 9), for tables that show a wire time as it
/// is.
pub fn wire_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

// ---- circuit breakers ---------------------------------------------------------------------

/// One breaker as `GET /api/v1/circuit-breakers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub state: Cow<'static, str>,
    /// Consecutive failures.
    pub failure_count: u32,
    /// Successful trials in the current half-open period.
    pub success_count: u32,
    /// Finished calls (successes, failures, ignored, rejected).
    pub total_calls: u64,
    /// Calls rejected without touching the service.
    pub rejected_calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// When the last failure happened (ISO 8601 UTC, ms).
    pub last_failure_at: Option<String>,
    /// Why.
    pub last_failure_reason: Option<String>,
    /// When the circuit last opened.
    pub opened_at: Option<String>,
    /// When an open circuit lets a trial through.
    pub next_attempt_at: Option<String>,
    /// Held open by an operator.
    pub forced: bool,
    /// Grows by one at every transition.
    pub generation: u64,
    /// The settings, in one line.
    pub policy: String,
    /// False when `CIRCUIT_BREAKER_ENABLED=false`: calls pass through uncounted.
    pub enabled: bool,
}

/// The `data` of every breaker route: `{name: view}` (every breaker, or the one named).
pub type BreakerViews = BTreeMap<String, BreakerView>;

// ---- schedules ----------------------------------------------------------------------------

/// A schedule as the API shows it (`GET /api/v1/schedules` answers a list of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// The schedule's name.
    pub name: String,
    /// The cron expression, or null for a period.
    pub cron: Option<String>,
    /// The period in ms, or null for a cron expression.
    pub every_ms: Option<u64>,
    /// The IANA time zone of the cron expression (`UTC` for a period).
    pub timezone: String,
    /// The task body each tick submits, as given.
    pub task: Value,
    /// A paused schedule submits nothing.
    pub paused: bool,
    /// The missed-tick policy.
    pub missed: Missed,
    /// With `catchUp`: how many missed ticks are submitted.
    pub catch_up_limit: u32,
    /// The next tick (ISO 8601 UTC); null while paused.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The next few ticks, `nextRunAt` first.
    pub upcoming: Vec<DateTime<Utc>>,
    /// The latest tick that submitted a task.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task that tick submitted.
    pub last_task_id: Option<String>,
    /// When the schedule was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

// ---- service health -----------------------------------------------------------------------

/// The `data` of `GET /api/v1/health/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServicesView {
    /// `pass`, `warn` or `fail`.
    pub status: Overall,
    /// What the status means, in one line.
    pub description: Cow<'static, str>,
    /// Every service by name.
    pub services: BTreeMap<String, ServiceView>,
    /// The trip forecast of every agent domain whose attempts this instance has seen (enough
    /// of them), by domain; absent when none has one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentPredictionView>,
}

/// One agent domain in `GET /api/v1/health/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentPredictionView {
    /// Its trip forecast.
    pub prediction: PredictionView,
}

/// One service in `GET /api/v1/health/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// `up`, `degraded`, `down`, or `unknown` before the first check.
    pub status: Cow<'static, str>,
    /// Why (`HTTP 200`, `Circuit breaker OPEN`, `timeout after 3000 ms`, …).
    pub message: String,
    /// Duration of the latest check, ms (0 when the circuit refused it).
    pub latency: u64,
    /// When the latest result was produced (ISO 8601), null before the first check.
    pub timestamp: Option<String>,
    /// The state of the service's circuit breaker.
    pub breaker: Cow<'static, str>,
    /// When the service was last actually called (ISO 8601).
    pub last_checked: Option<String>,
    /// Percent of checks up (or degraded) over about the last hour and day.
    pub uptime: UptimeView,
    /// Whether the overall status fails when this service is down.
    pub critical: bool,
    /// `http` or `tcp` (the health+json draft's `componentType`).
    pub component_type: Cow<'static, str>,
    /// The trip forecast after the latest check that called the service; absent until it has
    /// seen enough checks (6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionView>,
}

/// A service's trip forecast (docs/api.md, Service health; bench/predict/README.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictionView {
    /// `warn` when a circuit trip within the horizon is forecast, else `ok`.
    pub status: Cow<'static, str>,
    /// Why, when it warns.
    pub reason: Option<String>,
    /// The probability of a trip within the horizon (0–1, three decimals).
    pub trip_probability: f64,
    /// The horizon, seconds.
    pub horizon_seconds: f64,
    /// When a trip becomes more likely than not, seconds from the latest check (null: not
    /// within the next 120 checks).
    pub seconds_to_trip: Option<f64>,
    /// When the smoothed latency reaches the timeout, seconds from the latest check.
    pub seconds_to_timeout: Option<f64>,
    /// The smoothed (median) latency, ms.
    pub latency_ms: f64,
    /// Its trend, ms per minute.
    pub latency_trend_ms_per_min: f64,
    /// The smoothed share of checks failing for another reason than slowness (0–1).
    pub error_rate: f64,
    /// Consecutive failed checks.
    pub consecutive_failures: u32,
}

impl From<&jarvis_learning::Forecast> for PredictionView {
    fn from(f: &jarvis_learning::Forecast) -> Self {
        let round = |x: f64, places: i32| {
            let m = 10f64.powi(places);
            (x * m).round() / m
        };
        PredictionView {
            status: if f.warning { "warn" } else { "ok" }.into(),
            reason: f.reason.clone(),
            trip_probability: round(f.trip_probability, 3),
            horizon_seconds: round(f.horizon_secs, 1),
            seconds_to_trip: f.seconds_to_trip.map(|s| round(s, 1)),
            seconds_to_timeout: f.seconds_to_timeout.map(|s| round(s, 1)),
            latency_ms: round(f.latency_ms, 1),
            latency_trend_ms_per_min: round(f.latency_trend_ms_per_min, 1),
            error_rate: round(f.error_rate, 3),
            consecutive_failures: f.consecutive_failures,
        }
    }
}

/// Uptime percentages; null without checks in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UptimeView {
    /// About the last hour.
    pub hour: Option<f64>,
    /// About the last day.
    pub day: Option<f64>,
}

/// The `data` of `GET /api/v1/health/services/{name}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckHistoryView {
    /// The service.
    pub service: String,
    /// Results, newest first.
    pub results: Vec<CheckResultView>,
}

/// One stored check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResultView {
    /// `up`, `degraded` or `down`.
    pub status: Cow<'static, str>,
    /// Why.
    pub message: String,
    /// ms.
    pub latency: u64,
    /// When (ISO 8601).
    pub timestamp: String,
    /// True when the circuit refused the check (the service was not called).
    pub breaker_open: bool,
    /// The check's correlation ID.
    pub correlation_id: Option<String>,
}

// ---- tasks --------------------------------------------------------------------------------

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// The task's ID (UUIDv7).
    pub task_id: Uuid,
    /// Which agent runs it.
    pub domain: String,
    /// What the agent is asked to do.
    pub action: String,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Higher runs first.
    pub priority: i32,
    /// The parameters (given and learned).
    pub parameters: Value,
    /// Which parameters were learned, with the probability each was chosen with.
    pub learned_parameters: Option<Value>,
    /// The agent's result, once succeeded.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The submitting request's correlation ID.
    pub correlation_id: String,
    /// The idempotency key it was submitted with.
    pub idempotency_key: Option<String>,
    /// Per-attempt timeout, ms.
    pub timeout_ms: Option<u64>,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long its latest attempt took, ms.
    pub duration_ms: Option<u64>,
}

/// The answer to a submission that does not wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The task's ID.
    pub task_id: Uuid,
    /// Its correlation ID.
    pub correlation_id: String,
    /// Its status (queued, or running when a worker took it at once).
    pub status: TaskStatus,
    /// True when the idempotency key matched an existing task (absent otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// One page of `GET /api/v1/tasks`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    /// The tasks.
    pub items: Vec<TaskView>,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// One page of `GET /api/v1/tasks/executions`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPage {
    /// The records.
    pub items: Vec<StoredExecution>,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::time::{Duration, SystemTime};

    use chrono::TimeZone;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::history::ExecutionRecord;

    /// What the API writes, read back by the CLI, is the same value and writes the same bytes.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(served: &T) {
        let wire = serde_json::to_string(served).unwrap();
        let read: T = serde_json::from_str(&wire)
            .unwrap_or_else(|e| panic!("the CLI cannot read {wire}: {e}"));
        assert_eq!(&read, served, "{wire}");
        assert_eq!(serde_json::to_string(&read).unwrap(), wire);
        // What the CLI prints (`--json`, `jarvis tasks …`) is what it printed when it printed
        // the answer as received.
        let received: Value = serde_json::from_str(&wire).unwrap();
        assert_eq!(
            crate::client::json_text(&read).unwrap(),
            serde_json::to_string_pretty(&received).unwrap()
        );
    }

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_767_258_000_000 + ms).unwrap()
    }

    #[test]
    fn wire_times_are_written_as_chrono_serializes_them() {
        for t in [
            at(0),
            at(123),
            at(0) + chrono::Duration::microseconds(123_456),
            at(0) + chrono::Duration::nanoseconds(1),
        ] {
            assert_eq!(json!(wire_time(&t)), serde_json::to_value(t).unwrap());
        }
    }

    #[test]
    fn breaker_views_round_trip() {
        let breaker = jarvis_breaker::Breaker::new("b");
        breaker.force_open();
        let open = crate::api::breakers::breaker_view(&breaker.snapshot(), true);
        assert_eq!(open.state, "OPEN");
        let fresh = jarvis_breaker::Breaker::new("c");
        let mut views = BreakerViews::new();
        views.insert("b".into(), open);
        views.insert(
            "c".into(),
            crate::api::breakers::breaker_view(&fresh.snapshot(), false),
        );
        round_trip(&views);
        let failed = BreakerView {
            last_failure_at: Some(crate::api::breakers::iso(SystemTime::now())),
            last_failure_reason: Some("connection refused \"x\" \u{e9}".into()),
            opened_at: Some(crate::api::breakers::iso(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_258_000_123),
            )),
            ..views["c"].clone()
        };
        round_trip(&failed);
    }

    fn schedule(paused: bool) -> ScheduleView {
        ScheduleView {
            name: "nightly".into(),
            cron: (!paused).then(|| "0 3 * * *".into()),
            every_ms: paused.then_some(5_000),
            timezone: "Europe/Paris".into(),
            task: json!({"domain": "noop", "action": "report", "parameters": {"x": [1, 2.5]}}),
            paused,
            missed: if paused {
                Missed::CatchUp
            } else {
                Missed::Skip
            },
            catch_up_limit: 10,
            next_run_at: (!paused).then(|| at(0)),
            upcoming: if paused {
                vec![]
            } else {
                vec![at(0), at(86_400_000)]
            },
            last_run_at: paused.then(|| at(0) + chrono::Duration::microseconds(5_123_456)),
            last_task_id: paused.then(|| Uuid::now_v7().to_string()),
            created_at: at(-1),
            updated_at: at(-1),
        }
    }

    #[test]
    fn schedule_views_round_trip() {
        round_trip(&schedule(false));
        round_trip(&vec![schedule(false), schedule(true)]);
    }

    #[test]
    fn service_health_views_round_trip() {
        let service = |status: &'static str, hour: Option<f64>| ServiceView {
            status: status.into(),
            message: format!("{status}: HTTP 200"),
            latency: 17,
            timestamp: hour.map(|_| "2026-01-01T00:00:00.000Z".into()),
            breaker: "CLOSED".into(),
            last_checked: hour.map(|_| "2026-01-01T00:00:00.000Z".into()),
            uptime: UptimeView {
                hour,
                day: hour.map(|h| h * 0.999),
            },
            critical: hour.is_some(),
            component_type: "http".into(),
            prediction: hour.map(|_| PredictionView {
                status: "warn".into(),
                reason: Some("a circuit trip is likely within ~45 s".into()),
                trip_probability: 0.812,
                horizon_seconds: 120.0,
                seconds_to_trip: Some(45.0),
                seconds_to_timeout: None,
                latency_ms: 2710.5,
                latency_trend_ms_per_min: 420.0,
                error_rate: 0.0,
                consecutive_failures: 1,
            }),
        };
        let view = ServicesView {
            status: Overall::Warn,
            description: "some service is degraded".into(),
            services: [
                ("a".to_string(), service("up", Some(100.0))),
                ("b".to_string(), service("degraded", Some(33.333_333_333))),
                ("c".to_string(), service("unknown", None)),
            ]
            .into(),
            agents: [(
                "payments".to_string(),
                AgentPredictionView {
                    prediction: service("up", Some(1.0)).prediction.unwrap(),
                },
            )]
            .into(),
        };
        round_trip(&view);
        for overall in [Overall::Pass, Overall::Warn, Overall::Fail] {
            assert_eq!(
                json!(overall.as_str()),
                serde_json::to_value(overall).unwrap()
            );
        }
    }

    fn task() -> TaskView {
        TaskView {
            task_id: Uuid::now_v7(),
            domain: "music".into(),
            action: "generate-beat".into(),
            status: TaskStatus::Succeeded,
            attempts: 2,
            max_attempts: 3,
            priority: -1,
            parameters: json!({"bpm": 120, "genre": "jazz", "ratio": 0.1}),
            learned_parameters: Some(json!({"bpm": {"value": 120, "probability": 0.95}})),
            result: Some(json!({"ok": true})),
            error: None,
            correlation_id: "req-k3x9q0abf2mz".into(),
            idempotency_key: Some("k1".into()),
            timeout_ms: Some(30_000),
            run_at: at(0),
            created_at: at(0) + chrono::Duration::microseconds(1),
            started_at: Some(at(5)),
            finished_at: Some(at(1_000) + chrono::Duration::microseconds(999)),
            duration_ms: Some(995),
        }
    }

    #[test]
    fn task_views_round_trip() {
        round_trip(&task());
        round_trip(&TaskView {
            status: TaskStatus::Queued,
            learned_parameters: None,
            result: None,
            error: Some("agent call failed: timeout".into()),
            idempotency_key: None,
            timeout_ms: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            ..task()
        });
        for duplicate in [false, true] {
            round_trip(&Accepted {
                task_id: Uuid::now_v7(),
                correlation_id: "req-a".into(),
                status: TaskStatus::Queued,
                duplicate,
            });
        }
    }

    #[test]
    fn task_pages_round_trip() {
        round_trip(&TaskPage {
            items: vec![task(), task()],
            next_cursor: Some(Uuid::now_v7().simple().to_string()),
        });
        round_trip(&TaskPage {
            items: vec![],
            next_cursor: None,
        });
    }

    #[test]
    fn check_histories_round_trip() {
        let result = |status: &'static str, open: bool| CheckResultView {
            status: status.into(),
            message: if open {
                "Circuit breaker OPEN".into()
            } else {
                "HTTP 200".into()
            },
            latency: if open { 0 } else { 12 },
            timestamp: "2026-01-01T00:00:00.123Z".into(),
            breaker_open: open,
            correlation_id: (!open).then(|| "hc-k3x9q0abf2mz".into()),
        };
        round_trip(&CheckHistoryView {
            service: "api".into(),
            results: vec![result("up", false), result("down", true)],
        });
    }

    #[test]
    fn services_and_agents_round_trip() {
        // Built through the inputs the API validates, as the handlers build them.
        let name = |n: &str| crate::names::Name::parse(n).unwrap();
        let service = |body: Value| {
            serde_json::from_value::<crate::model::service::ServiceInput>(body)
                .unwrap()
                .into_spec(name("api"), at(0))
                .unwrap()
        };
        let full = service(
            json!({"url": "http://127.0.0.1:3001/health", "intervalMs": 5000,
            "timeoutMs": 3000, "critical": true, "expectedStatus": [200, 204],
            "expectBody": {"pointer": "/status", "equals": "ok"}, "degradedLatencyMs": 1000}),
        );
        round_trip(&full);
        round_trip(&vec![full, service(json!({"url": "tcp://127.0.0.1:6379"}))]);
        let agent = serde_json::from_value::<crate::model::agent::AgentInput>(
            json!({"url": "http://127.0.0.1:8001/run", "useLearned": true}),
        )
        .unwrap()
        .into_spec(name("music"), at(0) + chrono::Duration::microseconds(7))
        .unwrap();
        round_trip(&agent);
        round_trip(&vec![agent]);
    }

    #[test]
    fn execution_pages_round_trip() {
        let record = |id: i64, success: bool| StoredExecution {
            id,
            record: ExecutionRecord {
                record_id: Uuid::now_v7(),
                task_id: Uuid::now_v7(),
                domain: "music".into(),
                action: "mix".into(),
                attempt: 1,
                parameters: json!({"bpm": 90}),
                learned_parameters: None,
                success,
                duration_ms: 12,
                impact_score: success.then_some(80.0),
                failure_reason: (!success).then(|| "timeout after 1000 ms".into()),
                failure_group: (!success).then(|| "f00dfeed00000001".into()),
                cost_usd: Some(0.002),
                correlation_id: Some("req-b".into()),
                instance_id: Some("i-1".into()),
                started_at: at(0),
                finished_at: at(12),
                timed_out: !success,
                model_call: None,
            },
        };
        round_trip(&ExecutionPage {
            items: vec![record(2, true), record(1, false)],
            next_cursor: Some("1".into()),
        });
        round_trip(&ExecutionPage {
            items: vec![],
            next_cursor: None,
        });
    }

    #[test]
    fn stats_round_trip() {
        let stats = Stats {
            domain: "music".into(),
            action: "mix".into(),
            since: Some(at(0)),
            until: None,
            total: 10,
            succeeded: 9,
            failed: 1,
            success_rate: Some(0.9),
            avg_duration_ms: Some(12),
            p50_duration_ms: Some(10),
            p95_duration_ms: Some(20),
            p99_duration_ms: Some(21),
            avg_impact_score: Some(77.5),
            total_cost_usd: 0.02,
            cost_per_task_usd: Some(0.002),
            common_failure_reasons: vec![FailureReason {
                reason: "timeout after <n> ms".into(),
                count: 1,
                example: "timeout after 1000 ms".into(),
                group: "f00dfeed00000001".into(),
            }],
            optimal_parameters: json!({"bpm": 90}).as_object().unwrap().clone(),
            optimal_parameters_source: ParametersSource::MostCommonRecent,
            optimal_parameters_confidence: None,
            last_executed_at: Some(at(12)),
        };
        round_trip(&stats);
        round_trip(&Stats {
            optimal_parameters_source: ParametersSource::Learned,
            optimal_parameters_confidence: Some(0.8),
            ..stats
        });
    }

    #[test]
    fn recommendations_round_trip() {
        let config = jarvis_learning::LearningConfig::default();
        let empty = jarvis_learning::Aggregates::new();
        let mut learned = jarvis_learning::Aggregates::new();
        for i in 0..60_u64 {
            let bpm = [90, 120, 140][(i % 3) as usize];
            learned.observe(&jarvis_learning::Execution {
                parameters: json!({"bpm": bpm, "genre": "jazz"})
                    .as_object()
                    .unwrap()
                    .clone(),
                success: bpm == 120 || i % 2 == 0,
                duration_ms: 100 + i * 7,
                impact_score: Some((i % 10) as f64 * 10.0),
                failure_reason: (bpm != 120).then(|| format!("timeout after {i} ms")),
                cost_usd: Some(0.001),
                timed_out: bpm == 140,
            });
        }
        for aggregates in [&empty, &learned] {
            let view = RecommendationView {
                domain: "music".into(),
                action: "mix".into(),
                recommendation: jarvis_learning::recommend(aggregates, &config),
                configured_timeout_ms: 200,
                timeout_warning: jarvis_learning::timeout_warning(aggregates, 200, &config.timeout),
                ignored_parameters: vec!["requestId".into()],
                exploration_share: 0.05,
            };
            round_trip(&view);
        }
    }
}

/// `GET /api/v1/ai/usage`: the AI gateway's usage and spend in a range, grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiUsageView {
    /// The range's start (an hour boundary or earlier).
    pub since: DateTime<Utc>,
    /// The range's end (exclusive).
    pub until: DateTime<Utc>,
    /// What the rows are grouped by: `model`, `deployment`, `domain`, `token` or `hour`.
    pub by: String,
    /// A row per group, in key order.
    pub rows: Vec<AiUsageRowView>,
    /// The rows' sums.
    pub total: AiUsageRowView,
}

/// Usage of one group (or the total, whose key is `total`): the store's totals as they are.
pub type AiUsageRowView = crate::store::ai_usage::AiUsageTotal;

/// `GET /api/v1/ai/budgets`: a configured budget and what it has spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    /// The domain it holds, if it holds one.
    pub domain: Option<String>,
    /// The token fingerprint it holds, if it holds one.
    pub token: Option<String>,
    /// Who it holds, in words (`domain research`, `token tok-…`, `all calls`).
    pub scope: String,
    /// The daily limit, USD.
    pub daily_usd: Option<f64>,
    /// The monthly limit, USD.
    pub monthly_usd: Option<f64>,
    /// Spent today (UTC), USD.
    pub spent_today_usd: f64,
    /// Spent this month (UTC), USD.
    pub spent_this_month_usd: f64,
    /// Whether calls it holds are refused now.
    pub exhausted: bool,
}
