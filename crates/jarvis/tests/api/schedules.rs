//! Schedules and manual retry end to end, both backends: CRUD and validation, ticks that
//! submit tasks, pause/resume, the missed-tick policy after every instance was down, the
//! config file and `jarvis schedules`, `POST /tasks/{id}/retry`, and (PostgreSQL) three
//! instances submitting exactly one task per tick.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::agent::{Behaviour, TestAgent};
use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

async fn put(app: &TestApp, name: &str, body: Value) -> (u16, Value) {
    json(
        app.send_json(Method::PUT, &format!("/api/v1/schedules/{name}"), &body)
            .await,
    )
    .await
}

async fn post(app: &TestApp, path: &str) -> (u16, Value) {
    json(app.send_json(Method::POST, path, &Value::Null).await).await
}

async fn show(app: &TestApp, name: &str) -> Value {
    let (s, body) = json(app.get(&format!("/api/v1/schedules/{name}")).await).await;
    assert_eq!(s, 200, "{body}");
    body["data"].clone()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// Tasks submitted by schedule `name`, with their ticks (from the idempotency key), oldest
/// tick first.
async fn tasks_of(app: &TestApp, name: &str) -> Vec<(DateTime<Utc>, Value)> {
    let (s, body) = json(app.get("/api/v1/tasks?limit=1000").await).await;
    assert_eq!(s, 200, "{body}");
    let prefix = format!("schedule:{name}:");
    let mut out: Vec<(DateTime<Utc>, Value)> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            let key = t["idempotencyKey"].as_str()?;
            let tick = key.strip_prefix(&prefix)?;
            Some((tick.parse().unwrap(), t.clone()))
        })
        .collect();
    out.sort_by_key(|(tick, _)| *tick);
    out
}

/// The value of `jarvis_schedule_ticks_total{schedule, result}` (0 when absent).
async fn ticks_metric(app: &TestApp, name: &str, result: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("jarvis_schedule_ticks_total{")
                && l.contains(&format!("schedule=\"{name}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

both_backends!(crud_and_validation, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let task = json!({"domain": "noop", "action": "report", "parameters": {"k": 1}});
    let before = Utc::now();
    let (s, body) = put(&app, "minutely", json!({"everyMs": 60000, "task": task})).await;
    assert_eq!(s, 201, "{body}");
    let d = &body["data"];
    assert_eq!(d["name"], "minutely");
    assert_eq!(d["everyMs"], 60000);
    assert_eq!(d["cron"], Value::Null);
    assert_eq!(d["paused"], false);
    assert_eq!(d["missed"], "skip");
    assert_eq!(d["task"], task);
    assert_eq!(d["lastRunAt"], Value::Null);
    let next = time(&d["nextRunAt"]);
    assert!(
        next > before && next <= before + TimeDelta::seconds(60),
        "{d}"
    );
    assert_eq!(next.timestamp() % 60, 0, "on a whole minute: {d}");
    assert!(d["nextRunAt"].as_str().unwrap().ends_with('Z'), "{d}");
    let upcoming: Vec<DateTime<Utc>> = d["upcoming"].as_array().unwrap().iter().map(time).collect();
    assert_eq!(upcoming.len(), 5);
    assert_eq!(upcoming[0], next);
    assert_eq!(upcoming[1] - upcoming[0], TimeDelta::seconds(60));

    // Replaced with the same timing: 200, same next tick, new task.
    let task2 = json!({"domain": "noop", "action": "report2", "maxAttempts": 2, "priority": 5});
    let (s, body) = put(&app, "minutely", json!({"everyMs": 60000, "task": task2})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(time(&body["data"]["nextRunAt"]), next);
    assert_eq!(body["data"]["task"], task2);

    // Cron in a time zone: weekdays 09:00 in Paris (08:00 or 07:00 UTC), never a weekend.
    let (s, body) = put(
        &app,
        "weekdays",
        json!({"cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "task": task,
               "missed": "catchUp", "catchUpLimit": 3}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let d = &body["data"];
    assert_eq!(
        (d["timezone"].clone(), d["catchUpLimit"].clone()),
        (json!("Europe/Paris"), json!(3))
    );
    for t in d["upcoming"].as_array().unwrap() {
        use chrono::{Datelike, Timelike};
        let local = time(t).with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!((local.hour(), local.minute()), (9, 0), "{t}");
        assert!(local.weekday().number_from_monday() <= 5, "{t}");
    }

    assert_eq!(
        app.names("/api/v1/schedules").await,
        ["minutely", "weekdays"]
    );

    // Refusals name the field, in the envelope.
    for (body, field) in [
        (json!({"task": task}), "cron"),
        (
            json!({"cron": "* * * * *", "everyMs": 1000, "task": task}),
            "cron",
        ),
        (json!({"cron": "* * *", "task": task}), "cron"),
        (json!({"cron": "99 * * * *", "task": task}), "cron"),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "task": task}),
            "timezone",
        ),
        (json!({"everyMs": 999, "task": task}), "everyMs"),
        (
            json!({"everyMs": 1000, "timezone": "UTC", "task": task}),
            "timezone",
        ),
        (json!({"everyMs": 1000}), "task"),
        (
            json!({"everyMs": 1000, "task": {"domain": "noop"}}),
            "task.action",
        ),
        (
            json!({"everyMs": 1000, "task": {"domain": "noop", "action": "a", "maxAttempts": 0}}),
            "task.maxAttempts",
        ),
        (
            json!({"everyMs": 1000, "task": {"domain": "noop", "action": "a", "idempotencyKey": "k"}}),
            "task.idempotencyKey",
        ),
        (
            json!({"everyMs": 1000, "task": task, "missed": "catchUp", "catchUpLimit": 0}),
            "catchUpLimit",
        ),
    ] {
        let body = assert_error(
            app.send_json(Method::PUT, "/api/v1/schedules/bad", &body)
                .await,
            400,
            "invalid_schedule",
        )
        .await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{field}: {message}"
        );
    }
    for (body, needle) in [
        (json!({"everyMs": 1000, "task": task, "bogus": 1}), "bogus"),
        (json!({"everyMs": "often", "task": task}), "everyMs"),
        (
            json!({"everyMs": 1000, "task": task, "missed": "later"}),
            "missed",
        ),
        (
            json!({"everyMs": 1000, "task": {"domain": "noop", "action": "a", "extra": 1}}),
            "extra",
        ),
    ] {
        let body = assert_error(
            app.send_json(Method::PUT, "/api/v1/schedules/bad", &body)
                .await,
            400,
            "invalid_body",
        )
        .await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    assert_error(
        app.send_json(
            Method::PUT,
            "/api/v1/schedules/a%20b",
            &json!({"everyMs": 1000, "task": task}),
        )
        .await,
        400,
        "invalid_name",
    )
    .await;
    assert_error(app.get("/api/v1/schedules/bad").await, 404, "not_found").await;

    // Pause and resume (both idempotent).
    let (s, body) = post(&app, "/api/v1/schedules/minutely/pause").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (
            body["data"]["paused"].clone(),
            body["data"]["nextRunAt"].clone()
        ),
        (json!(true), Value::Null)
    );
    let (s, _) = post(&app, "/api/v1/schedules/minutely/pause").await;
    assert_eq!(s, 200);
    let (s, body) = post(&app, "/api/v1/schedules/minutely/resume").await;
    assert_eq!(s, 200, "{body}");
    let resumed = time(&body["data"]["nextRunAt"]);
    assert!(resumed > Utc::now() - TimeDelta::seconds(1));
    let (_, body) = post(&app, "/api/v1/schedules/minutely/resume").await;
    assert_eq!(time(&body["data"]["nextRunAt"]), resumed);
    // A PUT with "paused": true pauses too.
    let (s, body) = put(
        &app,
        "minutely",
        json!({"everyMs": 60000, "task": task2, "paused": true}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["nextRunAt"], Value::Null);
    assert_error(
        app.send_json(
            Method::POST,
            "/api/v1/schedules/nothing/pause",
            &Value::Null,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // The command line shows them with their next run times.
    let mut vars = std::collections::HashMap::new();
    vars.insert("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string());
    let out = run_jarvis(
        &["schedules", "--url", &app.address],
        &vars,
        app.env.dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("minutely") && stdout.contains("paused"),
        "{stdout}"
    );
    let weekdays = show(&app, "weekdays").await;
    assert!(
        stdout.contains(weekdays["nextRunAt"].as_str().unwrap()),
        "{stdout}"
    );
    let out = run_jarvis(
        &["schedules", "--url", &app.address, "resume", "minutely"],
        &vars,
        app.env.dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(show(&app, "minutely").await["paused"], false);
    let out = run_jarvis(
        &["schedules", "--url", &app.address, "delete", "weekdays"],
        &vars,
        app.env.dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = app
        .send_json(Method::DELETE, "/api/v1/schedules/minutely", &Value::Null)
        .await;
    assert_eq!(r.status(), 204);
    assert_error(
        app.send_json(Method::DELETE, "/api/v1/schedules/minutely", &Value::Null)
            .await,
        404,
        "not_found",
    )
    .await;
    let (_, body) = json(app.get("/api/v1/schedules").await).await;
    assert_eq!(body["data"], json!([]));
    app.stop().await;
});

both_backends!(ticks_submit_tasks_until_paused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (s, body) = put(
        &app,
        "tick",
        json!({"everyMs": 1000, "task": {"domain": "noop", "action": "tick"}}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let tasks = eventually_some(LIMIT, "three ticks run", || async {
        let tasks = tasks_of(&app, "tick").await;
        (tasks
            .iter()
            .filter(|(_, t)| t["status"] == "succeeded")
            .count()
            >= 3)
            .then_some(tasks)
    })
    .await;
    // One task per whole second, none twice, each under its tick's correlation ID.
    for pair in tasks.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, TimeDelta::seconds(1), "{tasks:?}");
    }
    for (tick, t) in &tasks {
        assert_eq!(tick.timestamp_subsec_millis(), 0);
        assert!(
            t["correlationId"].as_str().unwrap().starts_with("sched-"),
            "{t}"
        );
        assert_eq!(t["action"], "tick");
    }
    let d = show(&app, "tick").await;
    assert!(
        d["lastRunAt"].is_string() && d["lastTaskId"].is_string(),
        "{d}"
    );
    // Paused: no more tasks. A pass that had read the schedule before the pause may still
    // submit its tick (one due by then); no tick after the pause is submitted, over a window
    // in which three would have been.
    let (s, _) = post(&app, "/api/v1/schedules/tick/pause").await;
    assert_eq!(s, 200);
    let paused = Utc::now();
    stays(
        Duration::from_millis(3000),
        "no tick after the pause is submitted",
        || async {
            tasks_of(&app, "tick")
                .await
                .iter()
                .all(|(tick, _)| *tick <= paused)
        },
    )
    .await;
    let paused_at = tasks_of(&app, "tick").await.len();

    // Resumed: ticks again.
    let (s, _) = post(&app, "/api/v1/schedules/tick/resume").await;
    assert_eq!(s, 200);
    eventually(LIMIT, "ticks after resuming", || async {
        tasks_of(&app, "tick").await.len() >= paused_at + 2
    })
    .await;
    // The metric counts a tick once its task is stored and the tick claimed, a moment after
    // the task becomes visible.
    eventually(LIMIT, "the submitted ticks counted", || async {
        ticks_metric(&app, "tick", "submitted").await >= paused_at as u64 + 2
    })
    .await;
    app.stop().await;
});

/// Creates an hourly schedule, stops the instance, moves the schedule's next tick five hours
/// back (as if every instance had been down), starts again and returns the app, the last
/// whole hour before the restart and the schedule once the first pass is done.
async fn after_downtime(backend: Backend, policy: Value) -> (TestApp, DateTime<Utc>, Value) {
    let app = TestApp::spawn(backend).await;
    let mut body = json!({"everyMs": 3_600_000, "task": {"domain": "noop", "action": "hourly"}});
    body.as_object_mut()
        .unwrap()
        .extend(policy.as_object().unwrap().clone());
    let (s, body) = put(&app, "hourly", body).await;
    assert_eq!(s, 201, "{body}");
    let env = app.stop_keep_env().await;

    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let due = hour - TimeDelta::hours(5);
    match backend {
        Backend::Sqlite => {
            let path = env.dir.path().join("data").join("jarvis.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query("UPDATE schedules SET next_run_at = $1 WHERE name = 'hourly'")
                .bind(due)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env.db.as_ref().unwrap().url)
                .await
                .unwrap();
            sqlx::query("UPDATE schedules SET next_run_at = $1 WHERE name = 'hourly'")
                .bind(due)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let restart = Utc::now();
    let app = TestApp::spawn_with(env).await;
    let d = eventually_some(LIMIT, "the first pass after the restart", || async {
        let d = show(&app, "hourly").await;
        (time(&d["nextRunAt"]) > restart).then_some(d)
    })
    .await;
    let hour = restart.duration_trunc(TimeDelta::hours(1)).unwrap();
    (app, hour, d)
}

both_backends!(missed_ticks_are_skipped, |backend| async move {
    let (app, hour, d) = after_downtime(backend, json!({})).await;
    assert_eq!(time(&d["nextRunAt"]), hour + TimeDelta::hours(1), "{d}");
    let tasks = tasks_of(&app, "hourly").await;
    // Six ticks fell due (five hours back to the current hour). None of the missed ones ran;
    // the current hour's tick only when the restart came within the grace (60 s) after it.
    let late = Utc::now() - hour;
    match tasks.as_slice() {
        [] => assert!(
            late > TimeDelta::seconds(55),
            "the on-time tick did not run"
        ),
        [(tick, _)] => {
            assert_eq!(*tick, hour);
            assert!(late < TimeDelta::seconds(65));
        }
        more => panic!("missed ticks ran: {more:?}"),
    }
    assert_eq!(
        ticks_metric(&app, "hourly", "missed").await,
        6 - tasks.len() as u64
    );
    app.stop().await;
});

both_backends!(missed_ticks_catch_up_to_the_limit, |backend| async move {
    let (app, hour, d) =
        after_downtime(backend, json!({"missed": "catchUp", "catchUpLimit": 3})).await;
    assert_eq!(time(&d["nextRunAt"]), hour + TimeDelta::hours(1), "{d}");
    assert_eq!(time(&d["lastRunAt"]), hour, "{d}");
    let tasks = tasks_of(&app, "hourly").await;
    let ticks: Vec<DateTime<Utc>> = tasks.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        ticks,
        [hour - TimeDelta::hours(2), hour - TimeDelta::hours(1), hour],
        "the three most recent ticks, once each"
    );
    assert_eq!(d["lastTaskId"], tasks[2].1["taskId"]);
    assert_eq!(ticks_metric(&app, "hourly", "missed").await, 3);
    assert_eq!(ticks_metric(&app, "hourly", "submitted").await, 3);
    for (_, t) in &tasks {
        let id = t["taskId"].as_str().unwrap();
        eventually(LIMIT, "the caught-up task runs", || async {
            let (_, body) = json(app.get(&format!("/api/v1/tasks/{id}")).await).await;
            body["data"]["status"] == "succeeded"
        })
        .await;
    }
    app.stop().await;
});

both_backends!(schedules_from_the_config_file, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(
        &file,
        r#"
        [schedules.nightly]
        cron = "0 3 * * *"
        timezone = "America/New_York"
        missed = "catchUp"
        catchUpLimit = 2
        task = { domain = "noop", action = "report", parameters = { depth = 2 }, maxAttempts = 5 }

        [schedules.fast]
        everyMs = 1000
        paused = true
        [schedules.fast.task]
        domain = "noop"
        action = "poll"
        "#,
    )
    .unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let app = TestApp::spawn_with(env).await;
    let d = show(&app, "nightly").await;
    assert_eq!(d["cron"], "0 3 * * *");
    assert_eq!(d["timezone"], "America/New_York");
    assert_eq!(d["missed"], "catchUp");
    assert_eq!(d["task"]["parameters"]["depth"], 2);
    assert_eq!(d["task"]["maxAttempts"], 5);
    use chrono::Timelike;
    let local = time(&d["nextRunAt"]).with_timezone(&chrono_tz::America::New_York);
    assert_eq!((local.hour(), local.minute()), (3, 0));
    let fast = show(&app, "fast").await;
    assert_eq!(
        (fast["paused"].clone(), fast["nextRunAt"].clone()),
        (json!(true), Value::Null)
    );

    // A restart applies the file again without moving the next tick.
    let next = d["nextRunAt"].clone();
    let env = app.stop_keep_env().await;
    let app = TestApp::spawn_with(env).await;
    assert_eq!(show(&app, "nightly").await["nextRunAt"], next);
    app.stop().await;

    // A bad schedule in the file stops start-up with the field named.
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(
        &file,
        "[schedules.bad]\neveryMs = 10\ntask = { domain = \"noop\", action = \"a\" }\n",
    )
    .unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let err = jarvis::config::Config::from_env_map(&env.vars, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("schedules.bad.everyMs"), "{err}");
});

both_backends!(a_failed_task_is_retried_by_hand, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_TASK_RETRY_BASE_MS", "40");
    let app = TestApp::spawn_with(env).await;
    let agent = TestAgent::start(Behaviour::Fail("broken".into())).await;
    let r = app
        .send_json(
            Method::PUT,
            "/api/v1/agents/music",
            &json!({"url": agent.url, "timeoutMs": 5000}),
        )
        .await;
    assert!(r.status().is_success());
    let (s, body) = json(
        app.send_json(
            Method::POST,
            "/api/v1/execute?wait=true",
            &json!({"domain": "music", "action": "render", "maxAttempts": 2}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "failed");
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    let cid = body["data"]["correlationId"].clone();
    let retry = format!("/api/v1/tasks/{id}/retry");

    agent.set(Behaviour::Succeed);
    let (s, body) = post(&app, &retry).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["data"]["status"], "queued");
    assert_eq!(body["data"]["attempts"], 2);
    assert_eq!(body["data"]["maxAttempts"], 3);
    assert_eq!(body["data"]["error"], Value::Null);
    // Sent twice: the second finds it queued (or already running or done) and changes nothing.
    let body = assert_error(
        app.send_json(Method::POST, &retry, &Value::Null).await,
        409,
        "not_retryable",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only failed or cancelled"),
        "{body}"
    );

    let t = eventually_some(LIMIT, "the retried task succeeds", || async {
        let (_, body) = json(app.get(&format!("/api/v1/tasks/{id}")).await).await;
        (body["data"]["status"] == "succeeded").then(|| body["data"].clone())
    })
    .await;
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["maxAttempts"], 3);
    assert_eq!(t["correlationId"], cid);
    assert_eq!(agent.calls().len(), 3);
    // The history holds all three attempts of the same task.
    let rows = eventually_some(LIMIT, "three execution records", || async {
        let (_, body) = json(
            app.get(&format!("/api/v1/tasks/executions?taskId={id}"))
                .await,
        )
        .await;
        let rows = body["data"]["items"].as_array().unwrap().clone();
        (rows.len() >= 3).then_some(rows)
    })
    .await;
    let mut seen: Vec<(u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["attempt"].as_u64().unwrap(),
                r["success"].as_bool().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [(1, false), (2, false), (3, true)]);

    // A succeeded task is not retried; an unknown one is not found.
    assert_error(
        app.send_json(Method::POST, &retry, &Value::Null).await,
        409,
        "not_retryable",
    )
    .await;
    let unknown = format!("/api/v1/tasks/{}/retry", uuid::Uuid::now_v7());
    assert_error(
        app.send_json(Method::POST, &unknown, &Value::Null).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.send_json(Method::POST, "/api/v1/tasks/nope/retry", &Value::Null)
            .await,
        400,
        "invalid_id",
    )
    .await;
    assert_error(
        app.send_json(Method::POST, &format!("{retry}?attempts=0"), &Value::Null)
            .await,
        400,
        "invalid_query",
    )
    .await;

    // A cancelled task runs again, with more attempts when asked.
    let run_at = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let (_, body) = json(
        app.send_json(
            Method::POST,
            "/api/v1/tasks",
            &json!({"domain": "noop", "action": "later", "runAt": run_at}),
        )
        .await,
    )
    .await;
    let later = body["data"]["taskId"].as_str().unwrap().to_string();
    let r = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/tasks/{later}"),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (s, body) = post(&app, &format!("/api/v1/tasks/{later}/retry?attempts=2")).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(
        (
            body["data"]["attempts"].clone(),
            body["data"]["maxAttempts"].clone()
        ),
        (json!(0), json!(2))
    );
    eventually(LIMIT, "the cancelled task runs after a retry", || async {
        let (_, body) = json(app.get(&format!("/api/v1/tasks/{later}")).await).await;
        body["data"]["status"] == "succeeded" && body["data"]["attempts"] == 1
    })
    .await;
    app.stop().await;
});

/// Three instances on one PostgreSQL database and a 1-second schedule: every tick gives
/// exactly one task. `JARVIS_TEST_SCHEDULE_SECS` (default 15) sets how long it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_submit_one_task_per_tick() {
    let secs: u64 = std::env::var("JARVIS_TEST_SCHEDULE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let first = TestEnv::new(Backend::Postgres).await;
    let others = [first.another_instance(), first.another_instance()];
    let mut apps = Vec::new();
    for (i, mut e) in std::iter::once(first).chain(others).enumerate() {
        e.set("JARVIS_INSTANCE_ID", &format!("sched-{i}"));
        e.set("JARVIS_EMF_INTERVAL_MS", "0");
        apps.push(TestApp::spawn_with(e).await);
    }
    let started = Utc::now();
    let (s, body) = put(
        &apps[0],
        "every-second",
        json!({"everyMs": 1000, "task": {"domain": "noop", "action": "tick"}}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    // The test's running time (the ticks to count), not a wait for an event.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (s, _) = post(&apps[1], "/api/v1/schedules/every-second/pause").await;
    assert_eq!(s, 200);
    let stopped = Utc::now();
    // A pass that read the schedule before the pause may still submit its tick: wait until the
    // instances' counts of submitted ticks and the store agree.
    let (ticks, submitted, duplicates) = eventually_some(
        LIMIT,
        "the instances' submitted ticks to match the stored tasks",
        || async {
            let tasks = tasks_of(&apps[2], "every-second").await;
            let ticks: Vec<DateTime<Utc>> = tasks.iter().map(|(t, _)| *t).collect();
            let mut submitted = Vec::new();
            let mut duplicates = 0;
            for app in &apps {
                submitted.push(ticks_metric(app, "every-second", "submitted").await);
                duplicates += ticks_metric(app, "every-second", "duplicate").await;
            }
            (submitted.iter().sum::<u64>() == ticks.len() as u64)
                .then_some((ticks, submitted, duplicates))
        },
    )
    .await;
    // Ticks are the whole seconds after the PUT and up to the pause.
    let expected = stopped.timestamp() - started.timestamp();
    eprintln!(
        "{secs} s, 3 instances: {} tasks for {expected} ticks (±1); submitted per instance {submitted:?}, \
         duplicates returned {duplicates}",
        ticks.len()
    );
    assert!(
        (ticks.len() as i64 - expected).abs() <= 1,
        "{} tasks for {expected} ticks: {ticks:?}",
        ticks.len()
    );
    // No tick missing in between, none twice.
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], TimeDelta::seconds(1), "{ticks:?}");
    }
    // (The instances agree with the store, each created task counted once by one instance:
    // waited for above, within LIMIT.)
    for app in apps.into_iter().rev() {
        app.stop().await;
    }
}
