//! Alerts people can act on (issue 16): rules evaluated every `JARVIS_ALERT_INTERVAL_MS` on
//! every instance, alert episodes and silences kept in the store, and webhook notifications
//! sent from an outbox.
//!
//! ```text
//!  every interval: breakers + trip forecasts + task window counts (rollups)
//!        ─► rules::evaluate ─► alerts (rule + labels = fingerprint, severity, summary)
//!        ─► silences matched ─► store.open_alerts: refresh last_seen of firing episodes,
//!           INSERT … ON CONFLICT DO NOTHING the new ones + their notifications (one per webhook
//!           per evaluation: grouping), in one transaction
//!        ─► store.resolve_stale_alerts: episodes nobody saw for 3 intervals resolved + their
//!           resolved notifications, in one transaction
//!        ─► store.release_silenced: firing episodes whose silence ended + their (late) firing
//!           notifications, in one transaction
//!  notifier: claim due notifications (SKIP LOCKED + lease) ─► POST (json | slack)
//!        ─► sent | retry with backoff | failed after the last attempt | later (rate limit)
//! ```
//!
//! An alert is firing while any instance finds it so; it resolves once none has for three
//! intervals, so instances that see a change a moment apart neither resolve nor reopen it.
//! Deduplication is the unique index on firing fingerprints: an alert firing for hours is one
//! episode and one message. An alert silenced when it starts is recorded (its episode names the
//! silence) and neither its firing nor its resolution is sent, unless the silence ends while it
//! still fires (`store.release_silenced`): then both are, the firing at once.
//!
//! - [`rules`]: the rules, pure;
//! - [`engine`]: the evaluation loop;
//! - [`notify`]: payloads and delivery.

pub mod engine;
pub mod notify;
pub mod rules;

use std::sync::Arc;

use metrics::Unit;

use crate::metrics::Metrics;

pub use engine::AlertEngine;

/// `jarvis_alerts_firing{severity}` and `jarvis_alert_notifications_total{result}`.
#[derive(Clone)]
pub struct AlertMetrics {
    registry: Arc<Metrics>,
}

impl AlertMetrics {
    /// Declares the metrics in `registry`.
    pub fn new(registry: Arc<Metrics>) -> AlertMetrics {
        registry.describe(
            "jarvis_alerts_firing",
            Some(Unit::Count),
            "alert episodes firing now (every instance's), by severity",
        );
        registry.describe(
            "jarvis_alert_notifications_total",
            Some(Unit::Count),
            "webhook notification attempts by this instance, by result (sent, retried, failed, \
             deferred by the rate limit)",
        );
        for severity in ["page", "ticket"] {
            registry
                .gauge("jarvis_alerts_firing", &[("severity", severity)])
                .set(0.0);
        }
        AlertMetrics { registry }
    }

    /// Sets the firing count of `severity`.
    pub fn firing(&self, severity: &str, n: f64) {
        self.registry
            .gauge("jarvis_alerts_firing", &[("severity", severity)])
            .set(n);
    }

    /// Counts one notification attempt's `result`.
    pub fn notification(&self, result: &str) {
        self.registry
            .counter("jarvis_alert_notifications_total", &[("result", result)])
            .increment(1);
    }
}
