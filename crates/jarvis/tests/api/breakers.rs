//! The circuit-breaker API and metrics.

use crate::both_backends;
use crate::helpers::*;
use jarvis::names::Name;
use reqwest::Method;
use serde_json::json;

both_backends!(a_fresh_system_has_no_breakers, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let text = app
        .get("/api/v1/circuit-breakers")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, r#"{"success":true,"data":{}}"#);
    app.stop().await;
});

// Operator actions are written through the store: both backends.
both_backends!(
    a_circuit_opens_after_five_failures_and_operators_can_close_open_and_reset_it,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let name = Name::parse("aiDawgBackend").unwrap();
        app.fail_calls("aiDawgBackend", 5, "connection refused");
        assert!(
            app.state().breakers.acquire(&name).is_err(),
            "open circuits reject"
        );
        let (s, body) = json(app.get("/api/v1/circuit-breakers").await).await;
        assert_eq!(s, 200);
        let b = &body["data"]["aiDawgBackend"];
        assert_eq!(b["state"], "OPEN");
        assert_eq!(b["failureCount"], 5);
        assert_eq!(b["rejectedCalls"], 1);
        assert_eq!(b["lastFailureReason"], "connection refused");
        assert_eq!(b["enabled"], true);
        for key in ["openedAt", "nextAttemptAt", "lastFailureAt"] {
            let t = b[key].as_str().unwrap_or_else(|| panic!("{key}: {b}"));
            assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{key}={t}");
        }

        let (s, body) = json(app.get("/api/v1/circuit-breakers/aiDawgBackend").await).await;
        assert_eq!(s, 200);
        assert_eq!(body["data"]["aiDawgBackend"]["state"], "OPEN");

        let close = app
            .send_json(
                Method::POST,
                "/api/v1/circuit-breakers/aiDawgBackend/close",
                &json!({}),
            )
            .await;
        let (s, body) = json(close).await;
        assert_eq!(s, 200);
        assert_eq!(body["data"]["aiDawgBackend"]["state"], "CLOSED");
        assert!(app.state().breakers.acquire(&name).is_ok());

        let (_, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/circuit-breakers/aiDawgBackend/open",
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(body["data"]["aiDawgBackend"]["state"], "OPEN");
        assert_eq!(body["data"]["aiDawgBackend"]["forced"], true);
        assert!(app.state().breakers.acquire(&name).is_err());

        let (_, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/circuit-breakers/aiDawgBackend/reset",
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(body["data"]["aiDawgBackend"]["state"], "CLOSED");
        assert_eq!(body["data"]["aiDawgBackend"]["failureCount"], 0);

        // Unknown names and actions.
        assert_error(
            app.get("/api/v1/circuit-breakers/nobody").await,
            404,
            "not_found",
        )
        .await;
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/circuit-breakers/nobody/open",
                &json!({}),
            )
            .await;
        assert_error(r, 404, "not_found").await;
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/circuit-breakers/aiDawgBackend/explode",
                &json!({}),
            )
            .await;
        assert_error(r, 404, "not_found").await;
        app.stop().await;
    }
);

#[tokio::test]
async fn disabled_breakers_let_everything_through_and_say_so() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("CIRCUIT_BREAKER_ENABLED", "false");
    let app = TestApp::spawn_with(env).await;
    let name = Name::parse("svc").unwrap();
    app.fail_calls("svc", 10, "boom");
    assert!(app.state().breakers.acquire(&name).is_ok());
    let (_, body) = json(app.get("/api/v1/circuit-breakers").await).await;
    assert_eq!(body["data"]["svc"]["state"], "CLOSED");
    assert_eq!(body["data"]["svc"]["enabled"], false);
    app.stop().await;
}

#[tokio::test]
async fn config_file_overrides_apply_per_breaker() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, "[breakers.fragile]\nfailureThreshold = 2\n").unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let app = TestApp::spawn_with(env).await;
    let fragile = Name::parse("fragile").unwrap();
    let sturdy = Name::parse("sturdy").unwrap();
    for _ in 0..2 {
        app.state().breakers.acquire(&fragile).unwrap().failure("x");
        app.state().breakers.acquire(&sturdy).unwrap().failure("x");
    }
    assert!(app.state().breakers.acquire(&fragile).is_err());
    assert!(app.state().breakers.acquire(&sturdy).is_ok());
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_the_token_and_name_breakers_in_labels() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(r, 401, "unauthorized").await;
    let name = Name::parse("aiDawgBackend").unwrap();
    app.fail_calls("aiDawgBackend", 5, "refused");
    let _ = app.state().breakers.acquire(&name);
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for needle in [
        "jarvis_circuit_breakers_open 1",
        "jarvis_circuit_breaker_state{breaker=\"aiDawgBackend\",state=\"OPEN\"} 1",
        "jarvis_circuit_breaker_rejected_calls_total{breaker=\"aiDawgBackend\"} 1",
        "jarvis_circuit_breaker_calls_total{breaker=\"aiDawgBackend\",outcome=\"failure\"} 5",
        "jarvis_circuit_breaker_transitions_total{breaker=\"aiDawgBackend\",from=\"CLOSED\",to=\"OPEN\"} 1",
        "# HELP jarvis_circuit_breakers_open",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    app.stop().await;
}

/// `jarvis breakers` against a running server.
#[tokio::test]
async fn the_breakers_command_lists_and_acts() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    let vars: std::collections::HashMap<String, String> =
        [("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string())].into();
    let cli = |args: &[&str]| {
        let mut all = vec!["breakers", "--url", p.address.as_str()];
        all.extend_from_slice(args);
        run_jarvis(&all, &vars, env.dir.path())
    };
    let out = cli(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no circuit breaker yet"));
    let out = cli(&["open", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));

    // An agent that does not answer: its domain's breaker appears with a failure.
    let dead = format!("http://127.0.0.1:{}/run", free_port());
    let (s, body) = p
        .api(
            Method::PUT,
            "/api/v1/agents/cli-test",
            Some(json!({ "url": dead, "timeoutMs": 500 })),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = p
        .api(
            Method::POST,
            "/api/v1/execute",
            Some(json!({ "domain": "cli-test", "action": "x", "maxAttempts": 1 })),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    eventually(
        std::time::Duration::from_secs(20),
        "the breaker shows up",
        || async {
            let out = cli(&["--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["cli-test"]["failureCount"] == 1
        },
    )
    .await;
    let out = cli(&["open", "cli-test"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("cli-test") && text.contains("OPEN"), "{text}");
    // Without a token the command says how to get one.
    let out = run_jarvis(
        &["breakers", "--url", &p.address],
        &Default::default(),
        env.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JARVIS_AUTH_TOKEN"));
}
