//! `/api/v1/alerts*`: alert history, silences and the notification outbox (issue 16; the
//! engine is `crate::alerts`), and the views `jarvis alerts` reads back.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use crate::alerts::notify::time_text;
use crate::api::AppState;
use crate::model::alert::{
    DeliveryState, Episode, EpisodeQuery, EpisodeState, Matchers, Notification, Severity, Silence,
};

/// The longest a silence may last: 90 days.
pub const MAX_SILENCE_MS: i64 = 90 * 86_400_000;

/// One alert episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// The episode's ID.
    pub id: i64,
    /// The alert's fingerprint (rule + labels).
    pub fingerprint: String,
    /// The rule.
    pub rule: String,
    /// `page` or `ticket`.
    pub severity: Severity,
    /// `firing` or `resolved`.
    pub state: EpisodeState,
    /// What it is about.
    pub labels: BTreeMap<String, String>,
    /// One line for a person.
    pub summary: String,
    /// When it started firing.
    pub starts_at: String,
    /// When it was resolved.
    pub ends_at: Option<String>,
    /// When an instance last found it firing.
    pub last_seen_at: String,
    /// The silence that held its notifications back.
    pub silenced_by: Option<String>,
    /// The instance that opened it.
    pub opened_by: String,
    /// The instance that resolved it.
    pub resolved_by: Option<String>,
}

impl From<Episode> for AlertView {
    fn from(e: Episode) -> Self {
        AlertView {
            id: e.id,
            fingerprint: e.fingerprint,
            rule: e.rule,
            severity: e.severity,
            state: e.state,
            labels: e.labels,
            summary: e.summary,
            starts_at: time_text(e.starts_at_ms),
            ends_at: e.ends_at_ms.map(time_text),
            last_seen_at: time_text(e.last_seen_ms),
            silenced_by: e.silenced_by,
            opened_by: e.opened_by,
            resolved_by: e.resolved_by,
        }
    }
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertsView {
    /// Episodes, newest first.
    pub alerts: Vec<AlertView>,
}

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceView {
    /// Its ID (for `DELETE /api/v1/alerts/silences/{id}`).
    pub id: String,
    /// What it matches.
    pub matchers: Matchers,
    /// When it started.
    pub starts_at: String,
    /// When it ends.
    pub ends_at: String,
    /// Why.
    pub comment: Option<String>,
    /// The instance that stored it.
    pub created_by: String,
}

impl From<Silence> for SilenceView {
    fn from(s: Silence) -> Self {
        SilenceView {
            id: s.id,
            matchers: s.matchers,
            starts_at: time_text(s.starts_at_ms),
            ends_at: time_text(s.ends_at_ms),
            comment: s.comment,
            created_by: s.created_by,
        }
    }
}

/// `GET /api/v1/alerts/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilencesView {
    /// Silences that have not ended, oldest first.
    pub silences: Vec<SilenceView>,
}

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Its ID.
    pub id: i64,
    /// The webhook's name.
    pub webhook: String,
    /// `firing` or `resolved`.
    pub status: EpisodeState,
    /// The episodes it tells about.
    pub alert_ids: Vec<i64>,
    /// `pending`, `sent` or `failed`.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// When it was delivered.
    pub sent_at: Option<String>,
    /// When it is tried next (pending only).
    pub next_attempt_at: Option<String>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            webhook: n.webhook,
            status: n.status,
            alert_ids: n.episode_ids,
            state: n.state,
            attempts: n.attempts,
            last_error: n.last_error,
            created_at: time_text(n.created_at_ms),
            sent_at: n.sent_at_ms.map(time_text),
            next_attempt_at: (n.state == DeliveryState::Pending)
                .then(|| time_text(n.next_attempt_ms)),
        }
    }
}

/// `GET /api/v1/alerts/notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsView {
    /// Messages, newest first.
    pub notifications: Vec<NotificationView>,
}

/// The query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// Only firing or only resolved episodes.
    #[param(value_type = Option<crate::model::alert::EpisodeState>)]
    state: Option<String>,
    /// Only episodes going on at or after this time (RFC 3339, or a date).
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/v1/alerts?state=firing|resolved&since=&limit=`: episodes, newest first (at most
/// `limit`, default 100, up to 1000). `since` keeps the episodes going on at or after it.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "Alert episodes, newest first.", body = Envelope<AlertsView>),
        (status = 400, description = "`invalid_query`.", body = ErrorEnvelope),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<ApiOk<AlertsView>, ApiError> {
    let episode_state = match q.state.as_deref() {
        None => None,
        Some("firing") => Some(EpisodeState::Firing),
        Some("resolved") => Some(EpisodeState::Resolved),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("state: expected firing or resolved, got {other:?}"),
            ))
        }
    };
    let since = q
        .since
        .map(|raw| {
            crate::timeparse::parse_bound(&raw, crate::timeparse::Bound::Since)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("since: {e}")))
        })
        .transpose()?;
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit: expected 1 to 1000, got {n}"),
            ))
        }
    };
    let episodes = state
        .store
        .alert_episodes(&EpisodeQuery {
            state: episode_state,
            since_ms: since.map(|t| t.timestamp_millis()),
            limit,
        })
        .await?;
    Ok(ok(AlertsView {
        alerts: episodes.into_iter().map(AlertView::from).collect(),
    }))
}

/// The body of `POST /api/v1/alerts/silences`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"matchers": {"service": "api"}, "durationMs": 3600000, "comment": "maintenance"})))]
pub struct SilenceInput {
    /// What it matches (at least one of them).
    matchers: Matchers,
    /// How long it lasts, ms (or `endsAt`).
    duration_ms: Option<u64>,
    /// When it ends, RFC 3339 (or `durationMs`).
    ends_at: Option<String>,
    /// Why (at most 1024 bytes).
    comment: Option<String>,
}

/// `POST /api/v1/alerts/silences`: 201 with the silence. 400 `invalid_silence` without a
/// matcher, with an unknown rule, without exactly one of `durationMs` and `endsAt`, or with an
/// end not in the next 90 days.
#[utoipa::path(post, path = "/api/v1/alerts/silences", tag = "alerts",
    request_body = SilenceInput,
    responses(
        (status = 201, description = "The silence.", body = Envelope<SilenceView>),
        (status = 400, description = "`invalid_silence`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
    ))]
pub async fn silence(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<SilenceInput>,
) -> Result<ApiOk<SilenceView>, ApiError> {
    let invalid = |m: String| ApiError::bad_request("invalid_silence", m);
    if input.matchers.is_empty() {
        return Err(invalid(
            "matchers: give at least one of rule, service, breaker, domain, action (a silence \
             of everything is not accepted)"
                .into(),
        ));
    }
    if let Some(rule) = &input.matchers.rule {
        if !crate::alerts::rules::RULES.contains(&rule.as_str()) {
            return Err(invalid(format!(
                "matchers.rule: {rule:?} is not a rule (one of {})",
                crate::alerts::rules::RULES.join(", ")
            )));
        }
    }
    for (k, v) in input.matchers.pairs() {
        if v.is_empty() || v.len() > 256 {
            return Err(invalid(format!(
                "matchers.{k}: expected 1 to 256 characters"
            )));
        }
    }
    if input.comment.as_ref().is_some_and(|c| c.len() > 1024) {
        return Err(invalid("comment: at most 1024 characters".into()));
    }
    let now = crate::clock::now().timestamp_millis();
    let ends_at_ms = match (input.duration_ms, &input.ends_at) {
        (Some(d), None) => now.saturating_add(i64::try_from(d).unwrap_or(i64::MAX)),
        (None, Some(raw)) => chrono::DateTime::parse_from_rfc3339(raw.trim())
            .map_err(|_| invalid(format!("endsAt: expected an RFC 3339 time, got {raw:?}")))?
            .timestamp_millis(),
        _ => return Err(invalid("give exactly one of durationMs and endsAt".into())),
    };
    if ends_at_ms <= now || ends_at_ms - now > MAX_SILENCE_MS {
        return Err(invalid(
            "the silence must end in the future, within 90 days".into(),
        ));
    }
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers: input.matchers,
        starts_at_ms: now,
        ends_at_ms,
        comment: input.comment,
        created_by: state.instance_id.clone(),
    };
    state.store.insert_silence(&silence).await?;
    tracing::info!(silence = %silence.id, matchers = ?silence.matchers, ends_at_ms, "silence added");
    Ok(ApiOk(StatusCode::CREATED, SilenceView::from(silence)))
}

/// `GET /api/v1/alerts/silences`: the silences that have not ended.
#[utoipa::path(get, path = "/api/v1/alerts/silences", tag = "alerts",
    responses((status = 200, description = "The silences that have not ended, oldest first.", body = Envelope<SilencesView>)))]
pub async fn silences(State(state): State<AppState>) -> Result<ApiOk<SilencesView>, ApiError> {
    let now = crate::clock::now().timestamp_millis();
    let all = state.store.silences(now).await?;
    Ok(ok(SilencesView {
        silences: all.into_iter().map(SilenceView::from).collect(),
    }))
}

/// `DELETE /api/v1/alerts/silences/{id}`: 204; 404 `silence_not_found`.
#[utoipa::path(delete, path = "/api/v1/alerts/silences/{id}", tag = "alerts",
    params(("id" = String, Path, description = "The silence's ID.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "`silence_not_found`.", body = ErrorEnvelope),
    ))]
pub async fn unsilence(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if id.len() <= 64 && state.store.delete_silence(&id).await? {
        tracing::info!(silence = %id, "silence removed");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "silence_not_found",
            format!("no silence {id:?}"),
        ))
    }
}

/// The query of `GET /api/v1/alerts/notifications`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// At most this many (default 100; 0 counts as 1, more than 1000 as 1000).
    limit: Option<u32>,
}

/// `GET /api/v1/alerts/notifications?limit=`: the outbox, newest first (default 100).
#[utoipa::path(get, path = "/api/v1/alerts/notifications", tag = "alerts",
    params(NotificationsQuery),
    responses(
        (status = 200, description = "The notification outbox, newest first.", body = Envelope<NotificationsView>),
        (status = 400, description = "`invalid_query`.", body = ErrorEnvelope),
    ))]
pub async fn notifications(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<NotificationsQuery>,
) -> Result<ApiOk<NotificationsView>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let all = state.store.alert_notifications(limit).await?;
    Ok(ok(NotificationsView {
        notifications: all.into_iter().map(NotificationView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_views_round_trip() {
        let view = AlertView::from(Episode {
            id: 7,
            fingerprint: "0123456789abcdef".into(),
            rule: "circuit-open".into(),
            severity: Severity::Page,
            labels: [("breaker".to_string(), "db".to_string())].into(),
            summary: "circuit db is OPEN".into(),
            state: EpisodeState::Resolved,
            starts_at_ms: 1_796_000_000_000,
            ends_at_ms: Some(1_796_000_060_000),
            last_seen_ms: 1_796_000_050_000,
            silenced_by: None,
            opened_by: "a".into(),
            resolved_by: Some("b".into()),
        });
        let page = AlertsView { alerts: vec![view] };
        let text = serde_json::to_string(&page).unwrap();
        assert!(
            text.contains("\"startsAt\":\"2026-11-30T00:53:20.000Z\""),
            "{text}"
        );
        let back: AlertsView = serde_json::from_str(&text).unwrap();
        assert_eq!(back, page);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        let s = SilencesView {
            silences: vec![SilenceView::from(Silence {
                id: "x".into(),
                matchers: Matchers {
                    service: Some("db".into()),
                    ..Matchers::default()
                },
                starts_at_ms: 0,
                ends_at_ms: 1,
                comment: None,
                created_by: "a".into(),
            })],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"matchers\":{\"service\":\"db\"}"), "{text}");
        assert_eq!(serde_json::from_str::<SilencesView>(&text).unwrap(), s);
    }
}
