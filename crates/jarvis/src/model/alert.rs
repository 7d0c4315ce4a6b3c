//! Alerts as the store keeps them (issue 16): an alert (a rule firing for some labels, named by
//! its fingerprint), an episode of it (from the evaluation that first found it firing to its
//! resolution), silences (label matchers with an end), and the notifications waiting in the
//! outbox for a webhook.
//!
//! Plain data: the rules that produce alerts are `crate::alerts::rules`, the engine that opens
//! and resolves episodes `crate::alerts::engine`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How urgent an alert is. Ordered: a webhook's `minSeverity` takes its level and above.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone should look soon (a ticket).
    Ticket,
    /// Someone should look now (a page).
    Page,
}

impl Severity {
    /// The word the API, the store and the config file use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ticket => "ticket",
            Severity::Page => "page",
        }
    }

    /// Reads [`Severity::as_str`] back.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "ticket" => Some(Severity::Ticket),
            "page" => Some(Severity::Page),
            _ => None,
        }
    }
}

impl From<jarvis_learning::slo::Severity> for Severity {
    fn from(s: jarvis_learning::slo::Severity) -> Self {
        match s {
            jarvis_learning::slo::Severity::Ticket => Severity::Ticket,
            jarvis_learning::slo::Severity::Page => Severity::Page,
        }
    }
}

/// Labels of an alert (`service`, `breaker`, `domain`, `action`), sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A rule firing for some labels, as one evaluation found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The rule (`circuit-open`, `predicted-trip`, `failure-rate`, `slo-burn-page`,
    /// `slo-burn-ticket`).
    pub rule: String,
    /// How urgent.
    pub severity: Severity,
    /// What it is about.
    pub labels: Labels,
    /// One line for a person (what was measured).
    pub summary: String,
}

impl Alert {
    /// The alert's identity across evaluations and instances: the rule and its labels, hashed
    /// (16 hex digits). The summary is not part of it: a changing measurement is the same alert.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.rule, &self.labels)
    }
}

/// The fingerprint of `rule` with `labels` (see [`Alert::fingerprint`]).
pub fn fingerprint(rule: &str, labels: &Labels) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for (k, v) in labels {
        h.update(b"\n");
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An episode to open: an alert this evaluation found firing, silenced or not.
#[derive(Debug, Clone)]
pub struct NewEpisode {
    /// The alert.
    pub alert: Alert,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The silence that matches it now, if any (then nothing is sent for the episode).
    pub silenced_by: Option<String>,
}

/// Whether an episode is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeState {
    /// Still found firing.
    Firing,
    /// Over.
    Resolved,
}

impl EpisodeState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeState::Firing => "firing",
            EpisodeState::Resolved => "resolved",
        }
    }
}

/// One episode of an alert: one row of `alert_episodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The row's ID.
    pub id: i64,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The rule.
    pub rule: String,
    /// How urgent.
    pub severity: Severity,
    /// What it is about.
    pub labels: Labels,
    /// One line for a person, as first found.
    pub summary: String,
    /// Firing or resolved.
    pub state: EpisodeState,
    /// When it was first found firing, unix ms.
    pub starts_at_ms: i64,
    /// When it was resolved, unix ms.
    pub ends_at_ms: Option<i64>,
    /// When an instance last found it firing, unix ms.
    pub last_seen_ms: i64,
    /// The silence that held its notifications back.
    pub silenced_by: Option<String>,
    /// The instance that opened it.
    pub opened_by: String,
    /// The instance that resolved it.
    pub resolved_by: Option<String>,
}

/// Which episodes to list.
#[derive(Debug, Clone, Default)]
pub struct EpisodeQuery {
    /// Only firing or only resolved ones.
    pub state: Option<EpisodeState>,
    /// Only episodes going on at or after this time (started or ended since), unix ms.
    pub since_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// What a silence matches: every label it names must be equal (`rule` is the alert's rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Matchers {
    /// The rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The `service` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The `breaker` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    /// The `domain` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The `action` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Matchers {
    /// Whether no matcher is given (such a silence would match everything).
    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    /// The matchers given, as `(label, value)`; `rule` first.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("rule", &self.rule),
            ("service", &self.service),
            ("breaker", &self.breaker),
            ("domain", &self.domain),
            ("action", &self.action),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    /// Whether `alert` matches every matcher.
    pub fn matches(&self, rule: &str, labels: &Labels) -> bool {
        self.pairs().all(|(k, v)| match k {
            "rule" => rule == v,
            _ => labels.get(k).is_some_and(|l| l == v),
        })
    }
}

/// A silence: alerts it matches while it lasts are recorded but not sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// Its ID (a UUID).
    pub id: String,
    /// What it matches.
    pub matchers: Matchers,
    /// When it was made, unix ms.
    pub starts_at_ms: i64,
    /// When it ends, unix ms.
    pub ends_at_ms: i64,
    /// Why, for a person.
    pub comment: Option<String>,
    /// The instance that stored it.
    pub created_by: String,
}

impl Silence {
    /// Whether it holds at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.starts_at_ms <= now_ms && now_ms < self.ends_at_ms
    }
}

/// A message to queue for a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The webhook's name.
    pub webhook: String,
    /// `firing` or `resolved`.
    pub status: EpisodeState,
    /// The episodes it tells about.
    pub episodes: Vec<Episode>,
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting to be sent (or to be sent again).
    Pending,
    /// Delivered (the webhook answered 2xx).
    Sent,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    /// Reads [`DeliveryState::as_str`] back.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "sent" => Some(DeliveryState::Sent),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One message in the outbox: one row of `alert_notifications`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The row's ID.
    pub id: i64,
    /// The webhook's name.
    pub webhook: String,
    /// `firing` or `resolved`.
    pub status: EpisodeState,
    /// The IDs of the episodes it tells about.
    pub episode_ids: Vec<i64>,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may be sent (again), unix ms.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued, unix ms.
    pub created_at_ms: i64,
    /// When it was delivered, unix ms.
    pub sent_at_ms: Option<i64>,
}

/// How an attempt to send a notification ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Delivered.
    Sent,
    /// Failed; try again at this time (unix ms).
    Retry {
        /// When.
        at_ms: i64,
        /// Why it failed (never the URL).
        error: String,
    },
    /// Failed for the last time.
    Failed {
        /// Why (never the URL).
        error: String,
    },
    /// Not attempted (the webhook's rate limit): send at this time, the attempt not counted.
    Later {
        /// When.
        at_ms: i64,
    },
}

/// Events and failures of one domain/action in each window an evaluation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairWindows {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// `(total, failed)` per window, in the order asked.
    pub windows: Vec<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprints_are_stable_and_depend_on_rule_and_labels_only() {
        let a = fingerprint(
            "circuit-open",
            &labels(&[("breaker", "x"), ("service", "x")]),
        );
        assert_eq!(a.len(), 16);
        assert_eq!(
            a,
            fingerprint(
                "circuit-open",
                &labels(&[("service", "x"), ("breaker", "x")])
            )
        );
        assert_ne!(a, fingerprint("circuit-open", &labels(&[("breaker", "y")])));
        assert_ne!(
            a,
            fingerprint(
                "predicted-trip",
                &labels(&[("breaker", "x"), ("service", "x")])
            )
        );
    }

    #[test]
    fn matchers_need_every_label_they_name() {
        let l = labels(&[("service", "db"), ("breaker", "db")]);
        let m = Matchers {
            service: Some("db".into()),
            ..Matchers::default()
        };
        assert!(m.matches("circuit-open", &l));
        let m = Matchers {
            rule: Some("predicted-trip".into()),
            service: Some("db".into()),
            ..Matchers::default()
        };
        assert!(!m.matches("circuit-open", &l));
        let m = Matchers {
            domain: Some("db".into()),
            ..Matchers::default()
        };
        assert!(!m.matches("circuit-open", &l));
        assert!(Matchers::default().is_empty());
    }
}
