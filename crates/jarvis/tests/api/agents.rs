//! An agent can make learned parameters its domain's default (`useLearned` on the agent): a
//! task submitted without `useLearned` gets them, one with `"useLearned": false` does not. Both
//! backends, the API and the config file; and two instances on one PostgreSQL.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent::{Behaviour, TestAgent};
use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

/// Submits with `?wait=true` and answers the finished task, which must have succeeded.
async fn run(app: &TestApp, body: Value) -> Value {
    let t = app.run_task(body).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    t
}

/// Checks that the history row of finished task `t` records the learned parameters it got.
async fn assert_recorded_as_run(app: &TestApp, t: &Value) {
    let rows = app.history_rows(t["taskId"].as_str().unwrap(), 1).await;
    assert_eq!(rows[0]["learnedParameters"], t["learnedParameters"], "{t}");
}

fn is_learned(t: &Value) -> bool {
    t["learnedParameters"].is_object() && t["learnedParameters"]["parameters"].is_object()
}

both_backends!(
    an_agent_makes_learned_parameters_the_default,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = TestAgent::start(Behaviour::Succeed).await;

        let (s, body) = app
            .put_agent(
                "music",
                json!({"url": agent.url, "timeoutMs": 5000, "useLearned": true}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["data"]["useLearned"], true, "{body}");
        let (_, body) = json(app.get("/api/v1/agents/music").await).await;
        assert_eq!(body["data"]["useLearned"], true, "{body}");
        let (_, body) = json(app.get("/api/v1/agents").await).await;
        assert_eq!(body["data"][0]["useLearned"], true, "{body}");

        // No flag: learned parameters, recorded in the task and its history row.
        let t = run(
            &app,
            json!({"domain": "music", "action": "beat", "parameters": {"bpm": 90}}),
        )
        .await;
        assert!(is_learned(&t), "{t}");
        assert_eq!(t["learnedParameters"]["given"], json!(["bpm"]), "{t}");
        assert_eq!(t["parameters"]["bpm"], 90, "{t}");
        assert_recorded_as_run(&app, &t).await;

        // The task opts out.
        let t = run(
            &app,
            json!({"domain": "music", "action": "beat", "useLearned": false}),
        )
        .await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");
        assert_recorded_as_run(&app, &t).await;

        // A batch: each task as it says, else as its domain's agent says (noop has none).
        let batch = app
            .submit_batch(json!([
                {"domain": "music", "action": "beat"},
                {"domain": "music", "action": "beat", "useLearned": false},
                {"domain": "music", "action": "beat", "useLearned": true},
                {"domain": "noop", "action": "x"},
                {"domain": "noop", "action": "x", "useLearned": true},
                {"domain": "music", "action": "beat"},
            ]))
            .await;
        let mut learned = Vec::new();
        for t in batch["tasks"].as_array().unwrap() {
            learned.push(is_learned(&app.task(t["taskId"].as_str().unwrap()).await));
        }
        assert_eq!(learned, [true, false, true, false, true, true]);

        // Replaced without the flag (a PUT replaces the agent): no longer the default, at once.
        let (s, body) = app
            .put_agent("music", json!({"url": agent.url, "timeoutMs": 5000}))
            .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["data"]["useLearned"], false, "{body}");
        let t = run(&app, json!({"domain": "music", "action": "beat"})).await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");
        // A task can still ask.
        let t = run(
            &app,
            json!({"domain": "music", "action": "beat", "useLearned": true}),
        )
        .await;
        assert!(is_learned(&t), "{t}");

        // And back on, at once on this instance.
        let (s, _) = app
            .put_agent("music", json!({"url": agent.url, "useLearned": true}))
            .await;
        assert_eq!(s, 200);
        let t = run(&app, json!({"domain": "music", "action": "beat"})).await;
        assert!(is_learned(&t), "{t}");

        // Removed: no agent (a task is refused unless it waits for one), no default.
        let r = app
            .client
            .delete(app.url("/api/v1/agents/music"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "music", "action": "beat", "maxAttempts": 1}),
            )
            .await;
        assert_error(r, 422, "no_agent").await;
        let (s, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "music", "action": "beat", "maxAttempts": 1,
                        "waitForAgent": true}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        let t = app.task(body["data"]["taskId"].as_str().unwrap()).await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");

        // The flag is a boolean.
        let r = app
            .send_json(
                Method::PUT,
                "/api/v1/agents/music",
                &json!({"url": agent.url, "useLearned": "yes"}),
            )
            .await;
        assert!(r.status().is_client_error(), "{}", r.status());
        app.stop().await;
    }
);

both_backends!(
    an_agent_without_the_flag_learns_nothing_by_default,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = TestAgent::start(Behaviour::Succeed).await;
        let (s, body) = app.put_agent("music", json!({"url": agent.url})).await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["data"]["useLearned"], false, "{body}");
        let t = run(
            &app,
            json!({"domain": "music", "action": "beat", "parameters": {"bpm": 90}}),
        )
        .await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");
        assert_eq!(t["parameters"], json!({"bpm": 90}));
        assert_recorded_as_run(&app, &t).await;
        app.stop().await;
    }
);

both_backends!(
    a_config_file_agent_makes_learned_parameters_the_default,
    |backend| async move {
        let agent = TestAgent::start(Behaviour::Succeed).await;
        let mut env = TestEnv::new(backend).await;
        let file = env.dir.path().join("jarvis.toml");
        std::fs::write(
            &file,
            format!(
                "[agents.music]\nurl = \"{}\"\nuseLearned = true\n\n\
                 [agents.video]\nurl = \"{}\"\n",
                agent.url, agent.url
            ),
        )
        .unwrap();
        env.set("JARVIS_CONFIG", &file.display().to_string());
        let app = TestApp::spawn_with(env).await;

        let (_, body) = json(app.get("/api/v1/agents/music").await).await;
        assert_eq!(body["data"]["useLearned"], true, "{body}");
        let (_, body) = json(app.get("/api/v1/agents/video").await).await;
        assert_eq!(body["data"]["useLearned"], false, "{body}");

        let t = run(&app, json!({"domain": "music", "action": "beat"})).await;
        assert!(is_learned(&t), "{t}");
        assert_recorded_as_run(&app, &t).await;
        let t = run(
            &app,
            json!({"domain": "music", "action": "beat", "useLearned": false}),
        )
        .await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");
        let t = run(&app, json!({"domain": "video", "action": "cut"})).await;
        assert_eq!(t["learnedParameters"], Value::Null, "{t}");
        app.stop().await;
    }
);

/// Two instances on one PostgreSQL: an agent changed through one reaches the other's
/// submissions within the default cache's lifetime (a few seconds), without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_the_other() {
    let mut env_a = TestEnv::new(Backend::Postgres).await;
    env_a.set("JARVIS_INSTANCE_ID", "defaults-a");
    let mut env_b = env_a.another_instance();
    env_b.set("JARVIS_INSTANCE_ID", "defaults-b");
    env_b.set("JARVIS_WORKERS_ENABLED", "false");
    let a = TestApp::spawn_with(env_a).await;
    let b = TestApp::spawn_with(env_b).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;

    let submit_on_b = || async {
        let (s, body) = json(
            b.send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "music", "action": "beat"}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        let id = body["data"]["taskId"].as_str().unwrap().to_string();
        is_learned(&b.task(&id).await)
    };

    let (s, _) = a.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201);
    // B reads (and caches) the agent without the flag.
    assert!(!submit_on_b().await);
    let (s, _) = a
        .put_agent("music", json!({"url": agent.url, "useLearned": true}))
        .await;
    assert_eq!(s, 200);
    let changed = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "B's submissions to follow the agent changed on A",
        || async { submit_on_b().await },
    )
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(6),
        "{:?}",
        changed.elapsed()
    );
    // And off again.
    let (s, _) = a.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 200);
    eventually(
        Duration::from_secs(10),
        "B's submissions to stop learning",
        || async { !submit_on_b().await },
    )
    .await;
    b.stop().await;
    a.stop().await;
}

/// The tasks scheduled by `name` so far (from their idempotency keys).
async fn scheduled(app: &TestApp, name: &str) -> Vec<Value> {
    let (s, body) = json(app.get("/api/v1/tasks?limit=1000").await).await;
    assert_eq!(s, 200, "{body}");
    let prefix = format!("schedule:{name}:");
    body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["idempotencyKey"]
                .as_str()
                .is_some_and(|k| k.starts_with(&prefix))
        })
        .cloned()
        .collect()
}

both_backends!(
    scheduled_tasks_follow_the_agent_default,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = TestAgent::start(Behaviour::Succeed).await;
        let (s, _) = app
            .put_agent("music", json!({"url": agent.url, "useLearned": true}))
            .await;
        assert_eq!(s, 201);
        for (name, task) in [
            ("learned", json!({"domain": "music", "action": "beat"})),
            (
                "optout",
                json!({"domain": "music", "action": "beat", "useLearned": false}),
            ),
        ] {
            let (s, body) = json(
                app.send_json(
                    Method::PUT,
                    &format!("/api/v1/schedules/{name}"),
                    &json!({"everyMs": 1000, "task": task}),
                )
                .await,
            )
            .await;
            assert_eq!(s, 201, "{body}");
        }
        for (name, learned) in [("learned", true), ("optout", false)] {
            let tasks = eventually_some(LIMIT, &format!("a task of schedule {name}"), || async {
                let t = scheduled(&app, name).await;
                (!t.is_empty()).then_some(t)
            })
            .await;
            for t in &tasks {
                assert_eq!(is_learned(t), learned, "{name}: {t}");
            }
        }
        app.stop().await;
    }
);
