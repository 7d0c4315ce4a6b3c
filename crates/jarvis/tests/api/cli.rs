//! The command line as an operator runs it: the client commands find the server the way the
//! server was configured, refuse to run without a token before any request, print the error's
//! correlation ID, say how a waited-for task ended in their exit code, list tasks a page at a
//! time without Jarvis's own system tasks, show every field of a breaker, register services
//! and agents, and end quietly when their output goes into a closed pipe.

use std::collections::HashMap;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent::{Behaviour, TestAgent};
use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(30);

/// What `jarvis …` printed on stdout and stderr.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Variables of a CLI run: the token and `extra`.
fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut v: HashMap<String, String> =
        [("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string())].into();
    for (k, val) in extra {
        v.insert(k.to_string(), val.to_string());
    }
    v
}

/// `jarvis args` run off the async runtime (the server may run in this process).
async fn jarvis(args: &[&str], vars: HashMap<String, String>, dir: &std::path::Path) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_jarvis(&args, &vars, &dir)
    })
    .await
    .unwrap()
}

// ---- row 2: where the server is ----------------------------------------------------------------

/// `PORT`, `JARVIS_PORT`, `JARVIS_URL` and `[server] port` of `--config` all lead the client
/// commands and the container health check to the server; a `--config` that does not exist is
/// an error, not ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_find_the_server_from_its_configured_port() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    let dir = env.dir.path();
    let port = p.port.to_string();
    let file = dir.join("client.toml");
    std::fs::write(&file, format!("[server]\nport = {port}\n")).unwrap();
    let file = file.display().to_string();

    for (what, extra, args) in [
        ("PORT", vec![("PORT", port.as_str())], vec!["breakers"]),
        (
            "JARVIS_PORT",
            vec![("JARVIS_PORT", port.as_str())],
            vec!["breakers"],
        ),
        (
            "empty JARVIS_URL",
            vec![("JARVIS_URL", ""), ("PORT", port.as_str())],
            vec!["breakers"],
        ),
        (
            "JARVIS_URL",
            vec![("JARVIS_URL", p.address.as_str())],
            vec!["breakers"],
        ),
        (
            "--config",
            vec![],
            vec!["--config", file.as_str(), "breakers"],
        ),
        (
            "--config after",
            vec![],
            vec!["schedules", "--config", file.as_str()],
        ),
        (
            "tasks list",
            vec![("PORT", port.as_str())],
            vec!["tasks", "list"],
        ),
        (
            "health",
            vec![("JARVIS_PORT", port.as_str())],
            vec!["health"],
        ),
        (
            "healthcheck JARVIS_PORT",
            vec![("JARVIS_PORT", port.as_str())],
            vec!["healthcheck"],
        ),
        (
            "healthcheck PORT",
            vec![("PORT", port.as_str())],
            vec!["healthcheck"],
        ),
        (
            "healthcheck --config",
            vec![],
            vec!["healthcheck", "--config", file.as_str()],
        ),
        (
            "healthcheck JARVIS_URL",
            vec![("JARVIS_URL", p.address.as_str())],
            vec!["healthcheck"],
        ),
    ] {
        let out = jarvis(&args, vars(&extra), dir).await;
        assert!(out.status.success(), "{what}: {out:?}");
    }

    // Nothing there: the health check fails with 1 (never Docker's reserved 2).
    let closed = closed_port().to_string();
    let out = jarvis(&["healthcheck"], vars(&[("PORT", &closed)]), dir).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (_, err) = text(&out);
    assert!(err.contains(&format!("127.0.0.1:{closed}/health")), "{err}");

    // A config file that does not exist is an error, whatever else says where the server is.
    for args in [
        vec!["breakers", "--config", "/nonexistent.toml"],
        vec![
            "--config",
            "/nonexistent.toml",
            "tasks",
            "list",
            "--url",
            p.address.as_str(),
        ],
    ] {
        let out = jarvis(&args, vars(&[]), dir).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let (_, err) = text(&out);
        assert!(err.contains("/nonexistent.toml"), "{err}");
    }
    let out = jarvis(
        &["healthcheck", "--config", "/nonexistent.toml"],
        vars(&[]),
        dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

// ---- row 3: the correlation ID of an error -------------------------------------------------------

both_backends!(
    every_error_envelope_carries_the_correlation_id,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let client = reqwest::Client::new();
        let send = |method: Method, path: &str, token: bool| {
            let mut r = client
                .request(method, app.url(path))
                .header("x-correlation-id", "req-abc123xyz");
            if token {
                r = r.bearer_auth(TOKEN);
            }
            r.send()
        };
        let cases = [
            (
                send(Method::GET, "/api/v1/nothing-here", true)
                    .await
                    .unwrap(),
                404,
                "not_found",
            ),
            (
                send(Method::GET, "/api/v1/tasks", false).await.unwrap(),
                401,
                "unauthorized",
            ),
            (
                send(Method::GET, "/api/v1/tasks?limit=0", true)
                    .await
                    .unwrap(),
                400,
                "invalid_query",
            ),
            (
                send(Method::GET, "/api/v1/tasks/not-a-uuid", true)
                    .await
                    .unwrap(),
                400,
                "invalid_id",
            ),
            (
                send(Method::PATCH, "/api/v1/tasks", true).await.unwrap(),
                405,
                "method_not_allowed",
            ),
            (
                send(Method::GET, "/nothing", false).await.unwrap(),
                404,
                "not_found",
            ),
        ];
        for (response, status, code) in cases {
            let headers = response.headers().clone();
            let body = assert_error(response, status, code).await;
            assert_eq!(body["error"]["correlationId"], "req-abc123xyz", "{body}");
            assert_eq!(headers["x-correlation-id"], "req-abc123xyz");
            if status == 401 {
                assert!(headers.contains_key("www-authenticate"), "{headers:?}");
            }
        }
        // Without a header of its own the caller still gets the generated ID, the same as the
        // header's.
        let r = app.get("/api/v1/services/nobody").await;
        let header = r.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = assert_error(r, 404, "not_found").await;
        assert!(header.starts_with("req-"), "{header}");
        assert_eq!(body["error"]["correlationId"], header.as_str());

        // The CLI prints it with the message.
        let missing = uuid::Uuid::now_v7().to_string();
        let out = jarvis(
            &["tasks", "show", &missing, "--url", &app.address],
            vars(&[]),
            app.env.dir.path(),
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let (_, err) = text(&out);
        assert!(err.contains("404 Not Found not_found: no task"), "{err}");
        assert!(err.contains("(correlation ID req-"), "{err}");
        app.stop().await;
    }
);

/// The issue's case: a 500 from the store (here PostgreSQL lost a table). The body says the
/// detail is in the log under the correlation ID, and now carries it; the CLI prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_answers_500_with_its_correlation_id() {
    use sqlx::Connection as _;
    let app = TestApp::spawn(Backend::Postgres).await;
    let url = app.env.db.as_ref().unwrap().url.clone();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE schedules CASCADE")
        .execute(&mut conn)
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/v1/schedules"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "req-storefail01")
        .send()
        .await
        .unwrap();
    let body = assert_error(r, 500, "internal").await;
    assert_eq!(body["error"]["correlationId"], "req-storefail01", "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("schedules"),
        "the detail stays in the log: {body}"
    );
    let out = jarvis(
        &["schedules", "--url", &app.address],
        vars(&[]),
        app.env.dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (_, err) = text(&out);
    assert!(
        err.contains("500 Internal Server Error internal: "),
        "{err}"
    );
    assert!(err.contains("(correlation ID req-"), "{err}");
    app.stop().await;
}

// ---- row 4: how a waited-for task ended -----------------------------------------------------------

/// `tasks submit --wait` exits 0 when the task succeeded, 3 when it failed, 4 when it was still
/// running when the wait (`--wait-ms`) ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_says_how_the_task_ended_in_its_exit_code() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    let failing = TestAgent::start(Behaviour::Fail("no luck".into())).await;
    let slow = TestAgent::start(Behaviour::Delay(Duration::from_secs(20))).await;
    for (domain, agent) in [("flaky", &failing), ("slow", &slow)] {
        let (s, body) = p.put_agent(domain, json!({ "url": agent.url })).await;
        assert_eq!(s, 201, "{body}");
    }
    let dir = env.dir.path();
    let submit = |domain: &'static str, wait: &'static [&'static str]| {
        let mut args = vec!["tasks", "submit", domain, "go", "--max-attempts", "1"];
        args.extend_from_slice(wait);
        args.extend_from_slice(&["--url", p.address.as_str()]);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            jarvis(&args, vars(&[]), dir).await
        }
    };

    let out = submit("noop", &["--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["status"], "succeeded");

    let out = submit("flaky", &["--wait-ms", "20000"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["status"], "failed");

    let out = submit("slow", &["--wait-ms", "300"]).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        ["queued", "running"].contains(&task["status"].as_str().unwrap()),
        "{task}"
    );

    // The wait is bounded as the server bounds it, and documented.
    let out = submit("noop", &["--wait-ms", "120001"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = jarvis(&["tasks", "submit", "--help"], vars(&[]), dir).await;
    let (help, _) = text(&out);
    assert!(
        help.contains("3 the task failed or was cancelled")
            && help.contains("4 the task had not finished"),
        "{help}"
    );
}

// ---- row 7 and the listing: tasks by status, a page at a time ------------------------------------

/// Stores a task of `domain` that stays queued (its `runAt` is far away).
async fn queued_task(app: &TestApp, domain: &str, cid: &str) -> String {
    let input: jarvis::tasks::input::TaskInput = serde_json::from_value(json!({
        "domain": domain, "action": "later", "runAt": "2999-01-01T00:00:00Z"
    }))
    .unwrap();
    let new = input.validate("", cid, chrono::Utc::now()).unwrap();
    let ins = app.state().store.insert_tasks(&[new], None).await.unwrap();
    ins[0].task.id.to_string()
}

both_backends!(
    tasks_are_listed_by_status_a_page_at_a_time,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let mut done = Vec::new();
        for i in 0..5 {
            let t = app
                .run_task(json!({"domain": "noop", "action": "ping", "parameters": {"i": i}}))
                .await;
            done.push(t["taskId"].as_str().unwrap().to_string());
        }
        let waiting = queued_task(&app, "music", "req-later0000001").await;
        let system = queued_task(&app, "system-maintenance", "req-system000001").await;

        // Pages of 2, newest first, until nextCursor is null; no task twice, none missed.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tasks?limit=2&cursor={c}"),
                None => "/api/v1/tasks?limit=2".to_string(),
            };
            let page = app.data(&path).await;
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2, "{page}");
            seen.extend(
                items
                    .iter()
                    .map(|t| t["taskId"].as_str().unwrap().to_string()),
            );
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut expected = vec![waiting.clone()];
        expected.extend(done.iter().rev().cloned());
        assert_eq!(
            seen, expected,
            "newest first, every task once, the system task left out"
        );

        // By status, by correlation ID, by time.
        let queued = app.data("/api/v1/tasks?status=queued").await;
        assert_eq!(queued["items"].as_array().unwrap().len(), 1, "{queued}");
        assert_eq!(queued["items"][0]["taskId"], waiting.as_str());
        assert!(queued["nextCursor"].is_null());
        let by_cid = app
            .data("/api/v1/tasks?correlationId=req-later0000001")
            .await;
        assert_eq!(by_cid["items"][0]["taskId"], waiting.as_str(), "{by_cid}");
        let later = app.data("/api/v1/tasks?since=2999-01-01T00:00:00Z").await;
        assert!(later["items"].as_array().unwrap().is_empty(), "{later}");
        let earlier = app.data("/api/v1/tasks?until=2000-01-01T00:00:00Z").await;
        assert!(earlier["items"].as_array().unwrap().is_empty(), "{earlier}");

        // System tasks when asked for.
        let all = app.data("/api/v1/tasks?includeSystem=true&limit=1").await;
        assert_eq!(all["items"][0]["taskId"], system.as_str(), "{all}");
        let named = app.data("/api/v1/tasks?domain=system-maintenance").await;
        assert_eq!(named["items"][0]["taskId"], system.as_str(), "{named}");

        // A cursor that is not one is refused.
        assert_error(
            app.get("/api/v1/tasks?cursor=nope").await,
            400,
            "invalid_query",
        )
        .await;

        // The CLI: a table of the page, the next page's cursor under it; dates accepted.
        let dir = app.env.dir.path().to_path_buf();
        let out = jarvis(
            &[
                "tasks",
                "list",
                "--status",
                "succeeded",
                "--limit",
                "3",
                "--since",
                "2020-01-01",
                "--until",
                "2999-12-31",
                "--url",
                &app.address,
            ],
            vars(&[]),
            &dir,
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let (table, _) = text(&out);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("TASK"), "{table}");
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[1].starts_with(&done[4]) && lines[1].contains("noop/ping"),
            "{table}"
        );
        assert!(
            lines[1].contains("succeeded") && lines[1].contains("1/3"),
            "{table}"
        );
        let cursor = lines[4].strip_prefix("more: add --cursor ").expect(&table);
        let out = jarvis(
            &[
                "tasks",
                "list",
                "--status",
                "succeeded",
                "--cursor",
                cursor,
                "--json",
                "--url",
                &app.address,
            ],
            vars(&[]),
            &dir,
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rest: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["taskId"].as_str().unwrap())
            .collect();
        assert_eq!(rest, vec![done[1].as_str(), done[0].as_str()], "{page}");
        let out = jarvis(
            &[
                "tasks",
                "list",
                "--correlation-id",
                "req-system000001",
                "--include-system",
                "--url",
                &app.address,
            ],
            vars(&[]),
            &dir,
        )
        .await;
        let (table, _) = text(&out);
        assert!(
            table.contains(&system) && table.contains("system-maintenance/later"),
            "{table}"
        );
        let out = jarvis(
            &[
                "tasks",
                "list",
                "--since",
                "yesterday",
                "--url",
                &app.address,
            ],
            vars(&[]),
            &dir,
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            text(&out).1.contains("is not an RFC 3339 time with a zone"),
            "{out:?}"
        );
        app.stop().await;
    }
);

/// Every health round is an execution record of `system-health/monitor-services`: the
/// listings leave them out unless asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_rounds_are_hidden_from_execution_listings_unless_asked_for() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_HEALTH_ROUND_MS", "100");
    let app = TestApp::spawn_with(env).await;
    let service = FakeService::start(Mode::Ok).await;
    app.put_service(
        "db",
        json!({"url": service.url("/health"), "intervalMs": 100}),
    )
    .await;
    let task = app
        .run_task(json!({"domain": "noop", "action": "ping"}))
        .await;
    let id = task["taskId"].as_str().unwrap();
    app.history_rows(id, 1).await;
    eventually(LIMIT, "a few health rounds in the history", || async {
        let page = app
            .data("/api/v1/tasks/executions?domain=system-health&limit=3")
            .await;
        page["items"].as_array().unwrap().len() == 3
    })
    .await;
    let domains = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["domain"].as_str().unwrap().to_string())
            .collect()
    };
    let plain = app.data("/api/v1/tasks/executions").await;
    assert_eq!(domains(&plain), vec!["noop"], "{plain}");
    let all = app
        .data("/api/v1/tasks/executions?includeSystem=true")
        .await;
    assert!(domains(&all).iter().any(|d| d == "system-health"), "{all}");
    assert!(domains(&all).iter().any(|d| d == "noop"), "{all}");

    let dir = app.env.dir.path().to_path_buf();
    let out = jarvis(
        &["tasks", "executions", "--url", &app.address],
        vars(&[]),
        &dir,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(domains(&page), vec!["noop"], "{page}");
    let out = jarvis(
        &[
            "tasks",
            "executions",
            "--include-system",
            "--limit",
            "50",
            "--url",
            &app.address,
        ],
        vars(&[]),
        &dir,
    )
    .await;
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        domains(&page).iter().any(|d| d == "system-health"),
        "{page}"
    );
    app.stop().await;
}

// ---- row 8: no token, one message, no request ----------------------------------------------------

/// Every command that needs a token, run without one, prints the same message (how to get a
/// token) and exits non-zero without sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_without_a_token_say_how_to_get_one_before_any_request() {
    let server = FakeService::start(Mode::Ok).await;
    let url = server.url("");
    let dir = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["breakers"],
        vec!["breakers", "show", "x"],
        vec!["health"],
        vec!["health", "history", "x"],
        vec!["schedules"],
        vec!["tasks", "list"],
        vec!["tasks", "executions"],
        vec!["tasks", "show", &id],
        vec!["tasks", "submit", "noop", "ping", "--wait"],
        vec!["tasks", "stats", "noop", "ping"],
        vec!["services"],
        vec!["services", "put", "x", "http://127.0.0.1:1/"],
        vec!["agents", "list"],
        vec!["agents", "delete", "x"],
    ];
    let mut messages = Vec::new();
    for mut args in commands {
        args.extend_from_slice(&["--url", url.as_str()]);
        let out = jarvis(&args, HashMap::new(), dir.path()).await;
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let (stdout, stderr) = text(&out);
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains("JARVIS_AUTH_TOKEN") && stderr.contains("dev-token"),
            "{stderr}"
        );
        messages.push(stderr);
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "one message everywhere: {messages:?}");
    assert_eq!(server.count(), 0, "no request was sent");
}

// ---- row 9: a breaker, every field labelled ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_show_prints_every_field_labelled() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_HEALTH_RELOAD_MS", "200");
    let p = TestProcess::start(&env).await;
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let (s, body) = p
        .api(
            Method::PUT,
            "/api/v1/services/deadService",
            Some(json!({"url": dead, "intervalMs": 100, "timeoutMs": 100})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let dir = env.dir.path();
    let run = |args: &[&str]| {
        let mut all = vec!["breakers"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", p.address.as_str()]);
        let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            jarvis(&all, vars(&[]), dir).await
        }
    };
    // Five checks open the circuit; then the operator holds it open.
    eventually(LIMIT, "the service's circuit to open", || async {
        let (_, b) = p
            .api(Method::GET, "/api/v1/circuit-breakers/deadService", None)
            .await;
        b["data"]["deadService"]["state"] == "OPEN"
    })
    .await;
    let out = run(&["open", "deadService"]).await;
    assert!(out.status.success(), "{out:?}");

    let out = run(&["show", "deadService"]).await;
    assert!(out.status.success(), "{out:?}");
    let (shown, _) = text(&out);
    let field = |label: &str| -> String {
        shown
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}:")))
            .unwrap_or_else(|| panic!("no {label} in\n{shown}"))
            .trim()
            .to_string()
    };
    let out = run(&["--json"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &json["deadService"];
    assert_eq!(field("name"), "deadService");
    assert_eq!(field("state"), "OPEN");
    assert_eq!(field("forced open"), "yes");
    assert_eq!(field("enabled"), "yes");
    assert_eq!(field("policy"), b["policy"].as_str().unwrap());
    assert_eq!(field("fails in a row"), b["failureCount"].to_string());
    assert_eq!(field("failures (total)"), b["failures"].to_string());
    assert_eq!(field("successes (total)"), b["successes"].to_string());
    assert_eq!(field("half-open successes"), b["successCount"].to_string());
    assert_eq!(field("generation"), b["generation"].to_string());
    // Checks go on being refused while the circuit is held open: these grow.
    for label in ["calls (total)", "rejected (total)"] {
        assert!(field(label).parse::<u64>().is_ok(), "{label} in\n{shown}");
    }
    assert!(
        field("last failure").starts_with("connection failed"),
        "{shown}"
    );
    for label in ["last failure at", "opened at"] {
        assert!(field(label).starts_with("20"), "{label} in\n{shown}");
    }
    assert!(!field("next attempt at").is_empty(), "{shown}");

    // The list: the state says forced; the FAILURES column is the JSON's `failures`, next to
    // a column that says it counts failures in a row.
    let out = run(&[]).await;
    let (table, _) = text(&out);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATE",
            "FAILS IN A ROW",
            "FAILURES",
            "REJECTED",
            "CALLS",
            "NEXT ATTEMPT",
            "LAST FAILURE"
        ],
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("deadService"))
        .expect(&table);
    assert!(row.contains("OPEN (forced)"), "{table}");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // NAME, OPEN, (forced), in a row, failures, …
    let out = run(&["--json"]).await;
    let now: Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_a_row = now["deadService"]["failureCount"].as_u64().unwrap();
    let total = now["deadService"]["failures"].as_u64().unwrap();
    assert_eq!(cells[3], in_a_row.to_string(), "{table}");
    assert_eq!(cells[4], total.to_string(), "{table}");
}

// ---- also missing: check history, services and agents from the command line ----------------------

both_backends!(
    services_agents_and_check_history_are_managed_from_the_command_line,
    |backend| async move {
        let mut env = TestEnv::new(backend).await;
        env.set("JARVIS_HEALTH_RELOAD_MS", "200")
            .set("JARVIS_HEALTH_HISTORY_FLUSH_MS", "50");
        let app = TestApp::spawn_with(env).await;
        let service = FakeService::start(Mode::Ok).await;
        let dir = app.env.dir.path().to_path_buf();
        let cli = |args: Vec<String>| {
            let dir = dir.clone();
            let address = app.address.clone();
            async move {
                let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
                all.extend_from_slice(&["--url", &address]);
                jarvis(&all, vars(&[]), &dir).await
            }
        };
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // Register a service: flags over a JSON body.
        let health_url = service.url("/health");
        let out = cli(args(&[
            "services",
            "put",
            "api",
            &health_url,
            "--interval-ms",
            "100",
            "--critical",
            "--expected-status",
            "200",
            "--body",
            r#"{"timeoutMs": 50, "intervalMs": 9999}"#,
        ]))
        .await;
        assert!(out.status.success(), "{out:?}");
        let (shown, _) = text(&out);
        assert!(shown.contains("name:            api"), "{shown}");
        assert!(shown.contains("interval:        100 ms"), "{shown}");
        assert!(shown.contains("timeout:         50 ms"), "{shown}");
        assert!(shown.contains("critical:        yes"), "{shown}");
        let stored = app.data("/api/v1/services/api").await;
        assert_eq!(stored["expectedStatus"], json!([200]));
        let out = cli(args(&["services"])).await;
        let (table, _) = text(&out);
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[0], "api", "{table}");
        assert_eq!(row[1], health_url, "{table}");
        let out = cli(args(&["services", "show", "api", "--json"])).await;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["critical"], true);
        let out = cli(args(&["services", "put", "bad", "localhost:3001/health"])).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(text(&out).1.contains("invalid_service"), "{out:?}");

        // Its check history.
        eventually(LIMIT, "stored check results", || async {
            let h = app
                .data("/api/v1/health/services/api/history?limit=2")
                .await;
            h["results"].as_array().unwrap().len() == 2
        })
        .await;
        let out = cli(args(&[
            "health",
            "history",
            "api",
            "--limit",
            "2",
            "--since",
            "2020-01-01",
        ]))
        .await;
        assert!(out.status.success(), "{out:?}");
        let (table, _) = text(&out);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[0].starts_with("TIME") && lines[0].contains("CHECK ID"),
            "{table}"
        );
        assert!(
            lines[1].contains(" up ") && lines[1].contains("hc-") && lines[1].contains("HTTP 200"),
            "{table}"
        );
        let out = cli(args(&[
            "health", "history", "api", "--json", "--limit", "1",
        ]))
        .await;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["service"], "api");
        assert_eq!(v["results"].as_array().unwrap().len(), 1);
        let out = cli(args(&["health", "history", "nobody"])).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");

        let out = cli(args(&["services", "delete", "api"])).await;
        assert!(out.status.success(), "{out:?}");
        assert_error(app.get("/api/v1/services/api").await, 404, "not_found").await;

        // Agents.
        let out = cli(args(&[
            "agents",
            "put",
            "music",
            "http://127.0.0.1:8001/run",
            "--use-learned",
            "true",
        ]))
        .await;
        assert!(out.status.success(), "{out:?}");
        let (shown, _) = text(&out);
        assert!(
            shown.contains("domain:      music") && shown.contains("use learned: yes"),
            "{shown}"
        );
        let stored = app.data("/api/v1/agents/music").await;
        assert_eq!(stored["timeoutMs"], 30000);
        let out = cli(args(&[
            "agents",
            "put",
            "music",
            "--body",
            r#"{"url": "http://127.0.0.1:8002/run", "timeoutMs": 5000}"#,
        ]))
        .await;
        assert!(out.status.success(), "{out:?}");
        let out = cli(args(&["agents", "--json"])).await;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["url"], "http://127.0.0.1:8002/run", "{v}");
        assert_eq!(v[0]["timeoutMs"], 5000);
        let out = cli(args(&["agents", "list"])).await;
        let (table, _) = text(&out);
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("music   http://127.0.0.1:8002/run  5000 ms"),
            "{table}"
        );
        let out = cli(args(&["agents", "show", "music"])).await;
        assert!(text(&out).0.contains("timeout:     5000 ms"), "{out:?}");
        let out = cli(args(&["agents", "delete", "music"])).await;
        assert!(out.status.success(), "{out:?}");
        assert_error(app.get("/api/v1/agents/music").await, 404, "not_found").await;
        let out = cli(args(&["agents", "show", "music"])).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        app.stop().await;
    }
);

// ---- output into a closed pipe ----------------------------------------------------------------------

/// `jarvis … | head -1` where `head` has gone: the command ends quietly, without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    for args in [
        vec!["config", "check"],
        vec!["breakers", "--url", p.address.as_str()],
        vec!["tasks", "list", "--url", p.address.as_str()],
    ] {
        let mut cmd = std::process::Command::new(jarvis_bin());
        cmd.args(&args)
            .env_clear()
            .envs(&env.vars)
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let (_, err) = text(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// `jarvis … 2>&1 | head -1` where `head` has gone: messages on a standard error that cannot
/// be written are dropped, never a panic (exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_into_a_closed_stderr_end_quietly() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let unreachable = format!("http://127.0.0.1:{}", closed_port());
    for (args, code) in [
        // "configuration OK" on stderr, exit 0.
        (vec!["config", "check"], 0),
        // "jarvis: cannot reach …" on stderr, exit 1.
        (vec!["breakers", "--url", unreachable.as_str()], 1),
    ] {
        // A socket whose other end is closed before the command starts: every write to it
        // fails with EPIPE, at once and every time (no race with a reader going away).
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(ours);
        let out = std::process::Command::new(jarvis_bin())
            .args(&args)
            .env_clear()
            .envs(&env.vars)
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(code), "{args:?}");
    }
}

both_backends!(
    the_history_overview_shows_every_domain_action_that_ran,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let dir = app.env.dir.path().to_path_buf();
        for action in ["beat", "beat", "mix"] {
            app.run_task(json!({"domain": "noop", "action": action}))
                .await;
        }
        // A system domain that ran, for the overview to leave out unless asked.
        let now = chrono::Utc::now();
        let system = success_record("system-maintenance", "sweep", now, 3);
        app.state().store.insert_history(&[system]).await.unwrap();
        let figures = |all: &Value| -> Vec<(String, i64)> {
            all["items"]
                .as_array()
                .unwrap_or_else(|| panic!("an overview has items: {all}"))
                .iter()
                .map(|s| {
                    (
                        format!(
                            "{}/{}",
                            s["domain"].as_str().unwrap(),
                            s["action"].as_str().unwrap()
                        ),
                        s["total"].as_i64().unwrap(),
                    )
                })
                .collect()
        };
        let overview = |q: &'static str| {
            let app = &app;
            async move {
                eventually_some(LIMIT, "the overview's figures", || async move {
                    let all = app.data(&format!("/api/v1/tasks/history{q}")).await;
                    let f = figures(&all);
                    (f.iter().map(|(_, n)| n).sum::<i64>() >= 3).then_some(f)
                })
                .await
            }
        };
        assert_eq!(
            overview("").await,
            vec![("noop/beat".into(), 2), ("noop/mix".into(), 1)]
        );
        let with_system = overview("?includeSystem=true").await;
        assert!(
            with_system.contains(&("system-maintenance/sweep".into(), 1)),
            "{with_system:?}"
        );
        // A range with no runs: nothing to show.
        let none = app.data("/api/v1/tasks/history?since=2999-01-01").await;
        assert_eq!(none["items"], json!([]));
        assert_eq!(none["totals"]["total"], 0);
        // includeSystem belongs to the overview only.
        let r = app
            .get("/api/v1/tasks/history?domain=noop&action=mix&includeSystem=true")
            .await;
        assert_error(r, 400, "invalid_query").await;

        // The CLI: a table by default, the figures with --json.
        let out = jarvis(&["tasks", "stats", "--url", &app.address], vars(&[]), &dir).await;
        let (table, err) = text(&out);
        assert!(out.status.success(), "{err}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("DOMAIN/ACTION") && lines[0].contains("P95 MS"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("noop/beat") && lines[2].starts_with("noop/mix"),
            "{table}"
        );
        assert_eq!(lines.len(), 3, "{table}");
        let out = jarvis(
            &[
                "tasks",
                "stats",
                "--json",
                "--since",
                "2999-01-01",
                "--url",
                &app.address,
            ],
            vars(&[]),
            &dir,
        )
        .await;
        let empty: Value = serde_json::from_str(text(&out).0.trim()).unwrap();
        assert_eq!(empty["items"], json!([]), "{empty}");
        let out = jarvis(
            &["tasks", "stats", "noop", "--url", &app.address],
            vars(&[]),
            &dir,
        )
        .await;
        assert!(
            !out.status.success(),
            "DOMAIN without ACTION is refused: {out:?}"
        );
        app.stop().await;
    }
);
