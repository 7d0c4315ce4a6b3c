//! Rounds: every round length, one report of what was checked and the latest status of every
//! service, logged and handed to the sinks.

use super::*;

/// Produces a report every round until stopped; also runs the metrics upkeep, which folds
/// recorded histogram samples into their buckets so memory does not grow between scrapes.
pub(super) async fn rounds(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let length = inner.config.round;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + length, length);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut started_at = crate::clock::now();
    let mut started = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        inner.registry.run_upkeep();
        if !inner.config.enabled {
            continue;
        }
        let report = inner.report(started_at, started.elapsed());
        started_at = crate::clock::now();
        started = Instant::now();
        let span = tracing::info_span!("health_round", correlation_id = %report.correlation_id);
        async {
            tracing::info!(
                services = report.services,
                services_checked = report.services_checked,
                checks = report.checks,
                rejected = report.rejected,
                skipped = report.skipped,
                up = report.up,
                down = report.down,
                degraded = report.degraded,
                unknown = report.unknown,
                all_critical_up = report.all_critical_up,
                impact_score = report.impact_score,
                mean_latency_ms = report.mean_latency_ms,
                max_latency_ms = report.max_latency_ms,
                duration_ms = report.duration.as_millis() as u64,
                down_services = %report.down_services.join(","),
                predicted_trips = report.predicted_trips,
                "health round"
            );
            let sinks = inner
                .sinks
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for sink in sinks {
                sink.report(&report);
            }
        }
        .instrument(span)
        .await;
    }
}

impl Inner {
    /// Builds the report of the round that began at `started_at` and lasted `duration`.
    pub(super) fn report(&self, started_at: DateTime<Utc>, duration: Duration) -> RoundReport {
        let r = &self.round;
        let checks = r.checks.swap(0, Ordering::Relaxed);
        let rejected = r.rejected.swap(0, Ordering::Relaxed);
        let skipped = r.skipped.swap(0, Ordering::Relaxed);
        let latency_sum = r.latency_sum_ms.swap(0, Ordering::Relaxed);
        let max_latency_ms = r.latency_max_ms.swap(0, Ordering::Relaxed);
        let slots = self.all_slots();
        let mut tally = Tally::default();
        for slot in &slots {
            let seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
            let latest = seen.latest.as_ref();
            tally.predicted_trips += usize::from(seen.forecast.warning());
            tally.add(
                &slot.spec,
                latest.map(|l| l.status),
                latest.is_some_and(|l| l.timestamp >= started_at),
            );
        }
        tally.down_critical.sort();
        tally.down_other.sort();
        let mut down_services = tally.down_critical;
        down_services.append(&mut tally.down_other);
        down_services.truncate(20);
        self.metrics
            .predicted_trips
            .set(tally.predicted_trips as f64);
        RoundReport {
            correlation_id: CorrelationId::generate("hm"),
            started_at,
            duration,
            services: slots.len(),
            services_checked: tally.checked,
            checks,
            rejected,
            skipped,
            up: tally.up,
            down: tally.down,
            degraded: tally.degraded,
            unknown: tally.unknown,
            all_critical_up: tally.all_critical_up,
            impact_score: if tally.weight_total == 0.0 {
                100.0
            } else {
                (tally.weight_up * 10_000.0 / tally.weight_total).round() / 100.0
            },
            mean_latency_ms: latency_sum.checked_div(checks).unwrap_or(0),
            max_latency_ms,
            down_services,
            predicted_trips: tally.predicted_trips,
        }
    }
}

/// Counting services by their latest status.
struct Tally {
    predicted_trips: usize,
    up: usize,
    down: usize,
    degraded: usize,
    unknown: usize,
    checked: usize,
    all_critical_up: bool,
    weight_up: f64,
    weight_total: f64,
    down_critical: Vec<String>,
    down_other: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            predicted_trips: 0,
            up: 0,
            down: 0,
            degraded: 0,
            unknown: 0,
            checked: 0,
            all_critical_up: true,
            weight_up: 0.0,
            weight_total: 0.0,
            down_critical: Vec::new(),
            down_other: Vec::new(),
        }
    }
}

impl Tally {
    fn add(&mut self, spec: &ServiceSpec, status: Option<Status>, checked_this_round: bool) {
        let weight = if spec.critical { 3.0 } else { 1.0 };
        self.weight_total += weight;
        if checked_this_round {
            self.checked += 1;
        }
        match status {
            Some(Status::Up) => {
                self.up += 1;
                self.weight_up += weight;
            }
            Some(Status::Degraded) => {
                self.degraded += 1;
                self.weight_up += weight / 2.0;
            }
            Some(Status::Down) => {
                self.down += 1;
                if spec.critical {
                    self.all_critical_up = false;
                    self.down_critical.push(spec.name.to_string());
                } else {
                    self.down_other.push(spec.name.to_string());
                }
            }
            None => {
                self.unknown += 1;
                if spec.critical {
                    self.all_critical_up = false;
                }
            }
        }
    }
}
