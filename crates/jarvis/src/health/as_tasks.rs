//! Health rounds as tasks: every round of checks is recorded in task history as domain
//! `system-health`, action `monitor-services`, so that
//! `GET /api/v1/tasks/history?domain=system-health&action=monitor-services` has data on any
//! running system (the user's checklist, step 4).
//!
//! The round itself is run by the monitor's scheduler (each service on its own interval), not
//! claimed from the queue: routing thousands of checks a second through the queue would add a
//! store round trip per check for nothing. What the history gets is one execution record per
//! round and instance: success when every critical service is up, the impact score of the
//! round (share of services up, critical ones weighing more), the duration of its slowest
//! check, and the round's correlation ID (`hm-…`), which is also on the round's log line.

use uuid::Uuid;

use super::monitor::{RoundReport, RoundSink};
use crate::history::record::ExecutionRecord;
use crate::history::Recorder;

/// The domain of health rounds in task history.
pub const DOMAIN: &str = "system-health";
/// The action of health rounds in task history.
pub const ACTION: &str = "monitor-services";

/// Records every round in task history.
pub struct HistorySink {
    recorder: Recorder,
    instance: String,
}

impl HistorySink {
    /// A sink writing through `recorder` (batched, off the monitor's path).
    pub fn new(recorder: Recorder, instance: String) -> HistorySink {
        HistorySink { recorder, instance }
    }

    /// The execution record of one round.
    pub fn record_of(report: &RoundReport, instance: &str) -> ExecutionRecord {
        let finished_at = report.started_at
            + chrono::TimeDelta::from_std(report.duration).unwrap_or(chrono::TimeDelta::zero());
        let record = ExecutionRecord {
            record_id: Uuid::now_v7(),
            task_id: Uuid::now_v7(),
            domain: DOMAIN.into(),
            action: ACTION.into(),
            attempt: 1,
            parameters: serde_json::json!({}),
            learned_parameters: None,
            success: report.all_critical_up,
            duration_ms: report.max_latency_ms,
            impact_score: Some(report.impact_score.clamp(0.0, 100.0)),
            failure_reason: None,
            failure_group: None,
            cost_usd: None,
            correlation_id: Some(report.correlation_id.to_string()),
            instance_id: Some(instance.to_string()),
            started_at: report.started_at,
            finished_at,
            timed_out: false,
            model_call: None,
        };
        if report.all_critical_up {
            record
        } else {
            // The message names the services, so that failure groups tell which one fails.
            let mut down = report.down_services.clone();
            down.sort();
            let reason = if down.is_empty() {
                "a critical service has no result yet".to_string()
            } else {
                format!("critical service down: {}", down.join(", "))
            };
            record.with_failure(&reason)
        }
    }
}

impl RoundSink for HistorySink {
    fn report(&self, report: &RoundReport) {
        self.recorder
            .record(Self::record_of(report, &self.instance));
    }
}
