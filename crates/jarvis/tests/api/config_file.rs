//! The configuration as an operator writes it (issue 18): the `[server]` table in camelCase like
//! every other table (the old snake_case keys still read), and `~` in path settings expanded to
//! the home directory instead of becoming a directory named `~`. A real `jarvis serve`.

use std::time::Duration;

use crate::helpers::*;

/// Starts `jarvis serve` with the config file `text` and waits for a debug line in its log:
/// the file's `[server]` level was applied.
async fn serves_at_debug_level(text: &str) {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, text).unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let process = TestProcess::start(&env).await;
    eventually(
        Duration::from_secs(20),
        "a DEBUG line in the log file",
        || async {
            log_lines(&env.log_file())
                .iter()
                .any(|l| l["level"] == "DEBUG")
        },
    )
    .await;
    drop(process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_table_is_camel_case_like_the_others() {
    serves_at_debug_level("[server]\nlogLevel = \"debug\"\n\n[breakers.x]\nfailureThreshold = 3\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_table_in_the_old_snake_case_still_works() {
    serves_at_debug_level("[server]\nlog_level = \"debug\"\n").await;
}

#[test]
fn config_check_shows_the_camel_case_keys_and_refuses_both_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, "[server]\nlogLevel = \"debug\"\ndataDir = \"d\"\n").unwrap();
    let vars = [("JARVIS_CONFIG".to_string(), file.display().to_string())].into();
    let out = run_jarvis(&["config", "check"], &vars, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["logLevel"], "debug", "{view}");
    assert_eq!(view["dataDir"], "d", "{view}");

    std::fs::write(
        &file,
        "[server]\nlogLevel = \"debug\"\nlog_level = \"info\"\n",
    )
    .unwrap();
    let out = run_jarvis(&["config", "check"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("duplicate field `logLevel`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_under_tilde_is_in_the_home_directory() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    env.set("HOME", &home.display().to_string());
    env.set("JARVIS_DATA_DIR", "~/jdata");
    env.set("JARVIS_LOG_DIR", "~/jlogs");
    let process = TestProcess::start(&env).await;
    assert!(
        home.join("jdata/jarvis.db").is_file(),
        "the store is under HOME"
    );
    assert!(home.join("jlogs/jarvis-combined.log").is_file());
    assert!(
        !env.dir.path().join("~").exists(),
        "no directory named ~ in the working directory"
    );
    drop(process);

    // Without HOME, `~` is refused at start rather than taken literally.
    let mut vars = env.vars.clone();
    vars.remove("HOME");
    let out = run_jarvis(&["serve"], &vars, env.dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid JARVIS_DATA_DIR=\"~/jdata\": expected a path; `~` stands for the home directory, but HOME is not set"),
        "{stderr}"
    );
    assert!(!env.dir.path().join("~").exists());
}

/// Rows 1 and 5: what `serve` refuses, `config check` refuses with the same message (a URL
/// without a scheme, an impossible status, a zero threshold, a space whose min is above its
/// max), and neither starts anything.
#[test]
fn config_check_refuses_what_serve_refuses_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    let vars: std::collections::HashMap<String, String> = [
        ("JARVIS_CONFIG".to_string(), file.display().to_string()),
        ("JARVIS_PORT".to_string(), "0".to_string()),
        (
            "JARVIS_DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "JARVIS_LOG_DIR".to_string(),
            dir.path().join("logs").display().to_string(),
        ),
    ]
    .into();
    for (text, expected) in [
        (
            "[services.x]\nurl = \"localhost:3001/health\"\n",
            "services.x.url: scheme \"localhost\" is not supported",
        ),
        (
            "[services.x]\nurl = \"http://127.0.0.1:3001/health\"\nexpectedStatus = [99]\n",
            "services.x.expectedStatus: 99 is not an HTTP status code",
        ),
        (
            "[breakers.x]\nfailureThreshold = 0\n",
            "breakers.x.failureThreshold=\"0\": expected a whole number from 1 to 1000",
        ),
        (
            "[learning.spaces.\"music/beat\".bpm]\nkind = \"numeric\"\nmin = 200\nmax = 2\n",
            "bpm.max=\"2\": expected at least min (200)",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        for command in [&["config", "check"][..], &["serve"][..]] {
            let out = run_jarvis(command, &vars, dir.path());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains(expected),
                "`jarvis {}` with {text:?}: exit {:?}, stderr {stderr}",
                command.join(" "),
                out.status.code()
            );
        }
        assert!(
            !dir.path().join("data/jarvis.db").exists(),
            "a refused configuration stores nothing"
        );
    }
}
