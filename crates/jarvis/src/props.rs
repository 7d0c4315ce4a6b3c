//! Property tests of every parser that takes outside input: names, correlation IDs and
//! `traceparent` headers, time bounds, cron and period schedules, task submissions, service and
//! agent definitions, the config file and environment values, agent answers, monitored
//! services' bodies, and the model providers' answers and server-sent event streams.
//!
//! The property is the same everywhere: whatever arrives, the parser answers (accepts or
//! refuses with a message) and never panics; where a parser has an invariant that is cheap to
//! state (an accepted name satisfies the grammar, a stream split anywhere parses to the same
//! events), it is checked too. The HTTP layer (no 5xx for any request) is checked in
//! `tests/api/props.rs`; the private readers next to their code: the Redis reply reader in
//! `ai::cache`'s tests, OpenAI's stream usage and error bodies in `ai`'s tests.
//!
//! The inputs are random but not blind: JSON values are built from the field names and words
//! the parsers look for (so that the generated objects get past the first `match`), mixed with
//! wrong types, huge and negative numbers and arbitrary text. The seed is fixed, so a run is
//! deterministic; a failure found once is kept as a named regression test below.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{Map, Value};

/// The seed of every property here (a run is reproducible; change it to explore).
const SEED: u64 = 0x4a41_5256_4953;

/// `cases` cases from the fixed seed, no persistence file (regressions are named tests).
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Field names the parsers look for (task input, services, agents, schedules, agent answers,
/// provider answers and streams, chat requests, config file sections).
const KEYS: &[&str] = &[
    "domain",
    "action",
    "parameters",
    "useLearned",
    "timeoutMs",
    "maxAttempts",
    "priority",
    "runAt",
    "idempotencyKey",
    "waitForAgent",
    "url",
    "intervalMs",
    "critical",
    "expectedStatus",
    "method",
    "expectBody",
    "pointer",
    "equals",
    "degradedLatencyMs",
    "cron",
    "everyMs",
    "timezone",
    "task",
    "paused",
    "missed",
    "catchUpLimit",
    "success",
    "impactScore",
    "output",
    "costUsd",
    "error",
    "type",
    "index",
    "delta",
    "usage",
    "message",
    "content_block",
    "content",
    "candidates",
    "parts",
    "text",
    "functionCall",
    "name",
    "args",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "totalTokenCount",
    "input_tokens",
    "output_tokens",
    "stop_reason",
    "partial_json",
    "id",
    "model",
    "data",
    "embedding",
    "embeddings",
    "values",
    "messages",
    "role",
    "tools",
    "tool_calls",
    "tool_call_id",
    "tool_choice",
    "function",
    "arguments",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "input",
    "dimensions",
    "response_format",
    "image_url",
    "detail",
    "promptFeedback",
    "blockReason",
    "thoughtSignature",
    "functionResponse",
    "status",
    "code",
    "healthUrl",
    "failureThreshold",
    "successThreshold",
    "halfOpenMaxCalls",
    "server",
    "services",
    "agents",
    "breakers",
    "learning",
    "schedules",
    "ai",
    "alerts",
    "spaces",
    "budgets",
    "prices",
    "groups",
    "deployments",
    "weight",
    "fallbacks",
    "rules",
    "webhooks",
    "port",
    "bind",
    "logLevel",
    "seed",
    "user",
];

/// Words the parsers compare strings with.
const WORDS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "text_delta",
    "input_json_delta",
    "tool_use",
    "text",
    "end_turn",
    "max_tokens",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "user",
    "assistant",
    "system",
    "tool",
    "function",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "skip",
    "catchUp",
    "UTC",
    "Europe/Paris",
    "* * * * *",
    "*/5 * * * * *",
    "@daily",
    "http://127.0.0.1:9/agent",
    "https://127.0.0.1:9",
    "http://169.254.169.254/",
    "ftp://x",
    "2026-12-06T10:00:00Z",
    "2026-12-06",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "openai/gpt-4o",
    "anthropic/claude-x",
    "gemini/gemini-x",
    "data:image/png;base64,AAAA",
    "system-health",
    "monitor-services",
    "GET",
    "HEAD",
    "POST",
    "/status",
    "",
    " ",
    "\u{0}",
    "é",
    "🦀",
    "{",
    "[DONE]",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[ -~]{0,40}",
        2 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-zA-Z0-9._:-]{0,130}",
        1 => proptest::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |x| x.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(vec![
            0i64,
            -1,
            1,
            2,
            100,
            101,
            1_000,
            3_600_000,
            3_600_001,
            i64::MAX,
            i64::MIN,
            1 << 53,
            u32::MAX as i64 + 1,
        ])
        .prop_map(Value::from),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-1e308)),
        Just(serde_json::json!(u64::MAX)),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        4 => text().prop_map(Value::String),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => text(),
    ]
    .boxed()
}

/// Any JSON value, biased towards objects with the fields the parsers read.
pub(crate) fn json() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                1 => proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                3 => proptest::collection::vec((key(), inner), 0..7)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// A JSON object whose fields are drawn from `keys` (and sometimes others).
fn object_of(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::collection::vec(
        (
            prop_oneof![
                8 => proptest::sample::select(keys).prop_map(str::to_string),
                1 => key(),
            ],
            prop_oneof![3 => leaf(), 1 => json()],
        ),
        0..keys.len().min(8) + 1,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    .boxed()
}

/// Times from 1970 to 2200 (what a clock says; the parsers' input is the text).
fn time() -> BoxedStrategy<DateTime<Utc>> {
    (0i64..7_258_118_400_000)
        .prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap())
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Names, correlation IDs, trace context, time bounds

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn names_accept_only_the_grammar(raw in text()) {
        if let Ok(name) = crate::names::Name::parse(&raw) {
            prop_assert_eq!(name.as_str(), raw.as_str());
            prop_assert!((1..=64).contains(&raw.len()));
            prop_assert!(raw != "." && raw != "..");
            prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
        }
    }

    #[test]
    fn correlation_ids_accept_only_sane_tokens(raw in text()) {
        if let Some(id) = crate::correlation::CorrelationId::parse(&raw) {
            prop_assert_eq!(id.as_str(), raw.as_str());
            prop_assert!(raw.len() <= 128 && !raw.is_empty());
            prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
        }
    }

    #[test]
    fn traceparent_never_panics_and_round_trips(
        raw in prop_oneof![
            text(),
            // A valid header with one character replaced or the header cut somewhere.
            (
                "00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]",
                any::<prop::sample::Index>(),
                any::<char>(),
                any::<bool>(),
            )
                .prop_map(|(v, at, c, cut)| {
                    let i = at.index(v.len());
                    if cut { v[..i].to_string() } else { format!("{}{c}{}", &v[..i], &v[i + 1..]) }
                }),
            "[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]{0,10})?",
        ]
    ) {
        if let Some(ctx) = crate::trace::context::TraceContext::parse(&raw) {
            if raw.trim().starts_with("00-") {
                prop_assert_eq!(ctx.to_string(), raw.trim());
            }
            prop_assert!(ctx.trace_id != [0; 16] && ctx.span_id != [0; 8]);
        }
    }

    #[test]
    fn time_bounds_never_panic(
        raw in prop_oneof![
            text(),
            "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            Just("9999-12-31".to_string()),
            Just("+262143-12-31".to_string()),
        ]
    ) {
        use crate::timeparse::{parse_bound, Bound};
        let since = parse_bound(&raw, Bound::Since);
        let until = parse_bound(&raw, Bound::Until);
        // A text is a bound of both ends or of neither.
        prop_assert_eq!(since.is_ok(), until.is_ok(), "{:?}", raw);
        if let (Ok(s), Ok(u)) = (since, until) {
            prop_assert!(s <= u);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules

/// One cron field: numbers (also out of range), ranges, steps, lists, names, `L`, `W`, `#`, `?`.
fn cron_field() -> BoxedStrategy<String> {
    let atom = prop_oneof![
        3 => (0u64..70).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => proptest::sample::select(vec![
            "*", "?", "L", "W", "LW", "5L", "15W", "MON", "fri", "JAN", "dec", "SUN", "7", "0",
            "-1", "",
        ])
        .prop_map(str::to_string),
    ];
    let atom = atom.boxed();
    prop_oneof![
        3 => atom.clone(),
        2 => (atom.clone(), atom.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        2 => (atom.clone(), 0u64..100).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (atom.clone(), atom.clone(), any::<u32>()).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
        1 => proptest::collection::vec(atom.clone(), 1..4).prop_map(|v| v.join(",")),
        1 => (atom, 0u64..9).prop_map(|(a, n)| format!("{a}#{n}")),
    ]
    .boxed()
}

fn cron_expr() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(cron_field(), 5..=6).prop_map(|f| f.join(" ")),
        1 => proptest::collection::vec(cron_field(), 0..9).prop_map(|f| f.join(" ")),
        1 => proptest::sample::select(vec![
            "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
            "@reboot", "@", "@every 5m", "0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 *",
            "59 23 31 12 7", "* * * * * *",
        ])
        .prop_map(str::to_string),
        1 => text(),
    ]
    .boxed()
}

fn timezone() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        3 => Just(None),
        2 => proptest::sample::select(vec![
            "UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
            "Pacific/Chatham", "Etc/GMT+12", "Etc/GMT-14", "America/Sao_Paulo",
        ])
        .prop_map(|s| Some(s.to_string())),
        1 => text().prop_map(Some),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn cron_timings_never_panic(cron in cron_expr(), tz in timezone(), t in time()) {
        use crate::model::schedule::Timing;
        if let Ok(timing) = Timing::parse(Some(&cron), None, tz.as_deref()) {
            if let Some(next) = timing.next_after(t) {
                prop_assert!(next > t, "{cron}: {next} after {t}");
            }
            if let Some(prev) = timing.latest_at_or_before(t) {
                prop_assert!(prev <= t, "{cron}: {prev} before {t}");
            }
        }
    }

    #[test]
    fn period_timings_never_panic(
        every in prop_oneof![any::<u64>(), 0u64..10_000, Just(u64::MAX), Just(i64::MAX as u64)],
        tz in timezone(),
        t in time(),
    ) {
        use crate::model::schedule::Timing;
        if let Ok(timing) = Timing::parse(None, Some(every), tz.as_deref()) {
            if let Some(next) = timing.next_after(t) {
                prop_assert!(next > t);
            }
            if let Some(prev) = timing.latest_at_or_before(t) {
                prop_assert!(prev <= t);
            }
        }
    }

    #[test]
    fn schedule_definitions_never_panic(
        body in prop_oneof![
            json(),
            (
                prop_oneof![cron_expr().prop_map(Value::from), Just(Value::Null)],
                prop_oneof![number(), Just(Value::Null)],
                timezone(),
                object_of(&["domain", "action", "parameters", "timeoutMs", "maxAttempts",
                            "priority", "useLearned", "runAt", "idempotencyKey"]),
                object_of(&["paused", "missed", "catchUpLimit"]),
            )
                .prop_map(|(cron, every, tz, task, mut rest)| {
                    let o = rest.as_object_mut().unwrap();
                    if !cron.is_null() { o.insert("cron".into(), cron); }
                    if !every.is_null() { o.insert("everyMs".into(), every); }
                    if let Some(tz) = tz { o.insert("timezone".into(), tz.into()); }
                    o.insert("task".into(), task);
                    rest
                }),
        ],
        now in time(),
        due in time(),
    ) {
        use crate::model::schedule::ScheduleInput;
        let Ok(input) = serde_json::from_value::<ScheduleInput>(body) else { return Ok(()) };
        let name = crate::names::Name::parse("props").unwrap();
        if let Ok(spec) = input.into_spec(name, now) {
            let plan = spec.plan(due, now);
            prop_assert!(plan.run.windows(2).all(|w| w[0] < w[1]));
            let _ = spec.upcoming(now, 5);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Task submissions, services, agents

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn task_inputs_never_panic(
        body in prop_oneof![
            json(),
            object_of(&["domain", "action", "parameters", "useLearned", "timeoutMs",
                        "maxAttempts", "priority", "runAt", "idempotencyKey", "waitForAgent"]),
        ],
        now in time(),
    ) {
        use crate::model::task_input::TaskInput;
        let Ok(input) = serde_json::from_value::<TaskInput>(body) else { return Ok(()) };
        if let Ok(task) = input.validate("", "req-props", now) {
            prop_assert!(task.run_at >= now);
            prop_assert!(task.parameters.is_object());
            prop_assert!(!crate::model::task_input::holds_nul(&task.parameters));
        }
    }

    #[test]
    fn service_and_agent_definitions_never_panic(
        body in prop_oneof![
            json(),
            object_of(&["url", "intervalMs", "timeoutMs", "critical", "expectedStatus",
                        "method", "expectBody", "degradedLatencyMs", "healthUrl", "useLearned"]),
        ],
        now in time(),
    ) {
        use crate::model::agent::AgentInput;
        use crate::model::service::ServiceInput;
        let name = crate::names::Name::parse("props").unwrap();
        if let Ok(s) = serde_json::from_value::<ServiceInput>(body.clone()) {
            let _ = s.into_spec(name.clone(), now);
        }
        if let Ok(a) = serde_json::from_value::<AgentInput>(body) {
            let _ = a.into_spec(name, now);
        }
    }

    #[test]
    fn service_body_conditions_never_panic(pointer in text(), equals in json(), body in json()) {
        use crate::model::service::BodyCondition;
        let c = BodyCondition { pointer, equals: Some(equals) };
        let _ = c.check(&body);
        let c = BodyCondition { equals: None, ..c };
        let _ = c.check(&body);
    }

    #[test]
    fn agent_answers_never_panic(
        status in prop_oneof![200u16..300, any::<u16>()],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            object_of(&["success", "impactScore", "output", "costUsd", "error"])
                .prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
    ) {
        use crate::tasks::agents::{read_answer, AgentAnswer};
        let r = read_answer(status, &body);
        match r.answer {
            AgentAnswer::Failure { reason } => prop_assert!(!reason.contains('\0')),
            AgentAnswer::Success { impact_score, cost_usd, output, .. } => {
            prop_assert!((200..300).contains(&status));
            prop_assert!(!output.as_ref().is_some_and(crate::model::task_input::holds_nul));
            prop_assert!(impact_score.is_none_or(|s| (0.0..=100.0).contains(&s)));
            prop_assert!(cost_usd.is_none_or(|c| c >= 0.0 && c.is_finite()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration: environment values and the config file

/// Values a variable may be set to: its kind's edges and anything else.
fn env_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => text(),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => proptest::sample::select(vec![
            "0", "1", "-1", "18446744073709551615", "18446744073709551616", "1e3", "0.5", "1.5",
            "NaN", "inf", "true", "FALSE", "yes", "off", "~", "~/x", "~root/x", "/", "",
            "postgres://u:p@127.0.0.1:1/db", "sqlite://x.db", "http://127.0.0.1:1", "info",
            "json", "production", "development", "a,b", "=", "x=y,z",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// The settings a random environment may set: all but those with process-wide effects (the
/// outbound allow-list is global) or that read files named by the value.
fn settable() -> Vec<&'static str> {
    crate::config::all_settings()
        .flat_map(|s| s.names())
        .filter(|n| !matches!(*n, "JARVIS_OUTBOUND_ALLOW" | "JARVIS_CONFIG"))
        .collect()
}

fn toml_section() -> BoxedStrategy<(String, Value)> {
    let named = |keys: &'static [&'static str]| {
        proptest::collection::btree_map(
            prop_oneof![4 => "[a-z][a-z0-9_.-]{0,12}", 1 => text()],
            object_of(keys),
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
    };
    prop_oneof![
        (
            Just("services".to_string()),
            named(&[
                "url",
                "intervalMs",
                "timeoutMs",
                "critical",
                "expectedStatus",
                "method",
                "expectBody",
                "degradedLatencyMs"
            ])
        ),
        (
            Just("agents".to_string()),
            named(&["url", "timeoutMs", "useLearned", "healthUrl"])
        ),
        (
            Just("breakers".to_string()),
            named(&[
                "failureThreshold",
                "timeoutMs",
                "successThreshold",
                "halfOpenMaxCalls"
            ])
        ),
        (
            Just("schedules".to_string()),
            named(&[
                "cron",
                "everyMs",
                "timezone",
                "task",
                "paused",
                "missed",
                "catchUpLimit"
            ])
        ),
        (
            Just("server".to_string()),
            object_of(&["port", "bind", "logLevel"])
        ),
        (Just("learning".to_string()), object_of(&["spaces", "seed"])),
        (
            Just("ai".to_string()),
            object_of(&["budgets", "prices", "groups"])
        ),
        (
            Just("alerts".to_string()),
            object_of(&["rules", "webhooks"])
        ),
        (key(), json()),
    ]
    .boxed()
}

/// JSON → TOML where TOML can say it (no nulls, no mixed arrays: those are dropped).
fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn setting_values_never_panic(index in any::<prop::sample::Index>(), raw in env_value()) {
        let all: Vec<_> = crate::config::all_settings().collect();
        let s = all[index.index(all.len())];
        if let Ok(parsed) = s.kind.parse(raw.trim()) {
            let _ = parsed;
        }
    }

    #[test]
    fn environments_never_panic(
        vars in proptest::collection::vec((any::<prop::sample::Index>(), env_value()), 0..6),
    ) {
        let names = settable();
        let env: HashMap<String, String> = vars
            .into_iter()
            .map(|(i, v)| (names[i.index(names.len())].to_string(), v))
            .collect();
        let _ = crate::config::Config::from_env_map(&env, None);
    }

    #[test]
    fn config_files_never_panic(
        text in prop_oneof![
            1 => text(),
            4 => proptest::collection::vec(toml_section(), 0..4).prop_filter_map(
                "representable in TOML",
                |sections| {
                    let table: Map<String, Value> = sections.into_iter().collect();
                    toml::to_string(&to_toml(&Value::Object(table))?).ok()
                },
            ),
        ]
    ) {
        let _ = crate::config::file::parse_file(std::path::Path::new("props.toml"), &text);
    }
}

// ---------------------------------------------------------------------------------------------
// Model providers: requests from callers, answers and streams from providers

fn sse_text() -> BoxedStrategy<Vec<u8>> {
    let line = prop_oneof![
        3 => json().prop_map(|v| format!("data: {v}")),
        2 => text().prop_map(|t| format!("data:{t}")),
        2 => proptest::sample::select(WORDS).prop_map(|w| format!("event: {w}")),
        1 => Just(String::new()),
        1 => Just(": keep-alive".to_string()),
        1 => text(),
    ];
    let end = proptest::sample::select(vec!["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"]);
    prop_oneof![
        4 => proptest::collection::vec((line, end), 0..12).prop_map(|lines| {
            lines.into_iter().flat_map(|(l, e)| format!("{l}{e}").into_bytes()).collect()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
    .boxed()
}

/// A provider's stream events: JSON shaped like its events, or anything.
fn provider_events() -> BoxedStrategy<Vec<crate::ai::sse::SseEvent>> {
    let event = (
        prop_oneof![
            Just(None),
            proptest::sample::select(WORDS).prop_map(|w| Some(w.to_string()))
        ],
        prop_oneof![
            4 => object_of(&["type", "index", "delta", "usage", "message", "content_block",
                             "error", "candidates", "usageMetadata", "promptFeedback"])
                .prop_map(|v| v.to_string()),
            2 => json().prop_map(|v| v.to_string()),
            1 => text(),
        ],
    )
        .prop_map(|(event, data)| crate::ai::sse::SseEvent { event, data });
    proptest::collection::vec(event, 0..10).boxed()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn sse_streams_parse_the_same_however_they_are_cut(
        bytes in sse_text(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        use crate::ai::sse::SseParser;
        let mut whole = SseParser::default();
        let mut expected = whole.push(&bytes);
        expected.extend(whole.finish());
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut parts = SseParser::default();
        let mut got = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([bytes.len()]) {
            got.extend(parts.push(&bytes[from..to]));
            from = to;
        }
        got.extend(parts.finish());
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn anthropic_streams_never_panic(events in provider_events(), usage in any::<bool>()) {
        use crate::ai::chat::ChunkWriter;
        use crate::ai::sse::StreamTranslator;
        let w = ChunkWriter::new("msg_1".into(), "claude-x".into(), usage);
        let mut t = crate::ai::anthropic::Translator::default();
        let mut out = Vec::new();
        for e in &events {
            if t.event(&w, e, &mut out).is_err() {
                break;
            }
        }
        let _ = t.end(&w, &mut out);
        let _ = t.usage();
        prop_assert!(std::str::from_utf8(&out).is_ok());
    }

    #[test]
    fn gemini_streams_never_panic(events in provider_events(), usage in any::<bool>()) {
        use crate::ai::chat::ChunkWriter;
        use crate::ai::sse::StreamTranslator;
        let w = ChunkWriter::new("r".into(), "gemini-x".into(), usage);
        let mut t = crate::ai::gemini::Translator::default();
        let mut out = Vec::new();
        for e in &events {
            if t.event(&w, e, &mut out).is_err() {
                break;
            }
        }
        let _ = t.end(&w, &mut out);
        let _ = t.usage();
        prop_assert!(std::str::from_utf8(&out).is_ok());
    }

    #[test]
    fn provider_answers_never_panic(
        answer in prop_oneof![
            json(),
            object_of(&["id", "model", "type", "role", "content", "stop_reason", "usage",
                        "candidates", "usageMetadata", "promptFeedback", "data", "models",
                        "embedding", "embeddings", "error"]),
        ],
        status in any::<u16>(),
        raw in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        use crate::ai::{anthropic, gemini, openai};
        let _ = anthropic::completion(&answer, "claude-x");
        let _ = anthropic::models(&answer);
        let _ = anthropic::usage(&answer);
        let _ = anthropic::error(status, &raw);
        let _ = anthropic::error(status, answer.to_string().as_bytes());
        let _ = gemini::completion(&answer, "gemini-x");
        let _ = gemini::models(&answer);
        let _ = gemini::usage(&answer);
        let _ = gemini::embedding_vectors(&answer);
        let _ = gemini::error(status, &raw);
        let _ = gemini::error(status, answer.to_string().as_bytes());
        let _ = openai::models(&raw);
        let _ = openai::models(answer.to_string().as_bytes());
    }

    #[test]
    fn chat_requests_never_panic(
        body in prop_oneof![
            json(),
            (
                object_of(&["model", "stream", "stream_options", "max_tokens", "temperature",
                            "top_p", "n", "stop", "tools", "tool_choice", "response_format",
                            "max_completion_tokens", "user"]),
                proptest::collection::vec(
                    object_of(&["role", "content", "name", "tool_calls", "tool_call_id"]),
                    0..4,
                ),
            )
                .prop_map(|(mut body, messages)| {
                    body.as_object_mut().unwrap().insert("messages".into(), messages.into());
                    body
                }),
        ],
        model in prop_oneof![text(), Just("gemini-x".to_string())],
    ) {
        use crate::ai::{anthropic, chat::ChatRequest, gemini};
        let _ = gemini::embedding_input(&body);
        let _ = gemini::model_path(&model);
        if let Ok(request) = ChatRequest::parse(&body) {
            let _ = anthropic::messages_request(&request, &model);
            let _ = gemini::generate_request(&request);
        }
    }

    #[test]
    fn retry_after_headers_never_panic(
        ms in prop_oneof![text(), any::<f64>().prop_map(|x| x.to_string()), Just("1e300".to_string())],
        s in prop_oneof![text(), any::<f64>().prop_map(|x| x.to_string()), Just("1e300".to_string())],
        which in 0u8..3,
    ) {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        if which != 1 {
            if let Ok(v) = HeaderValue::from_str(&ms) {
                h.insert("retry-after-ms", v);
            }
        }
        if which != 0 {
            if let Ok(v) = HeaderValue::from_str(&s) {
                h.insert("retry-after", v);
            }
        }
        let d = crate::ai::route::retry_after(&h);
        prop_assert!(d <= crate::ai::route::MAX_COOLDOWN);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: the failing cases the properties found, kept by name.
