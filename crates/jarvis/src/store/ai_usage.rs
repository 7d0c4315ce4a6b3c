//! The AI gateway's part of the storage trait: usage and spend rolled up per hour, model,
//! deployment, domain and token (`ai_usage_hourly`).
//!
//! Instances add their counts in batches (`ai::spend` flushes once a second); budgets read the
//! day's and the month's spend back from here, so they hold across restarts and across the
//! instances that share a PostgreSQL. The SQL is written once: both engines accept it as is.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// Counts to add to one hourly row.
#[derive(Debug, Clone, PartialEq)]
pub struct AiUsageDelta {
    /// The hour (truncated) the calls fell in.
    pub hour: DateTime<Utc>,
    /// The model name the caller asked for (`openai/gpt-4o-mini`, a group, …).
    pub model: String,
    /// The deployment that answered (or was tried last).
    pub deployment: String,
    /// The domain the call was made for; empty when none was named.
    pub domain: String,
    /// The fingerprint of the caller's token (`ai::spend::token_id`); empty for work Jarvis
    /// started itself.
    pub token: String,
    /// Calls.
    pub requests: i64,
    /// Calls that failed (no answer, a 5xx, a refusal by Jarvis after admission).
    pub errors: i64,
    /// Prompt (input) tokens.
    pub prompt_tokens: i64,
    /// Completion (output) tokens.
    pub completion_tokens: i64,
    /// What the tokens cost, in US dollars.
    pub cost_usd: f64,
}

/// What [`AiUsageStore::ai_usage`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKey {
    /// The model asked for.
    Model,
    /// The deployment that answered.
    Deployment,
    /// The caller's domain.
    Domain,
    /// The caller's token fingerprint.
    Token,
    /// The hour.
    Hour,
}

impl UsageKey {
    /// The column it names.
    fn column(self) -> &'static str {
        match self {
            UsageKey::Model => "model",
            UsageKey::Deployment => "deployment",
            UsageKey::Domain => "domain",
            UsageKey::Token => "token",
            UsageKey::Hour => "hour",
        }
    }
}

/// Totals of one group (also the row of `GET /api/v1/ai/usage`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiUsageTotal {
    /// The group's value ('' for calls that named no domain or token; an hour as RFC 3339;
    /// `total` for the sum of all groups).
    pub key: String,
    /// Calls.
    pub requests: i64,
    /// Failed calls.
    pub errors: i64,
    /// Prompt (input) tokens.
    pub prompt_tokens: i64,
    /// Completion (output) tokens.
    pub completion_tokens: i64,
    /// Spend, US dollars.
    pub cost_usd: f64,
}

/// Spend of one domain and token since the start of the month, and since the start of the day.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AiSpendRow {
    /// The domain ('' for none).
    pub domain: String,
    /// The token fingerprint ('' for none).
    pub token: String,
    /// Since the start of the month.
    pub month_usd: f64,
    /// Since the start of the day.
    pub day_usd: f64,
}

/// Adds one row's counts (`$1` hour … `$10` cost).
pub(crate) const ADD: &str = "\
INSERT INTO ai_usage_hourly (hour, model, deployment, domain, token, requests, errors,
                             prompt_tokens, completion_tokens, cost_usd)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (hour, model, deployment, domain, token) DO UPDATE SET
    requests = ai_usage_hourly.requests + excluded.requests,
    errors = ai_usage_hourly.errors + excluded.errors,
    prompt_tokens = ai_usage_hourly.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = ai_usage_hourly.completion_tokens + excluded.completion_tokens,
    cost_usd = ai_usage_hourly.cost_usd + excluded.cost_usd";

/// Spend per domain and token since `$1` (the month's start), and since `$2` (the day's).
pub(crate) const SPEND: &str = "\
SELECT domain, token, CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS month_usd,
       CAST(SUM(CASE WHEN hour >= $2 THEN cost_usd ELSE 0 END) AS DOUBLE PRECISION) AS day_usd
FROM ai_usage_hourly WHERE hour >= $1 GROUP BY domain, token";

/// The totals grouped by `key`, hours in `[$1, $2)`.
pub(crate) fn usage_sql(key: UsageKey) -> String {
    let k = key.column();
    format!(
        "SELECT {k} AS key, CAST(SUM(requests) AS BIGINT) AS requests, \
         CAST(SUM(errors) AS BIGINT) AS errors, \
         CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
         CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
         CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost_usd \
         FROM ai_usage_hourly WHERE hour >= $1 AND hour < $2 GROUP BY {k} ORDER BY {k}"
    )
}

/// A grouped row as the database gives it: the key is text, or the hour.
#[derive(sqlx::FromRow)]
pub(crate) struct TotalRow<K> {
    pub key: K,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

/// A group key as the API shows it.
pub(crate) trait KeyText {
    fn text(self) -> String;
}

impl KeyText for String {
    fn text(self) -> String {
        self
    }
}

impl KeyText for DateTime<Utc> {
    fn text(self) -> String {
        self.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

impl<K: KeyText> From<TotalRow<K>> for AiUsageTotal {
    fn from(r: TotalRow<K>) -> Self {
        AiUsageTotal {
            key: r.key.text(),
            requests: r.requests,
            errors: r.errors,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_usd: r.cost_usd,
        }
    }
}

/// AI usage in the store.
#[async_trait]
pub trait AiUsageStore: Send + Sync {
    /// Adds the counts of `rows` to their hourly rows (one transaction).
    async fn add_ai_usage(&self, rows: &[AiUsageDelta]) -> Result<(), StoreError>;

    /// Totals of the hours in `[since, until)`, grouped by `key`, in key order.
    async fn ai_usage(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        key: UsageKey,
    ) -> Result<Vec<AiUsageTotal>, StoreError>;

    /// Spend per domain and token since `month_start`, and of it since `day_start`.
    async fn ai_spend(
        &self,
        month_start: DateTime<Utc>,
        day_start: DateTime<Utc>,
    ) -> Result<Vec<AiSpendRow>, StoreError>;
}

/// The one body of [`AiUsageStore`] for both backends (`impl_ai_usage_store!(SqliteStore)`):
/// reads on the backend's reader, writes on its writer.
macro_rules! impl_ai_usage_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ai_usage::AiUsageStore for $backend {
            async fn add_ai_usage(
                &self,
                rows: &[$crate::store::ai_usage::AiUsageDelta],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                if rows.is_empty() {
                    return Ok(());
                }
                let work = async {
                    let mut tx = self.writer().begin().await?;
                    for r in rows {
                        sqlx::query($crate::store::ai_usage::ADD)
                            .bind(r.hour)
                            .bind(&r.model)
                            .bind(&r.deployment)
                            .bind(&r.domain)
                            .bind(&r.token)
                            .bind(r.requests)
                            .bind(r.errors)
                            .bind(r.prompt_tokens)
                            .bind(r.completion_tokens)
                            .bind(r.cost_usd)
                            .execute(&mut tx)
                            .await?;
                    }
                    tx.commit().await
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn ai_usage(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
                key: $crate::store::ai_usage::UsageKey,
            ) -> Result<Vec<$crate::store::ai_usage::AiUsageTotal>, $crate::store::StoreError> {
                use $crate::store::ai_usage::{TotalRow, UsageKey};
                use $crate::store::shared::SqlBackend;
                let sql = $crate::store::ai_usage::usage_sql(key);
                let q = |sql| async move {
                    if key == UsageKey::Hour {
                        let rows: Vec<TotalRow<chrono::DateTime<chrono::Utc>>> =
                            sqlx::query_as(sql)
                                .bind(since)
                                .bind(until)
                                .fetch_all(self.reader())
                                .await?;
                        Ok::<_, sqlx::Error>(rows.into_iter().map(Into::into).collect())
                    } else {
                        let rows: Vec<TotalRow<String>> = sqlx::query_as(sql)
                            .bind(since)
                            .bind(until)
                            .fetch_all(self.reader())
                            .await?;
                        Ok(rows.into_iter().map(Into::into).collect())
                    }
                };
                q(&sql).await.map_err(|e| self.classify(e))
            }

            async fn ai_spend(
                &self,
                month_start: chrono::DateTime<chrono::Utc>,
                day_start: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::ai_usage::AiSpendRow>, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query_as($crate::store::ai_usage::SPEND)
                    .bind(month_start)
                    .bind(day_start)
                    .fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }
        }
    };
}
pub(crate) use impl_ai_usage_store;
