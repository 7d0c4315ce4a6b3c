//! Tests of the configuration: the rules of each setting, driven by the declarations where
//! they are the same for every setting of a kind, and the config file's checks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::setting::{Default, Kind, Mask};
use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_err(pairs: &[(&str, &str)], expected: &str) {
    let err = Config::from_env_map(&vars(pairs), None).unwrap_err();
    assert_eq!(err.to_string(), expected);
}

/// The configuration with a config file holding `text` (and the environment `pairs`).
fn with_file(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jarvis.toml");
    std::fs::write(&path, text).unwrap();
    Config::from_env_map(&vars(pairs), Some(path))
}

/// The message of a refused config file, without the file's (temporary) path.
fn file_err(text: &str) -> String {
    match with_file(text, &[]).unwrap_err() {
        ConfigError::File { message, .. } => message,
        other => panic!("not a file error: {other}"),
    }
}

#[test]
fn defaults_need_no_environment() {
    let c = Config::from_env_map(&vars(&[]), None).unwrap();
    assert_eq!(c.server.port, 4000);
    assert_eq!(c.server.environment, Environment::Development);
    assert_eq!(c.telemetry.log_level, LogLevel::Info);
    assert_eq!(c.breakers.defaults, BreakerDefaults::default());
    assert!(
        matches!(c.store, StoreConfig::Sqlite { ref path } if path == Path::new("data/jarvis.db"))
    );
    assert_eq!(c.telemetry.log_dir, PathBuf::from("logs"));
    assert_eq!(c.tasks, TaskSettings::default());
    assert_eq!(c.health, HealthConfig::default());
    assert_eq!(c.learning, LearningSettings::default());
}

#[test]
fn wrong_values_name_variable_value_and_expectation() {
    for (var, value, expected) in [
        (
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
            "abc",
            "a whole number from 1 to 1000",
        ),
        ("PORT", "99999", "a whole number from 0 to 65535"),
        (
            "LOG_LEVEL",
            "loud",
            "one of error, warn, info, debug, trace",
        ),
        ("LOG_FORMAT", "xml", "json or pretty"),
        ("CIRCUIT_BREAKER_ENABLED", "maybe", "true or false"),
        ("NODE_ENV", "staging", "production or development"),
        (
            "CIRCUIT_BREAKER_TIMEOUT_MS",
            "-5",
            "a whole number from 1 to 86400000",
        ),
        (
            "JARVIS_LEARNING_EXPLORATION",
            "1.5",
            "a share from 0 to 1, such as 0.05",
        ),
        ("JARVIS_BIND", "localhost", "an IP address such as 0.0.0.0"),
        (
            "OPENAI_BASE_URL",
            "api.openai.com",
            "an http:// or https:// URL with a host",
        ),
        (
            "JARVIS_METRICS_NAMESPACE",
            "AWS/Jarvis",
            "a CloudWatch namespace (A-Z a-z 0-9 . _ - / # :, not starting with AWS/)",
        ),
    ] {
        check_err(
            &[(var, value)],
            &format!("invalid {var}={value:?}: expected {expected}"),
        );
    }
}

/// Every whole-number setting takes its bounds and refuses one past them, naming itself and
/// its range, under each of its names.
#[test]
fn every_range_is_enforced_under_every_name() {
    for s in all_settings() {
        let Kind::Int { min, max } = s.kind else {
            continue;
        };
        for name in s.names() {
            for ok in [min, max] {
                let mut env = vars(&[(name, &ok.to_string())]);
                // REDIS_PORT is read only with a host.
                env.insert("REDIS_HOST".into(), "127.0.0.1".into());
                env.insert("DATABASE_URL".into(), "postgres://db/jarvis".into());
                // The longest backoff may not be shorter than the first.
                if name == tasks::RETRY_BASE_MS.var {
                    env.insert(tasks::RETRY_MAX_MS.var.into(), max.to_string());
                }
                if name == tasks::RETRY_MAX_MS.var {
                    env.insert(tasks::RETRY_BASE_MS.var.into(), "1".into());
                }
                if let Err(e) = Config::from_env_map(&env, None) {
                    panic!("{name}={ok} was refused: {e}");
                }
            }
            let mut bad = vec![(max + 1).to_string(), "x".to_string()];
            if min > 0 {
                bad.push((min - 1).to_string());
            }
            for raw in bad {
                let env = vars(&[
                    (name, raw.as_str()),
                    ("REDIS_HOST", "127.0.0.1"),
                    ("DATABASE_URL", "postgres://db/jarvis"),
                ]);
                let err = Config::from_env_map(&env, None).unwrap_err().to_string();
                assert_eq!(
                    err,
                    format!("invalid {name}={raw:?}: expected a whole number from {min} to {max}")
                );
            }
        }
    }
}

#[test]
fn every_default_is_valid_and_documented() {
    for s in all_settings() {
        if let Default::Value(v) = s.default {
            assert!(s.kind.parse(v).is_ok(), "{}: default {v:?} refused", s.var);
        }
        assert!(!s.help.is_empty(), "{} has no help", s.var);
    }
}

#[test]
fn names_and_view_paths_are_unique() {
    let mut names = HashSet::new();
    let mut views = HashSet::new();
    for s in all_settings() {
        for n in s.names() {
            assert!(names.insert(n), "{n} is declared twice");
        }
        assert!(views.insert(s.view), "{} is shown twice", s.view);
    }
}

/// Every declaration is read (so none is documented but ignored), and shown by `config check`.
#[test]
fn every_setting_is_read_and_shown() {
    let c = Config::from_env_map(
        &vars(&[
            ("DATABASE_URL", "postgres://db/jarvis"),
            ("REDIS_HOST", "127.0.0.1"),
        ]),
        None,
    )
    .unwrap();
    let view = c.masked_view();
    for s in all_settings() {
        let pointer = format!("/{}", s.view.replace('.', "/"));
        assert!(view.pointer(&pointer).is_some(), "{} is not shown", s.var);
    }
    assert_eq!(view["store"]["backend"], "postgres");
    assert_eq!(view["health"]["round"], 5000);
    assert_eq!(view["tasks"]["leaseMs"], 30000);
    assert_eq!(view["logLevel"], "info");
}

#[test]
fn production_requires_a_token() {
    check_err(
        &[("NODE_ENV", "production")],
        "missing JARVIS_AUTH_TOKEN: a bearer token is required in production (JARVIS_ENV/NODE_ENV=production)",
    );
    let c = Config::from_env_map(
        &vars(&[
            ("NODE_ENV", "production"),
            ("JARVIS_AUTH_TOKEN", "0123456789abcdef0123"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(c.server.environment, Environment::Production);
}

#[test]
fn jarvis_env_wins_over_node_env() {
    let c = Config::from_env_map(
        &vars(&[("NODE_ENV", "production"), ("JARVIS_ENV", "development")]),
        None,
    )
    .unwrap();
    assert_eq!(c.server.environment, Environment::Development);
}

#[test]
fn jarvis_port_wins_over_port() {
    let c =
        Config::from_env_map(&vars(&[("PORT", "5000"), ("JARVIS_PORT", "5001")]), None).unwrap();
    assert_eq!(c.server.port, 5001);
}

#[test]
fn empty_values_count_as_unset() {
    let c =
        Config::from_env_map(&vars(&[("JARVIS_PORT", "  "), ("PORT", " 4100 ")]), None).unwrap();
    assert_eq!(c.server.port, 4100);
}

#[test]
fn database_url_password_is_never_shown() {
    let c = Config::from_env_map(
        &vars(&[(
            "DATABASE_URL",
            "postgres://app:s3cr3t-pw@db.example:6432/jarvis?sslmode=require",
        )]),
        None,
    )
    .unwrap();
    let StoreConfig::Postgres { url, .. } = &c.store else {
        panic!("expected postgres")
    };
    assert_eq!(url.redacted(), "postgres://app:***@db.example:6432/jarvis");
    assert_eq!(url.host(), "db.example:6432");
    assert_eq!(url.database(), "jarvis");
    assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    assert!(!c.masked_view().to_string().contains("s3cr3t-pw"));
    assert_eq!(
        c.masked_view()["store"]["url"],
        "postgres://app:***@db.example:6432/jarvis"
    );
    assert_eq!(
        url.scrub("auth failed for s3cr3t-pw"),
        "auth failed for ***"
    );

    let err = Config::from_env_map(
        &vars(&[("DATABASE_URL", "mysql://app:s3cr3t-pw@db/x")]),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("invalid DATABASE_URL="), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
}

/// Every secret, set to a value that is valid but recognisable, appears neither in `Debug` nor
/// in the view (where it is `***`); a refused secret is not echoed.
#[test]
fn every_secret_is_masked() {
    let secrets: Vec<_> = all_settings().filter(|s| s.mask != Mask::Shown).collect();
    assert!(secrets.len() >= 5);
    for s in secrets {
        let value = match (s.mask, s.kind) {
            (Mask::UrlPassword, _) => "postgres://app:hunter2-secret@db/x".to_string(),
            // A list of named tokens with roles.
            _ if s.var == "JARVIS_AUTH_TOKENS" => "ci:read:hunter2-secret-0123456789".to_string(),
            // A secret URL (a webhook's, whose path holds its token).
            (_, super::setting::Kind::Text { .. }) => {
                "https://hooks.example/services/hunter2-secret".to_string()
            }
            _ => "hunter2-secret-0123456789".to_string(),
        };
        let c = Config::from_env_map(&vars(&[(s.var, &value), ("REDIS_HOST", "h")]), None)
            .unwrap_or_else(|e| panic!("{}: {e}", s.var));
        let shown = format!("{c:?} {}", c.masked_view());
        assert!(!shown.contains("hunter2"), "{} leaked: {shown}", s.var);
    }
    let err = Config::from_env_map(&vars(&[("JARVIS_AUTH_TOKEN", "short")]), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("JARVIS_AUTH_TOKEN"));
    assert!(!err.contains("\"short\""));
    let c = Config::from_env_map(
        &vars(&[("JARVIS_AUTH_TOKEN", "tok-0123456789abcdef")]),
        None,
    )
    .unwrap();
    assert_eq!(c.masked_view()["authToken"], "***");
}

#[test]
fn task_settings_are_validated() {
    check_err(
        &[("JARVIS_WORKERS_ENABLED", "sometimes")],
        r#"invalid JARVIS_WORKERS_ENABLED="sometimes": expected true or false"#,
    );
    check_err(
        &[
            ("JARVIS_TASK_RETRY_BASE_MS", "5000"),
            ("JARVIS_TASK_RETRY_MAX_MS", "100"),
        ],
        r#"invalid JARVIS_TASK_RETRY_MAX_MS="100": expected at least JARVIS_TASK_RETRY_BASE_MS (5000)"#,
    );
}

#[test]
fn redis_port_without_host_is_refused() {
    check_err(
        &[("REDIS_PORT", "6380")],
        "missing REDIS_HOST: REDIS_PORT or REDIS_PASSWORD is set without a host",
    );
}

#[test]
fn config_file_services_agents_breakers() {
    let text = r#"
        [server]
        port = 4100
        [services.aiDawgBackend]
        url = "http://127.0.0.1:3001/health"
        intervalMs = 5000
        critical = true
        [agents.music]
        url = "http://127.0.0.1:8001/run"
        useLearned = true
        [agents.video]
        url = "http://127.0.0.1:8002/run"
        [breakers.aiDawgBackend]
        failureThreshold = 3
    "#;
    let file = file::parse_file(Path::new("jarvis.toml"), text).unwrap();
    assert_eq!(file.server.port, Some(4100));
    assert_eq!(file.services["aiDawgBackend"].critical, Some(true));
    assert_eq!(file.breakers["aiDawgBackend"].failure_threshold, Some(3));
    assert_eq!(file.agents["music"].use_learned, Some(true));
    assert_eq!(file.agents["video"].use_learned, None);

    let err = file::parse_file(
        Path::new("j.toml"),
        "[services.x]\nurl = \"http://a\"\nbogus = 1",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bogus"), "{err}");
    let err = file::parse_file(
        Path::new("j.toml"),
        "[agents.\"bad name\"]\nurl = \"http://a\"",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("agents.bad name"), "{err}");
}

#[test]
fn the_file_is_under_the_environment() {
    let text = "[server]\nport = 4100\nconcurrency = 3\n[learning]\nminRuns = 7\n";
    let c = with_file(text, &[]).unwrap();
    assert_eq!(
        (c.server.port, c.tasks.concurrency, c.learning.min_runs),
        (4100, 3, 7)
    );
    let c = with_file(text, &[("PORT", "4200"), ("JARVIS_LEARNING_MIN_RUNS", "9")]).unwrap();
    assert_eq!((c.server.port, c.learning.min_runs), (4200, 9));
}

/// What `serve` refuses, `config check` (the same `Config::from_env_map`) refuses, in the
/// style of the variables where the file holds a setting's value.
#[test]
fn a_wrong_file_is_refused_before_start() {
    for (text, expected) in [
        (
            "[services.x]\nurl = \"localhost:3001/health\"",
            "services.x.url: scheme \"localhost\" is not supported (http, https or tcp)",
        ),
        (
            "[services.x]\nurl = \"http://127.0.0.1:3001/health\"\nexpectedStatus = [99]",
            "services.x.expectedStatus: 99 is not an HTTP status code",
        ),
        (
            "[services.x]\nurl = \"http://127.0.0.1:3001/\"\nintervalMs = 5",
            "services.x.intervalMs: must be from 100 to 86400000",
        ),
        (
            "[agents.music]\nurl = \"http://127.0.0.1:8001/run\"\ntimeoutMs = 0",
            "agents.music.timeoutMs: must be from 1 to 3600000",
        ),
        (
            "[breakers.x]\nfailureThreshold = 0",
            "invalid breakers.x.failureThreshold=\"0\": expected a whole number from 1 to 1000",
        ),
        (
            "[breakers.x]\nhalfOpenMaxCalls = 5000",
            "invalid breakers.x.halfOpenMaxCalls=\"5000\": expected a whole number from 1 to 4095",
        ),
        (
            "[learning.spaces.\"music/beat\".bpm]\nkind = \"numeric\"\nmin = 200\nmax = 2",
            "invalid learning.spaces.\"music/beat\".bpm.max=\"2\": expected at least min (200)",
        ),
        (
            "[learning.spaces.\"music/beat\".genre]\nkind = \"categorical\"\nvalues = []",
            "invalid learning.spaces.\"music/beat\".genre.values=\"[]\": expected at least one value",
        ),
        (
            "[learning]\ntimeoutMinMs = 5000\ntimeoutMaxMs = 10",
            "invalid learning.timeoutMaxMs=\"10\": expected at least learning.timeoutMinMs (5000)",
        ),
        (
            "[learning]\nimpactWeight = 2.0",
            "invalid learning.impactWeight=\"2\": expected a share from 0 to 1, such as 0.05",
        ),
        (
            "[server]\nconcurrency = 0",
            "invalid server.concurrency=\"0\": expected a whole number from 1 to 10000",
        ),
        (
            "[server]\nport = 99999",
            "invalid server.port=\"99999\": expected a whole number from 0 to 65535",
        ),
        (
            "[server]\nlogLevel = \"loud\"",
            "invalid server.logLevel=\"loud\": expected one of error, warn, info, debug, trace",
        ),
        (
            "[server]\nlog_level = \"loud\"",
            "invalid server.logLevel=\"loud\": expected one of error, warn, info, debug, trace",
        ),
        (
            "[learning]\nflushMs = 0",
            "invalid learning.flushMs=\"0\": expected a whole number from 10 to 600000",
        ),
    ] {
        assert_eq!(file_err(text), expected, "{text}");
    }
    // A wrong file value is wrong even where the environment wins over it.
    let err = with_file(
        "[learning]\nexploration = 1.5",
        &[("JARVIS_LEARNING_EXPLORATION", "0.1")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with(
            "invalid learning.exploration=\"1.5\": expected a share from 0 to 1, such as 0.05"
        ),
        "{err}"
    );
}

#[test]
fn server_keys_are_camel_case_and_the_old_snake_case_still_reads() {
    let c = with_file(
        "[server]\nlogLevel = \"debug\"\nlogDir = \"l\"\ndataDir = \"d\"\nconcurrency = 3",
        &[],
    )
    .unwrap();
    assert_eq!(c.telemetry.log_level, LogLevel::Debug);
    assert_eq!(c.telemetry.log_dir, PathBuf::from("l"));
    assert_eq!(c.server.data_dir, PathBuf::from("d"));
    assert_eq!(c.tasks.concurrency, 3);
    // A file written for earlier versions keeps working.
    let c = with_file(
        "[server]\nlog_level = \"debug\"\nlog_dir = \"l\"\ndata_dir = \"d\"",
        &[],
    )
    .unwrap();
    assert_eq!(c.telemetry.log_level, LogLevel::Debug);
    assert_eq!(c.telemetry.log_dir, PathBuf::from("l"));
    assert_eq!(c.server.data_dir, PathBuf::from("d"));
    // Both spellings of one key: which one counts would be a guess.
    let err = file_err("[server]\nlogLevel = \"debug\"\nlog_level = \"info\"");
    assert!(err.contains("duplicate field `logLevel`"), "{err}");
    // A key of neither spelling names the accepted ones.
    let err = file_err("[server]\nloglevel = \"debug\"");
    assert!(err.contains("unknown field `loglevel`"), "{err}");
    assert!(err.contains("logLevel"), "{err}");
}

#[test]
fn a_leading_tilde_in_a_path_is_the_home_directory() {
    let c = Config::from_env_map(
        &vars(&[
            ("HOME", "/home/op"),
            ("JARVIS_DATA_DIR", "~/jdata"),
            ("JARVIS_LOG_DIR", "~"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("/home/op/jdata"));
    assert_eq!(c.telemetry.log_dir, PathBuf::from("/home/op"));
    assert_eq!(c.masked_view()["dataDir"], "/home/op/jdata");
    // The same in the config file, and for `--config` itself.
    let c = with_file("[server]\ndataDir = \"~/d\"", &[("HOME", "/home/op/")]).unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("/home/op/d"));
    // `~` inside a path, or a path without one, is left alone.
    let c =
        Config::from_env_map(&vars(&[("HOME", "/h"), ("JARVIS_DATA_DIR", "a/~b")]), None).unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("a/~b"));
    // Never a directory literally named `~`: without HOME, or for another user, refused.
    check_err(
        &[("JARVIS_DATA_DIR", "~/jdata")],
        "invalid JARVIS_DATA_DIR=\"~/jdata\": expected a path; `~` stands for the home \
         directory, but HOME is not set (give the full path)",
    );
    check_err(
        &[("HOME", "/h"), ("JARVIS_LOG_DIR", "~bob/logs")],
        "invalid JARVIS_LOG_DIR=\"~bob/logs\": expected a path; `~user/…` is not expanded (give \
         the full path, or `~/…` for your own home directory)",
    );
    let err = Config::from_env_map(&vars(&[]), Some(PathBuf::from("~/jarvis.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid --config=\"~/jarvis.toml\""),
        "{err}"
    );
}

#[test]
fn agents_of_the_file_are_checked_like_the_api_checks_them() {
    // A built-in domain takes no HTTP agent.
    assert_eq!(
        file_err("[agents.noop]\nurl = \"http://127.0.0.1:8001/run\""),
        "agents.noop: domain noop is served by a built-in agent; an HTTP agent cannot replace \
         it (use another domain)"
    );
    // The agent's health check is the service named after its domain: not both.
    assert_eq!(
        file_err(
            "[services.music]\nurl = \"http://127.0.0.1:8001/health\"\n\n[agents.music]\n\
             url = \"http://127.0.0.1:8001/run\"\nhealthUrl = \"http://127.0.0.1:8001/health\""
        ),
        "agents.music.healthUrl: the agent's health check is the service music, which \
         [services.music] defines too; keep one of them"
    );
    assert_eq!(
        file_err(
            "[agents.music]\nurl = \"http://127.0.0.1:8001/run\"\nhealthUrl = \"x\"\nhealthIntervalMs = 50"
        ),
        "agents.music.healthUrl: \"x\" is not an http:// or https:// URL with a host"
    );
    assert_eq!(
        file_err(
            "[agents.music]\nurl = \"http://127.0.0.1:8001/run\"\nhealthUrl = \"http://h/\"\nhealthIntervalMs = 50"
        ),
        "agents.music.healthIntervalMs: must be from 100 to 86400000"
    );
    let c = with_file(
        "[agents.music]\nurl = \"http://127.0.0.1:8001/run\"\nhealthUrl = \"http://h/health\"",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.file.agents["music"].health_url.as_deref(),
        Some("http://h/health")
    );
}

#[test]
fn model_groups_are_checked_with_messages_naming_the_key() {
    let ok = r#"
[ai.models.fast]
deployments = [
  { provider = "openai", model = "gpt-4o-mini", keyEnv = "OPENAI_API_KEY_2", weight = 3 },
  { provider = "anthropic", model = "claude-3-5-haiku-latest", weight = 1 },
]
fallbacks = ["slow"]
timeoutMs = 5000

[ai.models.slow]
deployments = [{ provider = "gemini", model = "gemini-2.0-flash", name = "g-main" }]
"#;
    let file = file::parse_file(Path::new("jarvis.toml"), ok).unwrap();
    assert_eq!(file.ai.models["fast"].deployments.len(), 2);
    assert_eq!(file.ai.models["fast"].fallbacks, vec!["slow".to_string()]);

    let group = |body: &str| format!("[ai.models.g]\n{body}\n");
    let one = r#"deployments = [{ provider = "openai", model = "m" }]"#;
    let cases: Vec<(String, &str)> = vec![
        (
            group(r#"deployments = [{ provider = "mistral", model = "m" }]"#),
            "ai.models.g.deployments[0].provider: unknown provider \"mistral\"",
        ),
        (group("deployments = []"), "ai.models.g.deployments: a group needs at least one"),
        (
            group(&format!("{one}\nfallbacks = [\"nope\"]")),
            "ai.models.g.fallbacks: unknown fallback group \"nope\"",
        ),
        (
            format!(
                "{}[ai.models.h]\n{one}\nfallbacks = [\"g\"]\n",
                group(&format!("{one}\nfallbacks = [\"h\"]"))
            ),
            "the fallbacks go round in a circle (g -> h -> g)",
        ),
        (
            format!("[ai.models.openai]\n{one}\n"),
            "ai.models.openai: a group cannot be named after a provider",
        ),
        (
            group(r#"deployments = [{ provider = "openai", model = "m", keyEnv = "sk-abc" }]"#),
            "ai.models.g.deployments[0].keyEnv: expected the name of an environment variable",
        ),
        (
            group(r#"deployments = [{ provider = "openai", model = "m", keyEnv = "DATABASE_URL" }]"#),
            "that holds API_KEY",
        ),
        (
            group(
                r#"deployments = [{ provider = "openai", model = "m", weight = 2 }, { provider = "openai", model = "n" }]"#,
            ),
            "give every deployment a weight, or none",
        ),
        (
            group(&format!("{one}\ntimeoutMs = 5")),
            "ai.models.g.timeoutMs: expected a whole number from 100",
        ),
        (
            format!(
                "{}[ai.models.h]\ndeployments = [{{ provider = \"openai\", model = \"m\", name = \"g-1\" }}]\n",
                group(one)
            ),
            "the deployment name g-1 is also used in group",
        ),
        (
            group(r#"deployments = [{ provider = "openai", model = "m", key = "sk-1" }]"#),
            "unknown field `key`",
        ),
    ];
    for (text, expected) in cases {
        let err = file_err(&text);
        assert!(
            err.contains(expected),
            "{text}\n→ {err}\nexpected: {expected}"
        );
    }
}
