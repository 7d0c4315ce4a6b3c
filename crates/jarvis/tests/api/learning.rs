//! Learning end to end: a real HTTP agent on 127.0.0.1 whose outcome depends on its parameters,
//! the real server and queue, both backends; and two instances sharing one PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(30);

/// An agent that fails every `metal` run, succeeds otherwise (impact: jazz 90, others 50), and
/// sleeps `sleepMs` first when asked. It keeps the parameters of every call.
struct ChoiceAgent {
    url: String,
    calls: Arc<Mutex<Vec<Value>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl ChoiceAgent {
    async fn start() -> ChoiceAgent {
        async fn run(
            State(calls): State<Arc<Mutex<Vec<Value>>>>,
            Json(body): Json<Value>,
        ) -> Json<Value> {
            let p = body["parameters"].clone();
            calls.lock().unwrap().push(p.clone());
            if let Some(ms) = p["sleepMs"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Json(match p["genre"].as_str() {
                Some("metal") => {
                    json!({"success": false, "error": "render failed: clipping at sample 4411"})
                }
                Some("jazz") => json!({"success": true, "impactScore": 90}),
                _ => json!({"success": true, "impactScore": 50}),
            })
        }
        let calls = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/run", post(run))
            .with_state(calls.clone());
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ChoiceAgent {
            url: format!("http://127.0.0.1:{port}/run"),
            calls,
            handle,
        }
    }
}

impl Drop for ChoiceAgent {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Quick flushes, ten runs before a recommendation, no exploration.
async fn learning_env(backend: Backend) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_LEARNING_FLUSH_MS", "50");
    env.set("JARVIS_LEARNING_MIN_RUNS", "10");
    env.set("JARVIS_LEARNING_EXPLORATION", "0");
    env
}

async fn app_with(backend: Backend) -> TestApp {
    TestApp::spawn_with(learning_env(backend).await).await
}

async fn register(app: &TestApp, agent_url: &str, timeout_ms: u64) {
    let (s, body) = app
        .put_agent("music", json!({"url": agent_url, "timeoutMs": timeout_ms}))
        .await;
    assert!(s == 200 || s == 201, "{body}");
}

/// Runs `n` tasks alternating jazz and metal (always with bpm 90) and waits until they finished.
async fn train(app: &TestApp, n: usize) {
    let tasks: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "domain": "music", "action": "beat", "maxAttempts": 1,
                "parameters": {"genre": if i % 2 == 0 { "jazz" } else { "metal" }, "bpm": 90,
                               "requestId": format!("r-{i}")},
            })
        })
        .collect();
    let batch = app.submit_batch(json!(tasks)).await;
    for t in batch["tasks"].as_array().unwrap() {
        let id = t["taskId"].as_str().unwrap().to_string();
        eventually(LIMIT, &format!("task {id} to finish"), || async {
            let status = app.task(&id).await["status"].clone();
            status == "succeeded" || status == "failed"
        })
        .await;
    }
}

async fn recommendation(app: &TestApp) -> Value {
    let (s, body) = json(
        app.get("/api/v1/tasks/recommendations?domain=music&action=beat")
            .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["data"].clone()
}

/// Waits until the learner has seen `runs` runs.
async fn learned(app: &TestApp, runs: u64) -> Value {
    eventually_some(
        LIMIT,
        &format!("a recommendation from {runs} runs"),
        || async {
            let r = recommendation(app).await;
            (r["basedOnRuns"].as_u64() >= Some(runs)).then_some(r)
        },
    )
    .await
}

both_backends!(
    recommendations_appear_only_after_enough_data,
    |backend| async move {
        let app = app_with(backend).await;
        let agent = ChoiceAgent::start().await;
        register(&app, &agent.url, 5_000).await;

        let empty = recommendation(&app).await;
        assert_eq!(empty["parameters"], json!({}), "{empty}");
        assert_eq!(empty["basedOnRuns"], 0);
        assert_eq!(empty["source"], "insufficientData");

        train(&app, 6).await;
        let few = learned(&app, 6).await;
        assert_eq!(few["parameters"], json!({}), "{few}");
        assert_eq!(few["source"], "insufficientData");
        assert_eq!(few["confidence"], 0.0);
        let (_, stats) = json(
            app.get("/api/v1/tasks/history?domain=music&action=beat")
                .await,
        )
        .await;
        assert_eq!(stats["data"]["optimalParametersSource"], "mostCommonRecent");

        train(&app, 24).await;
        let r = learned(&app, 30).await;
        assert_eq!(r["parameters"]["genre"], "jazz", "{r}");
        assert_eq!(r["basedOnRuns"], 30);
        // bpm has a single value, which counts 0.5 (nothing to compare with); the minimum wins.
        assert!(r["confidence"].as_f64().unwrap() >= 0.5, "{r}");
        assert!(r["alternatives"].is_array(), "{r}");
        assert_eq!(r["timeoutWarning"], Value::Null);
        // Ids are not choices: never learned, never recommended.
        assert!(r["parameters"].get("requestId").is_none(), "{r}");
        assert!(r["estimates"].get("requestId").is_none(), "{r}");

        let (_, stats) = json(
            app.get("/api/v1/tasks/history?domain=music&action=beat")
                .await,
        )
        .await;
        assert_eq!(stats["data"]["optimalParametersSource"], "learned");
        assert_eq!(stats["data"]["optimalParameters"]["genre"], "jazz");
        app.stop().await;
    }
);

both_backends!(
    learned_values_are_used_and_given_values_kept,
    |backend| async move {
        let app = app_with(backend).await;
        let agent = ChoiceAgent::start().await;
        register(&app, &agent.url, 5_000).await;
        train(&app, 50).await;
        learned(&app, 50).await;

        // No choice given (an id is not one): the learner fills genre and bpm, and the
        // learned timeout.
        let t = app
            .run_task(
                json!({"domain": "music", "action": "beat", "useLearned": true, "maxAttempts": 1,
                   "parameters": {"requestId": "r-x"}}),
            )
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["parameters"]["genre"], "jazz", "{t}");
        assert_eq!(t["parameters"]["bpm"], 90, "{t}");
        let lp = &t["learnedParameters"];
        let p = lp["parameters"]["genre"]["probability"].as_f64().unwrap();
        assert!(p > 0.5 && p <= 1.0, "{lp}");
        assert_eq!(lp["parameters"]["genre"]["value"], "jazz");
        assert_eq!(lp["given"], json!(["requestId"]));
        assert_eq!(t["parameters"]["requestId"], "r-x");
        // 25 successful jazz runs of a few ms: the learned timeout is the 1 s floor.
        assert_eq!(lp["timeoutMs"], 1_000, "{lp}");
        assert_eq!(t["timeoutMs"], 1_000, "{t}");
        assert_eq!(agent.calls.lock().unwrap().last().unwrap()["genre"], "jazz");
        // The history row keeps what was learned and with which probability.
        let id = t["taskId"].as_str().unwrap();
        let rows = app.history_rows(id, 1).await;
        assert_eq!(rows[0]["learnedParameters"], *lp);

        // Given values and a given timeout are kept.
        let t = app
            .run_task(
                json!({"domain": "music", "action": "beat", "useLearned": true, "maxAttempts": 1,
                   "parameters": {"genre": "metal"}, "timeoutMs": 4000}),
            )
            .await;
        assert_eq!(t["parameters"]["genre"], "metal", "{t}");
        assert_eq!(t["parameters"]["bpm"], 90, "{t}");
        assert_eq!(t["timeoutMs"], 4_000);
        assert_eq!(t["status"], "failed");
        assert_eq!(t["learnedParameters"]["given"], json!(["genre"]));
        assert!(t["learnedParameters"]["parameters"].get("genre").is_none());
        assert_eq!(t["learnedParameters"]["timeoutMs"], Value::Null);

        // Without useLearned nothing is filled in.
        let t = app
            .run_task(
                json!({"domain": "music", "action": "beat", "maxAttempts": 1, "parameters": {}}),
            )
            .await;
        assert_eq!(t["parameters"], json!({}));
        assert_eq!(t["learnedParameters"], Value::Null);
        app.stop().await;
    }
);

both_backends!(
    a_timeout_that_cuts_off_successful_runs_is_reported,
    |backend| async move {
        let app = app_with(backend).await;
        let agent = ChoiceAgent::start().await;
        register(&app, &agent.url, 5_000).await;
        let tasks: Vec<Value> = (0..5)
            .map(|_| {
                json!({"domain": "music", "action": "beat", "maxAttempts": 1,
                            "parameters": {"genre": "pop", "sleepMs": 300}})
            })
            .collect();
        app.submit_batch(json!(tasks)).await;
        learned(&app, 5).await;
        assert_eq!(recommendation(&app).await["timeoutWarning"], Value::Null);
        // The operator lowers the agent's timeout below what successful runs need.
        register(&app, &agent.url, 200).await;
        let r = recommendation(&app).await;
        let w = &r["timeoutWarning"];
        assert_eq!(r["configuredTimeoutMs"], 200, "{r}");
        assert_eq!(w["configuredMs"], 200, "{r}");
        assert_eq!(w["successfulAboveShare"], 1.0, "{r}");
        assert!(w["message"].as_str().unwrap().contains("200 ms"), "{w}");
        app.stop().await;
    }
);

both_backends!(recommendations_refuse_bad_queries, |backend| async move {
    let app = app_with(backend).await;
    assert_error(
        app.get("/api/v1/tasks/recommendations?action=beat").await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get("/api/v1/tasks/recommendations?domain=music").await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get("/api/v1/tasks/recommendations?domain=no%20spaces&action=beat")
            .await,
        400,
        "invalid_name",
    )
    .await;
    assert_error(
        app.get("/api/v1/tasks/recommendations?domain=music&action=beat&x=1")
            .await,
        400,
        "invalid_query",
    )
    .await;
    app.stop().await;
});

/// Two instances on one PostgreSQL: what one learns, the other recommends and uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_what_they_learn() {
    let mut env_a = learning_env(Backend::Postgres).await;
    env_a.set("JARVIS_INSTANCE_ID", "learn-a");
    let mut env_b = env_a.another_instance();
    env_b.set("JARVIS_INSTANCE_ID", "learn-b");
    // B runs no tasks: whatever it knows comes through the store.
    env_b.set("JARVIS_WORKERS_ENABLED", "false");
    let a = TestApp::spawn_with(env_a).await;
    let b = TestApp::spawn_with(env_b).await;
    let agent = ChoiceAgent::start().await;
    register(&a, &agent.url, 5_000).await;

    train(&a, 30).await;
    let r = learned(&b, 30).await;
    assert_eq!(r["parameters"]["genre"], "jazz", "{r}");

    // A task submitted to B is filled from the shared state (and run by A).
    let (s, body) = json(
        b.send_json(
            Method::POST,
            "/api/v1/execute",
            &json!({"domain": "music", "action": "beat", "useLearned": true, "maxAttempts": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    let t = eventually_some(LIMIT, "the task to succeed on A", || async {
        let t = a.task(&id).await;
        (t["status"] == "succeeded").then_some(t)
    })
    .await;
    assert_eq!(t["parameters"]["genre"], "jazz", "{t}");
    assert!(t["learnedParameters"]["parameters"]["genre"]["probability"].is_number());

    // Both instances' results add up in one state.
    let r = learned(&b, 31).await;
    assert_eq!(r["basedOnRuns"], 31);
    b.stop().await;
    a.stop().await;
}

both_backends!(
    a_recommendation_without_a_learned_timeout_says_why,
    |backend| async move {
        let app = app_with(backend).await;
        let agent = ChoiceAgent::start().await;
        register(&app, &agent.url, 5_000).await;

        let empty = recommendation(&app).await;
        assert_eq!(empty["timeoutMs"], Value::Null);
        assert_eq!(
            empty["timeoutReason"],
            "no learned timeout yet: 0 successful runs, 20 are needed; failed and timed-out \
             runs do not count; until then tasks use the configured timeout"
        );

        // 12 runs, enough for parameters (JARVIS_LEARNING_MIN_RUNS=10), but 6 successes of
        // jazz (and of bpm 90) are not enough for a timeout of the recommended parameters.
        train(&app, 12).await;
        let r = learned(&app, 12).await;
        assert_eq!(r["parameters"]["genre"], "jazz", "{r}");
        assert_eq!(r["timeoutMs"], Value::Null, "{r}");
        let why = r["timeoutReason"].as_str().unwrap();
        assert!(
            why.starts_with("no learned timeout yet for these parameters: bpm=90 has 6 successful runs, 20 are needed"),
            "{why}"
        );

        // Once there are 20 successful runs of each recommended value, a timeout and no reason.
        train(&app, 30).await;
        let r = learned(&app, 42).await;
        assert!(r["timeoutMs"].as_u64().is_some(), "{r}");
        assert_eq!(r["timeoutReason"], Value::Null, "{r}");
    }
);

both_backends!(
    stats_and_records_take_plain_dates_as_whole_days,
    |backend| async move {
        let app = app_with(backend).await;
        let agent = ChoiceAgent::start().await;
        register(&app, &agent.url, 5_000).await;
        train(&app, 4).await;
        let today = chrono::Utc::now().date_naive();
        let day = |d: i64| (today + chrono::TimeDelta::days(d)).to_string();
        let total = |query: String| {
            let app = &app;
            async move {
                app.data(&format!(
                    "/api/v1/tasks/history?domain=music&action=beat&{query}"
                ))
                .await["total"]
                    .as_u64()
                    .unwrap()
            }
        };
        // The stats read rollups written with the records: wait for all four.
        eventually(LIMIT, "the four execution records", || async {
            app.data("/api/v1/tasks/executions?domain=music").await["items"]
                .as_array()
                .unwrap()
                .len()
                == 4
        })
        .await;
        // `until` is exclusive, but a date as `until` is the end of that day.
        assert_eq!(
            total(format!("since={}&until={}", day(-1), day(0))).await,
            4
        );
        assert_eq!(total(format!("since={}&until={}", day(0), day(0))).await, 4);
        assert_eq!(total(format!("since={}", day(1))).await, 0);
        assert_eq!(total(format!("until={}", day(-1))).await, 0);
        let stats = app
            .data(&format!(
                "/api/v1/tasks/history?domain=music&action=beat&since={}",
                day(0)
            ))
            .await;
        assert_eq!(stats["since"], format!("{}T00:00:00Z", day(0)), "{stats}");

        // Execution records and a service's check history take them too.
        let page = app
            .data(&format!(
                "/api/v1/tasks/executions?domain=music&since={}",
                day(0)
            ))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 4, "{page}");
        app.put_service("svc", json!({"url": "http://127.0.0.1:9/health"}))
            .await;
        let (s, body) = json(
            app.get(&format!(
                "/api/v1/health/services/svc/history?since={}&until={}",
                day(0),
                day(0)
            ))
            .await,
        )
        .await;
        assert_eq!(s, 200, "{body}");

        // Other text is refused saying what is accepted.
        let r = app
            .get("/api/v1/tasks/history?domain=music&action=beat&since=yesterday")
            .await;
        let body = assert_error(r, 400, "invalid_query").await;
        assert_eq!(
            body["error"]["message"],
            format!(
                "since: \"yesterday\" is not {}",
                jarvis::timeparse::EXPECTED
            )
        );
        let r = app
            .get("/api/v1/tasks/executions?until=2026-12-06T10:00")
            .await;
        assert_error(r, 400, "invalid_query").await;
    }
);
