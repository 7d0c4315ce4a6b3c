//! `/api/v1/ai/*`: what the AI gateway's calls used and cost, the budgets they are held to,
//! and the prices they are counted at (docs/api.md, AI gateway). The calls themselves are
//! `/v1/*` (`api::ai`).

use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::envelope::{ok, ApiError, ApiOk, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use super::types::{AiUsageRowView, AiUsageView, BudgetView};
use super::AppState;
use crate::ai::spend::month_start;
use crate::model::ai::Price;
use crate::store::ai_usage::UsageKey;

/// `GET /api/v1/ai/usage?since=&until=&by=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// From this time (RFC 3339, or a date; default: the start of this UTC month).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time, excluded (RFC 3339, or a date; default: an hour from now).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// What the rows are grouped by: model (default), deployment, domain, token or hour.
    #[serde(default)]
    #[param(value_type = Option<UsageBy>)]
    by: Option<String>,
}

/// The values of `by` (a schema only: [`usage_key`] reads the text, so that a wrong one gets
/// a message listing them).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum UsageBy {
    /// By `provider/model`.
    Model,
    /// By deployment.
    Deployment,
    /// By the `X-Jarvis-Domain` of the calls.
    Domain,
    /// By token fingerprint.
    Token,
    /// By UTC hour.
    Hour,
}

/// Parses `by` (default `model`).
fn usage_key(by: Option<&str>) -> Result<(UsageKey, &'static str), ApiError> {
    Ok(match by.unwrap_or("model") {
        "model" => (UsageKey::Model, "model"),
        "deployment" => (UsageKey::Deployment, "deployment"),
        "domain" => (UsageKey::Domain, "domain"),
        "token" => (UsageKey::Token, "token"),
        "hour" => (UsageKey::Hour, "hour"),
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("by: {other:?} is not model, deployment, domain, token or hour"),
            ))
        }
    })
}

/// Usage and spend grouped by model, deployment, domain, token or hour; by default this UTC
/// month's, by model. What this instance counted in the last second may not be in yet.
#[utoipa::path(get, path = "/api/v1/ai/usage", tag = "ai",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage and spend in the range, grouped.", body = Envelope<AiUsageView>),
        (status = 400, description = "`invalid_query`.", body = ErrorEnvelope),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<ApiOk<AiUsageView>, ApiError> {
    let (key, by) = usage_key(q.by.as_deref())?;
    let now = crate::clock::now();
    let since: DateTime<Utc> =
        super::tasks::time("since", q.since)?.unwrap_or_else(|| month_start(now));
    // The current hour's row is stamped with the hour's start: the default end takes it in.
    let until: DateTime<Utc> =
        super::tasks::time("until", q.until)?.unwrap_or_else(|| now + TimeDelta::hours(1));
    if until <= since {
        return Err(ApiError::bad_request(
            "invalid_query",
            "until: must be after since",
        ));
    }
    let rows: Vec<AiUsageRowView> = state.store.ai_usage(since, until, key).await?;
    let mut total = AiUsageRowView {
        key: "total".into(),
        requests: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
    };
    for r in &rows {
        total.requests += r.requests;
        total.errors += r.errors;
        total.prompt_tokens += r.prompt_tokens;
        total.completion_tokens += r.completion_tokens;
        total.cost_usd += r.cost_usd;
    }
    Ok(ok(AiUsageView {
        since,
        until,
        by: by.into(),
        rows,
        total,
    }))
}

/// Every configured budget (`[[ai.budgets]]`) with what it has spent today and this month.
#[utoipa::path(get, path = "/api/v1/ai/budgets", tag = "ai",
    responses((status = 200, description = "Every configured budget with what it has spent.", body = Envelope<Vec<BudgetView>>)))]
pub async fn budgets(State(state): State<AppState>) -> ApiOk<Vec<BudgetView>> {
    let views = state
        .ai
        .spend()
        .budgets()
        .into_iter()
        .map(|s| {
            let exhausted = s.budget.daily_usd.is_some_and(|l| s.spent_today_usd >= l)
                || s.budget
                    .monthly_usd
                    .is_some_and(|l| s.spent_this_month_usd >= l);
            BudgetView {
                scope: s.budget.scope(),
                domain: s.budget.domain,
                token: s.budget.token,
                daily_usd: s.budget.daily_usd,
                monthly_usd: s.budget.monthly_usd,
                spent_today_usd: s.spent_today_usd,
                spent_this_month_usd: s.spent_this_month_usd,
                exhausted,
            }
        })
        .collect();
    ok(views)
}

/// The price of every listed model, by `provider/model` (defaults with the config file's
/// `[ai.prices]` on top).
#[utoipa::path(get, path = "/api/v1/ai/prices", tag = "ai",
    responses((status = 200, description = "The price of every listed model, by `provider/model`.", body = Envelope<std::collections::BTreeMap<String, Price>>)))]
pub async fn prices(
    State(state): State<AppState>,
) -> ApiOk<std::collections::BTreeMap<String, Price>> {
    ok(state.ai.spend().prices().all().clone())
}
