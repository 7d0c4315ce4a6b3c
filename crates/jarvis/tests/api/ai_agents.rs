//! `ai` agents (issue 14, "Tasks"): a domain whose tasks are prompts run through the AI
//! gateway, with the model call's tokens, cost, model and deployment on the attempt's execution
//! record and in the domain's statistics; a spent budget makes the tasks wait, spending nothing.

use serde_json::{json, Value};

use crate::ai_spend::{env, Mock, BUDGETED, CALL_COST, COMPLETION, PROMPT};
use crate::both_backends;
use crate::helpers::*;

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn ai_agent(app: &TestApp, domain: &str, prompt: &str) {
    let (s, body) = app
        .put_agent(
            domain,
            json!({"kind": "ai", "model": "openai/gpt-4o-mini", "prompt": prompt}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["kind"], "ai");
    assert!(body["data"].get("url").is_none(), "{body}");
}

async fn records(app: &TestApp, task: &Value) -> Vec<Value> {
    let id = task["taskId"].as_str().unwrap();
    app.data(&format!("/api/v1/tasks/executions?taskId={id}"))
        .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

both_backends!(
    an_ai_agents_tasks_run_as_prompts_with_their_cost_on_the_history_row,
    |backend| async move {
        let mock = Mock::start().await;
        let app = TestApp::spawn_with(env(&mock, backend, "").await).await;
        ai_agent(
            &app,
            "research",
            "Summarise {{parameters.text}} for a {{action}}.",
        )
        .await;
        let task = app
            .run_task(json!({"domain": "research", "action": "brief",
                             "parameters": {"text": "the news"}}))
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(task["result"]["content"], "ok");
        assert_eq!(task["result"]["model"], "openai/gpt-4o-mini");
        assert_eq!(task["result"]["deployment"], "openai");
        assert_eq!(task["result"]["usage"]["promptTokens"], PROMPT);
        // The rendered prompt is the one user message; the model goes as the provider names it.
        let sent = mock.last();
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(
            sent["messages"],
            json!([{"role": "user", "content": "Summarise the news for a brief."}])
        );
        // The execution record carries cost, model, deployment and tokens.
        let recs = records(&app, &task).await;
        assert_eq!(recs.len(), 1, "{recs:?}");
        let r = &recs[0];
        assert_eq!(r["success"], true);
        assert!(approx(r["costUsd"].as_f64().unwrap(), CALL_COST), "{r}");
        assert_eq!(
            r["modelCall"],
            json!({"model": "openai/gpt-4o-mini", "deployment": "openai",
                   "promptTokens": PROMPT, "completionTokens": COMPLETION})
        );
        // The domain's statistics say what a task costs.
        let stats = eventually_some(
            std::time::Duration::from_secs(10),
            "the record in the statistics",
            || async {
                let s = app
                    .data("/api/v1/tasks/history?domain=research&action=brief")
                    .await;
                (s["total"] == 1).then_some(s)
            },
        )
        .await;
        assert!(
            approx(stats["costPerTaskUsd"].as_f64().unwrap(), CALL_COST),
            "{stats}"
        );
        // And the gateway counted the call under the task's domain.
        let usage = eventually_some(
            std::time::Duration::from_secs(10),
            "the usage flush",
            || async {
                let u = app.data("/api/v1/ai/usage?by=domain").await;
                (u["total"]["requests"] == 1).then_some(u)
            },
        )
        .await;
        assert_eq!(usage["rows"][0]["key"], "research");

        // A task may name another model.
        let task = app
            .run_task(json!({"domain": "research", "action": "brief",
                             "parameters": {"text": "x", "model": "openai/gpt-4o"}}))
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(mock.last()["model"], "gpt-4o");
        let recs = records(&app, &task).await;
        assert_eq!(recs[0]["modelCall"]["model"], "openai/gpt-4o");
        // gpt-4o: $2.50 / $10 per million.
        let cost = (PROMPT as f64 * 2.5 + COMPLETION as f64 * 10.0) / 1e6;
        assert!(approx(recs[0]["costUsd"].as_f64().unwrap(), cost));
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_a_parameter_its_prompt_needs_fails_without_a_model_call() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;
    ai_agent(&app, "research", "About {{parameters.topic}}").await;
    let task = app
        .run_task(
            json!({"domain": "research", "action": "brief", "parameters": {},
                         "maxAttempts": 1}),
        )
        .await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["error"]
            .as_str()
            .unwrap()
            .contains("uses parameter \"topic\", which the task does not have"),
        "{task}"
    );
    assert_eq!(mock.calls(), 0);
    // The domain's breaker is not told: it was the task's fault.
    assert_eq!(app.breaker("research").await["failureCount"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_agent_is_refused_what_belongs_to_http_agents_and_the_reverse() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;
    for (body, says) in [
        (json!({"kind": "ai", "prompt": "p"}), "model: is required"),
        (
            json!({"kind": "ai", "model": "m", "prompt": "{{user}}"}),
            "prompt: unknown placeholder {{user}}",
        ),
        (
            json!({"kind": "ai", "model": "m", "prompt": "p", "url": "http://127.0.0.1:9"}),
            "url: an ai agent has no URL",
        ),
        (
            json!({"url": "http://127.0.0.1:9", "prompt": "p"}),
            "prompt: is for an agent of kind ai",
        ),
    ] {
        let (s, b) = app.put_agent("research", body.clone()).await;
        assert_eq!(s, 400, "{body}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_makes_ai_tasks_wait_without_spending_attempts() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, BUDGETED).await).await;
    ai_agent(&app, "research", "Go").await;
    // $1 each; research may spend $1.50 a day: two tasks run, the third waits.
    for _ in 0..2 {
        let t = app
            .run_task(json!({"domain": "research", "action": "go"}))
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let (s, body) = json(
        app.send_json(
            reqwest::Method::POST,
            "/api/v1/tasks",
            &json!({"domain": "research", "action": "go"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    let waiting = eventually_some(
        std::time::Duration::from_secs(10),
        "the task to wait on the budget",
        || async {
            let t = app.task(&id).await;
            (t["status"] == "waiting").then_some(t)
        },
    )
    .await;
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    let error = waiting["error"].as_str().unwrap();
    assert!(
        error.contains("daily AI budget of domain research is spent"),
        "{error}"
    );
    assert_eq!(mock.calls(), 2, "the third task called nothing");
    let recs = app
        .data(&format!("/api/v1/tasks/executions?taskId={id}"))
        .await;
    assert_eq!(
        recs["items"],
        json!([]),
        "no record for an attempt not made"
    );
    app.stop().await;
}

/// Two models that both always succeed; gpt-4o costs ~16 times gpt-4o-mini at list prices.
const MODEL_CHOICE: &str = r#"
[learning]
flushMs = 50

[learning.spaces."research/brief".model]
kind = "categorical"
values = ["openai/gpt-4o", "openai/gpt-4o-mini"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_model_converges_on_the_cheaper_of_two_that_succeed_equally() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, MODEL_CHOICE).await).await;
    let (s, body) = app
        .put_agent(
            "research",
            json!({"kind": "ai", "model": "openai/gpt-4o", "prompt": "Go",
                   "useLearned": true}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    // Rounds of 10 tasks; after each, wait until the learner has folded them in (so the next
    // round chooses with what this one taught it).
    let mut picks: Vec<String> = Vec::new();
    for round in 1..=16u64 {
        let tasks: Vec<Value> = (0..10)
            .map(|_| json!({"domain": "research", "action": "brief"}))
            .collect();
        let accepted = app.submit_batch(json!(tasks)).await;
        let ids: Vec<String> = accepted["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("{accepted}"))
            .iter()
            .map(|t| t["taskId"].as_str().unwrap().to_string())
            .collect();
        for id in &ids {
            let task = eventually_some(
                std::time::Duration::from_secs(10),
                "the task to finish",
                || async {
                    let t = app.task(id).await;
                    (t["status"] == "succeeded").then_some(t)
                },
            )
            .await;
            picks.push(task["result"]["model"].as_str().unwrap().to_string());
        }
        eventually(
            std::time::Duration::from_secs(10),
            "the learner to see the round",
            || async {
                let r = app
                    .data("/api/v1/tasks/recommendations?domain=research&action=brief")
                    .await;
                r["basedOnRuns"] == round * 10
            },
        )
        .await;
    }
    let last: Vec<&String> = picks.iter().rev().take(40).collect();
    let mini = last.iter().filter(|m| *m == &"openai/gpt-4o-mini").count();
    assert!(
        mini >= 32,
        "{mini} of the last 40 tasks ran gpt-4o-mini: {picks:?}"
    );
    // The recommendation says why: the same success, a fraction of the cost.
    let r = app
        .data("/api/v1/tasks/recommendations?domain=research&action=brief")
        .await;
    assert_eq!(r["parameters"]["model"], "openai/gpt-4o-mini", "{r}");
    let estimate = &r["estimates"]["model"];
    assert_eq!(estimate["value"], "openai/gpt-4o-mini", "{r}");
    assert!(approx(
        estimate["costPerRunUsd"].as_f64().unwrap(),
        CALL_COST
    ));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_agent_is_registered_and_listed_from_the_command_line() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;
    let vars = [
        ("JARVIS_URL".to_string(), app.address.clone()),
        ("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string()),
    ]
    .into();
    let run = |args: &[&str]| {
        let out = run_jarvis(args, &vars, app.env.dir.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "agents",
        "put",
        "summaries",
        "--model",
        "openai/gpt-4o-mini",
        "--prompt",
        "Summarise {{parameters.text}}",
    ]);
    let agent = app.data("/api/v1/agents/summaries").await;
    assert_eq!(agent["kind"], "ai");
    assert_eq!(agent["prompt"], "Summarise {{parameters.text}}");
    let list = run(&["agents"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("summaries") && l.contains("ai openai/gpt-4o-mini")),
        "{list}"
    );
    // A URL and a model do not go together.
    let out = run_jarvis(
        &["agents", "put", "x", "http://127.0.0.1:9", "--model", "m"],
        &vars,
        app.env.dir.path(),
    );
    assert!(!out.status.success());
    app.stop().await;
}
