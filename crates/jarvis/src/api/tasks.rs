//! `/api/v1/execute` and `/api/v1/tasks…`: submitting, reading and cancelling tasks, their
//! statistics and execution records.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use super::types::{
    Accepted, ExecutionPage, ParametersSource, RecommendationView, Stats, TaskPage, TaskView,
};
use crate::api::AppState;
use crate::correlation::CorrelationId;
use crate::model::task::NewTask;
use crate::model::task_input::idempotency_differences;
use crate::store::{ExecutionFilter, Inserted, TaskListing};
use crate::tasks::input::{TaskInput, MAX_BATCH};
use crate::tasks::{Task, TaskStatus};
use crate::timeparse::{parse_bound, Bound};
use crate::trace::context::RequestTrace;

/// Default bound of `?wait=true`.
pub const DEFAULT_WAIT_MS: u64 = 30_000;
/// Longest `?wait=true` (`waitMs`).
pub const MAX_WAIT_MS: u64 = 120_000;

impl From<Task> for TaskView {
    fn from(t: Task) -> TaskView {
        TaskView {
            task_id: t.id,
            domain: t.domain.to_string(),
            action: t.action.to_string(),
            status: t.status,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            priority: t.priority,
            parameters: t.parameters,
            learned_parameters: t.learned_parameters,
            result: t.result,
            error: t.error,
            correlation_id: t.correlation_id,
            idempotency_key: t.idempotency_key,
            timeout_ms: t.timeout_ms,
            run_at: t.run_at,
            created_at: t.created_at,
            started_at: t.started_at,
            finished_at: t.finished_at,
            duration_ms: t.duration_ms,
        }
    }
}

impl From<&Inserted> for Accepted {
    fn from(i: &Inserted) -> Accepted {
        Accepted {
            task_id: i.task.id,
            correlation_id: i.task.correlation_id.clone(),
            status: i.task.status,
            duplicate: !i.created,
        }
    }
}

/// `?wait=true&waitMs=…` of a submission.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait (bounded) until the task has finished and answer it.
    #[serde(default)]
    wait: Option<bool>,
    /// The longest wait, ms (default 30000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 120_000)]
    wait_ms: Option<u64>,
}

fn correlation(c: &Option<Extension<CorrelationId>>) -> String {
    c.as_ref()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| CorrelationId::generate("req").to_string())
}

fn invalid(e: crate::tasks::input::InputError) -> ApiError {
    ApiError::bad_request("invalid_task", e.to_string())
}

/// The `Idempotency-Key` header of a submission: the same as the body's `idempotencyKey`.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The `Idempotency-Key` header, if given (validated with the body's field, afterwards).
fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                ApiError::bad_request(
                    "invalid_task",
                    "Idempotency-Key: must be printable ASCII (1 to 200 characters)",
                )
            })
        })
        .transpose()
}

/// The agent's `useLearned` default of `domain` (false for a built-in agent), or 422
/// `no_agent` when the domain has no agent and the task did not ask to wait for one.
async fn domain_agent(
    state: &AppState,
    domain: &crate::names::Name,
    wait_for_agent: bool,
    field: &str,
) -> Result<bool, ApiError> {
    if state.tasks.has_builtin(domain.as_str()) {
        return Ok(false);
    }
    match state
        .agent_defaults
        .agent(state.store.as_ref(), domain.as_str())
        .await?
    {
        Some(use_learned) => Ok(use_learned),
        None if wait_for_agent => Ok(false),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_agent",
            format!(
                "{field}: no agent is registered for domain {domain}: register one (PUT \
                 /api/v1/agents/{domain}, or [agents.{domain}] in the config file), or submit \
                 with \"waitForAgent\": true to queue the task until one is"
            ),
        )),
    }
}

/// 409 `idempotency_conflict` when `existing`, found under the idempotency key of `new`, was
/// submitted with another domain, action or parameters.
fn idempotency_conflict(existing: &Task, new: &NewTask, field: &str) -> Result<(), ApiError> {
    let differ = idempotency_differences(existing, new);
    if differ.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        format!(
            "{field}: the key {:?} belongs to task {} submitted with another {}; send the same \
             request to get that task back, or use a new key for a new task",
            existing.idempotency_key.as_deref().unwrap_or_default(),
            existing.id,
            differ.join(" and ")
        ),
    ))
}

/// `POST /api/v1/execute` and `POST /api/v1/tasks`: 202 `{taskId, correlationId, status}`
/// (200 with `duplicate: true` when the idempotency key, of the body or the `Idempotency-Key`
/// header, matched the same request; 409 when it matched another); with `?wait=true` the task
/// once finished (or as it is when the bounded wait ends: 202). 422 when the domain has no
/// agent (unless `waitForAgent`).
#[utoipa::path(post, path = "/api/v1/execute", tag = "tasks",
    params(WaitQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same as the body's `idempotencyKey`.")),
    request_body = TaskInput,
    responses(
        (status = 200, description = "The idempotency key matched the same request (`duplicate: true`), or with `wait=true` the finished task.", body = Envelope<Submitted>),
        (status = 202, description = "Accepted `{taskId, correlationId, status}`; with `wait=true` the task as it is when the wait ends.", body = Envelope<Submitted>),
        (status = 400, description = "`invalid_task`, `invalid_query`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
        (status = 409, description = "`idempotency_conflict`: the key belongs to another request.", body = ErrorEnvelope),
        (status = 422, description = "`no_agent`: the domain has no agent (and `waitForAgent` is not set).", body = ErrorEnvelope),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    correlation_id: Option<Extension<CorrelationId>>,
    trace: Option<Extension<RequestTrace>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(mut input): ApiJson<TaskInput>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let cid = correlation(&correlation_id);
    tracing::info!(
        domain = input.domain.as_deref().unwrap_or(""),
        action = input.action.as_deref().unwrap_or(""),
        "task received"
    );
    let wait_ms = q.wait_ms.unwrap_or(DEFAULT_WAIT_MS);
    if q.wait_ms.is_some() && !(1..=MAX_WAIT_MS).contains(&wait_ms) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("waitMs: must be from 1 to {MAX_WAIT_MS}"),
        ));
    }
    if let Some(key) = idempotency_header(&headers)? {
        match &input.idempotency_key {
            Some(body) if *body != key => {
                return Err(ApiError::bad_request(
                    "invalid_task",
                    format!(
                        "idempotencyKey: the body says {body:?} but the Idempotency-Key header \
                         says {key:?}; give one of them, or the same key in both"
                    ),
                ))
            }
            _ => input.idempotency_key = Some(key),
        }
    }
    let asked = input.use_learned;
    let wait_for_agent = input.wait_for_agent.unwrap_or(false);
    let mut new = input
        .validate("", &cid, crate::clock::now())
        .map_err(invalid)?;
    new.traceparent = trace.and_then(|t| t.0.stored());
    let agent_default = domain_agent(&state, &new.domain, wait_for_agent, "domain").await?;
    if asked.unwrap_or(agent_default) {
        state.learner.apply(&mut new).await?;
    }
    // A waiter here learns of the settlement through the store's notification, wherever the
    // task runs.
    new.notify_done = q.wait.unwrap_or(false);
    let request = new.clone();
    let inserted = state.tasks.submit(vec![new]).await?;
    let ins = inserted
        .first()
        .ok_or_else(|| ApiError::internal("the store returned no task"))?;
    if ins.created {
        tracing::info!(
            task_id = %ins.task.id,
            domain = %ins.task.domain,
            action = %ins.task.action,
            priority = ins.task.priority,
            run_at = %ins.task.run_at,
            "task created"
        );
    } else {
        // Nothing was stored: a conflict leaves the store as it was.
        idempotency_conflict(&ins.task, &request, "idempotencyKey")?;
        tracing::info!(task_id = %ins.task.id, "idempotency key matched an existing task");
    }
    if q.wait.unwrap_or(false) {
        let task = state
            .tasks
            .wait(ins.task.id, Duration::from_millis(wait_ms))
            .await?
            .ok_or_else(|| ApiError::not_found("the task disappeared"))?;
        let status = if task.status.is_final() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return Ok(ApiOk(status, TaskView::from(task)).into_response());
    }
    let status = if ins.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(ApiOk(status, Accepted::from(ins)).into_response())
}

/// The `data` of a submission: [`Accepted`], or with `?wait=true` the [`TaskView`] (a schema
/// only: a task view is also a valid `Accepted`, so the two are `anyOf`).
pub struct Submitted;

impl utoipa::PartialSchema for Submitted {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::Ref;
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("Accepted"))
            .item(Ref::from_schema_name("TaskView"))
            .description(Some(
                "Without wait: {taskId, correlationId, status, duplicate?}; with wait: the task.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Submitted {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("Accepted".into(), Accepted::schema()));
        schemas.push(("TaskView".into(), TaskView::schema()));
        <Accepted as utoipa::ToSchema>::schemas(schemas);
        <TaskView as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The body of `POST /api/v1/tasks/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"tasks": [{"domain": "noop", "action": "report"}]})))]
pub struct BatchInput {
    /// 1 to 1000 tasks, stored all or none.
    #[schema(min_items = 1, max_items = 1000)]
    tasks: Vec<TaskInput>,
}

/// The answer of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchAccepted {
    /// One per task, in the order given.
    tasks: Vec<Accepted>,
    /// How many tasks the batch held.
    count: usize,
    /// How many were new (the others matched an idempotency key).
    created: usize,
}

/// `POST /api/v1/tasks/batch`: up to 1,000 tasks stored in one transaction (all or none).
/// Checked as a whole before anything is stored: fields, agents (422 `no_agent`), idempotency
/// keys reused with another request (409 `idempotency_conflict`).
#[utoipa::path(post, path = "/api/v1/tasks/batch", tag = "tasks",
    request_body = BatchInput,
    responses(
        (status = 202, description = "Every task, stored in one transaction.", body = Envelope<BatchAccepted>),
        (status = 400, description = "`invalid_task`, `invalid_body` or `malformed_json` (nothing is stored).", body = ErrorEnvelope),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorEnvelope),
        (status = 422, description = "`no_agent`.", body = ErrorEnvelope),
    ))]
pub async fn batch(
    State(state): State<AppState>,
    correlation_id: Option<Extension<CorrelationId>>,
    trace: Option<Extension<RequestTrace>>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<BatchInput>,
) -> Result<ApiOk<BatchAccepted>, ApiError> {
    let cid = correlation(&correlation_id);
    if headers.contains_key(IDEMPOTENCY_HEADER) {
        // One key cannot name many tasks; ignoring it would let a retried batch run twice.
        return Err(ApiError::bad_request(
            "invalid_task",
            "Idempotency-Key: a batch takes no Idempotency-Key header; give each task its own \
             idempotencyKey",
        ));
    }
    let n = input.tasks.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_task",
            format!("tasks: must hold 1 to {MAX_BATCH} tasks (got {n})"),
        ));
    }
    tracing::info!(tasks = n, "task batch received");
    let now = crate::clock::now();
    let mut new = Vec::with_capacity(n);
    let mut asked = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    for (i, t) in input.tasks.into_iter().enumerate() {
        asked.push(t.use_learned);
        waits.push(t.wait_for_agent.unwrap_or(false));
        let mut task = t
            .validate(&format!("tasks[{i}]."), &cid, now)
            .map_err(invalid)?;
        task.traceparent = trace.as_ref().and_then(|t| t.0.stored());
        new.push(task);
    }
    // Each distinct domain's agent, read once (a cached read) per batch.
    let mut defaults: HashMap<String, bool> = HashMap::new();
    for (i, task) in new.iter().enumerate() {
        if defaults.contains_key(task.domain.as_str()) {
            continue;
        }
        // The first task of the domain that does not wait is the one a missing agent refuses.
        let refused = (i..n).find(|&j| new[j].domain == task.domain && !waits[j]);
        let field = format!("tasks[{}].domain", refused.unwrap_or(i));
        let default = domain_agent(&state, &task.domain, refused.is_none(), &field).await?;
        defaults.insert(task.domain.to_string(), default);
    }
    // Keys reused with another request, against the store and within the batch.
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for (i, task) in new.iter().enumerate() {
        let Some(key) = task.idempotency_key.as_deref() else {
            continue;
        };
        let field = format!("tasks[{i}].idempotencyKey");
        if let Some(&first) = keys.get(key) {
            idempotency_conflict(&Task::from_new(&new[first]), task, &field)?;
        } else if let Some(existing) = state.store.get_task_by_idempotency_key(key).await? {
            idempotency_conflict(&existing, task, &field)?;
        }
        keys.entry(key).or_insert(i);
    }
    for (task, flag) in new.iter_mut().zip(asked) {
        let use_learned = flag.unwrap_or_else(|| defaults.get(task.domain.as_str()) == Some(&true));
        if use_learned {
            state.learner.apply(task).await?;
        }
    }
    let inserted = state.tasks.submit(new).await?;
    let created = inserted.iter().filter(|i| i.created).count();
    tracing::info!(tasks = n, created, "task batch created");
    Ok(ApiOk(
        StatusCode::ACCEPTED,
        BatchAccepted {
            tasks: inserted.iter().map(Accepted::from).collect(),
            count: n,
            created,
        },
    ))
}

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request("invalid_id", format!("task id: {raw:?} is not a UUID")))
}

/// `GET /api/v1/tasks/{id}`.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's ID.")),
    responses(
        (status = 200, description = "The task.", body = Envelope<TaskView>),
        (status = 400, description = "`invalid_id`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such task.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiOk<TaskView>, ApiError> {
    let id = task_id(&id)?;
    match state.tasks.get(id).await? {
        Some(t) => Ok(ok(t.into())),
        None => Err(ApiError::not_found(format!("no task {id}"))),
    }
}

/// `DELETE /api/v1/tasks/{id}`: the cancelled task; 409 when it had already finished.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's ID.")),
    responses(
        (status = 200, description = "The cancelled task.", body = Envelope<TaskView>),
        (status = 400, description = "`invalid_id`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such task.", body = ErrorEnvelope),
        (status = 409, description = "`already_finished`.", body = ErrorEnvelope),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiOk<TaskView>, ApiError> {
    let id = task_id(&id)?;
    match state.tasks.cancel(id).await? {
        Some((t, true)) => Ok(ok(t.into())),
        Some((t, false)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("task {id} has already finished ({})", t.status),
        )),
        None => Err(ApiError::not_found(format!("no task {id}"))),
    }
}

/// `GET /api/v1/tasks?status=&domain=&action=&correlationId=&since=&until=&includeSystem=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this domain's tasks (includes system domains).
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    domain: Option<String>,
    /// Only this action's tasks.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    action: Option<String>,
    /// Only tasks in this status.
    #[serde(default)]
    #[param(value_type = Option<crate::tasks::TaskStatus>)]
    status: Option<String>,
    /// Only the tasks of this correlation ID.
    #[serde(default)]
    correlation_id: Option<String>,
    /// Created at or after this time (RFC 3339, or a date: its 00:00 UTC).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Created before this time (RFC 3339, or a date: up to the end of that UTC day).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// Also the tasks of Jarvis's own system-* domains.
    #[serde(default)]
    include_system: Option<bool>,
    /// At most this many (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The nextCursor of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /api/v1/tasks`: tasks, newest first, a page at a time (`nextCursor`); tasks of the
/// `system-*` domains only when asked for (`includeSystem=true`, or a `domain` filter).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tasks, newest first.", body = Envelope<TaskPage>),
        (status = 400, description = "`invalid_query` or `invalid_name`.", body = ErrorEnvelope),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiOk<TaskPage>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "status: one of queued, running, waiting, succeeded, failed, cancelled",
            )
        })?),
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::bad_request("invalid_query", "cursor: not a cursor from a previous page")
        })?),
    };
    let limit = limit(q.limit, 100)?;
    let domain = optional_name(q.domain, "domain")?;
    let listing = TaskListing {
        include_system: q.include_system.unwrap_or(false) || domain.is_some(),
        domain,
        action: optional_name(q.action, "action")?,
        status,
        correlation_id: q.correlation_id,
        since: time("since", q.since)?,
        until: time("until", q.until)?,
        before,
        // One more than asked: whether there is a next page, without an empty last page.
        limit: limit + 1,
    };
    let mut items = state.store.list_task_page(&listing).await?;
    let next_cursor = page_end(&mut items, limit).map(|t| t.id.simple().to_string());
    Ok(ok(TaskPage {
        items: items.into_iter().map(TaskView::from).collect(),
        next_cursor,
    }))
}

/// Cuts `items` (fetched with one more than `limit`) to `limit`; the last item kept when there
/// is a next page, whose cursor it gives.
fn page_end<T>(items: &mut Vec<T>, limit: u32) -> Option<&T> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last()
    } else {
        None
    }
}

fn limit(raw: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be from 1 to 1000",
        )),
    }
}

/// A `since`/`until` query parameter: RFC 3339 with a zone, or a date (a whole UTC day; see
/// `crate::timeparse`).
pub(super) fn time(field: &str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let bound = if field == "until" {
        Bound::Until
    } else {
        Bound::Since
    };
    raw.map(|r| {
        parse_bound(&r, bound)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("{field}: {e}")))
    })
    .transpose()
}

/// `GET /api/v1/tasks/history?domain=&action=&since=&until=` (without `domain` and `action`:
/// the overview, `&includeSystem=`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Overview only: also Jarvis's own system-* domains.
    #[serde(default)]
    include_system: Option<bool>,
    /// The domain (with action): that domain/action's statistics.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    domain: Option<String>,
    /// The action (with domain).
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    action: Option<String>,
    /// From this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
}

/// The required `domain` and `action` query parameters, validated as names.
fn domain_action(
    domain: Option<String>,
    action: Option<String>,
) -> Result<(crate::names::Name, crate::names::Name), ApiError> {
    let domain =
        domain.ok_or_else(|| ApiError::bad_request("invalid_query", "domain: is required"))?;
    let action =
        action.ok_or_else(|| ApiError::bad_request("invalid_query", "action: is required"))?;
    Ok((path_name(&domain, "domain")?, path_name(&action, "action")?))
}

/// What `GET /api/v1/tasks/history` answers: one domain/action's statistics, or (no `domain`
/// and no `action`) the overview, every domain/action's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum HistoryAnswer {
    /// `?domain=&action=`.
    One(Box<Stats>),
    /// No query: every domain/action with runs in the range, sorted by domain and action
    /// (Jarvis's own `system-*` ones only with `includeSystem=true`), as
    /// `GET /api/v1/analytics/overview` answers it.
    Overview(Box<crate::analytics::Overview>),
}

/// `GET /api/v1/tasks/history`: statistics of one domain/action, or the overview.
#[utoipa::path(get, path = "/api/v1/tasks/history", tag = "tasks",
    params(HistoryQuery),
    responses(
        (status = 200, description = "With `domain` and `action`: their statistics; with neither: the overview.", body = Envelope<HistoryAnswer>),
        (status = 400, description = "`invalid_query`, `invalid_name` or `invalid_range`.", body = ErrorEnvelope),
    ))]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<ApiOk<HistoryAnswer>, ApiError> {
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    if q.domain.is_none() && q.action.is_none() {
        let include_system = q.include_system.unwrap_or(false);
        let overview =
            super::analytics::overview_answer(&state, since, until, include_system).await?;
        return Ok(ok(HistoryAnswer::Overview(Box::new(overview))));
    }
    if q.include_system.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "includeSystem: only for the overview (no domain and no action)",
        ));
    }
    let (domain, action) = domain_action(q.domain, q.action)?;
    let stats = domain_stats(&state, domain.as_str(), action.as_str(), since, until).await?;
    Ok(ok(HistoryAnswer::One(Box::new(stats))))
}

/// One domain/action's statistics, with the learner's optimal parameters.
async fn domain_stats(
    state: &AppState,
    domain: &str,
    action: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Stats, ApiError> {
    let mut stats =
        crate::history::stats(state.store.as_ref(), domain, action, since, until).await?;
    if let Some((parameters, confidence, _)) =
        state.learner.optimal_parameters(domain, action).await?
    {
        stats.optimal_parameters = parameters;
        stats.optimal_parameters_source = ParametersSource::Learned;
        stats.optimal_parameters_confidence = Some(confidence);
    }
    Ok(stats)
}

/// `GET /api/v1/tasks/recommendations?domain=&action=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// Required: the domain.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    domain: Option<String>,
    /// Required: the action.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    action: Option<String>,
}

/// `GET /api/v1/tasks/recommendations`: what the learner would run next for a domain/action
/// (`parameters` empty and `source: "insufficientData"` until there is enough data).
#[utoipa::path(get, path = "/api/v1/tasks/recommendations", tag = "tasks",
    params(RecommendationQuery),
    responses(
        (status = 200, description = "What the learner would run next.", body = Envelope<RecommendationView>),
        (status = 400, description = "`invalid_query` or `invalid_name`.", body = ErrorEnvelope),
    ))]
pub async fn recommendations(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RecommendationQuery>,
) -> Result<ApiOk<RecommendationView>, ApiError> {
    let (domain, action) = domain_action(q.domain, q.action)?;
    let view = state
        .learner
        .recommend(domain.as_str(), action.as_str())
        .await?;
    Ok(ok(view))
}

/// `GET /api/v1/tasks/executions?…&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ExecutionsQuery {
    /// Only this domain's records (includes system domains).
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    domain: Option<String>,
    /// Only this action's records.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    action: Option<String>,
    /// Only this task's records.
    #[serde(default)]
    #[param(value_type = Option<uuid::Uuid>)]
    task_id: Option<String>,
    /// Only successful (true) or failed (false) attempts.
    #[serde(default)]
    success: Option<bool>,
    /// Only the records of this correlation ID.
    #[serde(default)]
    correlation_id: Option<String>,
    /// Finished at or after this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Finished before this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// Also the records of Jarvis's own system-* domains.
    #[serde(default)]
    include_system: Option<bool>,
    /// At most this many (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The nextCursor of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /api/v1/tasks/executions`: raw execution records, newest first, cursor-paginated;
/// records of the `system-*` domains only when asked for (`includeSystem=true`, a `domain` or a
/// `taskId` filter).
#[utoipa::path(get, path = "/api/v1/tasks/executions", tag = "tasks",
    params(ExecutionsQuery),
    responses(
        (status = 200, description = "A page of execution records, newest first.", body = Envelope<ExecutionPage>),
        (status = 400, description = "`invalid_query`, `invalid_name` or `invalid_id`.", body = ErrorEnvelope),
    ))]
pub async fn executions(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ExecutionsQuery>,
) -> Result<ApiOk<ExecutionPage>, ApiError> {
    let limit = limit(q.limit, 100)?;
    let before_id = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "cursor: not a cursor from a previous page")
        })?),
    };
    let domain = optional_name(q.domain, "domain")?;
    let task_id = q.task_id.as_deref().map(task_id).transpose()?;
    let filter = ExecutionFilter {
        include_system: q.include_system.unwrap_or(false) || domain.is_some() || task_id.is_some(),
        domain,
        action: optional_name(q.action, "action")?,
        task_id,
        success: q.success,
        correlation_id: q.correlation_id,
        since: time("since", q.since)?,
        until: time("until", q.until)?,
        before_id,
        // One more than asked: whether there is a next page, without an empty last page.
        limit: limit + 1,
    };
    let mut items = state.store.list_executions(&filter).await?;
    let next_cursor = page_end(&mut items, limit).map(|e| e.id.to_string());
    Ok(ok(ExecutionPage { items, next_cursor }))
}

/// An optional name from the query string, checked like a path segment.
fn optional_name(value: Option<String>, what: &str) -> Result<Option<String>, ApiError> {
    value
        .map(|v| path_name(&v, what).map(|n| n.to_string()))
        .transpose()
}
