//! What submission refuses and what it keeps (issue 18): a domain without an agent (422, or
//! queued with `waitForAgent` until one is registered), built-in domains that no HTTP agent can
//! take, the `Idempotency-Key` header and idempotency keys reused with another request (409),
//! and an agent answer that is not the agent protocol. Both backends.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent::{Behaviour, TestAgent};
use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

async fn register(app: &TestApp, domain: &str, agent: &TestAgent) {
    let (s, body) = app
        .put_agent(domain, json!({"url": agent.url, "timeoutMs": 5000}))
        .await;
    assert!(s == 200 || s == 201, "{body}");
}

/// Submits with `Idempotency-Key: key` (when given); the answer.
async fn submit_keyed(app: &TestApp, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url("/api/v1/execute"))
        .bearer_auth(TOKEN)
        .json(&body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.expect("request")
}

async fn until_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually_some(LIMIT, &format!("task {id} to be {status}"), || async {
        let t = app.task(id).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

both_backends!(
    a_task_for_a_domain_without_an_agent_is_refused_naming_the_domain,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "music", "action": "beat"}),
            )
            .await;
        let body = assert_error(r, 422, "no_agent").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("domain: no agent is registered for domain music"),
            "{message}"
        );
        assert!(message.contains("PUT /api/v1/agents/music"), "{message}");
        assert!(message.contains("\"waitForAgent\": true"), "{message}");
        // Nothing was stored.
        assert_eq!(app.data("/api/v1/tasks").await["items"], json!([]));

        // A batch names the task; nothing of it is stored.
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/tasks/batch",
                &json!({"tasks": [
                    {"domain": "noop", "action": "x"},
                    {"domain": "music", "action": "beat", "waitForAgent": true},
                    {"domain": "music", "action": "beat"}
                ]}),
            )
            .await;
        let body = assert_error(r, 422, "no_agent").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tasks[2].domain: no agent is registered for domain music"),
            "{body}"
        );
        assert_eq!(app.data("/api/v1/tasks").await["items"], json!([]));

        // Built-in domains need no agent; registered ones are accepted.
        let t = app.run_task(json!({"domain": "noop", "action": "x"})).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        let agent = TestAgent::start(Behaviour::Succeed).await;
        register(&app, "music", &agent).await;
        let t = app
            .run_task(json!({"domain": "music", "action": "beat"}))
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
);

both_backends!(
    a_task_that_waits_for_an_agent_spends_no_attempt_and_runs_once_one_is_registered,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
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
        let id = body["data"]["taskId"].as_str().unwrap().to_string();
        let t = until_status(&app, &id, "waiting").await;
        assert_eq!(t["attempts"], 0, "{t}");
        assert!(
            t["error"]
                .as_str()
                .unwrap()
                .starts_with("no agent is registered for domain music: waiting for one"),
            "{t}"
        );
        // It keeps waiting (looked at again every 2 s) without spending its one attempt.
        // (A look claims it for a moment, so `attempts` is 1 while it runs; a spent attempt
        // would fail the task, which allows one.)
        stays(Duration::from_millis(2500), "the task waits", || async {
            let t = app.task(&id).await;
            t["status"] != "failed"
        })
        .await;
        assert_eq!(until_status(&app, &id, "waiting").await["attempts"], 0);

        let agent = TestAgent::start(Behaviour::Succeed).await;
        register(&app, "music", &agent).await;
        let t = until_status(&app, &id, "succeeded").await;
        assert_eq!(t["attempts"], 1, "{t}");
        assert_eq!(agent.calls().len(), 1);
    }
);

both_backends!(
    an_http_agent_cannot_take_a_built_in_domain,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = TestAgent::start(Behaviour::Fail("x".into())).await;
        let r = app
            .send_json(
                Method::PUT,
                "/api/v1/agents/noop",
                &json!({"url": agent.url}),
            )
            .await;
        let body = assert_error(r, 409, "builtin_agent").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("domain noop is served by a built-in agent"),
            "{body}"
        );
        let r = app.get("/api/v1/agents/noop").await;
        assert_error(r, 404, "not_found").await;
        // The built-in still runs the domain's tasks.
        let t = app.run_task(json!({"domain": "noop", "action": "x"})).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert!(agent.calls().is_empty());
    }
);

both_backends!(
    the_idempotency_key_header_works_like_the_body_field,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let task = json!({"domain": "noop", "action": "x", "parameters": {"n": 1}});
        let (s, first) = json(submit_keyed(&app, Some("order-7"), task.clone()).await).await;
        assert_eq!(s, 202, "{first}");
        let id = first["data"]["taskId"].clone();
        assert_eq!(
            app.task(id.as_str().unwrap()).await["idempotencyKey"],
            "order-7"
        );

        // The same request again, by header or by body: the same task, nothing created.
        let (s, again) = json(submit_keyed(&app, Some("order-7"), task.clone()).await).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["data"]["taskId"], id);
        assert_eq!(again["data"]["duplicate"], true);
        let mut keyed = task.clone();
        keyed["idempotencyKey"] = json!("order-7");
        let (s, again) = json(submit_keyed(&app, None, keyed.clone()).await).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["data"]["taskId"], id);
        let (s, again) = json(submit_keyed(&app, Some("order-7"), keyed).await).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["data"]["taskId"], id);
        assert_eq!(
            app.data("/api/v1/tasks").await["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Header and body disagreeing is refused.
        let mut other = task.clone();
        other["idempotencyKey"] = json!("order-8");
        let body = assert_error(
            submit_keyed(&app, Some("order-7"), other).await,
            400,
            "invalid_task",
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key header"),
            "{body}"
        );
        // The header is validated like the field; a batch takes none.
        let long = "k".repeat(201);
        assert_error(
            submit_keyed(&app, Some(&long), task.clone()).await,
            400,
            "invalid_task",
        )
        .await;
        let r = app
            .client
            .post(app.url("/api/v1/tasks/batch"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "b-1")
            .json(&json!({"tasks": [task]}))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "invalid_task").await;
        assert_eq!(
            app.data("/api/v1/tasks").await["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
);

both_backends!(
    reusing_an_idempotency_key_with_another_request_is_a_conflict,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let task = json!({"domain": "noop", "action": "x", "parameters": {"n": 1},
                          "idempotencyKey": "k1"});
        let (s, first) = json(submit_keyed(&app, None, task.clone()).await).await;
        assert_eq!(s, 202, "{first}");
        let id = first["data"]["taskId"].as_str().unwrap().to_string();

        for (changed, what) in [
            (json!({"parameters": {"n": 2}}), "parameters"),
            (json!({"action": "y"}), "action"),
            (json!({"parameters": {}}), "parameters"),
        ] {
            let mut body = task.clone();
            for (k, v) in changed.as_object().unwrap() {
                body[k] = v.clone();
            }
            // By body, by header, and with ?wait=true: the same refusal.
            let r = submit_keyed(&app, None, body.clone()).await;
            let err = assert_error(r, 409, "idempotency_conflict").await;
            let message = err["error"]["message"].as_str().unwrap();
            assert!(message.contains(&id), "{message}");
            assert!(message.contains(&format!("another {what}")), "{message}");
            assert!(message.contains("\"k1\""), "{message}");
            let mut by_header = body.clone();
            by_header.as_object_mut().unwrap().remove("idempotencyKey");
            let r = submit_keyed(&app, Some("k1"), by_header).await;
            assert_error(r, 409, "idempotency_conflict").await;
            let r = app
                .send_json(Method::POST, "/api/v1/execute?wait=true", &body)
                .await;
            assert_error(r, 409, "idempotency_conflict").await;
        }
        // Fields other than domain/action/parameters do not make another request.
        let mut body = task.clone();
        body["priority"] = json!(9);
        let (s, again) = json(submit_keyed(&app, None, body).await).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["data"]["taskId"], json!(id));

        // In a batch: checked before anything is stored, against the store and the batch.
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/tasks/batch",
                &json!({"tasks": [
                    {"domain": "noop", "action": "x", "idempotencyKey": "fresh"},
                    {"domain": "noop", "action": "x", "parameters": {"n": 3}, "idempotencyKey": "k1"}
                ]}),
            )
            .await;
        let err = assert_error(r, 409, "idempotency_conflict").await;
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tasks[1].idempotencyKey: "),
            "{err}"
        );
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/tasks/batch",
                &json!({"tasks": [
                    {"domain": "noop", "action": "x", "idempotencyKey": "fresh"},
                    {"domain": "noop", "action": "z", "idempotencyKey": "fresh"}
                ]}),
            )
            .await;
        assert_error(r, 409, "idempotency_conflict").await;
        assert_eq!(
            app.data("/api/v1/tasks").await["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // The same request in a batch is still the original task.
        let batch = app.submit_batch(json!([task])).await;
        assert_eq!(batch["created"], 0, "{batch}");
        assert_eq!(batch["tasks"][0]["taskId"], json!(id));
    }
);

both_backends!(
    an_answer_that_is_not_the_agent_protocol_fails_saying_what_was_expected,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = TestAgent::start(Behaviour::Body(json!({"result": "done"}))).await;
        register(&app, "music", &agent).await;
        let t = app
            .run_task(json!({"domain": "music", "action": "beat", "maxAttempts": 1}))
            .await;
        assert_eq!(t["status"], "failed", "{t}");
        let error = t["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "agent answer is not the agent protocol: expected {\"success\": true, \
                 \"output\": <any JSON>} or {\"success\": false, \"error\": \"<why>\"}"
            ),
            "{error}"
        );
        assert!(error.contains("missing field `success`"), "{error}");
        assert!(
            error.contains(r#"the answer was {"result":"done"}"#),
            "{error}"
        );
        // The same reason in the execution record.
        let rows = app.history_rows(t["taskId"].as_str().unwrap(), 1).await;
        assert_eq!(rows[0]["failureReason"], t["error"], "{rows:?}");

        // The protocol's answer succeeds.
        agent.set(Behaviour::Body(json!({"success": true, "output": "done"})));
        let t = app
            .run_task(json!({"domain": "music", "action": "beat", "maxAttempts": 1}))
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["result"], "done", "{t}");
    }
);
