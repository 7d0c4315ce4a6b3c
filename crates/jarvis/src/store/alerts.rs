//! Alerts in the store (issue 16): episodes (`alert_episodes`), silences (`alert_silences`)
//! and the notification outbox (`alert_notifications`), plus the window counts of task
//! outcomes the burn-rate and failure-rate rules read from the minute and hourly rollups.
//!
//! How several instances agree (PostgreSQL): an episode is inserted with `ON CONFLICT DO
//! NOTHING` against a unique index on the fingerprint of firing episodes, so of the instances
//! that find an alert firing exactly one opens it; its notifications are queued in the same
//! transaction. Resolving is one `UPDATE … WHERE state = 'firing' AND last_seen_ms < …
//! RETURNING`: a row is returned to one instance only. Notifications are claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease, and settled only by the instance that holds it.
//!
//! The SQL is written once; only the claim differs (SQLite, whose writes are serialized
//! anyway, has no `SKIP LOCKED`), chosen by the backend's [`Backend`](super::Backend).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::alert::{
    Delivery, DeliveryState, Episode, EpisodeQuery, EpisodeState, NewEpisode, NewNotification,
    Notification, PairWindows, Severity, Silence,
};

/// Decides, inside the transaction that opened or resolved episodes, which notifications to
/// queue for them.
pub type Planner = dyn Fn(&[Episode]) -> Vec<NewNotification> + Send + Sync;

/// The columns of an episode, in [`EpisodeRow`]'s order.
pub(crate) const EPISODE_COLUMNS: &str = "id, fingerprint, rule, severity, labels, summary, \
     state, starts_at_ms, ends_at_ms, last_seen_ms, silenced_by, opened_by, resolved_by";

pub(crate) const INSERT_EPISODE: &str = "\
INSERT INTO alert_episodes (fingerprint, rule, severity, labels, summary, state, starts_at_ms,
    last_seen_ms, silenced_by, opened_by)
VALUES ($1, $2, $3, $4, $5, 'firing', $6, $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id, fingerprint, rule, severity, labels, summary, state, starts_at_ms, ends_at_ms,
    last_seen_ms, silenced_by, opened_by, resolved_by";

pub(crate) const RESOLVE_STALE: &str = "\
UPDATE alert_episodes SET state = 'resolved', ends_at_ms = $1, resolved_by = $2
WHERE state = 'firing' AND last_seen_ms < $3
RETURNING id, fingerprint, rule, severity, labels, summary, state, starts_at_ms, ends_at_ms,
    last_seen_ms, silenced_by, opened_by, resolved_by";

pub(crate) const INSERT_NOTIFICATION: &str = "\
INSERT INTO alert_notifications (webhook, status, episode_ids, state, next_attempt_ms,
    created_at_ms)
VALUES ($1, $2, $3, 'pending', $4, $4)";

/// Firing episodes whose silence no longer holds at `$1`, released (see
/// [`AlertStore::release_silenced`]); the silences are read in the same statement, so a silence
/// stored a moment ago by another instance is seen.
pub(crate) const RELEASE_SILENCED: &str = "\
UPDATE alert_episodes SET silenced_by = NULL
WHERE state = 'firing' AND silenced_by IS NOT NULL
  AND silenced_by NOT IN (
      SELECT id FROM alert_silences WHERE starts_at_ms <= $1 AND ends_at_ms > $1)
RETURNING id, fingerprint, rule, severity, labels, summary, state, starts_at_ms, ends_at_ms,
    last_seen_ms, silenced_by, opened_by, resolved_by";

pub(crate) const FIRING_BY_SEVERITY: &str = "\
SELECT severity, COUNT(*) FROM alert_episodes WHERE state = 'firing' GROUP BY severity";

/// The columns of a notification, in [`NotificationRow`]'s order.
pub(crate) const NOTIFICATION_COLUMNS: &str = "id, webhook, status, episode_ids, state, \
     attempts, next_attempt_ms, last_error, created_at_ms, sent_at_ms";

/// Claims due notifications: `$1` lease end, `$2` instance, `$3` now, `$4` limit.
/// PostgreSQL skips rows another instance is claiming.
pub(crate) const CLAIM_PG: &str = "\
UPDATE alert_notifications SET lease_until_ms = $1, locked_by = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM alert_notifications
    WHERE state = 'pending' AND next_attempt_ms <= $3
      AND (lease_until_ms IS NULL OR lease_until_ms < $3)
    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
  AND state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $3)
RETURNING id, webhook, status, episode_ids, state, attempts, next_attempt_ms, last_error,
    created_at_ms, sent_at_ms";

/// [`CLAIM_PG`] for SQLite (one writer: nothing to skip).
pub(crate) const CLAIM_SQLITE: &str = "\
UPDATE alert_notifications SET lease_until_ms = $1, locked_by = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM alert_notifications
    WHERE state = 'pending' AND next_attempt_ms <= $3
      AND (lease_until_ms IS NULL OR lease_until_ms < $3)
    ORDER BY id LIMIT $4)
RETURNING id, webhook, status, episode_ids, state, attempts, next_attempt_ms, last_error,
    created_at_ms, sent_at_ms";

pub(crate) const SETTLE_SENT: &str = "\
UPDATE alert_notifications SET state = 'sent', sent_at_ms = $1, lease_until_ms = NULL,
    last_error = NULL
WHERE id = $2 AND locked_by = $3 AND state = 'pending'";
pub(crate) const SETTLE_RETRY: &str = "\
UPDATE alert_notifications SET next_attempt_ms = $1, last_error = $2, lease_until_ms = NULL
WHERE id = $3 AND locked_by = $4 AND state = 'pending'";
pub(crate) const SETTLE_FAILED: &str = "\
UPDATE alert_notifications SET state = 'failed', last_error = $1, lease_until_ms = NULL
WHERE id = $2 AND locked_by = $3 AND state = 'pending'";
pub(crate) const SETTLE_LATER: &str = "\
UPDATE alert_notifications SET next_attempt_ms = $1, attempts = attempts - 1,
    lease_until_ms = NULL
WHERE id = $2 AND locked_by = $3 AND state = 'pending'";

pub(crate) const SENT_SINCE: &str = "\
SELECT COUNT(*) FROM alert_notifications WHERE webhook = $1 AND sent_at_ms >= $2";

pub(crate) const INSERT_SILENCE: &str = "\
INSERT INTO alert_silences (id, matchers, starts_at_ms, ends_at_ms, comment, created_by)
VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const SILENCES_ACTIVE: &str = "\
SELECT id, matchers, starts_at_ms, ends_at_ms, comment, created_by FROM alert_silences
WHERE ends_at_ms > $1 ORDER BY starts_at_ms, id";
pub(crate) const DELETE_SILENCE: &str = "DELETE FROM alert_silences WHERE id = $1";

pub(crate) const PRUNE: [&str; 3] = [
    "DELETE FROM alert_episodes WHERE state = 'resolved' AND ends_at_ms < $1",
    "DELETE FROM alert_notifications WHERE state <> 'pending' AND created_at_ms < $1",
    "DELETE FROM alert_silences WHERE ends_at_ms < $1",
];

/// The hourly counts of the pairs (`$1`: the first hour), without `system-*` domains.
pub(crate) const HOURLY_COUNTS: &str = "\
SELECT domain, action, CAST(SUM(total) AS BIGINT), CAST(SUM(failed) AS BIGINT)
FROM task_stats_hourly WHERE hour >= $1 AND substr(domain, 1, 7) <> 'system-'
GROUP BY domain, action";

/// The minute counts of every pair in each window (`$1`…`$n`: each window's first minute;
/// `$n+1` the earliest of them), one scan of the minute rollup, without `system-*` domains.
pub(crate) fn minute_counts_sql(windows: usize) -> String {
    let mut cols = String::new();
    for i in 1..=windows {
        cols.push_str(&format!(
            ", CAST(SUM(CASE WHEN minute >= ${i} THEN total ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN minute >= ${i} THEN failed ELSE 0 END) AS BIGINT)"
        ));
    }
    format!(
        "SELECT domain, action{cols} FROM task_stats_minute \
         WHERE minute >= ${} AND substr(domain, 1, 7) <> 'system-' GROUP BY domain, action",
        windows + 1
    )
}

/// An `alert_episodes` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EpisodeRow {
    id: i64,
    fingerprint: String,
    rule: String,
    severity: String,
    labels: String,
    summary: String,
    state: String,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    last_seen_ms: i64,
    silenced_by: Option<String>,
    opened_by: String,
    resolved_by: Option<String>,
}

impl TryFrom<EpisodeRow> for Episode {
    type Error = sqlx::Error;

    fn try_from(r: EpisodeRow) -> Result<Self, Self::Error> {
        let bad =
            |what: &str| sqlx::Error::Decode(format!("alert episode {}: {what}", r.id).into());
        Ok(Episode {
            id: r.id,
            severity: Severity::parse(&r.severity).ok_or_else(|| bad("unknown severity"))?,
            labels: serde_json::from_str(&r.labels)
                .map_err(|_| bad("labels are not a JSON object"))?,
            state: match r.state.as_str() {
                "firing" => EpisodeState::Firing,
                "resolved" => EpisodeState::Resolved,
                _ => return Err(bad("unknown state")),
            },
            fingerprint: r.fingerprint,
            rule: r.rule,
            summary: r.summary,
            starts_at_ms: r.starts_at_ms,
            ends_at_ms: r.ends_at_ms,
            last_seen_ms: r.last_seen_ms,
            silenced_by: r.silenced_by,
            opened_by: r.opened_by,
            resolved_by: r.resolved_by,
        })
    }
}

/// An `alert_silences` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SilenceRow {
    id: String,
    matchers: String,
    starts_at_ms: i64,
    ends_at_ms: i64,
    comment: Option<String>,
    created_by: String,
}

impl TryFrom<SilenceRow> for Silence {
    type Error = sqlx::Error;

    fn try_from(r: SilenceRow) -> Result<Self, Self::Error> {
        Ok(Silence {
            matchers: serde_json::from_str(&r.matchers).map_err(|_| {
                sqlx::Error::Decode(format!("silence {}: matchers are not valid", r.id).into())
            })?,
            id: r.id,
            starts_at_ms: r.starts_at_ms,
            ends_at_ms: r.ends_at_ms,
            comment: r.comment,
            created_by: r.created_by,
        })
    }
}

/// An `alert_notifications` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct NotificationRow {
    id: i64,
    webhook: String,
    status: String,
    episode_ids: String,
    state: String,
    attempts: i32,
    next_attempt_ms: i64,
    last_error: Option<String>,
    created_at_ms: i64,
    sent_at_ms: Option<i64>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = sqlx::Error;

    fn try_from(r: NotificationRow) -> Result<Self, Self::Error> {
        let bad = |what: &str| sqlx::Error::Decode(format!("notification {}: {what}", r.id).into());
        Ok(Notification {
            id: r.id,
            status: match r.status.as_str() {
                "firing" => EpisodeState::Firing,
                "resolved" => EpisodeState::Resolved,
                _ => return Err(bad("unknown status")),
            },
            episode_ids: serde_json::from_str(&r.episode_ids)
                .map_err(|_| bad("episode IDs are not a JSON array"))?,
            state: DeliveryState::parse(&r.state).ok_or_else(|| bad("unknown state"))?,
            attempts: r.attempts.max(0) as u32,
            webhook: r.webhook,
            next_attempt_ms: r.next_attempt_ms,
            last_error: r.last_error,
            created_at_ms: r.created_at_ms,
            sent_at_ms: r.sent_at_ms,
        })
    }
}

/// Decodes rows into their domain values.
pub(crate) fn decode<R, T>(rows: Vec<R>) -> Result<Vec<T>, sqlx::Error>
where
    T: TryFrom<R, Error = sqlx::Error>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// One pair's `(total, failed)` per minute window, as the minute query reads them.
pub(crate) type MinuteCounts = (String, String, Vec<(u64, u64)>);

/// Merges the minute windows and the hourly window into one [`PairWindows`] per pair, the
/// hourly window last (`0, 0` where a pair has none).
pub(crate) fn merge_windows(
    minutes: Vec<MinuteCounts>,
    windows: usize,
    hourly: Option<Vec<(String, String, i64, i64)>>,
) -> Vec<PairWindows> {
    let mut all: std::collections::BTreeMap<(String, String), Vec<(u64, u64)>> =
        std::collections::BTreeMap::new();
    let width = windows + usize::from(hourly.is_some());
    for (d, a, counts) in minutes {
        let entry = all.entry((d, a)).or_insert_with(|| vec![(0, 0); width]);
        for (i, c) in counts.into_iter().enumerate() {
            entry[i] = c;
        }
    }
    if let Some(hourly) = hourly {
        for (d, a, total, failed) in hourly {
            let entry = all.entry((d, a)).or_insert_with(|| vec![(0, 0); width]);
            entry[windows] = (total.max(0) as u64, failed.max(0) as u64);
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

/// Alert episodes, silences, the outbox and the counts the rules read.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Marks the firing episodes of `alerts` seen at `now_ms` and opens an episode for each
    /// alert with none firing (unless another instance just did), queuing `plan(opened)`'s
    /// notifications in the same transaction; returns the episodes this call opened.
    async fn open_alerts(
        &self,
        alerts: &[NewEpisode],
        now_ms: i64,
        instance: &str,
        plan: &Planner,
    ) -> Result<Vec<Episode>, StoreError>;

    /// Resolves every firing episode no instance has seen since `seen_before_ms`, queuing
    /// `plan(resolved)`'s notifications in the same transaction; returns those this call
    /// resolved.
    async fn resolve_stale_alerts(
        &self,
        seen_before_ms: i64,
        now_ms: i64,
        instance: &str,
        plan: &Planner,
    ) -> Result<Vec<Episode>, StoreError>;

    /// Episodes, newest first.
    async fn alert_episodes(&self, q: &EpisodeQuery) -> Result<Vec<Episode>, StoreError>;

    /// The episodes of these IDs, by ID.
    async fn alert_episodes_by_id(&self, ids: &[i64]) -> Result<Vec<Episode>, StoreError>;

    /// Firing episodes held back by a silence that does not hold at `now_ms` any more (it ended
    /// or was removed) are no longer silenced: queues `plan(released)`'s notifications (their
    /// firing messages, late) in the same transaction; returns those this call released.
    async fn release_silenced(
        &self,
        now_ms: i64,
        plan: &Planner,
    ) -> Result<Vec<Episode>, StoreError>;

    /// `(severity, count)` of the firing episodes.
    async fn firing_alerts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Stores a new silence.
    async fn insert_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// Silences that have not ended at `now_ms`, oldest first.
    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError>;

    /// Deletes a silence; whether it existed.
    async fn delete_silence(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims at most `limit` due notifications for `instance` until `lease_until_ms`
    /// (counting an attempt each).
    async fn claim_notifications(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        instance: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Records how an attempt of a claimed notification ended (only while `instance` holds it).
    async fn settle_notification(
        &self,
        id: i64,
        instance: &str,
        delivery: &Delivery,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Messages delivered to `webhook` since `since_ms`.
    async fn notifications_sent_since(
        &self,
        webhook: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError>;

    /// The latest notifications, newest first.
    async fn alert_notifications(&self, limit: u32) -> Result<Vec<Notification>, StoreError>;

    /// `(total, failed)` of every domain/action (not `system-*`) in each minute window (from
    /// its first minute on) and, when given, in the hours from `hours_from` on (last).
    async fn task_window_counts(
        &self,
        minute_windows: &[DateTime<Utc>],
        hours_from: Option<DateTime<Utc>>,
    ) -> Result<Vec<PairWindows>, StoreError>;

    /// Deletes resolved episodes, settled notifications and silences that ended before
    /// `before_ms`; how many rows went.
    async fn prune_alerts(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The one body of [`AlertStore`] for both backends.
macro_rules! impl_alert_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::alerts::AlertStore for $backend {
            async fn open_alerts(
                &self,
                alerts: &[$crate::model::alert::NewEpisode],
                now_ms: i64,
                instance: &str,
                plan: &$crate::store::alerts::Planner,
            ) -> Result<Vec<$crate::model::alert::Episode>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                type Db = <$backend as SqlBackend>::Db;
                if alerts.is_empty() {
                    return Ok(Vec::new());
                }
                let work = async {
                    let mut tx = self.writer().begin().await?;
                    let mut q =
                        sqlx::QueryBuilder::<Db>::new("UPDATE alert_episodes SET last_seen_ms = ");
                    q.push_bind(now_ms);
                    q.push(" WHERE state = 'firing' AND fingerprint IN (");
                    let mut list = q.separated(", ");
                    for a in alerts {
                        list.push_bind(a.fingerprint.as_str());
                    }
                    q.push(") RETURNING fingerprint");
                    let seen: std::collections::HashSet<String> = q
                        .build_query_scalar::<String>()
                        .fetch_all(&mut tx)
                        .await?
                        .into_iter()
                        .collect();
                    let mut opened = Vec::new();
                    for a in alerts.iter().filter(|a| !seen.contains(&a.fingerprint)) {
                        let labels =
                            serde_json::to_string(&a.alert.labels).expect("labels serialize");
                        let row: Option<sql::EpisodeRow> = sqlx::query_as(sql::INSERT_EPISODE)
                            .bind(a.fingerprint.as_str())
                            .bind(a.alert.rule.as_str())
                            .bind(a.alert.severity.as_str())
                            .bind(labels)
                            .bind(a.alert.summary.as_str())
                            .bind(now_ms)
                            .bind(a.silenced_by.as_deref())
                            .bind(instance)
                            .fetch_optional(&mut tx)
                            .await?;
                        if let Some(row) = row {
                            opened.push($crate::model::alert::Episode::try_from(row)?);
                        }
                    }
                    for n in plan(&opened) {
                        $crate::store::alerts::sql_enqueue!(tx, n, now_ms);
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(opened)
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn resolve_stale_alerts(
                &self,
                seen_before_ms: i64,
                now_ms: i64,
                instance: &str,
                plan: &$crate::store::alerts::Planner,
            ) -> Result<Vec<$crate::model::alert::Episode>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    let mut tx = self.writer().begin().await?;
                    let rows: Vec<sql::EpisodeRow> = sqlx::query_as(sql::RESOLVE_STALE)
                        .bind(now_ms)
                        .bind(instance)
                        .bind(seen_before_ms)
                        .fetch_all(&mut tx)
                        .await?;
                    let resolved: Vec<$crate::model::alert::Episode> = sql::decode(rows)?;
                    for n in plan(&resolved) {
                        $crate::store::alerts::sql_enqueue!(tx, n, now_ms);
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(resolved)
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn alert_episodes(
                &self,
                q: &$crate::model::alert::EpisodeQuery,
            ) -> Result<Vec<$crate::model::alert::Episode>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                type Db = <$backend as SqlBackend>::Db;
                let mut b = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT {} FROM alert_episodes WHERE 1 = 1",
                    sql::EPISODE_COLUMNS
                ));
                if let Some(state) = q.state {
                    b.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(since) = q.since_ms {
                    b.push(" AND (state = 'firing' OR starts_at_ms >= ")
                        .push_bind(since)
                        .push(" OR ends_at_ms >= ")
                        .push_bind(since)
                        .push(")");
                }
                b.push(" ORDER BY starts_at_ms DESC, id DESC LIMIT ")
                    .push_bind(i64::from(q.limit));
                let rows: Vec<sql::EpisodeRow> = b
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))?;
                sql::decode(rows).map_err(|e| self.classify(e))
            }

            async fn alert_episodes_by_id(
                &self,
                ids: &[i64],
            ) -> Result<Vec<$crate::model::alert::Episode>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                type Db = <$backend as SqlBackend>::Db;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT {} FROM alert_episodes WHERE id IN (",
                    sql::EPISODE_COLUMNS
                ));
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                b.push(") ORDER BY id");
                let rows: Vec<sql::EpisodeRow> = b
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))?;
                sql::decode(rows).map_err(|e| self.classify(e))
            }

            async fn release_silenced(
                &self,
                now_ms: i64,
                plan: &$crate::store::alerts::Planner,
            ) -> Result<Vec<$crate::model::alert::Episode>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    let mut tx = self.writer().begin().await?;
                    let rows: Vec<sql::EpisodeRow> = sqlx::query_as(sql::RELEASE_SILENCED)
                        .bind(now_ms)
                        .fetch_all(&mut tx)
                        .await?;
                    let released: Vec<$crate::model::alert::Episode> = sql::decode(rows)?;
                    for n in plan(&released) {
                        $crate::store::alerts::sql_enqueue!(tx, n, now_ms);
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(released)
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn firing_alerts(&self) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query_as($crate::store::alerts::FIRING_BY_SEVERITY)
                    .fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn insert_silence(
                &self,
                s: &$crate::model::alert::Silence,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query($crate::store::alerts::INSERT_SILENCE)
                    .bind(s.id.as_str())
                    .bind(serde_json::to_string(&s.matchers).expect("matchers serialize"))
                    .bind(s.starts_at_ms)
                    .bind(s.ends_at_ms)
                    .bind(s.comment.as_deref())
                    .bind(s.created_by.as_str())
                    .execute(self.writer())
                    .await
                    .map_err(|e| self.classify(e))?;
                Ok(())
            }

            async fn silences(
                &self,
                now_ms: i64,
            ) -> Result<Vec<$crate::model::alert::Silence>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let rows: Vec<sql::SilenceRow> = sqlx::query_as(sql::SILENCES_ACTIVE)
                    .bind(now_ms)
                    .fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))?;
                sql::decode(rows).map_err(|e| self.classify(e))
            }

            async fn delete_silence(&self, id: &str) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                let done = sqlx::query($crate::store::alerts::DELETE_SILENCE)
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(|e| self.classify(e))?;
                Ok(done.rows_affected() > 0)
            }

            async fn claim_notifications(
                &self,
                now_ms: i64,
                lease_until_ms: i64,
                instance: &str,
                limit: u32,
            ) -> Result<Vec<$crate::model::alert::Notification>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let text = match <$backend as SqlBackend>::BACKEND {
                    $crate::store::Backend::Postgres => sql::CLAIM_PG,
                    $crate::store::Backend::Sqlite => sql::CLAIM_SQLITE,
                };
                let rows: Vec<sql::NotificationRow> = sqlx::query_as(text)
                    .bind(lease_until_ms)
                    .bind(instance)
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(self.writer())
                    .await
                    .map_err(|e| self.classify(e))?;
                let mut out: Vec<$crate::model::alert::Notification> =
                    sql::decode(rows).map_err(|e| self.classify(e))?;
                out.sort_by_key(|n| n.id);
                Ok(out)
            }

            async fn settle_notification(
                &self,
                id: i64,
                instance: &str,
                delivery: &$crate::model::alert::Delivery,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::model::alert::Delivery;
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let q = match delivery {
                    Delivery::Sent => sqlx::query(sql::SETTLE_SENT).bind(now_ms),
                    Delivery::Retry { at_ms, error } => sqlx::query(sql::SETTLE_RETRY)
                        .bind(*at_ms)
                        .bind(error.clone()),
                    Delivery::Failed { error } => {
                        sqlx::query(sql::SETTLE_FAILED).bind(error.clone())
                    }
                    Delivery::Later { at_ms } => sqlx::query(sql::SETTLE_LATER).bind(*at_ms),
                };
                q.bind(id)
                    .bind(instance)
                    .execute(self.writer())
                    .await
                    .map_err(|e| self.classify(e))?;
                Ok(())
            }

            async fn notifications_sent_since(
                &self,
                webhook: &str,
                since_ms: i64,
            ) -> Result<i64, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query_scalar($crate::store::alerts::SENT_SINCE)
                    .bind(webhook)
                    .bind(since_ms)
                    .fetch_one(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn alert_notifications(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::model::alert::Notification>, $crate::store::StoreError> {
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let rows: Vec<sql::NotificationRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_notifications ORDER BY id DESC LIMIT $1",
                    sql::NOTIFICATION_COLUMNS
                ))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(|e| self.classify(e))?;
                sql::decode(rows).map_err(|e| self.classify(e))
            }

            async fn task_window_counts(
                &self,
                minute_windows: &[chrono::DateTime<chrono::Utc>],
                hours_from: Option<chrono::DateTime<chrono::Utc>>,
            ) -> Result<Vec<$crate::model::alert::PairWindows>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::alerts as sql;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    let mut minutes = Vec::new();
                    if let Some(earliest) = minute_windows.iter().min() {
                        let text = sql::minute_counts_sql(minute_windows.len());
                        let mut q = sqlx::query(&text);
                        for w in minute_windows {
                            q = q.bind(*w);
                        }
                        let rows = q.bind(*earliest).fetch_all(self.reader()).await?;
                        for row in rows {
                            let mut counts = Vec::with_capacity(minute_windows.len());
                            for i in 0..minute_windows.len() {
                                let total: Option<i64> = row.try_get(2 + 2 * i)?;
                                let failed: Option<i64> = row.try_get(3 + 2 * i)?;
                                counts.push((
                                    total.unwrap_or(0).max(0) as u64,
                                    failed.unwrap_or(0).max(0) as u64,
                                ));
                            }
                            minutes.push((row.try_get(0)?, row.try_get(1)?, counts));
                        }
                    }
                    let hourly = match hours_from {
                        Some(from) => Some(
                            sqlx::query_as::<_, (String, String, i64, i64)>(sql::HOURLY_COUNTS)
                                .bind(from)
                                .fetch_all(self.reader())
                                .await?,
                        ),
                        None => None,
                    };
                    Ok::<_, sqlx::Error>(sql::merge_windows(minutes, minute_windows.len(), hourly))
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn prune_alerts(&self, before_ms: i64) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                let mut total = 0;
                for text in $crate::store::alerts::PRUNE {
                    total += sqlx::query(text)
                        .bind(before_ms)
                        .execute(self.writer())
                        .await
                        .map_err(|e| self.classify(e))?
                        .rows_affected();
                }
                Ok(total)
            }
        }
    };
}
pub(crate) use impl_alert_store;

/// Queues one notification inside the transaction `$tx` (used by `impl_alert_store!`).
macro_rules! sql_enqueue {
    ($tx:ident, $n:expr, $now_ms:expr) => {{
        let n: $crate::model::alert::NewNotification = $n;
        let ids: Vec<i64> = n.episodes.iter().map(|e| e.id).collect();
        sqlx::query($crate::store::alerts::INSERT_NOTIFICATION)
            .bind(n.webhook.as_str())
            .bind(n.status.as_str())
            .bind(serde_json::to_string(&ids).expect("IDs serialize"))
            .bind($now_ms)
            .execute(&mut $tx)
            .await?;
    }};
}
pub(crate) use sql_enqueue;
