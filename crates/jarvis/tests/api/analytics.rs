//! The analytics API (`/api/v1/analytics/*`) against real tasks, real breakers and real health
//! checks: series per domain/action at minute, hour and day buckets, the overview (also
//! `GET /api/v1/tasks/history` without a query), breaker transitions (one record per
//! transition with two instances on PostgreSQL), service uptime and latency, bad input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

fn sum(points: &Value, field: &str) -> i64 {
    points
        .as_array()
        .unwrap_or_else(|| panic!("points: {points}"))
        .iter()
        .map(|p| p[field].as_i64().unwrap())
        .sum()
}

/// The series at `path` once its points add up to `total` runs.
async fn series_with(app: &TestApp, path: &str, total: i64) -> Value {
    eventually_some(LIMIT, path, || async {
        let s = app.data(path).await;
        (sum(&s["points"], "total") == total).then_some(s)
    })
    .await
}

/// An app whose breakers stay closed through a few failed tasks, with an HTTP agent for
/// `render` that always fails (503), and 3 `noop/beat` successes and 2 `render/draw` failures.
async fn app_with_runs(backend: Backend) -> (TestApp, FakeService) {
    let mut env = TestEnv::new(backend).await;
    env.set("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "100");
    let app = TestApp::spawn_with(env).await;
    let agent = FakeService::start(Mode::Fail).await;
    let (s, body) = app
        .put_agent("render", json!({"url": agent.url("/run")}))
        .await;
    assert_eq!(s, 201, "{body}");
    for _ in 0..3 {
        let t = app
            .run_task(json!({"domain": "noop", "action": "beat"}))
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    for _ in 0..2 {
        let t = app
            .run_task(json!({"domain": "render", "action": "draw", "maxAttempts": 1}))
            .await;
        assert_eq!(t["status"], "failed", "{t}");
    }
    (app, agent)
}

both_backends!(
    series_per_domain_action_at_every_bucket,
    |backend| async move {
        let (app, _agent) = app_with_runs(backend).await;

        // Minute buckets (the default range: the last hour, 60 points).
        let s = series_with(
            &app,
            "/api/v1/analytics/tasks?domain=noop&action=beat&bucket=minute",
            3,
        )
        .await;
        assert_eq!(
            (s["domain"].as_str(), s["action"].as_str()),
            (Some("noop"), Some("beat"))
        );
        assert_eq!(s["bucket"], "minute");
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), 60, "{s}");
        let since: chrono::DateTime<chrono::Utc> = s["since"].as_str().unwrap().parse().unwrap();
        let until: chrono::DateTime<chrono::Utc> = s["until"].as_str().unwrap().parse().unwrap();
        assert_eq!((until - since).num_minutes(), 60);
        assert_eq!(since.timestamp() % 60, 0, "whole minutes: {since}");
        let busy: Vec<&Value> = points.iter().filter(|p| p["total"] != 0).collect();
        assert!(!busy.is_empty() && busy.len() <= 2, "{s}");
        for p in &busy {
            assert_eq!(p["successRate"], 1.0, "{p}");
            assert!(
                p["p50DurationMs"].is_u64() && p["p95DurationMs"].is_u64(),
                "{p}"
            );
            assert!(p["avgDurationMs"].is_u64(), "{p}");
            assert_eq!(p["failed"], 0, "{p}");
        }
        // Empty minutes are there, with no rates.
        let idle = points.iter().find(|p| p["total"] == 0).unwrap();
        assert_eq!(idle["successRate"], Value::Null);
        assert_eq!(idle["p95DurationMs"], Value::Null);
        assert_eq!(s["failureGroups"], json!([]));

        // Hour (default bucket, 24 points) and day (30 points) give the same runs.
        let h = series_with(&app, "/api/v1/analytics/tasks?domain=noop&action=beat", 3).await;
        assert_eq!(
            (h["bucket"].as_str(), h["points"].as_array().unwrap().len()),
            (Some("hour"), 24)
        );
        let d = series_with(
            &app,
            "/api/v1/analytics/tasks?domain=noop&action=beat&bucket=day",
            3,
        )
        .await;
        assert_eq!(d["points"].as_array().unwrap().len(), 30);
        assert_eq!(sum(&d["points"], "succeeded"), 3);

        // The failing domain/action: failures and their group.
        let r = series_with(&app, "/api/v1/analytics/tasks?domain=render&action=draw", 2).await;
        assert_eq!(sum(&r["points"], "failed"), 2);
        let busy = r["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["total"] != 0)
            .unwrap();
        assert_eq!(busy["successRate"], 0.0, "{busy}");
        let groups = r["failureGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{r}");
        assert_eq!(groups[0]["count"], 2, "{r}");
        assert!(
            groups[0]["group"].as_str().is_some_and(|g| !g.is_empty()),
            "{r}"
        );
        assert!(
            groups[0]["example"].as_str().unwrap().contains("503"),
            "{r}"
        );
        assert!(groups[0]["template"].is_string(), "{r}");

        // All combined (Jarvis's own system-* domains left out), and one domain's actions.
        let all = series_with(&app, "/api/v1/analytics/tasks?bucket=minute", 5).await;
        assert_eq!(
            (all["domain"].clone(), all["action"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(sum(&all["points"], "failed"), 2);
        assert_eq!(all["failureGroups"].as_array().unwrap().len(), 1);
        series_with(&app, "/api/v1/analytics/tasks?domain=render", 2).await;
        // A range given: whole hours, the runs inside.
        let now = chrono::Utc::now();
        let path = format!(
            "/api/v1/analytics/tasks?domain=noop&action=beat&since={}&until={}",
            (now - chrono::TimeDelta::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let ranged = series_with(&app, &path, 3).await;
        assert_eq!(ranged["points"].as_array().unwrap().len(), 3, "{ranged}");
        // A range before the runs: zeros.
        let before = app
            .data(
                "/api/v1/analytics/tasks?domain=noop&action=beat&since=2026-01-01&until=2026-01-02",
            )
            .await;
        assert_eq!(sum(&before["points"], "total"), 0);
        assert_eq!(before["points"].as_array().unwrap().len(), 48, "{before}");
        app.stop().await;
    }
);

both_backends!(overview_of_every_domain_action, |backend| async move {
    let (app, _agent) = app_with_runs(backend).await;
    let o = eventually_some(LIMIT, "the overview", || async {
        let o = app.data("/api/v1/analytics/overview").await;
        (o["totals"]["total"] == 5).then_some(o)
    })
    .await;
    assert_eq!(o["since"], Value::Null);
    assert_eq!(o["until"], Value::Null);
    assert_eq!(o["totals"]["succeeded"], 3);
    assert_eq!(o["totals"]["failed"], 2);
    assert_eq!(o["totals"]["successRate"], 0.6);
    assert!(o["totals"]["costUsd"].is_f64(), "{o}");
    let items = o["items"].as_array().unwrap();
    let pairs: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["domain"].as_str().unwrap(),
                i["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(pairs, ["noop/beat", "render/draw"], "{o}");
    assert_eq!(
        (items[0]["total"].as_i64(), items[0]["successRate"].as_f64()),
        (Some(3), Some(1.0))
    );
    assert_eq!(
        (
            items[1]["failed"].as_i64(),
            items[1]["successRate"].as_f64()
        ),
        (Some(2), Some(0.0))
    );
    for i in items {
        assert!(
            i["avgDurationMs"].is_u64() && i["p95DurationMs"].is_u64(),
            "{i}"
        );
        assert!(i["lastExecutedAt"].is_string(), "{i}");
        assert!(i["costUsd"].is_f64(), "{i}");
    }

    // GET /api/v1/tasks/history without a query is the same overview.
    let history = app.data("/api/v1/tasks/history").await;
    assert_eq!(history, o);
    // Jarvis's own domains only when asked.
    let with_system = app
        .data("/api/v1/analytics/overview?includeSystem=true")
        .await;
    assert!(
        with_system["items"].as_array().unwrap().len() >= items.len(),
        "{with_system}"
    );
    // A range with no runs.
    let none = app.data("/api/v1/tasks/history?since=2999-01-01").await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(none["totals"]["total"], 0);
    assert_eq!(none["totals"]["successRate"], Value::Null);
    assert_eq!(none["since"], "2999-01-01T00:00:00Z");
    // One of domain and action is still a 400, as documented.
    assert_error(
        app.get("/api/v1/tasks/history?domain=noop").await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get("/api/v1/analytics/overview?since=2026-12-02&until=2026-12-01")
            .await,
        400,
        "invalid_range",
    )
    .await;
    app.stop().await;
});

both_backends!(bad_input_is_a_clear_400, |backend| async move {
    let app = TestApp::spawn(backend).await;
    for (path, code) in [
        ("/api/v1/analytics/tasks?bucket=week", "invalid_bucket"),
        ("/api/v1/analytics/tasks?bucket=", "invalid_bucket"),
        (
            "/api/v1/analytics/tasks?since=2026-12-02&until=2026-12-01",
            "invalid_range",
        ),
        (
            "/api/v1/analytics/tasks?since=2026-12-01T10:00:00Z&until=2026-12-01T10:00:00Z",
            "invalid_range",
        ),
        (
            "/api/v1/analytics/tasks?bucket=minute&since=2026-12-01&until=2026-12-03",
            "too_many_points",
        ),
        (
            "/api/v1/analytics/tasks?bucket=hour&since=2026-01-01&until=2026-12-01",
            "too_many_points",
        ),
        ("/api/v1/analytics/tasks?action=beat", "invalid_query"),
        ("/api/v1/analytics/tasks?domain=Bad%20Name", "invalid_name"),
        ("/api/v1/analytics/tasks?since=yesterday", "invalid_query"),
        ("/api/v1/analytics/tasks?colour=red", "invalid_query"),
        ("/api/v1/analytics/overview?domain=noop", "invalid_query"),
        ("/api/v1/analytics/breakers?limit=0", "invalid_query"),
        ("/api/v1/analytics/breakers?limit=1001", "invalid_query"),
        (
            "/api/v1/analytics/breakers?since=2026-12-02&until=2026-12-01",
            "invalid_range",
        ),
        ("/api/v1/analytics/services?bucket=minute", "invalid_bucket"),
        (
            "/api/v1/analytics/services?bucket=day&since=2020-01-01&until=2026-01-01",
            "too_many_points",
        ),
    ] {
        let body = assert_error(app.get(path).await, 400, code).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
    // The cap is stated.
    let body = assert_error(
        app.get("/api/v1/analytics/tasks?bucket=minute&since=2026-12-01&until=2026-12-03")
            .await,
        400,
        "too_many_points",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1440"),
        "{body}"
    );
    app.stop().await;
});

/// Transitions at `path`, newest first, once the newest is `to` and the list has at least
/// three entries (opened, half-open, closed).
async fn transitions_until_closed(app: &TestApp, path: &str) -> Vec<Value> {
    eventually_some(
        Duration::from_secs(30),
        "OPEN, HALF_OPEN, CLOSED recorded",
        || async {
            let t = app.data(path).await["transitions"]
                .as_array()
                .unwrap()
                .clone();
            (t.len() >= 3 && t[0]["to"] == "CLOSED").then_some(t)
        },
    )
    .await
}

/// Consecutive transitions chain (each starts where the one before ended): a transition
/// recorded twice would break the chain.
fn assert_chained(t: &[Value]) {
    for pair in t.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(newer["from"], older["to"], "{t:?}");
        assert!(newer["at"].as_str() >= older["at"].as_str(), "{t:?}");
    }
    let oldest = t.last().unwrap();
    assert_eq!(
        (oldest["from"].as_str(), oldest["to"].as_str()),
        (Some("CLOSED"), Some("OPEN")),
        "{t:?}"
    );
    for x in t {
        assert!(x["reason"].as_str().is_some_and(|r| !r.is_empty()), "{x}");
        assert!(x["at"].is_string(), "{x}");
    }
}

fn breaker_env(env: &mut TestEnv) {
    env.set("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3")
        .set("CIRCUIT_BREAKER_TIMEOUT_MS", "1000")
        .set("JARVIS_BREAKER_LEASE_MS", "1000")
        .set("JARVIS_BREAKER_RECONCILE_MS", "1000")
        .set("JARVIS_HEALTH_UPTIME_SYNC_MS", "200");
}

both_backends!(breaker_transitions_of_a_service, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    breaker_env(&mut env);
    env.set("JARVIS_INSTANCE_ID", "alpha");
    let app = TestApp::spawn_with(env).await;
    let service = FakeService::start(Mode::Fail).await;
    app.put_service("flaky", json!({"url": service.url("/"), "intervalMs": 100}))
        .await;
    eventually(LIMIT, "flaky OPEN", || async {
        app.breaker("flaky").await["state"] == "OPEN"
    })
    .await;
    // The oldest transition (written once the shared row changed; a trial may follow soon).
    let (opened, first) = eventually_some(LIMIT, "the opening recorded", || async {
        let opened = app.data("/api/v1/analytics/breakers?name=flaky").await;
        let first = opened["transitions"].as_array()?.last()?.clone();
        Some((opened, first))
    })
    .await;
    assert_eq!(
        (
            first["breaker"].as_str(),
            first["from"].as_str(),
            first["to"].as_str()
        ),
        (Some("flaky"), Some("CLOSED"), Some("OPEN")),
        "{opened}"
    );
    assert_eq!(first["instance"], "alpha");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("failures reached the threshold"),
        "{first}"
    );

    // The service recovers: a trial closes the circuit.
    service.set_mode(Mode::Ok);
    let t = transitions_until_closed(&app, "/api/v1/analytics/breakers?name=flaky").await;
    assert_chained(&t);
    assert!(t.iter().any(|x| x["to"] == "HALF_OPEN"), "{t:?}");
    assert!(t.iter().all(|x| x["instance"] == "alpha"), "{t:?}");
    // An operator's open and reset are recorded as such.
    let (s, body) = json(
        app.send_json(
            Method::POST,
            "/api/v1/circuit-breakers/flaky/open",
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let forced = eventually_some(LIMIT, "the forced open", || async {
        let t = app.data("/api/v1/analytics/breakers?name=flaky").await["transitions"].clone();
        (t[0]["to"] == "OPEN").then_some(t)
    })
    .await;
    assert_eq!(forced[0]["reason"], "opened by an operator", "{forced}");
    // limit, the list of every breaker, and a range without transitions.
    let one = app.data("/api/v1/analytics/breakers?limit=1").await;
    assert_eq!(one["transitions"].as_array().unwrap().len(), 1);
    assert_eq!(one["transitions"][0], forced[0]);
    let old = app
        .data("/api/v1/analytics/breakers?since=2026-01-01&until=2026-01-02")
        .await;
    assert_eq!(old["transitions"], json!([]));
    assert_eq!(
        app.data("/api/v1/analytics/breakers?name=other").await["transitions"],
        json!([])
    );
    app.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_record_each_transition_once() {
    let mut env1 = TestEnv::new(Backend::Postgres).await;
    breaker_env(&mut env1);
    env1.set("JARVIS_INSTANCE_ID", "one");
    let mut env2 = env1.another_instance();
    env2.set("JARVIS_INSTANCE_ID", "two");
    let first = TestApp::spawn_with(env1).await;
    let second = TestApp::spawn_with(env2).await;
    let service = FakeService::start(Mode::Fail).await;
    // Both instances check it, both see it fail, both may trip their local breaker.
    first
        .put_service(
            "shared",
            json!({"url": service.url("/"), "intervalMs": 100}),
        )
        .await;
    eventually(LIMIT, "OPEN on both", || async {
        first.breaker("shared").await["state"] == "OPEN"
            && second.breaker("shared").await["state"] == "OPEN"
    })
    .await;
    service.set_mode(Mode::Ok);
    let t = transitions_until_closed(&first, "/api/v1/analytics/breakers?name=shared").await;
    // Quiet for a moment: nothing more is recorded late by the other instance.
    stays(Duration::from_secs(2), "no duplicate record", || async {
        let again = first.data("/api/v1/analytics/breakers?name=shared").await["transitions"]
            .as_array()
            .unwrap()
            .len();
        again == t.len()
    })
    .await;
    assert_chained(&t);
    for x in &t {
        assert!(x["instance"] == "one" || x["instance"] == "two", "{x}");
    }
    // Both instances answer from the same store.
    let other = second.data("/api/v1/analytics/breakers?name=shared").await;
    assert_eq!(other["transitions"].as_array().unwrap(), &t);
    second.stop().await;
    first.stop().await;
}

both_backends!(service_uptime_and_latency_points, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    env.set("CIRCUIT_BREAKER_ENABLED", "false")
        .set("JARVIS_HEALTH_UPTIME_SYNC_MS", "200");
    let app = TestApp::spawn_with(env).await;
    let slow = FakeService::start(Mode::Slow(30)).await;
    let down = FakeService::start(Mode::Fail).await;
    app.put_service("steady", json!({"url": slow.url("/"), "intervalMs": 100}))
        .await;
    app.put_service("broken", json!({"url": down.url("/"), "intervalMs": 100}))
        .await;
    let s = eventually_some(LIMIT, "five stored checks of each", || async {
        let s = app.data("/api/v1/analytics/services").await;
        let services = s["services"].as_array()?;
        let enough =
            services.len() >= 2 && services.iter().all(|x| sum(&x["points"], "checks") >= 5);
        enough.then_some(s)
    })
    .await;
    assert_eq!(s["bucket"], "hour");
    let names: Vec<&str> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "steady"], "{s}");
    let last = |name: &str| {
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()["points"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|p| p["checks"] != 0)
            .unwrap()
            .clone()
    };
    let steady = last("steady");
    assert_eq!(steady["uptimePct"], 100.0, "{steady}");
    assert_eq!(steady["up"], steady["checks"], "{steady}");
    let latency = steady["avgLatencyMs"].as_f64().unwrap();
    assert!(latency >= 30.0, "{steady}");
    let broken = last("broken");
    assert_eq!(
        (broken["up"].as_i64(), broken["uptimePct"].as_f64()),
        (Some(0), Some(0.0)),
        "{broken}"
    );
    assert_eq!(s["services"][0]["points"].as_array().unwrap().len(), 24);

    // One service, by day.
    let d = app
        .data("/api/v1/analytics/services?name=steady&bucket=day")
        .await;
    assert_eq!(d["services"].as_array().unwrap().len(), 1);
    assert_eq!(d["services"][0]["points"].as_array().unwrap().len(), 30);
    assert!(sum(&d["services"][0]["points"], "checks") >= 5);
    // A service nobody checks: its name, no counts.
    let none = app.data("/api/v1/analytics/services?name=ghost").await;
    assert_eq!(none["services"][0]["name"], "ghost");
    assert_eq!(sum(&none["services"][0]["points"], "checks"), 0);
    app.stop().await;
});

both_backends!(
    retention_prunes_old_minutes_and_transitions,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let store = app.state().store.clone();
        // A record of three hours ago, stored with its rollups (minute ones included; the
        // instance's own retention job, 48 hours, leaves them alone).
        let at = chrono::Utc::now() - chrono::TimeDelta::hours(3);
        let record = jarvis::model::record::ExecutionRecord {
            cost_usd: Some(0.25),
            ..success_record("old", "run", at, 12)
        };
        assert_eq!(store.insert_history(&[record]).await.unwrap(), 1);
        let minute =
            |m: chrono::DateTime<chrono::Utc>| m.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let around = format!(
            "/api/v1/analytics/tasks?domain=old&action=run&bucket=minute&since={}&until={}",
            minute(at - chrono::TimeDelta::minutes(2)),
            minute(at + chrono::TimeDelta::minutes(2))
        );
        let before = app.data(&around).await;
        assert_eq!(sum(&before["points"], "total"), 1, "{before}");
        let p = before["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["total"] == 1)
            .unwrap()
            .clone();
        assert_eq!(p["costPerTaskUsd"], 0.25, "{p}");
        assert!(p["p50DurationMs"].is_u64(), "the minute histogram: {p}");

        // A transition to prune.
        app.fail_calls("pay", 5, "boom");
        eventually(LIMIT, "the opening recorded", || async {
            app.data("/api/v1/analytics/breakers?name=pay").await["transitions"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        })
        .await;

        // Minutes older than the cutoff go (the hour and day rollups stay); transitions older than
        // the given cutoff (here: all) go.
        let cutoff = chrono::Utc::now() - chrono::TimeDelta::hours(1);
        let in_a_second = (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).timestamp_millis();
        let minutes = store.prune_analytics(cutoff, None).await.unwrap();
        assert_eq!(minutes, 2, "a minute's totals and histogram");
        let transitions = store
            .prune_analytics(cutoff, Some(in_a_second))
            .await
            .unwrap();
        assert!(transitions >= 1, "{transitions}");
        assert_eq!(sum(&app.data(&around).await["points"], "total"), 0);
        let hours = app
            .data(&format!(
                "/api/v1/analytics/tasks?domain=old&action=run&since={}",
                minute(at - chrono::TimeDelta::hours(1))
            ))
            .await;
        assert_eq!(sum(&hours["points"], "total"), 1, "{hours}");
        assert_eq!(
            app.data("/api/v1/analytics/breakers?name=pay").await["transitions"],
            json!([])
        );
        assert_eq!(store.prune_analytics(cutoff, None).await.unwrap(), 0);
        app.stop().await;
    }
);
