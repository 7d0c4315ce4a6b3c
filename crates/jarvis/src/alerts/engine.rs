//! The evaluation loop of one instance: every interval it reads what the rules need (this
//! instance's breakers and trip forecasts, the task rollups in the store), evaluates the rules,
//! opens episodes for new alerts and resolves those nobody found firing for three intervals
//! (see the module above); a second loop sends the outbox (`notify::Notifier`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::notify::Notifier;
use super::rules::{self, BreakerInput, Inputs, PredictionInput, WindowPlan};
use super::AlertMetrics;
use crate::breakers::BreakerRegistry;
use crate::config::alerts::AlertSettings;
use crate::health::Monitor;
use crate::model::alert::{
    Episode, EpisodeState, NewEpisode, NewNotification, PairWindows, Silence,
};
use crate::store::{Store, StoreError};

/// How an alert no instance finds firing any more is resolved: after this many intervals.
pub const RESOLVE_AFTER_INTERVALS: u32 = 3;

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Alerts found firing.
    pub firing: usize,
    /// Episodes this instance opened.
    pub opened: Vec<Episode>,
    /// Episodes this instance resolved.
    pub resolved: Vec<Episode>,
}

/// The alert engine of one instance.
pub struct AlertEngine {
    store: Arc<dyn Store>,
    breakers: Arc<BreakerRegistry>,
    health: Arc<Monitor>,
    settings: Arc<AlertSettings>,
    instance: String,
    metrics: AlertMetrics,
    plan: WindowPlan,
    notifier: Notifier,
    /// Wakes the notifier when this instance queued something.
    queued: Notify,
    /// The long windows' counts and when they were read.
    long_windows: std::sync::Mutex<Option<(std::time::Instant, Vec<PairWindows>)>>,
    /// Which trip forecasts are news (see [`PredictionGate`]).
    gate: std::sync::Mutex<PredictionGate>,
}

/// A circuit that was open this recently makes its forecast old news: the warning a forecast
/// holds (`jarvis_learning::forecast`, 180 s after it was raised) outlives the outage it foresaw.
pub const QUIET_AFTER_OPEN: Duration = Duration::from_secs(180);

/// Decides which trip forecasts become `predicted-trip` alerts, so that one outage is one
/// alert: a forecast is news only ahead of a trip. It must have warned for as long as a sudden
/// failure takes to trip the circuit (the breaker's failure threshold × the service's check
/// interval; for an agent domain, whose calls come as fast as its tasks, three evaluation
/// intervals) — a sudden outage trips first and is reported once, as `circuit-open`; and it is
/// not raised while its circuit is open or for [`QUIET_AFTER_OPEN`] after (the circuit-open
/// alert and its resolution said it all). Per instance, like the forecasts.
#[derive(Debug, Default)]
pub struct PredictionGate {
    /// Since when each forecast (by name) has warned.
    pending: std::collections::HashMap<String, std::time::Instant>,
    /// When each circuit (by name) was last seen open.
    last_open: std::collections::HashMap<String, std::time::Instant>,
}

impl PredictionGate {
    /// The predictions among `warning` (each with how long it must have warned) that are news
    /// at `now`, given the circuits open now.
    pub fn admit(
        &mut self,
        now: std::time::Instant,
        open: &[&str],
        warning: Vec<(PredictionInput, Duration)>,
    ) -> Vec<PredictionInput> {
        for name in open {
            self.last_open.insert(name.to_string(), now);
        }
        self.last_open
            .retain(|_, at| now.saturating_duration_since(*at) < QUIET_AFTER_OPEN);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (p, hold) in warning {
            if self.last_open.contains_key(&p.name) {
                continue;
            }
            seen.insert(p.name.clone());
            let since = *self.pending.entry(p.name.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= hold {
                out.push(p);
            }
        }
        self.pending.retain(|name, _| seen.contains(name));
        out
    }
}

/// Windows up to this long are read at every evaluation.
pub const SHORT_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Longer windows are read again after six evaluations, at most this long (and at least one
/// interval).
pub const LONG_WINDOWS_EVERY: Duration = Duration::from_secs(60);

/// Joins the short windows' counts (`short` of them) and the long ones' into one row per pair
/// of `width` windows, zeros where a pair has none.
pub fn join_windows(
    short_counts: Vec<PairWindows>,
    short: usize,
    long_counts: Vec<PairWindows>,
    width: usize,
) -> Vec<PairWindows> {
    let mut all: std::collections::BTreeMap<(String, String), Vec<(u64, u64)>> =
        std::collections::BTreeMap::new();
    for (offset, rows) in [(0, short_counts), (short, long_counts)] {
        for p in rows {
            let entry = all
                .entry((p.domain, p.action))
                .or_insert_with(|| vec![(0, 0); width]);
            for (i, c) in p.windows.into_iter().enumerate() {
                if let Some(slot) = entry.get_mut(offset + i) {
                    *slot = c;
                }
            }
        }
    }
    all.into_iter()
        .map(|((domain, action), windows)| PairWindows {
            domain,
            action,
            windows,
        })
        .collect()
}

/// The notifications to queue for `episodes` becoming `status`: per webhook, one message with
/// every episode that is not silenced and urgent enough for it.
pub fn plan_notifications(
    settings: &AlertSettings,
    status: EpisodeState,
    episodes: &[Episode],
) -> Vec<NewNotification> {
    settings
        .webhooks
        .iter()
        .filter_map(|w| {
            let chosen: Vec<Episode> = episodes
                .iter()
                .filter(|e| e.silenced_by.is_none() && e.severity >= w.min_severity)
                .cloned()
                .collect();
            (!chosen.is_empty()).then(|| NewNotification {
                webhook: w.name.clone(),
                status,
                episodes: chosen,
            })
        })
        .collect()
}

impl AlertEngine {
    /// An engine for this instance.
    pub fn new(
        store: Arc<dyn Store>,
        breakers: Arc<BreakerRegistry>,
        health: Arc<Monitor>,
        settings: AlertSettings,
        instance: String,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<AlertEngine>> {
        let settings = Arc::new(settings);
        let metrics = AlertMetrics::new(metrics);
        let notifier = Notifier::new(
            store.clone(),
            settings.clone(),
            instance.clone(),
            metrics.clone(),
        )?;
        Ok(Arc::new(AlertEngine {
            plan: WindowPlan::for_settings(&settings),
            store,
            breakers,
            health,
            settings,
            instance,
            metrics,
            notifier,
            queued: Notify::new(),
            long_windows: std::sync::Mutex::new(None),
            gate: std::sync::Mutex::new(PredictionGate::default()),
        }))
    }

    /// What the rules read now.
    async fn inputs(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Inputs, StoreError> {
        let services = self.health.services();
        let names: HashSet<&str> = services.iter().map(|s| s.spec.name.as_str()).collect();
        let breakers = if self.breakers.enabled() {
            self.breakers
                .snapshots()
                .into_iter()
                .map(|s| BreakerInput {
                    is_service: names.contains(s.name.as_str()),
                    open: s.state != jarvis_breaker::State::Closed,
                    state: s.state.as_str(),
                    last_failure: s.last_failure_reason,
                    forced: s.forced,
                    name: s.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut warning: Vec<(PredictionInput, Duration)> = services
            .iter()
            .filter_map(|s| {
                let p = s.prediction.as_ref().filter(|p| p.warning)?;
                let name = s.spec.name.as_str();
                let to_trip = Duration::from_millis(s.spec.interval_ms)
                    * self.breakers.failure_threshold(name);
                Some((
                    PredictionInput {
                        label: "service",
                        name: name.to_string(),
                        reason: p.reason.clone(),
                        probability: p.trip_probability,
                    },
                    to_trip,
                ))
            })
            .collect();
        for (domain, p) in self.health.domain_forecasts().forecasts() {
            // An agent checked as a service is one thing: its service's forecast speaks for it.
            if p.warning && !names.contains(domain.as_str()) {
                warning.push((
                    PredictionInput {
                        label: "domain",
                        name: domain,
                        reason: p.reason.clone(),
                        probability: p.trip_probability,
                    },
                    self.settings.interval * 3,
                ));
            }
        }
        let open: Vec<&str> = breakers
            .iter()
            .filter(|b| b.open)
            .map(|b| b.name.as_str())
            .collect();
        let predictions = self.gate.lock().unwrap_or_else(|e| e.into_inner()).admit(
            std::time::Instant::now(),
            &open,
            warning,
        );
        let pairs = self.window_counts(now).await?;
        Ok(Inputs {
            breakers,
            predictions,
            pairs,
        })
    }

    /// How long the long windows' counts are used before they are read again.
    fn long_windows_every(&self) -> Duration {
        (self.settings.interval * 6)
            .min(LONG_WINDOWS_EVERY)
            .max(self.settings.interval)
    }

    /// The task counts of every window of the plan. The short windows (up to
    /// [`SHORT_WINDOW`]) are read at every evaluation; the long ones (an hour to three days,
    /// a scan of a day of minute rollups) every sixth evaluation, at most every
    /// [`LONG_WINDOWS_EVERY`]: a minute more or less changes them by a few percent at most.
    async fn window_counts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<PairWindows>, StoreError> {
        let (minutes, hours) = self.plan.starts(now);
        let short = self
            .plan
            .minutes
            .iter()
            .take_while(|w| **w <= SHORT_WINDOW)
            .count();
        let fresh = if short > 0 {
            self.store
                .task_window_counts(&minutes[..short], None)
                .await?
        } else {
            Vec::new()
        };
        if short == minutes.len() && hours.is_none() {
            return Ok(fresh);
        }
        let cached = {
            let cache = self.long_windows.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.long_windows_every())
                .map(|(_, counts)| counts.clone())
        };
        let long = match cached {
            Some(counts) => counts,
            None => {
                let counts = self
                    .store
                    .task_window_counts(&minutes[short..], hours)
                    .await?;
                *self.long_windows.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((std::time::Instant::now(), counts.clone()));
                counts
            }
        };
        let width = minutes.len() + usize::from(hours.is_some());
        Ok(join_windows(fresh, short, long, width))
    }

    /// One evaluation: rules, episodes opened and resolved, notifications queued.
    pub async fn evaluate(&self) -> Result<Evaluation, StoreError> {
        let now = crate::clock::now();
        let now_ms = now.timestamp_millis();
        let inputs = self.inputs(now).await?;
        let alerts = rules::evaluate(&self.settings, &self.plan, &inputs);
        let silences: Vec<Silence> = if alerts.is_empty() {
            Vec::new()
        } else {
            self.store.silences(now_ms).await?
        };
        let episodes: Vec<NewEpisode> = alerts
            .into_iter()
            .map(|alert| NewEpisode {
                fingerprint: alert.fingerprint(),
                silenced_by: silences
                    .iter()
                    .find(|s| s.active(now_ms) && s.matchers.matches(&alert.rule, &alert.labels))
                    .map(|s| s.id.clone()),
                alert,
            })
            .collect();
        let settings = self.settings.clone();
        let opened = self
            .store
            .open_alerts(
                &episodes,
                now_ms,
                &self.instance,
                &move |e: &[Episode]| plan_notifications(&settings, EpisodeState::Firing, e),
            )
            .await?;
        let settings = self.settings.clone();
        let stale = self.settings.interval * RESOLVE_AFTER_INTERVALS;
        let resolved = self
            .store
            .resolve_stale_alerts(
                now_ms - stale.as_millis() as i64,
                now_ms,
                &self.instance,
                &move |e: &[Episode]| plan_notifications(&settings, EpisodeState::Resolved, e),
            )
            .await?;
        // A silence that ended (or was removed) while its alert still fires lets the firing
        // message go now; its resolution is sent too, later.
        let settings = self.settings.clone();
        let released = self
            .store
            .release_silenced(now_ms, &move |e: &[Episode]| {
                plan_notifications(&settings, EpisodeState::Firing, e)
            })
            .await?;
        for e in &released {
            tracing::warn!(
                alert = %e.rule,
                fingerprint = %e.fingerprint,
                severity = e.severity.as_str(),
                labels = ?e.labels,
                "alert still firing after its silence ended: {}",
                e.summary
            );
        }
        for e in &opened {
            tracing::warn!(
                alert = %e.rule,
                fingerprint = %e.fingerprint,
                severity = e.severity.as_str(),
                labels = ?e.labels,
                silenced_by = e.silenced_by.as_deref(),
                "alert firing: {}",
                e.summary
            );
        }
        for e in &resolved {
            tracing::info!(
                alert = %e.rule,
                fingerprint = %e.fingerprint,
                labels = ?e.labels,
                "alert resolved: {}",
                e.summary
            );
        }
        if !opened.is_empty() || !resolved.is_empty() || !released.is_empty() {
            self.queued.notify_one();
        }
        let mut counts = [("page", 0.0), ("ticket", 0.0)];
        for (severity, n) in self.store.firing_alerts().await? {
            for c in counts.iter_mut().filter(|c| c.0 == severity) {
                c.1 = n as f64;
            }
        }
        for (severity, n) in counts {
            self.metrics.firing(severity, n);
        }
        Ok(Evaluation {
            firing: episodes.len(),
            opened,
            resolved,
        })
    }

    /// Evaluates every interval and sends the outbox until `stop`.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let evaluate = {
            let engine = self.clone();
            let mut stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(engine.settings.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut pruned_at: Option<tokio::time::Instant> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => break,
                    }
                    if *stop.borrow() {
                        break;
                    }
                    if let Err(e) = engine.evaluate().await {
                        tracing::warn!(error = %e, "alert evaluation failed; trying again next interval");
                    }
                    if pruned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(3_600)) {
                        pruned_at = Some(tokio::time::Instant::now());
                        engine.prune().await;
                    }
                }
            }
        };
        let deliver = {
            let engine = self.clone();
            let mut stop = stop.clone();
            async move {
                let poll = engine.settings.interval.min(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = engine.queued.notified() => {}
                        _ = stop.changed() => break,
                    }
                    if *stop.borrow() {
                        break;
                    }
                    if let Err(e) = engine.notifier.deliver_due().await {
                        tracing::warn!(error = %e, "reading the alert outbox failed");
                    }
                }
            }
        };
        tokio::join!(evaluate, deliver);
    }

    /// Deletes what is older than the history's retention (30 days when it keeps forever).
    async fn prune(&self) {
        let before = crate::clock::now() - chrono::TimeDelta::days(30);
        match self.store.prune_alerts(before.timestamp_millis()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old alert episodes and notifications deleted"),
            Err(e) => tracing::warn!(error = %e, "pruning alert history failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::{Webhook, WebhookFormat};
    use crate::model::alert::Severity;

    fn warns(name: &str, hold_s: u64) -> (PredictionInput, Duration) {
        (
            PredictionInput {
                label: "service",
                name: name.into(),
                reason: None,
                probability: 0.9,
            },
            Duration::from_secs(hold_s),
        )
    }

    fn names(admitted: &[PredictionInput]) -> Vec<&str> {
        admitted.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_forecast_is_news_once_it_has_warned_as_long_as_a_sudden_trip_takes() {
        let mut gate = PredictionGate::default();
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(gate.admit(at(0), &[], vec![warns("db", 10)]).is_empty());
        assert!(gate.admit(at(9), &[], vec![warns("db", 10)]).is_empty());
        assert_eq!(
            names(&gate.admit(at(10), &[], vec![warns("db", 10)])),
            ["db"]
        );
        // A pause in the warning starts the wait again.
        assert!(gate.admit(at(11), &[], vec![]).is_empty());
        assert!(gate.admit(at(12), &[], vec![warns("db", 10)]).is_empty());
        assert_eq!(
            names(&gate.admit(at(22), &[], vec![warns("db", 10)])),
            ["db"]
        );
    }

    #[test]
    fn a_sudden_outage_trips_before_its_forecast_matures_and_stays_one_alert() {
        let mut gate = PredictionGate::default();
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Warns at 0, the circuit opens at 5 (threshold × interval is 10): never admitted,
        // neither while open nor while the held warning outlives the outage.
        assert!(gate.admit(at(0), &[], vec![warns("db", 10)]).is_empty());
        assert!(gate.admit(at(5), &["db"], vec![warns("db", 10)]).is_empty());
        assert!(gate
            .admit(at(60), &["db"], vec![warns("db", 10)])
            .is_empty());
        assert!(gate.admit(at(100), &[], vec![warns("db", 10)]).is_empty());
        assert!(gate.admit(at(200), &[], vec![warns("db", 10)]).is_empty());
        // Other services are not affected; and once the quiet time is over, the forecast is
        // news again.
        assert!(gate.admit(at(200), &[], vec![warns("cache", 0)]).len() == 1);
        assert!(gate.admit(at(240), &[], vec![warns("db", 10)]).is_empty());
        assert_eq!(
            names(&gate.admit(at(250), &[], vec![warns("db", 10)])),
            ["db"]
        );
    }

    fn episode(id: i64, severity: Severity, silenced: bool) -> Episode {
        Episode {
            id,
            fingerprint: format!("f{id}"),
            rule: "circuit-open".into(),
            severity,
            labels: Default::default(),
            summary: String::new(),
            state: EpisodeState::Firing,
            starts_at_ms: 0,
            ends_at_ms: None,
            last_seen_ms: 0,
            silenced_by: silenced.then(|| "s".to_string()),
            opened_by: "a".into(),
            resolved_by: None,
        }
    }

    #[test]
    fn short_and_long_windows_join_per_pair() {
        let pair = |d: &str, w: Vec<(u64, u64)>| PairWindows {
            domain: d.into(),
            action: "x".into(),
            windows: w,
        };
        let joined = join_windows(
            vec![pair("a", vec![(1, 0), (2, 1)])],
            2,
            vec![
                pair("a", vec![(10, 1), (20, 2)]),
                pair("b", vec![(5, 5), (6, 6)]),
            ],
            4,
        );
        assert_eq!(
            joined,
            vec![
                pair("a", vec![(1, 0), (2, 1), (10, 1), (20, 2)]),
                pair("b", vec![(0, 0), (0, 0), (5, 5), (6, 6)]),
            ]
        );
    }

    /// One message per webhook with what it takes; silenced episodes go nowhere.
    #[test]
    fn notifications_are_grouped_per_webhook_and_filtered() {
        let mut s = AlertSettings::default();
        for (name, min) in [("all", Severity::Ticket), ("pager", Severity::Page)] {
            s.webhooks.push(Webhook {
                name: name.into(),
                url: secrecy::SecretString::from("http://127.0.0.1:9/x".to_string()),
                format: WebhookFormat::Json,
                min_severity: min,
            });
        }
        let eps = [
            episode(1, Severity::Page, false),
            episode(2, Severity::Ticket, false),
            episode(3, Severity::Page, true),
        ];
        let plan = plan_notifications(&s, EpisodeState::Firing, &eps);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].webhook, "all");
        let ids = |n: &NewNotification| n.episodes.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&plan[0]), [1, 2]);
        assert_eq!(plan[1].webhook, "pager");
        assert_eq!(ids(&plan[1]), [1]);
        assert!(plan_notifications(&s, EpisodeState::Resolved, &eps[2..]).is_empty());
    }
}
