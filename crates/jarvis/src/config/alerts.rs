//! Alerts (`JARVIS_ALERT*` and the `[alerts]` table of the config file): which rules are
//! evaluated and how, where notifications go, and how they are sent.
//!
//! Without any configuration the rules are useful already: circuit opened (page), predicted
//! trip (ticket), the failure-rate threshold of the user's CloudWatch alarm
//! `jarvis-high-failure-rate` (more than 0.3 of a domain/action's tasks failing over 5 minutes,
//! page) and the burn-rate alerts of a 99 % success objective for every domain/action (`"*"`).
//! Notifications need a webhook: `JARVIS_ALERT_WEBHOOK_URL` or `[[alerts.webhooks]]`.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::setting::{invalid_message, settings, Default, Kind, Mask, Reader, Setting};
use super::ConfigError;
use crate::model::alert::Severity;
use crate::names::Name;

settings! {
    /// `JARVIS_ALERTS`.
    ALERTS = Setting {
        var: "JARVIS_ALERTS",
        kind: Kind::Bool,
        default: Default::Value("true"),
        view: "alerts.enabled",
        help: "whether this instance evaluates the alert rules and sends notifications (with \
               PostgreSQL every instance may: each alert is opened, resolved and sent once)",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_INTERVAL_MS`.
    INTERVAL_MS = Setting {
        var: "JARVIS_ALERT_INTERVAL_MS",
        kind: Kind::Int { min: 50, max: 3_600_000 },
        default: Default::Value("10000"),
        view: "alerts.interval",
        help: "how often the alert rules are evaluated; an alert no instance found firing for \
               three intervals is resolved",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_WEBHOOK_URL`.
    WEBHOOK_URL = Setting {
        var: "JARVIS_ALERT_WEBHOOK_URL",
        kind: Kind::Text { check: http_url, accepted: "an http(s) URL" },
        mask: Mask::Secret,
        view: "alerts.webhook.url",
        help: "a webhook (named `env`) that receives alert notifications (secret: such URLs \
               carry tokens; logs name the webhook, never its URL); more in `[[alerts.webhooks]]`",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_WEBHOOK_FORMAT`.
    WEBHOOK_FORMAT = Setting {
        var: "JARVIS_ALERT_WEBHOOK_FORMAT",
        kind: Kind::Choice(&[&["json"], &["slack"]]),
        default: Default::Value("json"),
        view: "alerts.webhook.format",
        help: "what `JARVIS_ALERT_WEBHOOK_URL` receives: `json` (docs/api.md, Alerts) or `slack` \
               (an incoming-webhook message)",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_WEBHOOK_MIN_SEVERITY`.
    WEBHOOK_MIN_SEVERITY = Setting {
        var: "JARVIS_ALERT_WEBHOOK_MIN_SEVERITY",
        kind: Kind::Choice(&[&["ticket"], &["page"]]),
        default: Default::Value("ticket"),
        view: "alerts.webhook.minSeverity",
        help: "the least urgent alerts `JARVIS_ALERT_WEBHOOK_URL` receives (`page` leaves tickets out)",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_RATE_PER_MIN`.
    RATE_PER_MIN = Setting {
        var: "JARVIS_ALERT_RATE_PER_MIN",
        kind: Kind::Int { min: 1, max: 100_000 },
        default: Default::Value("20"),
        view: "alerts.ratePerMinute",
        help: "messages per minute each webhook receives at most (every instance together); \
               more wait",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_MAX_ATTEMPTS`.
    MAX_ATTEMPTS = Setting {
        var: "JARVIS_ALERT_MAX_ATTEMPTS",
        kind: Kind::Int { min: 1, max: 100 },
        default: Default::Value("6"),
        view: "alerts.maxAttempts",
        help: "attempts to deliver one notification (timeouts, connection errors, non-2xx \
               answers are tried again with exponential backoff); then it is recorded as failed",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_BACKOFF_MS`.
    BACKOFF_MS = Setting {
        var: "JARVIS_ALERT_BACKOFF_MS",
        kind: Kind::Int { min: 10, max: 3_600_000 },
        default: Default::Value("2000"),
        view: "alerts.backoff",
        help: "wait before the second attempt of a notification; doubles with each attempt, at \
               most 5 minutes",
        ..Setting::PLAIN
    };
    /// `JARVIS_ALERT_TIMEOUT_MS`.
    TIMEOUT_MS = Setting {
        var: "JARVIS_ALERT_TIMEOUT_MS",
        kind: Kind::Int { min: 100, max: 600_000 },
        default: Default::Value("10000"),
        view: "alerts.timeout",
        help: "longest one webhook call may take",
        ..Setting::PLAIN
    };
}

/// The `[alerts]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAlerts {
    /// Success objectives by `"domain/action"`, `"domain/*"` or `"*"` (the default).
    #[serde(default)]
    pub objectives: BTreeMap<String, FileObjective>,
    /// The failure-rate threshold rule.
    #[serde(default)]
    pub failure_rate: Option<FileFailureRate>,
    /// The circuit-opened rule.
    #[serde(default)]
    pub circuit_open: Option<FileRule>,
    /// The predicted-trip rule.
    #[serde(default)]
    pub predicted_trip: Option<FileRule>,
    /// The burn-rate rules (`slo-burn-page`, `slo-burn-ticket`).
    #[serde(default)]
    pub burn_rate: Option<FileRule>,
    /// Where notifications go.
    #[serde(default)]
    pub webhooks: Vec<FileWebhook>,
}

/// `[alerts.objectives."<domain>/<action>"]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileObjective {
    /// The share of tasks that should succeed (0.5–0.99999).
    pub success_rate: Option<f64>,
    /// Fewer events in a rule's long window fire nothing (default 20).
    pub min_events: Option<u64>,
    /// `false`: no burn-rate alerts for these.
    pub enabled: Option<bool>,
}

/// `[alerts.failureRate]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileFailureRate {
    /// Fires above this share of failed tasks (default 0.3).
    pub threshold: Option<f64>,
    /// Over this window (ms, whole minutes; default 300000).
    pub window_ms: Option<u64>,
    /// Fewer finished tasks in the window fire nothing (default 10).
    pub min_events: Option<u64>,
    /// `page` (default) or `ticket`.
    pub severity: Option<Severity>,
    /// `false` turns the rule off.
    pub enabled: Option<bool>,
}

/// `[alerts.circuitOpen]`, `[alerts.predictedTrip]`, `[alerts.burnRate]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileRule {
    /// `page` or `ticket` (burn-rate rules keep their own: page and ticket).
    pub severity: Option<Severity>,
    /// `false` turns the rule off.
    pub enabled: Option<bool>,
}

/// `[[alerts.webhooks]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileWebhook {
    /// Its name in logs, history and metrics (default `webhook-<n>`, counted from 1).
    pub name: Option<String>,
    /// Where to POST (a secret: shown masked).
    #[serde(serialize_with = "masked")]
    pub url: String,
    /// `json` (default) or `slack`.
    pub format: Option<WebhookFormat>,
    /// The least urgent alerts it receives (default `ticket`: all).
    pub min_severity: Option<Severity>,
}

fn masked<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("***")
}

/// What a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"status": …, "alerts": [...]}`.
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// The default objective: 99 % of a domain/action's tasks succeed.
pub const DEFAULT_OBJECTIVE: f64 = 0.99;
/// Fewer events in a burn-rate rule's long window fire nothing.
pub const DEFAULT_MIN_EVENTS: u64 = 20;

/// One success objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// The share of tasks that should succeed.
    pub success_rate: f64,
    /// Fewer events in a rule's long window fire nothing.
    pub min_events: u64,
    /// Whether burn-rate alerts are evaluated for it.
    pub enabled: bool,
}

/// The failure-rate threshold rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRateRule {
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Fires when the failed share is above this.
    pub threshold: f64,
    /// Over this window (whole minutes).
    pub window: Duration,
    /// Fewer finished tasks fire nothing.
    pub min_events: u64,
    /// How urgent.
    pub severity: Severity,
}

/// A rule that is on or off with a severity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimpleRule {
    /// Whether it is evaluated.
    pub enabled: bool,
    /// How urgent.
    pub severity: Severity,
}

/// One webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Its name (logs, history, metrics): never the URL.
    pub name: String,
    /// Where to POST.
    pub url: SecretString,
    /// What it receives.
    pub format: WebhookFormat,
    /// The least urgent alerts it receives.
    pub min_severity: Severity,
}

/// Everything the alert engine is told.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Whether this instance evaluates and sends.
    pub enabled: bool,
    /// How often rules are evaluated.
    pub interval: Duration,
    /// Messages per minute per webhook.
    pub rate_per_minute: u32,
    /// Attempts per notification.
    pub max_attempts: u32,
    /// The first retry's wait.
    pub backoff: Duration,
    /// One webhook call, at most.
    pub timeout: Duration,
    /// Objectives by `"domain/action"`, `"domain/*"` and `"*"`.
    pub objectives: BTreeMap<String, Objective>,
    /// The failure-rate threshold.
    pub failure_rate: FailureRateRule,
    /// Circuit opened.
    pub circuit_open: SimpleRule,
    /// Predicted trip.
    pub predicted_trip: SimpleRule,
    /// Whether burn-rate alerts are evaluated.
    pub burn_rate: bool,
    /// Where notifications go.
    pub webhooks: Vec<Webhook>,
}

impl AlertSettings {
    /// Reads the group; `file` is the config file's (already validated) `[alerts]`.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        file: &FileAlerts,
    ) -> Result<AlertSettings, ConfigError> {
        let mut webhooks = Vec::new();
        if let Some(url) = r.opt::<SecretString>(&WEBHOOK_URL)? {
            let format: String = r.get(&WEBHOOK_FORMAT)?;
            let min: String = r.get(&WEBHOOK_MIN_SEVERITY)?;
            webhooks.push(Webhook {
                name: "env".into(),
                url,
                format: if format == "slack" {
                    WebhookFormat::Slack
                } else {
                    WebhookFormat::Json
                },
                min_severity: Severity::parse(&min).unwrap_or(Severity::Ticket),
            });
        } else {
            // Still read (and shown), so a wrong value is refused.
            r.get::<String>(&WEBHOOK_FORMAT)?;
            r.get::<String>(&WEBHOOK_MIN_SEVERITY)?;
        }
        for (i, w) in file.webhooks.iter().enumerate() {
            webhooks.push(Webhook {
                name: webhook_name(i, w),
                url: SecretString::from(w.url.clone()),
                format: w.format.unwrap_or(WebhookFormat::Json),
                min_severity: w.min_severity.unwrap_or(Severity::Ticket),
            });
        }
        let mut objectives: BTreeMap<String, Objective> = file
            .objectives
            .iter()
            .map(|(k, o)| {
                (
                    k.clone(),
                    Objective {
                        success_rate: o.success_rate.unwrap_or(DEFAULT_OBJECTIVE),
                        min_events: o.min_events.unwrap_or(DEFAULT_MIN_EVENTS),
                        enabled: o.enabled.unwrap_or(true),
                    },
                )
            })
            .collect();
        objectives.entry("*".into()).or_insert(Objective {
            success_rate: DEFAULT_OBJECTIVE,
            min_events: DEFAULT_MIN_EVENTS,
            enabled: true,
        });
        let fr = file.failure_rate.clone().unwrap_or_default();
        let rule = |r: &Option<FileRule>, severity: Severity| SimpleRule {
            enabled: r.as_ref().and_then(|r| r.enabled).unwrap_or(true),
            severity: r.as_ref().and_then(|r| r.severity).unwrap_or(severity),
        };
        Ok(AlertSettings {
            enabled: r.get(&ALERTS)?,
            interval: r.get(&INTERVAL_MS)?,
            rate_per_minute: r.get(&RATE_PER_MIN)?,
            max_attempts: r.get(&MAX_ATTEMPTS)?,
            backoff: r.get(&BACKOFF_MS)?,
            timeout: r.get(&TIMEOUT_MS)?,
            objectives,
            failure_rate: FailureRateRule {
                enabled: fr.enabled.unwrap_or(true),
                threshold: fr.threshold.unwrap_or(0.3),
                window: Duration::from_millis(fr.window_ms.unwrap_or(300_000)),
                min_events: fr.min_events.unwrap_or(10),
                severity: fr.severity.unwrap_or(Severity::Page),
            },
            circuit_open: rule(&file.circuit_open, Severity::Page),
            predicted_trip: rule(&file.predicted_trip, Severity::Ticket),
            burn_rate: file
                .burn_rate
                .as_ref()
                .and_then(|r| r.enabled)
                .unwrap_or(true),
            webhooks,
        })
    }

    /// The objective of `domain/action`: its own, else its domain's (`"domain/*"`), else `"*"`.
    pub fn objective(&self, domain: &str, action: &str) -> Option<Objective> {
        self.objectives
            .get(&format!("{domain}/{action}"))
            .or_else(|| self.objectives.get(&format!("{domain}/*")))
            .or_else(|| self.objectives.get("*"))
            .copied()
    }
}

impl std::default::Default for AlertSettings {
    fn default() -> Self {
        AlertSettings::read(&mut Reader::defaults(), &FileAlerts::default())
            .expect("the declared defaults are valid")
    }
}

/// The name of the `i`th `[[alerts.webhooks]]` (0-based).
pub fn webhook_name(i: usize, w: &FileWebhook) -> String {
    w.name
        .clone()
        .unwrap_or_else(|| format!("webhook-{}", i + 1))
}

/// What `serve` would refuse in `[alerts]`, as one message naming the key. A webhook's URL is
/// never part of a message.
pub fn validate(a: &FileAlerts) -> Result<(), String> {
    for (key, o) in &a.objectives {
        let ok = key == "*"
            || key.split_once('/').is_some_and(|(d, act)| {
                Name::parse(d).is_ok() && (act == "*" || Name::parse(act).is_ok())
            });
        if !ok {
            return Err(format!(
                "alerts.objectives.{key:?}: expected \"domain/action\", \"domain/*\" or \"*\""
            ));
        }
        if let Some(s) = o.success_rate {
            if !(0.5..=0.99999).contains(&s) {
                return Err(invalid_message(
                    &format!("alerts.objectives.{key:?}.successRate"),
                    &s.to_string(),
                    "a share from 0.5 to 0.99999",
                ));
            }
        }
    }
    if let Some(fr) = &a.failure_rate {
        if let Some(t) = fr.threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(invalid_message(
                    "alerts.failureRate.threshold",
                    &t.to_string(),
                    "a share above 0 and below 1",
                ));
            }
        }
        if let Some(w) = fr.window_ms {
            if !(60_000..=86_400_000).contains(&w) || w % 60_000 != 0 {
                return Err(invalid_message(
                    "alerts.failureRate.windowMs",
                    &w.to_string(),
                    "whole minutes from 60000 to 86400000",
                ));
            }
        }
    }
    let mut names = std::collections::BTreeSet::from(["env".to_string()]);
    for (i, w) in a.webhooks.iter().enumerate() {
        let name = webhook_name(i, w);
        Name::parse(&name).map_err(|e| format!("alerts.webhooks[{i}].name: {e}"))?;
        if !names.insert(name.clone()) {
            return Err(format!(
                "alerts.webhooks[{i}].name: {name:?} is taken (names are unique; `env` is \
                 JARVIS_ALERT_WEBHOOK_URL's)"
            ));
        }
        http_url(&w.url).map_err(|e| {
            format!("alerts.webhooks[{i}].url: expected {e} (the value is secret, not shown)")
        })?;
    }
    Ok(())
}

fn http_url(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            crate::model::outbound::check(&u)
        }
        _ => Err("an http:// or https:// URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileAlerts {
        toml::from_str::<FileAlerts>(text).unwrap()
    }

    #[test]
    fn no_configuration_gives_useful_rules() {
        let s = AlertSettings::default();
        assert!(s.enabled);
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.failure_rate.threshold, 0.3);
        assert_eq!(s.failure_rate.window, Duration::from_secs(300));
        assert!(s.circuit_open.enabled && s.predicted_trip.enabled && s.burn_rate);
        assert_eq!(s.objective("music", "beat").unwrap().success_rate, 0.99);
        assert!(s.webhooks.is_empty());
    }

    #[test]
    fn objectives_fall_back_from_pair_to_domain_to_default() {
        let f = file(
            r#"
            [objectives."*"]
            successRate = 0.95
            [objectives."pay/*"]
            successRate = 0.999
            [objectives."pay/refund"]
            successRate = 0.9
            "#,
        );
        validate(&f).unwrap();
        let s = AlertSettings::read(&mut Reader::defaults(), &f).unwrap();
        assert_eq!(s.objective("pay", "refund").unwrap().success_rate, 0.9);
        assert_eq!(s.objective("pay", "charge").unwrap().success_rate, 0.999);
        assert_eq!(s.objective("music", "beat").unwrap().success_rate, 0.95);
    }

    #[test]
    fn wrong_values_are_refused_without_the_url() {
        let bad = [
            (
                "[objectives.\"a b\"]\nsuccessRate = 0.9",
                "alerts.objectives",
            ),
            ("[objectives.\"*\"]\nsuccessRate = 1.0", "successRate"),
            (
                "[failureRate]\nthreshold = 1.5",
                "alerts.failureRate.threshold",
            ),
            (
                "[failureRate]\nwindowMs = 90000",
                "alerts.failureRate.windowMs",
            ),
            (
                "[[webhooks]]\nurl = \"ftp://secret-token@x\"",
                "alerts.webhooks[0].url",
            ),
            (
                "[[webhooks]]\nname = \"env\"\nurl = \"http://x\"",
                "is taken",
            ),
        ];
        for (text, want) in bad {
            let err = validate(&file(text)).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
        assert!(
            toml::from_str::<FileAlerts>("[[webhooks]]\nurl = \"http://x\"\nformat = \"xml\"")
                .is_err()
        );
    }

    #[test]
    fn webhooks_come_from_the_file_and_the_environment() {
        let f = file(
            r#"
            [[webhooks]]
            url = "https://hooks.slack.com/services/T/B/x"
            format = "slack"
            minSeverity = "page"
            [[webhooks]]
            name = "ops"
            url = "http://127.0.0.1:9/hook"
            "#,
        );
        validate(&f).unwrap();
        let env: std::collections::HashMap<String, String> = [(
            "JARVIS_ALERT_WEBHOOK_URL".to_string(),
            "http://127.0.0.1:1/x".to_string(),
        )]
        .into();
        let s = AlertSettings::read(&mut Reader::new(&env), &f).unwrap();
        let names: Vec<&str> = s.webhooks.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["env", "webhook-1", "ops"]);
        assert_eq!(s.webhooks[1].format, WebhookFormat::Slack);
        assert_eq!(s.webhooks[1].min_severity, Severity::Page);
        let shown = serde_json::to_string(&f).unwrap();
        assert!(!shown.contains("hooks.slack.com"), "{shown}");
    }
}
