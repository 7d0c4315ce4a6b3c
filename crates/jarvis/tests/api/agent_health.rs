//! An agent that declares a health URL (issue 18, row 13): Jarvis checks it as the service named
//! after the agent's domain, through the breaker the domain's tasks use, so while the agent is
//! down its tasks wait instead of spending attempts. A real HTTP agent (`FakeService`) that
//! stops and starts again; both backends.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);
/// Consecutive failed checks that open a circuit in these tests.
const THRESHOLD: u64 = 3;
/// How often the agent's health URL is checked in these tests.
const INTERVAL_MS: u64 = 500;

async fn until_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually_some(LIMIT, &format!("task {id} to be {status}"), || async {
        let t = app.task(id).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

both_backends!(
    an_agent_that_is_down_by_its_health_check_makes_its_tasks_wait,
    |backend| async move {
        let mut env = TestEnv::new(backend).await;
        env.set("CIRCUIT_BREAKER_FAILURE_THRESHOLD", &THRESHOLD.to_string());
        // Long enough for the test to see the tasks wait before a trial goes through.
        env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "6000");
        let app = TestApp::spawn_with(env).await;
        let mut agent = FakeService::start(Mode::Ok).await;

        let (s, body) = app
            .put_agent(
                "music",
                json!({"url": agent.url("/run"), "healthUrl": agent.url("/health"),
                        "healthIntervalMs": INTERVAL_MS}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["data"]["healthUrl"], agent.url("/health"));
        assert_eq!(body["data"]["healthIntervalMs"], INTERVAL_MS);
        // The check is the service named after the domain.
        let service = app.data("/api/v1/services/music").await;
        assert_eq!(service["url"], agent.url("/health"), "{service}");
        assert_eq!(service["intervalMs"], INTERVAL_MS, "{service}");
        eventually(LIMIT, "the agent's health check up", || async {
            app.service_health("music").await["status"] == "up"
        })
        .await;
        let t = app
            .run_task(json!({"domain": "music", "action": "beat", "maxAttempts": 1}))
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");

        // The agent stops: THRESHOLD failed checks open the domain's breaker.
        agent.stop().await;
        let stopped = Instant::now();
        eventually(LIMIT, "the music breaker OPEN", || async {
            app.breaker("music").await["state"] == "OPEN"
        })
        .await;
        let took = stopped.elapsed().as_millis() as u64;
        // The documented timing: between THRESHOLD − 1 and THRESHOLD intervals after the
        // agent stopped (a refused connection fails at once), plus the time to see it.
        assert!(
            ((THRESHOLD - 1) * INTERVAL_MS..=THRESHOLD * INTERVAL_MS + 1500).contains(&took),
            "opened {took} ms after the agent stopped"
        );

        // A task submitted now waits and spends nothing (it allows one attempt: a spent one
        // would fail it).
        let (s, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "music", "action": "beat", "maxAttempts": 1}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        let id = body["data"]["taskId"].as_str().unwrap().to_string();
        let t = until_status(&app, &id, "waiting").await;
        assert_eq!(t["attempts"], 0, "{t}");
        assert!(t["error"].as_str().unwrap().contains("circuit"), "{t}");
        stays(Duration::from_secs(1), "the task waits", || async {
            let t = app.task(&id).await;
            t["status"] == "waiting" && t["attempts"] == 0
        })
        .await;

        // Back up: after the open period a trial succeeds and the task runs.
        agent.restart().await;
        let t = until_status(&app, &id, "succeeded").await;
        assert_eq!(t["attempts"], 1, "{t}");
        eventually(LIMIT, "the music breaker CLOSED", || async {
            app.breaker("music").await["state"] == "CLOSED"
        })
        .await;
    }
);

both_backends!(
    the_health_check_goes_with_the_agent_and_spares_an_operators_service,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = FakeService::start(Mode::Ok).await;
        let with_health = json!({"url": agent.url("/run"), "healthUrl": agent.url("/health")});
        let (s, _) = app.put_agent("music", with_health.clone()).await;
        assert_eq!(s, 201);
        assert_eq!(app.names("/api/v1/services").await, ["music"]);

        // Replaced without a health URL: its check goes.
        let (s, body) = app
            .put_agent("music", json!({"url": agent.url("/run")}))
            .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["data"]["healthUrl"], Value::Null);
        assert!(app.names("/api/v1/services").await.is_empty());

        // Removed with it: its check goes too.
        app.put_agent("music", with_health).await;
        assert_eq!(app.names("/api/v1/services").await, ["music"]);
        let r = app
            .send_json(Method::DELETE, "/api/v1/agents/music", &json!({}))
            .await;
        assert_eq!(r.status(), 204);
        assert!(app.names("/api/v1/services").await.is_empty());

        // A service an operator registered under the domain's name is not the agent's: it stays.
        app.put_service("music", json!({"url": agent.url("/status")}))
            .await;
        app.put_agent("music", json!({"url": agent.url("/run")}))
            .await;
        let r = app
            .send_json(Method::DELETE, "/api/v1/agents/music", &json!({}))
            .await;
        assert_eq!(r.status(), 204);
        assert_eq!(app.names("/api/v1/services").await, ["music"]);

        // Bad input names the field.
        for (body, field) in [
            (
                json!({"url": agent.url("/run"), "healthUrl": "tcp://x:1"}),
                "healthUrl",
            ),
            (
                json!({"url": agent.url("/run"), "healthIntervalMs": 1000}),
                "healthIntervalMs",
            ),
            (
                json!({"url": agent.url("/run"), "healthUrl": agent.url("/h"), "healthIntervalMs": 5}),
                "healthIntervalMs",
            ),
        ] {
            let r = app
                .send_json(Method::PUT, "/api/v1/agents/other", &body)
                .await;
            let err = assert_error(r, 400, "invalid_agent").await;
            assert!(
                err["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}: ")),
                "{err}"
            );
        }
    }
);

both_backends!(
    a_config_file_agent_declares_its_health_check_too,
    |backend| async move {
        let agent = FakeService::start(Mode::Ok).await;
        let mut env = TestEnv::new(backend).await;
        let file = env.dir.path().join("jarvis.toml");
        std::fs::write(
            &file,
            format!(
                "[agents.music]\nurl = \"{}\"\nhealthUrl = \"{}\"\nhealthIntervalMs = 1000\n",
                agent.url("/run"),
                agent.url("/health")
            ),
        )
        .unwrap();
        env.set("JARVIS_CONFIG", &file.display().to_string());
        let app = TestApp::spawn_with(env).await;
        let service = app.data("/api/v1/services/music").await;
        assert_eq!(service["url"], agent.url("/health"), "{service}");
        assert_eq!(service["intervalMs"], 1000);
        eventually(LIMIT, "the agent's health check up", || async {
            app.service_health("music").await["status"] == "up"
        })
        .await;

        // Started again without the health URL: the check goes.
        std::fs::write(
            &file,
            format!("[agents.music]\nurl = \"{}\"\n", agent.url("/run")),
        )
        .unwrap();
        let env = app.stop_keep_env().await;
        let app = TestApp::spawn_with(env).await;
        assert!(app.names("/api/v1/services").await.is_empty());
    }
);
