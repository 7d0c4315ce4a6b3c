//! Service level objectives and multiwindow, multi-burn-rate alerts (the Google SRE workbook's
//! "alerting on SLOs", chapter 5, method 6).
//!
//! An objective is a success rate over a period (e.g. 99 % of a domain/action's tasks succeed).
//! Its error budget is the failures it allows (1 %). The **burn rate** over a window is the
//! window's failure rate divided by the budget: 1 spends the budget exactly over the period,
//! 14.4 spends a 30-day budget's 2 % in one hour. A rule fires when both its long window (does
//! it matter?) and its short window (is it still happening?) burn at or above its rate, so an
//! alert starts within minutes of a fast burn and stops soon after the burning does.
//!
//! Pure: the caller says how many events and failures each window holds.

use std::time::Duration;

use serde::Serialize;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone should look soon (a ticket).
    Ticket,
    /// Someone should look now (a page).
    Page,
}

/// One rule: both windows burning at `burn` or faster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    /// How urgent its alert is.
    pub severity: Severity,
    /// The long window.
    pub long: Duration,
    /// The short window.
    pub short: Duration,
    /// The burn rate both must reach.
    pub burn: f64,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The workbook's rules for a 30-day objective: page at 14.4× over 1 h and 5 min or 6× over
/// 6 h and 30 min; ticket at 3× over 1 day and 2 h or 1× over 3 days and 6 h.
pub const DEFAULT_RULES: [BurnRule; 4] = [
    BurnRule {
        severity: Severity::Page,
        long: Duration::from_secs(HOUR),
        short: Duration::from_secs(5 * MINUTE),
        burn: 14.4,
    },
    BurnRule {
        severity: Severity::Page,
        long: Duration::from_secs(6 * HOUR),
        short: Duration::from_secs(30 * MINUTE),
        burn: 6.0,
    },
    BurnRule {
        severity: Severity::Ticket,
        long: Duration::from_secs(DAY),
        short: Duration::from_secs(2 * HOUR),
        burn: 3.0,
    },
    BurnRule {
        severity: Severity::Ticket,
        long: Duration::from_secs(3 * DAY),
        short: Duration::from_secs(6 * HOUR),
        burn: 1.0,
    },
];

/// Events and failures in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Events (finished tasks).
    pub total: u64,
    /// Of which failed.
    pub failed: u64,
}

/// The burn rate of `counts` against `objective` (a success rate below 1): the failure rate
/// divided by the error budget; 0 without events.
pub fn burn_rate(counts: Counts, objective: f64) -> f64 {
    if counts.total == 0 {
        return 0.0;
    }
    let budget = (1.0 - objective).max(1e-9);
    (counts.failed.min(counts.total) as f64 / counts.total as f64) / budget
}

/// A rule that fires, with what its windows measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Firing {
    /// How urgent.
    pub severity: Severity,
    /// The long window, seconds.
    pub long_window_secs: u64,
    /// The short window, seconds.
    pub short_window_secs: u64,
    /// The rule's burn rate.
    pub threshold: f64,
    /// The long window's burn rate.
    pub long_burn: f64,
    /// The short window's burn rate.
    pub short_burn: f64,
}

/// The rules of `rules` that fire for `objective`, given the counts of each window
/// (`counts(window)`), most urgent first. A rule whose long window holds fewer than
/// `min_events` events does not fire: three failures out of five calls are not an outage of a
/// 99.9 % objective.
pub fn evaluate(
    rules: &[BurnRule],
    objective: f64,
    min_events: u64,
    mut counts: impl FnMut(Duration) -> Counts,
) -> Vec<Firing> {
    let mut out: Vec<Firing> = rules
        .iter()
        .filter_map(|rule| {
            let long = counts(rule.long);
            if long.total < min_events.max(1) {
                return None;
            }
            let long_burn = burn_rate(long, objective);
            if long_burn < rule.burn {
                return None;
            }
            let short_burn = burn_rate(counts(rule.short), objective);
            (short_burn >= rule.burn).then_some(Firing {
                severity: rule.severity,
                long_window_secs: rule.long.as_secs(),
                short_window_secs: rule.short.as_secs(),
                threshold: rule.burn,
                long_burn,
                short_burn,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.threshold.total_cmp(&a.threshold))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts per window from (failed, total) per minute, newest last.
    fn windows(minutes: &[(u64, u64)]) -> impl FnMut(Duration) -> Counts + '_ {
        move |w| {
            let n = (w.as_secs() / 60) as usize;
            let recent = &minutes[minutes.len().saturating_sub(n)..];
            Counts {
                failed: recent.iter().map(|m| m.0).sum(),
                total: recent.iter().map(|m| m.1).sum(),
            }
        }
    }

    #[test]
    fn the_burn_rate_is_the_failure_rate_over_the_budget() {
        let c = Counts {
            total: 1000,
            failed: 10,
        };
        assert!((burn_rate(c, 0.99) - 1.0).abs() < 1e-9);
        assert!((burn_rate(c, 0.999) - 10.0).abs() < 1e-9);
        assert_eq!(burn_rate(Counts::default(), 0.99), 0.0);
    }

    #[test]
    fn a_fast_burn_pages_through_the_one_hour_rule() {
        // 99 % objective, 100 tasks a minute: 50 clean minutes, then 10 failing 20 %.
        let mut minutes = vec![(0, 100); 50];
        minutes.extend(vec![(20, 100); 10]);
        // The hour: 200 / 6000 = 3.3 % → burn 3.3, a ticket (1 day and 2 h ≥ 3×), no page.
        let firing = evaluate(&DEFAULT_RULES, 0.99, 10, windows(&minutes));
        assert!(
            firing.iter().all(|f| f.severity == Severity::Ticket),
            "{firing:?}"
        );
        assert!(!firing.is_empty());
        // Then 30 minutes failing 80 %: the hour burns at 43×, the last 5 minutes at 80×.
        minutes.extend(vec![(80, 100); 30]);
        let firing = evaluate(&DEFAULT_RULES, 0.99, 10, windows(&minutes));
        let page = &firing[0];
        assert_eq!(page.severity, Severity::Page);
        assert_eq!((page.long_window_secs, page.short_window_secs), (3600, 300));
        assert!((page.short_burn - 80.0).abs() < 1e-9, "{page:?}");
        assert!(page.long_burn >= 14.4, "{page:?}");
    }

    #[test]
    fn a_burn_that_stopped_stops_paging_though_the_hour_still_remembers_it() {
        // 30 minutes at 50 % failures, then 10 clean minutes.
        let mut minutes = vec![(0, 100); 20];
        minutes.extend(vec![(50, 100); 30]);
        minutes.extend(vec![(0, 100); 10]);
        let long = windows(&minutes)(Duration::from_secs(3600));
        assert!(burn_rate(long, 0.99) >= 14.4);
        assert!(evaluate(&DEFAULT_RULES, 0.99, 10, windows(&minutes))
            .iter()
            .all(|f| f.short_window_secs != 300));
    }

    #[test]
    fn a_slow_burn_opens_a_ticket_not_a_page() {
        // Three days at 1.5 % failures against 99 %: burn 1.5 everywhere.
        let minutes = vec![(3, 200); 3 * 24 * 60];
        let firing = evaluate(&DEFAULT_RULES, 0.99, 10, windows(&minutes));
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert_eq!(firing[0].severity, Severity::Ticket);
        assert_eq!(firing[0].long_window_secs, 3 * 86_400);
    }

    #[test]
    fn too_few_events_fire_nothing() {
        let minutes = vec![(1, 1); 5];
        assert!(evaluate(&DEFAULT_RULES, 0.999, 10, windows(&minutes)).is_empty());
        assert_eq!(
            evaluate(&DEFAULT_RULES, 0.999, 1, windows(&minutes)).len(),
            4
        );
    }

    #[test]
    fn pages_come_before_tickets() {
        // Everything failing for three days: every rule fires.
        let minutes = vec![(10, 10); 3 * 24 * 60];
        let firing = evaluate(&DEFAULT_RULES, 0.99, 10, windows(&minutes));
        let severities: Vec<_> = firing.iter().map(|f| f.severity).collect();
        assert_eq!(
            severities,
            [
                Severity::Page,
                Severity::Page,
                Severity::Ticket,
                Severity::Ticket
            ]
        );
        assert_eq!(firing[0].threshold, 14.4);
    }
}
