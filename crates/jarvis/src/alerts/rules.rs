//! The alert rules, as pure functions of what an evaluation read: the breakers' states, the
//! trip forecasts, and the task outcomes of each domain/action in a few time windows.
//!
//! - `circuit-open` (page): a breaker that is not CLOSED (OPEN or HALF_OPEN: the circuit is
//!   still testing), labels `breaker` and, when a monitored service has its name, `service`;
//! - `predicted-trip` (ticket): a service (`service`) or agent domain (`domain`) whose trip
//!   forecast warns (`health::predict`);
//! - `failure-rate` (page): more than `threshold` (0.3, the user's CloudWatch alarm
//!   `jarvis-high-failure-rate`) of a domain/action's finished tasks failed over the window
//!   (5 minutes), with at least `minEvents` of them;
//! - `slo-burn-page` / `slo-burn-ticket`: the multiwindow, multi-burn-rate rules of
//!   `jarvis_learning::slo` (page: 14.4× over 1 h and 5 min, 6× over 6 h and 30 min; ticket: 3×
//!   over 1 day and 2 h, 1× over 3 days and 6 h) against the domain/action's success objective.
//!
//! Windows up to a day are read from the minute rollups (kept 48 h), the 3-day window from the
//! hourly ones; a window is whole minutes (hours) ending with the current, partial one.

use std::time::Duration;

use jarvis_learning::slo::{self, Counts, DEFAULT_RULES};

use crate::config::alerts::AlertSettings;
use crate::model::alert::{Alert, Labels, PairWindows, Severity};

/// Rule names.
pub const CIRCUIT_OPEN: &str = "circuit-open";
/// Rule names.
pub const PREDICTED_TRIP: &str = "predicted-trip";
/// Rule names.
pub const FAILURE_RATE: &str = "failure-rate";
/// Rule names.
pub const SLO_BURN_PAGE: &str = "slo-burn-page";
/// Rule names.
pub const SLO_BURN_TICKET: &str = "slo-burn-ticket";

/// Every rule, for validation of silences and filters.
pub const RULES: [&str; 5] = [
    CIRCUIT_OPEN,
    PREDICTED_TRIP,
    FAILURE_RATE,
    SLO_BURN_PAGE,
    SLO_BURN_TICKET,
];

/// The longest window read from the minute rollups; longer ones come from the hourly rollups.
const MINUTE_LIMIT: Duration = Duration::from_secs(86_400);

/// The windows an evaluation reads counts for: minute windows, then at most one hourly.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    /// Windows read from the minute rollups, shortest first.
    pub minutes: Vec<Duration>,
    /// The window read from the hourly rollups (the burn rules' 3 days).
    pub hours: Option<Duration>,
}

impl WindowPlan {
    /// The windows `settings`' rules need.
    pub fn for_settings(settings: &AlertSettings) -> WindowPlan {
        let mut all = Vec::new();
        if settings.failure_rate.enabled {
            all.push(settings.failure_rate.window);
        }
        if settings.burn_rate {
            for r in DEFAULT_RULES {
                all.push(r.long);
                all.push(r.short);
            }
        }
        all.sort();
        all.dedup();
        let hours = all.iter().copied().filter(|w| *w > MINUTE_LIMIT).max();
        WindowPlan {
            minutes: all.into_iter().filter(|w| *w <= MINUTE_LIMIT).collect(),
            hours,
        }
    }

    /// The first minute (hour) of each window at `now`: the current minute counts as one.
    pub fn starts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (
        Vec<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let minute = crate::model::rollup::hour_of(now)
            + chrono::TimeDelta::minutes(i64::from(chrono::Timelike::minute(&now)));
        let minutes = self
            .minutes
            .iter()
            .map(|w| minute - chrono::TimeDelta::minutes((w.as_secs() / 60).max(1) as i64 - 1))
            .collect();
        let hours = self.hours.map(|w| {
            crate::model::rollup::hour_of(now)
                - chrono::TimeDelta::hours((w.as_secs() / 3600).max(1) as i64 - 1)
        });
        (minutes, hours)
    }

    /// The counts of `window` in `pair` (none when the plan does not read it).
    fn counts(&self, pair: &PairWindows, window: Duration) -> Counts {
        let i = match self.minutes.iter().position(|w| *w == window) {
            Some(i) => Some(i),
            None if self.hours == Some(window) => Some(self.minutes.len()),
            None => None,
        };
        i.and_then(|i| pair.windows.get(i))
            .map(|&(total, failed)| Counts { total, failed })
            .unwrap_or_default()
    }
}

/// A breaker as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerInput {
    /// Its name.
    pub name: String,
    /// Whether it is not CLOSED.
    pub open: bool,
    /// `OPEN` or `HALF_OPEN` (when open).
    pub state: &'static str,
    /// Why its last call failed.
    pub last_failure: Option<String>,
    /// Whether an operator holds it open.
    pub forced: bool,
    /// Whether a monitored service has its name.
    pub is_service: bool,
}

/// A trip forecast that warns.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionInput {
    /// `service` or `domain`.
    pub label: &'static str,
    /// The service's or domain's name.
    pub name: String,
    /// Why it warns.
    pub reason: Option<String>,
    /// The probability of a trip within the horizon.
    pub probability: f64,
}

/// Everything one evaluation read.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Every breaker.
    pub breakers: Vec<BreakerInput>,
    /// The forecasts that warn.
    pub predictions: Vec<PredictionInput>,
    /// Task outcomes per domain/action, in the windows of the plan.
    pub pairs: Vec<PairWindows>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `99`, `99.9`: a share as a percentage without float noise.
fn percent(share: f64) -> String {
    let text = format!("{:.4}", share * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `5m`, `1h`, `3d`.
pub fn window_text(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{}m", s / 60)
    }
}

/// The alerts that fire, given what an evaluation read; sorted by rule then labels.
pub fn evaluate(settings: &AlertSettings, plan: &WindowPlan, inputs: &Inputs) -> Vec<Alert> {
    let mut out = Vec::new();
    if settings.circuit_open.enabled {
        for b in inputs.breakers.iter().filter(|b| b.open) {
            let mut l = labels(&[("breaker", &b.name)]);
            if b.is_service {
                l.insert("service".into(), b.name.clone());
            }
            out.push(Alert {
                rule: CIRCUIT_OPEN.into(),
                severity: settings.circuit_open.severity,
                labels: l,
                summary: match (&b.last_failure, b.forced) {
                    (_, true) => format!(
                        "circuit {} is {} (held open by an operator)",
                        b.name, b.state
                    ),
                    (Some(why), false) => format!("circuit {} is {}: {why}", b.name, b.state),
                    (None, false) => format!("circuit {} is {}", b.name, b.state),
                },
            });
        }
    }
    if settings.predicted_trip.enabled {
        for p in &inputs.predictions {
            out.push(Alert {
                rule: PREDICTED_TRIP.into(),
                severity: settings.predicted_trip.severity,
                labels: labels(&[(p.label, &p.name)]),
                summary: format!(
                    "{} {} will likely trip its circuit (p = {:.2}){}",
                    p.label,
                    p.name,
                    p.probability,
                    p.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    for pair in &inputs.pairs {
        let l = labels(&[("domain", &pair.domain), ("action", &pair.action)]);
        let fr = settings.failure_rate;
        if fr.enabled {
            let c = plan.counts(pair, fr.window);
            if c.total >= fr.min_events.max(1) && c.failed as f64 / c.total as f64 > fr.threshold {
                out.push(Alert {
                    rule: FAILURE_RATE.into(),
                    severity: fr.severity,
                    labels: l.clone(),
                    summary: format!(
                        "{}/{}: {:.0}% of {} tasks failed in the last {} (threshold {:.0}%)",
                        pair.domain,
                        pair.action,
                        100.0 * c.failed as f64 / c.total as f64,
                        c.total,
                        window_text(fr.window),
                        100.0 * fr.threshold
                    ),
                });
            }
        }
        if !settings.burn_rate {
            continue;
        }
        let Some(objective) = settings
            .objective(&pair.domain, &pair.action)
            .filter(|o| o.enabled)
        else {
            continue;
        };
        let firings = slo::evaluate(
            &DEFAULT_RULES,
            objective.success_rate,
            objective.min_events,
            |w| plan.counts(pair, w),
        );
        for severity in [Severity::Page, Severity::Ticket] {
            // The most urgent rule of each severity (`evaluate` sorts them so).
            let Some(f) = firings
                .iter()
                .find(|f| Severity::from(f.severity) == severity)
            else {
                continue;
            };
            out.push(Alert {
                rule: match severity {
                    Severity::Page => SLO_BURN_PAGE,
                    Severity::Ticket => SLO_BURN_TICKET,
                }
                .into(),
                severity,
                labels: l.clone(),
                summary: format!(
                    "{}/{}: the {}% success objective's error budget burns {:.1}× over {} \
                     and {:.1}× over {} (threshold {}×)",
                    pair.domain,
                    pair.action,
                    percent(objective.success_rate),
                    f.long_burn,
                    window_text(Duration::from_secs(f.long_window_secs)),
                    f.short_burn,
                    window_text(Duration::from_secs(f.short_window_secs)),
                    f.threshold
                ),
            });
        }
    }
    out.sort_by(|a, b| (&a.rule, &a.labels).cmp(&(&b.rule, &b.labels)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::{FileAlerts, FileFailureRate, FileRule};
    use crate::config::setting::Reader;

    fn settings(file: FileAlerts) -> AlertSettings {
        AlertSettings::read(&mut Reader::defaults(), &file).unwrap()
    }

    /// A pair whose windows are filled from `(window, total, failed)`; others empty.
    fn pair(plan: &WindowPlan, counts: &[(Duration, u64, u64)]) -> PairWindows {
        let mut windows = vec![(0, 0); plan.minutes.len() + usize::from(plan.hours.is_some())];
        for (w, total, failed) in counts {
            let i = plan
                .minutes
                .iter()
                .position(|m| m == w)
                .unwrap_or(plan.minutes.len());
            windows[i] = (*total, *failed);
        }
        PairWindows {
            domain: "music".into(),
            action: "beat".into(),
            windows,
        }
    }

    const M: u64 = 60;
    const H: u64 = 3600;

    fn d(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn rules_of(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.rule.as_str()).collect()
    }

    #[test]
    fn the_default_plan_reads_six_minute_windows_and_three_days_of_hours() {
        let plan = WindowPlan::for_settings(&AlertSettings::default());
        assert_eq!(
            plan.minutes,
            [5 * M, 30 * M, H, 2 * H, 6 * H, 24 * H].map(d).to_vec()
        );
        assert_eq!(plan.hours, Some(d(72 * H)));
        let now: chrono::DateTime<chrono::Utc> = "2026-12-06T10:07:30Z".parse().unwrap();
        let (minutes, hours) = plan.starts(now);
        assert_eq!(
            minutes[0],
            "2026-12-06T10:03:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        );
        assert_eq!(
            minutes[2],
            "2026-12-06T09:08:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        );
        assert_eq!(
            hours.unwrap(),
            "2026-12-03T11:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        );
    }

    /// The failure-rate threshold: above 0.3 with enough tasks fires, at 0.3 or with few
    /// tasks not.
    #[test]
    fn the_failure_rate_threshold_has_known_answers() {
        let s = settings(FileAlerts {
            burn_rate: Some(FileRule {
                enabled: Some(false),
                ..FileRule::default()
            }),
            ..FileAlerts::default()
        });
        let plan = WindowPlan::for_settings(&s);
        assert_eq!(plan.minutes, vec![d(5 * M)]);
        let check = |total, failed| {
            let inputs = Inputs {
                pairs: vec![pair(&plan, &[(d(5 * M), total, failed)])],
                ..Inputs::default()
            };
            evaluate(&s, &plan, &inputs)
        };
        let fired = check(100, 31);
        assert_eq!(rules_of(&fired), [FAILURE_RATE]);
        assert_eq!(fired[0].severity, Severity::Page);
        assert_eq!(
            fired[0].summary,
            "music/beat: 31% of 100 tasks failed in the last 5m (threshold 30%)"
        );
        assert_eq!(fired[0].labels.get("domain").unwrap(), "music");
        assert!(check(100, 30).is_empty(), "0.3 is not above 0.3");
        assert!(check(9, 9).is_empty(), "fewer than 10 tasks");
        assert_eq!(rules_of(&check(10, 4)), [FAILURE_RATE]);

        let s = settings(FileAlerts {
            failure_rate: Some(FileFailureRate {
                threshold: Some(0.5),
                window_ms: Some(600_000),
                min_events: Some(2),
                ..FileFailureRate::default()
            }),
            ..FileAlerts::default()
        });
        let plan = WindowPlan::for_settings(&s);
        let inputs = Inputs {
            pairs: vec![pair(&plan, &[(d(10 * M), 2, 2)])],
            ..Inputs::default()
        };
        assert_eq!(rules_of(&evaluate(&s, &plan, &inputs)), [FAILURE_RATE]);
    }

    /// Burn rates against a 99 % objective (budget 1 %): 15 % failing over 1 h and 5 min burns
    /// 15× (page); over 1 h but not in the last 5 min, nothing; 4 % over a day and 2 h burns
    /// 4× (ticket); 1.5 % over 3 days and 6 h burns 1.5× (ticket).
    #[test]
    fn burn_rate_windows_have_known_answers() {
        let s = settings(FileAlerts {
            failure_rate: Some(FileFailureRate {
                enabled: Some(false),
                ..FileFailureRate::default()
            }),
            ..FileAlerts::default()
        });
        let plan = WindowPlan::for_settings(&s);
        let run = |counts: &[(Duration, u64, u64)]| {
            let inputs = Inputs {
                pairs: vec![pair(&plan, counts)],
                ..Inputs::default()
            };
            evaluate(&s, &plan, &inputs)
        };
        let fast = run(&[(d(H), 1000, 150), (d(5 * M), 100, 15)]);
        assert_eq!(rules_of(&fast), [SLO_BURN_PAGE]);
        assert_eq!(
            fast[0].summary,
            "music/beat: the 99% success objective's error budget burns 15.0× over 1h and \
             15.0× over 5m (threshold 14.4×)"
        );
        assert!(run(&[(d(H), 1000, 150), (d(5 * M), 100, 1)]).is_empty());
        // 6× over 6 h and 30 min: the second page rule.
        let six = run(&[(d(6 * H), 6000, 420), (d(30 * M), 500, 35)]);
        assert_eq!(rules_of(&six), [SLO_BURN_PAGE]);
        assert!(six[0].summary.contains("over 6h"), "{}", six[0].summary);
        let slow = run(&[(d(24 * H), 10_000, 400), (d(2 * H), 1000, 40)]);
        assert_eq!(rules_of(&slow), [SLO_BURN_TICKET]);
        assert_eq!(slow[0].severity, Severity::Ticket);
        let slower = run(&[(d(72 * H), 30_000, 450), (d(6 * H), 3000, 45)]);
        assert_eq!(rules_of(&slower), [SLO_BURN_TICKET]);
        assert!(
            slower[0].summary.contains("over 3d"),
            "{}",
            slower[0].summary
        );
        // Both severities at once: one alert each.
        let both = run(&[
            (d(H), 1000, 150),
            (d(5 * M), 100, 15),
            (d(24 * H), 10_000, 400),
            (d(2 * H), 1000, 40),
        ]);
        assert_eq!(rules_of(&both), [SLO_BURN_PAGE, SLO_BURN_TICKET]);
        // Too few events in the long window.
        assert!(run(&[(d(H), 19, 19), (d(5 * M), 19, 19)]).is_empty());
    }

    #[test]
    fn open_circuits_and_warning_forecasts_fire() {
        let s = AlertSettings::default();
        let plan = WindowPlan::for_settings(&s);
        let inputs = Inputs {
            breakers: vec![
                BreakerInput {
                    name: "db".into(),
                    open: true,
                    state: "OPEN",
                    last_failure: Some("HTTP 503".into()),
                    forced: false,
                    is_service: true,
                },
                BreakerInput {
                    name: "music".into(),
                    open: true,
                    state: "OPEN",
                    last_failure: None,
                    forced: true,
                    is_service: false,
                },
                BreakerInput {
                    name: "ok".into(),
                    open: false,
                    state: "CLOSED",
                    last_failure: None,
                    forced: false,
                    is_service: true,
                },
            ],
            predictions: vec![PredictionInput {
                label: "service",
                name: "api".into(),
                reason: Some("latency rising".into()),
                probability: 0.8,
            }],
            pairs: vec![],
        };
        let alerts = evaluate(&s, &plan, &inputs);
        assert_eq!(
            rules_of(&alerts),
            [CIRCUIT_OPEN, CIRCUIT_OPEN, PREDICTED_TRIP]
        );
        assert_eq!(alerts[0].summary, "circuit db is OPEN: HTTP 503");
        assert_eq!(alerts[0].labels.get("service").unwrap(), "db");
        assert_eq!(alerts[1].labels.get("service"), None);
        assert_eq!(
            alerts[1].summary,
            "circuit music is OPEN (held open by an operator)"
        );
        assert_eq!(alerts[1].severity, Severity::Page);
        assert_eq!(alerts[2].severity, Severity::Ticket);
        assert_eq!(
            alerts[2].summary,
            "service api will likely trip its circuit (p = 0.80): latency rising"
        );
        let off = settings(FileAlerts {
            circuit_open: Some(FileRule {
                enabled: Some(false),
                ..FileRule::default()
            }),
            ..FileAlerts::default()
        });
        assert_eq!(rules_of(&evaluate(&off, &plan, &inputs)), [PREDICTED_TRIP]);
    }
}
