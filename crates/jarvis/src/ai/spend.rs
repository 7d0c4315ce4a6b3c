//! What the gateway's calls cost, and the budgets that stop calls before they are made.
//!
//! Every call is counted in memory (requests, errors, tokens, dollars at the [`PriceTable`]'s
//! prices) under its hour, model, deployment, domain and token; [`Spend::run`] adds the counts
//! to the store's hourly rollup once a second (`store::ai_usage`), and keeps them in memory to
//! try again when the store cannot take them, so nothing counted is dropped.
//!
//! Each call also moves the Prometheus series of its deployment and model ([`names`]) and the
//! instance's totals the EMF lines report.
//!
//! A budget ([`Budget`]: a domain, a token or every call; per UTC day and/or month) is checked
//! before each call against what the store says was spent — read back at every flush, so the
//! spend of every instance sharing the store counts within a second — plus what this instance
//! counted since. The check is in memory (no store round trip on the call's path). A call is
//! refused once the limit is reached; the call that crosses it is not cut off (its cost is
//! known only when it has answered), so a budget can be overrun by the calls in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::price::PriceTable;
use crate::metrics::Metrics;
use crate::model::ai::Budget;
use crate::store::ai_usage::{AiSpendRow, AiUsageDelta};
use crate::store::Store;

/// How often counts go to the store and spend is read back.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The Prometheus series of the gateway's calls, labelled by `deployment` and `model` (the
/// provider's model name).
pub mod names {
    /// Counter: calls.
    pub const REQUESTS: &str = "jarvis_ai_requests_total";
    /// Counter: calls that failed.
    pub const ERRORS: &str = "jarvis_ai_errors_total";
    /// Counter: tokens, with `kind` `prompt` or `completion`.
    pub const TOKENS: &str = "jarvis_ai_tokens_total";
    /// Gauge: dollars spent since the instance started (only grows).
    pub const SPEND: &str = "jarvis_ai_spend_usd";
    /// Histogram: call duration (until the answer, or the stream's end), seconds.
    pub const DURATION: &str = "jarvis_ai_call_duration_seconds";
}

/// Most (deployment, model) series kept; calls of further models are counted under
/// `model="other"`, so a caller naming endless models cannot grow the registry without bound.
const MAX_SERIES: usize = 500;

struct Series {
    requests: Counter,
    errors: Counter,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    spend: Gauge,
    duration: Histogram,
}

/// Totals since start, for the EMF lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AiTotals {
    /// Calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Spend, micro-dollars.
    pub cost_micro_usd: u64,
}

/// The fingerprint of a bearer token that names it in usage and budgets without revealing it:
/// `tok-` and the first 8 hex digits of its SHA-256.
pub fn token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("tok-{hex}")
}

/// The start of the UTC day of `t`.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// The start of the UTC month of `t`.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// The start of the next UTC month after `t`.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t)
}

/// The hour of `t` (minutes and below cut).
fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(t)
}

/// One call, as counted.
#[derive(Debug, Clone)]
pub struct CallUsage<'a> {
    /// The model the caller named.
    pub model: &'a str,
    /// The deployment that answered (or failed).
    pub deployment: &'a str,
    /// The provider (`openai`, `anthropic`, `gemini`) and its model name, for the price.
    pub provider: &'a str,
    /// The provider's model name.
    pub upstream_model: &'a str,
    /// The caller's domain ('' for none).
    pub domain: &'a str,
    /// The caller's token fingerprint ('' for none).
    pub token: &'a str,
    /// Whether the call failed.
    pub failed: bool,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// How long the call took.
    pub latency: Duration,
}

/// A refused call: which budget, and how far it is spent.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetExceeded {
    /// Who the budget holds (`domain research`, `token tok-…`, `all calls`).
    pub scope: String,
    /// `daily` or `monthly`.
    pub period: &'static str,
    /// The limit, USD.
    pub limit_usd: f64,
    /// Spent in the period so far, USD.
    pub spent_usd: f64,
    /// When the period ends and calls are taken again.
    pub resets_at: DateTime<Utc>,
}

/// How a budget stands (`GET /api/v1/ai/budgets`).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    /// The budget.
    pub budget: Budget,
    /// Spent today (UTC), USD.
    pub spent_today_usd: f64,
    /// Spent this month (UTC), USD.
    pub spent_this_month_usd: f64,
}

type Key = (DateTime<Utc>, String, String, String, String);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_usd: f64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost_usd += o.cost_usd;
    }
}

#[derive(Default)]
struct Ledger {
    /// Counted, not yet handed to the store.
    pending: HashMap<Key, Counts>,
    /// Handed to the store by the flush in progress (still counted by budgets until the spend
    /// read after it includes them).
    flushing: HashMap<Key, Counts>,
    /// Spend per (domain, token) the store reported at the last read.
    known: Vec<AiSpendRow>,
    /// The day the `known` figures are of.
    known_day: Option<DateTime<Utc>>,
}

/// The gateway's usage counter and budget keeper.
pub struct Spend {
    store: Arc<dyn Store>,
    prices: PriceTable,
    budgets: Vec<Budget>,
    ledger: Mutex<Ledger>,
    metrics: Arc<Metrics>,
    series: Mutex<HashMap<(String, String), Series>>,
    requests: AtomicU64,
    errors: AtomicU64,
    cost_micro_usd: AtomicU64,
}

impl Spend {
    /// Counts into `store` (and `metrics`) at `prices`, holding calls to `budgets`.
    pub fn new(
        store: Arc<dyn Store>,
        prices: PriceTable,
        budgets: Vec<Budget>,
        metrics: Arc<Metrics>,
    ) -> Arc<Spend> {
        metrics.describe(
            names::REQUESTS,
            None,
            "AI gateway calls, by deployment and model.",
        );
        metrics.describe(names::ERRORS, None, "AI gateway calls that failed.");
        metrics.describe(
            names::TOKENS,
            None,
            "Tokens of AI gateway calls, by kind (prompt, completion).",
        );
        metrics.describe(
            names::SPEND,
            None,
            "Dollars the AI gateway's calls cost since this instance started.",
        );
        metrics.describe(
            names::DURATION,
            Some(metrics::Unit::Seconds),
            "Duration of AI gateway calls.",
        );
        Arc::new(Spend {
            store,
            prices,
            budgets,
            ledger: Mutex::default(),
            metrics,
            series: Mutex::default(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cost_micro_usd: AtomicU64::new(0),
        })
    }

    /// Totals since start (for the EMF lines).
    pub fn totals(&self) -> AiTotals {
        AiTotals {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            cost_micro_usd: self.cost_micro_usd.load(Ordering::Relaxed),
        }
    }

    /// Moves the call's Prometheus series and the totals.
    fn observe(&self, call: &CallUsage<'_>, cost: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.errors
            .fetch_add(u64::from(call.failed), Ordering::Relaxed);
        self.cost_micro_usd
            .fetch_add((cost * 1e6).round() as u64, Ordering::Relaxed);
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (call.deployment.to_string(), call.upstream_model.to_string());
        if !all.contains_key(&key) && all.len() >= MAX_SERIES {
            key.1 = "other".into();
        }
        let m = &self.metrics;
        let s = all.entry(key).or_insert_with_key(|(deployment, model)| {
            let l = [
                ("deployment", deployment.as_str()),
                ("model", model.as_str()),
            ];
            let t = |kind| {
                [
                    ("deployment", deployment.as_str()),
                    ("model", model.as_str()),
                    ("kind", kind),
                ]
            };
            Series {
                requests: m.counter(names::REQUESTS, &l),
                errors: m.counter(names::ERRORS, &l),
                prompt_tokens: m.counter(names::TOKENS, &t("prompt")),
                completion_tokens: m.counter(names::TOKENS, &t("completion")),
                spend: m.gauge(names::SPEND, &l),
                duration: m.histogram(names::DURATION, &l),
            }
        });
        s.requests.increment(1);
        if call.failed {
            s.errors.increment(1);
        }
        s.prompt_tokens.increment(call.prompt_tokens);
        s.completion_tokens.increment(call.completion_tokens);
        s.spend.increment(cost);
        s.duration.record(call.latency.as_secs_f64());
    }

    /// The prices calls are counted at.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a call; returns its cost (`None`: the model has no price).
    pub fn record(&self, call: &CallUsage<'_>) -> Option<f64> {
        let cost = self.prices.cost(
            call.provider,
            call.upstream_model,
            call.prompt_tokens,
            call.completion_tokens,
        );
        let counts = Counts {
            requests: 1,
            errors: i64::from(call.failed),
            prompt_tokens: call.prompt_tokens.min(i64::MAX as u64) as i64,
            completion_tokens: call.completion_tokens.min(i64::MAX as u64) as i64,
            cost_usd: cost.unwrap_or(0.0),
        };
        self.observe(call, counts.cost_usd);
        let key = (
            hour_of(crate::clock::now()),
            call.model.to_string(),
            call.deployment.to_string(),
            call.domain.to_string(),
            call.token.to_string(),
        );
        self.ledger().pending.entry(key).or_default().add(&counts);
        cost
    }

    /// Whether a call of `domain` with `token` may go out: the first budget that holds it and
    /// is spent is the refusal.
    pub fn check(&self, domain: &str, token: &str) -> Result<(), BudgetExceeded> {
        if self.budgets.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now();
        let ledger = self.ledger();
        for b in &self.budgets {
            if !holds(b, domain, token) {
                continue;
            }
            let (day, month) = spent(&ledger, b, now);
            if let Some(limit) = b.daily_usd {
                if day >= limit {
                    return Err(BudgetExceeded {
                        scope: b.scope(),
                        period: "daily",
                        limit_usd: limit,
                        spent_usd: day,
                        resets_at: day_start(now) + chrono::TimeDelta::days(1),
                    });
                }
            }
            if let Some(limit) = b.monthly_usd {
                if month >= limit {
                    return Err(BudgetExceeded {
                        scope: b.scope(),
                        period: "monthly",
                        limit_usd: limit,
                        spent_usd: month,
                        resets_at: next_month(now),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every budget with what it has spent.
    pub fn budgets(&self) -> Vec<BudgetStatus> {
        let now = crate::clock::now();
        let ledger = self.ledger();
        self.budgets
            .iter()
            .map(|b| {
                let (day, month) = spent(&ledger, b, now);
                BudgetStatus {
                    budget: b.clone(),
                    spent_today_usd: day,
                    spent_this_month_usd: month,
                }
            })
            .collect()
    }

    /// Hands the pending counts to the store, then (with budgets) reads the spend back. Counts
    /// the store refused stay pending for the next flush.
    pub async fn flush(&self) {
        let batch: Vec<AiUsageDelta> = {
            let mut l = self.ledger();
            let pending = std::mem::take(&mut l.pending);
            for (k, c) in pending {
                l.flushing.entry(k).or_default().add(&c);
            }
            l.flushing
                .iter()
                .map(
                    |((hour, model, deployment, domain, token), c)| AiUsageDelta {
                        hour: *hour,
                        model: model.clone(),
                        deployment: deployment.clone(),
                        domain: domain.clone(),
                        token: token.clone(),
                        requests: c.requests,
                        errors: c.errors,
                        prompt_tokens: c.prompt_tokens,
                        completion_tokens: c.completion_tokens,
                        cost_usd: c.cost_usd,
                    },
                )
                .collect()
        };
        if let Err(e) = self.store.add_ai_usage(&batch).await {
            // Kept in `flushing`: the next flush sends them again with whatever came since.
            tracing::warn!(error = %e, rows = batch.len(), "cannot write AI usage yet; kept to retry");
            return;
        }
        if self.budgets.is_empty() {
            self.ledger().flushing.clear();
            return;
        }
        let now = crate::clock::now();
        match self.store.ai_spend(month_start(now), day_start(now)).await {
            Ok(rows) => {
                let mut l = self.ledger();
                l.known = rows;
                l.known_day = Some(day_start(now));
                l.flushing.clear();
            }
            Err(e) => {
                // Written but not read back: count them as known to this instance.
                let mut l = self.ledger();
                let flushed = std::mem::take(&mut l.flushing);
                for ((hour, _, _, domain, token), c) in flushed {
                    fold_known(&mut l, hour, &domain, &token, c.cost_usd, now);
                }
                tracing::warn!(error = %e, "cannot read AI spend back; budgets use this instance's counts");
            }
        }
    }

    /// Flushes once a second until `stop`, then once more. (The application flushes once
    /// before it serves, so budgets start from what the store holds, not from zero.)
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => self.flush().await,
                _ = stop.changed() => break,
            }
        }
        self.flush().await;
    }
}

/// Whether budget `b` holds a call of `domain` with `token`.
fn holds(b: &Budget, domain: &str, token: &str) -> bool {
    match (&b.domain, &b.token) {
        (Some(d), _) => d == domain,
        (_, Some(t)) => t == token,
        _ => true,
    }
}

/// Spent today and this month under budget `b`: the store's figures at the last read plus what
/// this instance counted since.
fn spent(l: &Ledger, b: &Budget, now: DateTime<Utc>) -> (f64, f64) {
    let today = day_start(now);
    let month = month_start(now);
    let mut day_usd = 0.0;
    let mut month_usd = 0.0;
    // The store's figures are of the day they were read on; on a new day only the month's count.
    let same_day = l.known_day == Some(today);
    let same_month = l.known_day.is_some_and(|d| month_start(d) == month);
    for r in &l.known {
        if holds(b, &r.domain, &r.token) {
            if same_day {
                day_usd += r.day_usd;
            }
            if same_month {
                month_usd += r.month_usd;
            }
        }
    }
    for ((hour, _, _, domain, token), c) in l.pending.iter().chain(l.flushing.iter()) {
        if holds(b, domain, token) {
            if *hour >= today {
                day_usd += c.cost_usd;
            }
            if *hour >= month {
                month_usd += c.cost_usd;
            }
        }
    }
    (day_usd, month_usd)
}

/// Adds `cost` of an hour to the known figures (when they could not be read back).
fn fold_known(
    l: &mut Ledger,
    hour: DateTime<Utc>,
    domain: &str,
    token: &str,
    cost: f64,
    now: DateTime<Utc>,
) {
    if l.known_day != Some(day_start(now)) {
        return;
    }
    let row = match l
        .known
        .iter_mut()
        .find(|r| r.domain == domain && r.token == token)
    {
        Some(r) => r,
        None => {
            l.known.push(AiSpendRow {
                domain: domain.to_string(),
                token: token.to_string(),
                month_usd: 0.0,
                day_usd: 0.0,
            });
            l.known.last_mut().expect("just pushed")
        }
    };
    if hour >= month_start(now) {
        row.month_usd += cost;
    }
    if hour >= day_start(now) {
        row.day_usd += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_utc_days_and_months() {
        let now = t("2026-12-31T23:59:59.5Z");
        assert_eq!(day_start(now), t("2026-12-31T00:00:00Z"));
        assert_eq!(month_start(now), t("2026-12-01T00:00:00Z"));
        assert_eq!(next_month(now), t("2027-01-01T00:00:00Z"));
        assert_eq!(
            next_month(t("2026-02-10T08:00:00Z")),
            t("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            hour_of(t("2026-12-06T13:45:12.25Z")),
            t("2026-12-06T13:00:00Z")
        );
    }

    #[test]
    fn a_token_fingerprint_is_stable_and_reveals_nothing() {
        let id = token_id("s3cret-token");
        assert_eq!(id, token_id("s3cret-token"));
        assert_ne!(id, token_id("s3cret-token2"));
        assert!(id.starts_with("tok-") && id.len() == 12, "{id}");
        assert!(!id.contains("s3cret"));
    }

    fn budget(domain: Option<&str>, token: Option<&str>, daily: Option<f64>) -> Budget {
        Budget {
            domain: domain.map(Into::into),
            token: token.map(Into::into),
            daily_usd: daily,
            monthly_usd: None,
        }
    }

    #[test]
    fn a_budget_holds_its_domain_its_token_or_everything() {
        let d = budget(Some("research"), None, Some(1.0));
        assert!(holds(&d, "research", "tok-1"));
        assert!(!holds(&d, "music", "tok-1"));
        let k = budget(None, Some("tok-1"), Some(1.0));
        assert!(holds(&k, "", "tok-1"));
        assert!(!holds(&k, "research", "tok-2"));
        assert!(holds(&budget(None, None, Some(1.0)), "any", ""));
    }

    #[test]
    fn spend_counts_the_stores_figures_and_what_is_not_yet_read_back() {
        let now = t("2026-12-06T13:30:00Z");
        let mut l = Ledger {
            known: vec![
                AiSpendRow {
                    domain: "research".into(),
                    token: "tok-1".into(),
                    month_usd: 5.0,
                    day_usd: 2.0,
                },
                AiSpendRow {
                    domain: "music".into(),
                    token: "tok-1".into(),
                    month_usd: 1.0,
                    day_usd: 1.0,
                },
            ],
            known_day: Some(day_start(now)),
            ..Ledger::default()
        };
        let counts = Counts {
            requests: 1,
            cost_usd: 0.5,
            ..Counts::default()
        };
        let key = |hour: &str, domain: &str| {
            (
                t(hour),
                "m".to_string(),
                "d".to_string(),
                domain.to_string(),
                "tok-1".to_string(),
            )
        };
        l.pending
            .insert(key("2026-12-06T13:00:00Z", "research"), counts);
        l.flushing
            .insert(key("2026-12-06T12:00:00Z", "research"), counts);
        // Yesterday's, still pending: this month's, not today's.
        l.pending
            .insert(key("2026-12-05T23:00:00Z", "research"), counts);
        let research = budget(Some("research"), None, Some(3.0));
        assert_eq!(spent(&l, &research, now), (3.0, 6.5));
        let token = budget(None, Some("tok-1"), Some(3.0));
        assert_eq!(spent(&l, &token, now), (4.0, 7.5));
        // On a new day the store's day figures no longer count; the month's do.
        let tomorrow = t("2026-12-07T00:00:01Z");
        assert_eq!(spent(&l, &research, tomorrow), (0.0, 6.5));
        // In a new month nothing read before counts.
        assert_eq!(spent(&l, &research, t("2027-01-01T00:00:01Z")), (0.0, 0.0));
    }
}
