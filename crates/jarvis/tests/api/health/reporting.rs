//! What an operator sees: `jarvis health` (a table, JSON, the container probe) for services of
//! the config file, and the Prometheus exposition of the monitor, which promtool accepts.

use serde_json::{json, Value};

use super::{health_env, health_env_with_file, until_service_is};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    the_health_command_shows_the_services_of_the_config_file,
    |backend| async move {
        let service = FakeService::start(Mode::Ok).await;
        let env = health_env_with_file(
            backend,
            60_000,
            &format!(
                "[services.fromFile]\nurl = \"{}\"\nintervalMs = 100\ncritical = true\n",
                service.url("/health")
            ),
        )
        .await;
        let app = TestApp::spawn_with(env).await;
        until_service_is(&app, "fromFile", "up").await;

        let address = app.address.clone();
        let dir = app.env.dir.path().to_path_buf();
        let (table, json_out, no_token, probe) = tokio::task::spawn_blocking(move || {
            let mut vars = std::collections::HashMap::new();
            vars.insert("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string());
            let table = run_jarvis(&["health", "--url", &address], &vars, &dir);
            let json_out = run_jarvis(&["health", "--url", &address, "--json"], &vars, &dir);
            let no_token = run_jarvis(
                &["health", "--url", &address],
                &std::collections::HashMap::new(),
                &dir,
            );
            // The container health check takes `/health` as health+json.
            let probe = run_jarvis(
                &["healthcheck", "--url", &format!("{address}/health")],
                &std::collections::HashMap::new(),
                &dir,
            );
            (table, json_out, no_token, probe)
        })
        .await
        .unwrap();
        assert!(table.status.success());
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.starts_with("overall: pass\n"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("fromFile") && l.contains("up") && l.contains("CLOSED")),
            "{text}"
        );
        assert!(json_out.status.success());
        let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
        assert_eq!(v["services"]["fromFile"]["critical"], true);
        assert_eq!(no_token.status.code(), Some(2));
        assert!(probe.status.success(), "{probe:?}");
        assert!(String::from_utf8_lossy(&no_token.stderr).contains("JARVIS_AUTH_TOKEN"));
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_metrics_pass_promtool() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let ok = FakeService::start(Mode::Ok).await;
    app.put_service("up1", json!({"url": ok.url("/"), "intervalMs": 100}))
        .await;
    app.put_service(
        "down1",
        json!({"url": format!("http://127.0.0.1:{}/", closed_port()), "intervalMs": 100}),
    )
    .await;
    until_service_is(&app, "up1", "up").await;
    until_service_is(&app, "down1", "down").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "jarvis_health_checks_total{result=\"up\"}",
        "jarvis_health_checks_total{result=\"down\"}",
        "jarvis_health_check_duration_seconds_bucket",
        "jarvis_health_check_lag_seconds_bucket",
        "jarvis_health_checks_skipped_total",
        "jarvis_health_services 2",
        "jarvis_circuit_breaker_state{breaker=\"up1\"",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let checked = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = match std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!(
                "promtool is required for this test ({e}); run scripts/ensure-tools.sh \
                 (Debian package prometheus)"
            ),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    app.stop().await;
}
