//! Sending notifications: the webhook payloads (generic JSON and Slack's incoming-webhook
//! message) and the delivery of the outbox (`alert_notifications`): claim due messages, POST
//! them, and record the outcome — delivered, tried again later with exponential backoff, or
//! failed after the last attempt — with each webhook's rate limit shared by every instance.
//!
//! Like `ai`, this module writes an outside party's wire format (the receivers'), so it builds
//! JSON itself. A webhook's URL carries its token: it is never logged nor stored with an
//! error; logs and metrics name the webhook.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, TimeZone, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::config::alerts::{AlertSettings, Webhook, WebhookFormat};
use crate::model::alert::{Delivery, Episode, EpisodeState, Notification};
use crate::store::Store;

use super::AlertMetrics;

/// The most alert sections one Slack message holds (Slack takes 50 blocks).
const SLACK_SECTIONS: usize = 40;

/// Unix ms as RFC 3339 with milliseconds.
pub fn time_text(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One alert of the generic JSON payload.
fn alert_json(e: &Episode) -> Value {
    let mut v = json!({
        "fingerprint": e.fingerprint,
        "rule": e.rule,
        "severity": e.severity,
        "labels": e.labels,
        "summary": e.summary,
        "startsAt": time_text(e.starts_at_ms),
    });
    if let Some(end) = e.ends_at_ms {
        v["endsAt"] = json!(time_text(end));
    }
    v
}

/// The generic JSON payload:
/// `{"status": "firing"|"resolved", "alerts": [{fingerprint, rule, severity, labels, summary,
/// startsAt, endsAt?}]}`.
pub fn json_payload(status: EpisodeState, episodes: &[Episode]) -> Value {
    json!({
        "status": status.as_str(),
        "alerts": episodes.iter().map(alert_json).collect::<Vec<_>>(),
    })
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` (the notification's one line, also what Slack
/// shows where blocks are not rendered) and `blocks` (a header and a section per alert).
pub fn slack_payload(status: EpisodeState, episodes: &[Episode]) -> Value {
    let word = match status {
        EpisodeState::Firing => "FIRING",
        EpisodeState::Resolved => "RESOLVED",
    };
    let first = episodes
        .first()
        .map(|e| format!("{}: {}", e.rule, e.summary))
        .unwrap_or_default();
    let more = match episodes.len() {
        0 | 1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let text = format!("[{word}:{}] {first}{more}", episodes.len());
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": format!(
            "{} {word}: {} alert{}",
            if status == EpisodeState::Firing { "🔥" } else { "✅" },
            episodes.len(),
            if episodes.len() == 1 { "" } else { "s" }
        )},
    })];
    for e in episodes.iter().take(SLACK_SECTIONS) {
        let labels: Vec<String> = e
            .labels
            .iter()
            .map(|(k, v)| format!("`{}={}`", slack_escape(k), slack_escape(v)))
            .collect();
        let when = match e.ends_at_ms {
            Some(end) => format!("{} → {}", time_text(e.starts_at_ms), time_text(end)),
            None => format!("since {}", time_text(e.starts_at_ms)),
        };
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!(
                "*{}* ({})\n{}\n{} · {}",
                slack_escape(&e.rule),
                e.severity.as_str(),
                slack_escape(&e.summary),
                labels.join(" "),
                when
            )},
        }));
    }
    if episodes.len() > SLACK_SECTIONS {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "and {} more (GET /api/v1/alerts)",
                episodes.len() - SLACK_SECTIONS
            )}],
        }));
    }
    json!({"text": text, "blocks": blocks})
}

/// The body `webhook` receives.
pub fn payload(format: WebhookFormat, status: EpisodeState, episodes: &[Episode]) -> Value {
    match format {
        WebhookFormat::Json => json_payload(status, episodes),
        WebhookFormat::Slack => slack_payload(status, episodes),
    }
}

/// The wait before attempt `attempts + 1`: `backoff × 2^(attempts − 1)`, at most 5 minutes.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// What to record after an attempt that failed with `error` (the `attempts`th).
pub fn after_failure(
    settings: &AlertSettings,
    attempts: u32,
    error: String,
    now_ms: i64,
) -> Delivery {
    if attempts >= settings.max_attempts {
        Delivery::Failed { error }
    } else {
        Delivery::Retry {
            at_ms: now_ms + backoff(settings.backoff, attempts).as_millis() as i64,
            error,
        }
    }
}

/// Sends the outbox's due messages.
pub struct Notifier {
    store: Arc<dyn Store>,
    settings: Arc<AlertSettings>,
    instance: String,
    client: reqwest::Client,
    metrics: AlertMetrics,
}

impl Notifier {
    /// A notifier for `instance` (its HTTP client times out after the settings' timeout).
    pub fn new(
        store: Arc<dyn Store>,
        settings: Arc<AlertSettings>,
        instance: String,
        metrics: AlertMetrics,
    ) -> anyhow::Result<Notifier> {
        let client = reqwest::Client::builder()
            // Link-local and cloud metadata addresses are not called (crate::resolver).
            .dns_resolver(crate::resolver::refusing())
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Notifier {
            store,
            settings,
            instance,
            client,
            metrics,
        })
    }

    /// Claims the due messages and sends them (all at once); how many were claimed.
    pub async fn deliver_due(&self) -> Result<usize, crate::store::StoreError> {
        let now = crate::clock::now().timestamp_millis();
        let lease = self.settings.timeout.as_millis() as i64 * 2 + 5_000;
        let claimed = self
            .store
            .claim_notifications(now, now + lease, &self.instance, 20)
            .await?;
        let n = claimed.len();
        let sends = claimed.into_iter().map(|n| self.deliver(n));
        for result in futures_util::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "recording a notification's delivery failed");
            }
        }
        Ok(n)
    }

    async fn deliver(&self, n: Notification) -> Result<(), crate::store::StoreError> {
        let now = crate::clock::now().timestamp_millis();
        let Some(webhook) = self.settings.webhooks.iter().find(|w| w.name == n.webhook) else {
            let error = format!("webhook {} is not configured on this instance", n.webhook);
            tracing::warn!(webhook = %n.webhook, notification = n.id, "{error}");
            let d = after_failure(&self.settings, n.attempts, error, now);
            self.count(&d);
            return self
                .store
                .settle_notification(n.id, &self.instance, &d, now)
                .await;
        };
        let sent = self
            .store
            .notifications_sent_since(&webhook.name, now - 60_000)
            .await?;
        if sent >= i64::from(self.settings.rate_per_minute) {
            let wait = (60_000 / i64::from(self.settings.rate_per_minute.max(1))).max(1_000);
            tracing::info!(
                webhook = %webhook.name,
                notification = n.id,
                wait_ms = wait,
                "webhook rate limit reached; the notification waits"
            );
            self.metrics.notification("deferred");
            return self
                .store
                .settle_notification(
                    n.id,
                    &self.instance,
                    &Delivery::Later { at_ms: now + wait },
                    now,
                )
                .await;
        }
        let episodes = self.store.alert_episodes_by_id(&n.episode_ids).await?;
        let body = payload(webhook.format, n.status, &episodes);
        let d = match self.post(webhook, &body).await {
            Ok(()) => {
                tracing::info!(
                    webhook = %webhook.name,
                    notification = n.id,
                    status = n.status.as_str(),
                    alerts = episodes.len(),
                    attempt = n.attempts,
                    "alert notification sent"
                );
                Delivery::Sent
            }
            Err(error) => {
                let d = after_failure(&self.settings, n.attempts, error.clone(), now);
                tracing::warn!(
                    webhook = %webhook.name,
                    notification = n.id,
                    attempt = n.attempts,
                    max_attempts = self.settings.max_attempts,
                    final_attempt = matches!(d, Delivery::Failed { .. }),
                    error = %error,
                    "alert notification not delivered"
                );
                d
            }
        };
        self.count(&d);
        self.store
            .settle_notification(
                n.id,
                &self.instance,
                &d,
                crate::clock::now().timestamp_millis(),
            )
            .await
    }

    fn count(&self, d: &Delivery) {
        self.metrics.notification(match d {
            Delivery::Sent => "sent",
            Delivery::Retry { .. } => "retried",
            Delivery::Failed { .. } => "failed",
            Delivery::Later { .. } => "deferred",
        });
    }

    /// POSTs `body`; the error never holds the URL.
    async fn post(&self, webhook: &Webhook, body: &Value) -> Result<(), String> {
        let answer = self
            .client
            .post(webhook.url.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// A transport error in words, without the URL (reqwest's own message names it).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_request() || e.is_body() {
        "request failed".into()
    } else {
        "failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::Severity;

    fn episode(id: i64, ends: Option<i64>) -> Episode {
        Episode {
            id,
            fingerprint: "0123456789abcdef".into(),
            rule: "circuit-open".into(),
            severity: Severity::Page,
            labels: [("breaker", "db"), ("service", "db")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            summary: "circuit db is OPEN: HTTP 503 <down>".into(),
            state: if ends.is_some() {
                EpisodeState::Resolved
            } else {
                EpisodeState::Firing
            },
            starts_at_ms: 1_796_000_000_000,
            ends_at_ms: ends,
            last_seen_ms: 1_796_000_000_000,
            silenced_by: None,
            opened_by: "a".into(),
            resolved_by: None,
        }
    }

    #[test]
    fn the_json_payload_has_the_documented_shape() {
        let v = json_payload(
            EpisodeState::Resolved,
            &[episode(1, Some(1_796_000_060_000))],
        );
        assert_eq!(
            v,
            json!({"status": "resolved", "alerts": [{
                "fingerprint": "0123456789abcdef", "rule": "circuit-open", "severity": "page",
                "labels": {"breaker": "db", "service": "db"},
                "summary": "circuit db is OPEN: HTTP 503 <down>",
                "startsAt": "2026-11-30T00:53:20.000Z", "endsAt": "2026-11-30T00:54:20.000Z"}]})
        );
        let v = json_payload(EpisodeState::Firing, &[episode(1, None)]);
        assert!(v["alerts"][0].get("endsAt").is_none());
    }

    #[test]
    fn the_slack_payload_is_an_incoming_webhook_message() {
        let v = slack_payload(EpisodeState::Firing, &[episode(1, None), episode(2, None)]);
        assert_eq!(
            v["text"],
            "[FIRING:2] circuit-open: circuit db is OPEN: HTTP 503 <down> (+1 more)"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "🔥 FIRING: 2 alerts");
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(
            blocks[1]["text"]["text"],
            "*circuit-open* (page)\ncircuit db is OPEN: HTTP 503 &lt;down&gt;\n`breaker=db` \
             `service=db` · since 2026-11-30T00:53:20.000Z"
        );
        let many: Vec<Episode> = (0..45)
            .map(|i| episode(i, Some(1_796_000_060_000)))
            .collect();
        let v = slack_payload(EpisodeState::Resolved, &many);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1 + SLACK_SECTIONS + 1);
        assert!(blocks.len() <= 50);
        assert!(v["text"].as_str().unwrap().starts_with("[RESOLVED:45]"));
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes_and_attempts_are_bounded() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_millis(1000));
        assert_eq!(backoff(base, 4), Duration::from_millis(4000));
        assert_eq!(backoff(base, 30), Duration::from_secs(300));
        let s = AlertSettings::default();
        assert_eq!(
            after_failure(&s, 1, "HTTP 500".into(), 0),
            Delivery::Retry {
                at_ms: 2_000,
                error: "HTTP 500".into()
            }
        );
        assert_eq!(
            after_failure(&s, s.max_attempts, "HTTP 500".into(), 0),
            Delivery::Failed {
                error: "HTTP 500".into()
            }
        );
    }
}
