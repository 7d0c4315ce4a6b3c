//! Shared breaker state: restarts keep it, several instances share it.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;
use jarvis::names::Name;
use reqwest::Method;
use serde_json::{json, Value};

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

both_backends!(a_restart_keeps_an_open_circuit_open, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
    let app = TestApp::spawn_with(env).await;
    app.fail_calls("svc", 5, "refused");
    eventually(
        Duration::from_secs(5),
        "the OPEN state is stored and applied",
        || async {
            let row = app.state().store.breaker_row("svc").await.unwrap();
            let applied = app
                .state()
                .breakers
                .get("svc")
                .unwrap()
                .snapshot()
                .remote_version;
            matches!(row, Some(r) if r.state == "OPEN" && applied == Some(r.version))
        },
    )
    .await;
    let before = app.breaker("svc").await;
    assert_eq!(before["state"], "OPEN");
    let env = app.stop_keep_env().await;

    let app = TestApp::spawn_with(env).await;
    let after = app.breaker("svc").await;
    assert_eq!(after["state"], "OPEN", "{after}");
    assert_eq!(after["failureCount"], 5);
    // The restarted instance shows what is stored (the database's clock) ...
    let row = app.state().store.breaker_row("svc").await.unwrap().unwrap();
    let stored_next = row.next_attempt_at.unwrap().timestamp_millis();
    let stored_opened = row.opened_at.unwrap().timestamp_millis();
    let drift = (millis(&after["nextAttemptAt"]) - stored_next).abs();
    assert!(
        drift <= 50,
        "nextAttemptAt {after} vs stored {stored_next}: {drift} ms"
    );
    assert_eq!(millis(&after["openedAt"]), stored_opened);
    // ... which is what the instance showed before it stopped, up to the time the first
    // instance's own write took (its view shows its local clock until the store answers).
    for key in ["nextAttemptAt", "openedAt"] {
        let drift = (millis(&after[key]) - millis(&before[key])).abs();
        assert!(
            drift <= 250,
            "{key} moved by {drift} ms: {before} vs {after}"
        );
    }
    assert!(
        app.state()
            .breakers
            .acquire(&Name::parse("svc").unwrap())
            .is_err(),
        "still rejecting"
    );
    app.stop().await;
});

/// Two instances (in one process) on one PostgreSQL database.
async fn pair(extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let mut env_a = TestEnv::new(Backend::Postgres).await;
    env_a.set("JARVIS_INSTANCE_ID", "instance-a");
    env_a.set("JARVIS_BREAKER_RECONCILE_MS", "60000");
    for (k, v) in extra {
        env_a.set(k, v);
    }
    let mut env_b = env_a.another_instance();
    env_b.set("JARVIS_INSTANCE_ID", "instance-b");
    let a = TestApp::spawn_with(env_a).await;
    let b = TestApp::spawn_with(env_b).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_two_instances_add_up_and_open_both() {
    let (a, b) = pair(&[("CIRCUIT_BREAKER_TIMEOUT_MS", "600000")]).await;
    let name = Name::parse("shared").unwrap();
    a.fail_calls("shared", 3, "refused");
    eventually(Duration::from_secs(5), "B sees A's failures", || async {
        b.state()
            .breakers
            .get("shared")
            .is_some_and(|br| br.consecutive_failures() == 3)
    })
    .await;
    b.fail_calls("shared", 2, "refused");
    for app in [&a, &b] {
        eventually(Duration::from_secs(5), "OPEN on both", || async {
            app.breaker("shared").await["state"] == "OPEN"
        })
        .await;
        assert!(app.state().breakers.acquire(&name).is_err());
    }
    // A success anywhere resets the count: reset via the operator on B reaches A.
    let r = b
        .send_json(
            Method::POST,
            "/api/v1/circuit-breakers/shared/reset",
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(1), "A closed by B's reset", || async {
        a.breaker("shared").await["state"] == "CLOSED"
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_open_reaches_the_other_instance_within_a_second() {
    let (a, b) = pair(&[]).await;
    let name = Name::parse("forced").unwrap();
    a.state().breakers.acquire(&name).unwrap().success();
    let started = std::time::Instant::now();
    let r = a
        .send_json(
            Method::POST,
            "/api/v1/circuit-breakers/forced/open",
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(1), "B shows OPEN", || async {
        let v = b.breaker("forced").await;
        v["state"] == "OPEN" && v["forced"] == true
    })
    .await;
    eprintln!("propagation took {:?}", started.elapsed());
    assert!(b.state().breakers.acquire(&name).is_err());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_instance_runs_the_trial() {
    let (a, b) = pair(&[("CIRCUIT_BREAKER_TIMEOUT_MS", "300")]).await;
    let name = Name::parse("trial").unwrap();
    a.fail_calls("trial", 5, "refused");
    for app in [&a, &b] {
        eventually(Duration::from_secs(5), "OPEN on both", || async {
            app.breaker("trial").await["state"] == "OPEN"
        })
        .await;
    }
    // Past the 300 ms open period (a deliberate wait, not one for an event): from here on both
    // instances keep asking, and exactly one call is admitted cluster-wide.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut admitted = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        for (who, app) in [("a", &a), ("b", &b)] {
            if let Ok(permit) = app.state().breakers.acquire(&name) {
                admitted.push((who, permit));
            }
        }
        // Paces the asking (a call every 5 ms per instance), not a wait for anything.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        admitted.len(),
        1,
        "admitted: {:?}",
        admitted.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let (_, permit) = admitted.pop().unwrap();
    assert!(permit.is_trial());
    permit.failure("still down");
    // The failed trial re-opens the circuit for everyone.
    for app in [&a, &b] {
        eventually(Duration::from_secs(2), "OPEN again", || async {
            app.breaker("trial").await["state"] == "OPEN"
        })
        .await;
    }
    a.stop().await;
    b.stop().await;
}

/// The database goes away while calls flow: no call fails because of it, `/health` says the
/// breakers are degraded, and the state is written back once the database returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_degrades_but_never_fails_calls() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    let (proxy, _) = env.database_behind_proxy().await;
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
    env.set("JARVIS_BREAKER_RECONCILE_MS", "200");
    let app = TestApp::spawn_with(env).await;
    let name = Name::parse("outage").unwrap();
    app.state().breakers.acquire(&name).unwrap().success();

    proxy.cut();
    // Calls keep flowing on local state; five failures open the circuit locally.
    // No call fails because of the database (each is admitted).
    app.fail_calls("outage", 5, "refused");
    assert!(app.state().breakers.acquire(&name).is_err(), "open locally");
    eventually(
        Duration::from_secs(10),
        "/health reports degraded breakers",
        || async {
            let (status, body) =
                json(app.client.get(app.url("/health")).send().await.unwrap()).await;
            status == 200
                && body["data"]["status"] == "warn"
                && body["data"]["checks"]["breakers:storeSync"][0]["status"] == "warn"
        },
    )
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("jarvis_breaker_store_degraded 1"),
        "{metrics}"
    );

    proxy.restore();
    eventually(Duration::from_secs(15), "state written back after the outage", || async {
        matches!(app.state().store.breaker_row("outage").await, Ok(Some(r)) if r.state == "OPEN")
    })
    .await;
    eventually(Duration::from_secs(5), "/health passes again", || async {
        let (_, body) = json(app.client.get(app.url("/health")).send().await.unwrap()).await;
        body["data"]["status"] == "pass"
    })
    .await;
    app.stop().await;
}
