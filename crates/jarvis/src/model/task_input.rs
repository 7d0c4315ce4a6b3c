//! What a caller submits (`POST /api/v1/execute`, `/tasks`, `/tasks/batch`), validated into a
//! [`NewTask`]. Every refusal names the field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::task::{NewTask, Task};
use crate::names::Name;

/// Largest accepted `parameters` object, serialised, in bytes.
pub const MAX_PARAMETERS_BYTES: usize = 64 * 1024;
/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Default number of attempts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Priorities are within ±this.
pub const MAX_PRIORITY: i32 = 1_000_000;
/// Longest per-attempt timeout, ms (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most tasks in one batch.
pub const MAX_BATCH: usize = 1_000;

/// The body of a submission. Unknown fields are refused. (Serializable: schedules keep the
/// task each tick submits as given.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"domain": "noop", "action": "report", "parameters": {"x": 1}})))]
pub struct TaskInput {
    /// Required: which agent runs it.
    #[schema(value_type = crate::names::Name, required)]
    pub domain: Option<String>,
    /// Required: what the agent is asked to do.
    #[schema(value_type = crate::names::Name, required)]
    pub action: Option<String>,
    /// A JSON object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Fill in the parameters left out (and the timeout, when none is given) from what was
    /// learned (see `crate::learning`). Unset: as the domain's agent says (`useLearned` of
    /// the agent, default false).
    #[serde(default)]
    pub use_learned: Option<bool>,
    /// Per-attempt timeout, 1..=3600000 ms.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3_600_000)]
    pub timeout_ms: Option<u64>,
    /// Attempts in all, 1..=100 (default 3).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// Higher runs first (default 0).
    #[serde(default)]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub priority: Option<i32>,
    /// ISO 8601 time before which it does not run.
    #[serde(default)]
    pub run_at: Option<String>,
    /// The same key returns the same task (also given as the `Idempotency-Key` header).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Accept the task although its domain has no agent yet: it waits (spending no attempt)
    /// until one is registered. Without it such a task is refused at submission.
    #[serde(default)]
    pub wait_for_agent: Option<bool>,
}

/// A refused field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    /// The field, as the caller wrote it (`domain`, `tasks[3].runAt`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> InputError {
    InputError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl TaskInput {
    /// Validates the input; `prefix` is prepended to field names (`tasks[3].`).
    pub fn validate(
        self,
        prefix: &str,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<NewTask, InputError> {
        let f = |name: &str| format!("{prefix}{name}");
        let name = |field: &str, raw: Option<String>| -> Result<Name, InputError> {
            let raw = raw.ok_or_else(|| refuse(&f(field), "is required"))?;
            Name::parse(&raw).map_err(|e| refuse(&f(field), e.to_string()))
        };
        let domain = name("domain", self.domain)?;
        let action = name("action", self.action)?;
        let parameters = match self.parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => {
                if holds_nul(&v) {
                    return Err(refuse(
                        &f("parameters"),
                        "must not contain the NUL character (\\u0000): PostgreSQL cannot store \
                         it, so neither backend accepts it",
                    ));
                }
                let size = serde_json::to_vec(&v)
                    .map(|b| b.len())
                    .unwrap_or(usize::MAX);
                if size > MAX_PARAMETERS_BYTES {
                    return Err(refuse(
                        &f("parameters"),
                        format!("is {size} bytes; at most {MAX_PARAMETERS_BYTES} are accepted"),
                    ));
                }
                v
            }
            Some(_) => return Err(refuse(&f("parameters"), "must be a JSON object")),
        };
        let timeout_ms = match self.timeout_ms {
            Some(t) if !(1..=MAX_TIMEOUT_MS).contains(&t) => {
                return Err(refuse(
                    &f("timeoutMs"),
                    format!("must be from 1 to {MAX_TIMEOUT_MS}"),
                ))
            }
            t => t,
        };
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(refuse(
                &f("maxAttempts"),
                format!("must be from 1 to {MAX_ATTEMPTS}"),
            ));
        }
        let priority = self.priority.unwrap_or(0);
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(refuse(
                &f("priority"),
                format!("must be from -{MAX_PRIORITY} to {MAX_PRIORITY}"),
            ));
        }
        let run_at = match self.run_at {
            None => now,
            Some(raw) => {
                let t = DateTime::parse_from_rfc3339(raw.trim())
                    .map_err(|e| {
                        refuse(
                            &f("runAt"),
                            format!("{raw:?} is not an ISO 8601 time with a zone ({e})"),
                        )
                    })?
                    .with_timezone(&Utc);
                use chrono::SubsecRound;
                t.trunc_subsecs(6).max(now)
            }
        };
        let idempotency_key = match self.idempotency_key {
            None => None,
            Some(k) => {
                if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
                    return Err(refuse(
                        &f("idempotencyKey"),
                        format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                    ));
                }
                if k.chars().any(|c| c.is_control()) {
                    return Err(refuse(
                        &f("idempotencyKey"),
                        "must not contain control characters",
                    ));
                }
                Some(k)
            }
        };
        Ok(NewTask {
            // Time-ordered (UUIDv7, monotonic within the process): the primary key doubles as
            // the creation order (task listing), and new rows land at the index's right edge.
            id: Uuid::now_v7(),
            domain,
            action,
            parameters,
            learned_parameters: None,
            priority,
            run_at,
            max_attempts,
            timeout_ms,
            idempotency_key,
            correlation_id: correlation_id.to_string(),
            created_at: now,
            notify_done: false,
            traceparent: None,
        })
    }
}

/// Whether a JSON value holds the NUL character in a string or a key (PostgreSQL's `jsonb` and
/// `text` refuse it: a task holding one could be stored on SQLite but not on PostgreSQL).
pub fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(holds_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The parameters the caller gave: all of `parameters`, or with `useLearned` only those named
/// in `learnedParameters.given` (the others were learned, and may differ from run to run).
pub fn given_parameters(parameters: &Value, learned: Option<&Value>) -> Value {
    let Some(given) = learned
        .and_then(|l| l.get("given"))
        .and_then(Value::as_array)
    else {
        return parameters.clone();
    };
    let names: Vec<&str> = given.iter().filter_map(Value::as_str).collect();
    match parameters {
        Value::Object(all) => Value::Object(
            all.iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a request that reused an idempotency key changed against the task stored under it:
/// the names of the fields that differ (`domain`, `action`, `parameters`: the given ones, see
/// [`given_parameters`]); empty when it is the same request.
pub fn idempotency_differences(existing: &Task, new: &NewTask) -> Vec<&'static str> {
    let mut differ = Vec::new();
    if existing.domain != new.domain {
        differ.push("domain");
    }
    if existing.action != new.action {
        differ.push("action");
    }
    let before = given_parameters(&existing.parameters, existing.learned_parameters.as_ref());
    let now = given_parameters(&new.parameters, new.learned_parameters.as_ref());
    if before != now {
        differ.push("parameters");
    }
    differ
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value, expected: &str) {
        let input: TaskInput = serde_json::from_value(body).unwrap();
        let err = input
            .validate("", "req-x", crate::clock::now())
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn refusals_name_the_field() {
        check(json!({"action": "a"}), "domain: is required");
        check(
            json!({"domain": "a b", "action": "a"}),
            "domain: a name may only hold A-Z a-z 0-9 _ . - (found ' ')",
        );
        check(
            json!({"domain": "d", "action": "a", "parameters": [1]}),
            "parameters: must be a JSON object",
        );
        check(
            json!({"domain": "d", "action": "a", "maxAttempts": 0}),
            "maxAttempts: must be from 1 to 100",
        );
        check(
            json!({"domain": "d", "action": "a", "timeoutMs": 0}),
            "timeoutMs: must be from 1 to 3600000",
        );
        check(
            json!({"domain": "d", "action": "a", "idempotencyKey": ""}),
            "idempotencyKey: must be 1 to 200 characters",
        );
        let big = "x".repeat(MAX_PARAMETERS_BYTES);
        let input: TaskInput =
            serde_json::from_value(json!({"domain": "d", "action": "a", "parameters": {"x": big}}))
                .unwrap();
        let err = input
            .validate("tasks[2].", "c", crate::clock::now())
            .unwrap_err();
        assert_eq!(err.field, "tasks[2].parameters");
    }

    #[test]
    fn run_at_is_parsed_and_never_in_the_past() {
        let now = crate::clock::now();
        let input: TaskInput = serde_json::from_value(
            json!({"domain": "d", "action": "a", "runAt": "2000-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(input.validate("", "c", now).unwrap().run_at, now);
        let input: TaskInput =
            serde_json::from_value(json!({"domain": "d", "action": "a", "runAt": "tomorrow"}))
                .unwrap();
        assert!(input
            .validate("", "c", now)
            .unwrap_err()
            .to_string()
            .starts_with("runAt: \"tomorrow\" is not an ISO 8601 time"));
    }
}

#[cfg(test)]
mod idempotency_tests {
    use super::*;
    use serde_json::json;

    fn new(body: Value) -> NewTask {
        let input: TaskInput = serde_json::from_value(body).unwrap();
        input.validate("", "c", crate::clock::now()).unwrap()
    }

    #[test]
    fn the_same_request_has_no_differences() {
        let a = new(json!({"domain": "d", "action": "a", "parameters": {"x": 1}, "priority": 5}));
        let stored = Task::from_new(&a);
        // Other fields (priority, attempts) are not part of the comparison.
        let b = new(json!({"domain": "d", "action": "a", "parameters": {"x": 1}}));
        assert!(idempotency_differences(&stored, &b).is_empty());
    }

    #[test]
    fn domain_action_and_parameters_are_compared() {
        let stored = Task::from_new(&new(
            json!({"domain": "d", "action": "a", "parameters": {"x": 1}}),
        ));
        let b = new(json!({"domain": "e", "action": "b", "parameters": {"x": 2}}));
        assert_eq!(
            idempotency_differences(&stored, &b),
            ["domain", "action", "parameters"]
        );
        let b = new(json!({"domain": "d", "action": "a"}));
        assert_eq!(idempotency_differences(&stored, &b), ["parameters"]);
    }

    #[test]
    fn learned_parameters_are_not_part_of_the_request() {
        let mut a = new(json!({"domain": "d", "action": "a", "parameters": {"x": 1}}));
        a.parameters = json!({"x": 1, "genre": "pop"});
        a.learned_parameters = Some(json!({"given": ["x"], "parameters": {"genre": {}}}));
        let stored = Task::from_new(&a);
        let mut b = new(json!({"domain": "d", "action": "a", "parameters": {"x": 1}}));
        b.parameters = json!({"x": 1, "genre": "rock"});
        b.learned_parameters = Some(json!({"given": ["x"], "parameters": {"genre": {}}}));
        assert!(idempotency_differences(&stored, &b).is_empty());
        let plain = new(json!({"domain": "d", "action": "a", "parameters": {"x": 1}}));
        assert!(idempotency_differences(&stored, &plain).is_empty());
    }
}
