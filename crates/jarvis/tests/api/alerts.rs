//! Alerts (issue 16): silences through the API, an alert's episode and its notifications
//! (one firing, one resolved), retries against a receiver that fails, and the acceptance test:
//! two `jarvis serve` processes on one PostgreSQL database send exactly one firing and one
//! resolved message for one outage of a health-checked service, and none while it is silenced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// A webhook receiver on 127.0.0.1 that records every POSTed body and answers 500 to the
/// first `fail_first` of them.
#[derive(Clone)]
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    fail_first: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.bodies.lock().unwrap().push(value);
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Receiver {
            url: format!("http://127.0.0.1:{port}/hook/secret-token-xyz"),
            bodies: Arc::default(),
            fail_first: Arc::new(Mutex::new(fail_first)),
        };
        let router = axum::Router::new()
            .route("/hook/secret-token-xyz", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        r
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// The messages with `status` that tell about an alert of `rule` with `label=value`.
    fn about(&self, status: &str, rule: &str, label: &str, value: &str) -> usize {
        self.bodies()
            .iter()
            .filter(|b| b["status"] == status)
            .filter(|b| {
                b["alerts"].as_array().is_some_and(|alerts| {
                    alerts
                        .iter()
                        .any(|a| a["rule"] == rule && a["labels"][label] == value)
                })
            })
            .count()
    }
}

fn alert_env(env: &mut TestEnv, receiver: &Receiver) {
    env.set("JARVIS_ALERT_WEBHOOK_URL", &receiver.url);
    env.set("JARVIS_ALERT_INTERVAL_MS", "100");
    env.set("JARVIS_ALERT_BACKOFF_MS", "50");
    env.set("JARVIS_EMF_INTERVAL_MS", "0");
}

/// Silences what `matchers` match for ten minutes through `app`; the silence's ID.
async fn silence(app: &TestApp, matchers: Value) -> Value {
    let (s, body) = json(
        app.send_json(
            Method::POST,
            "/api/v1/alerts/silences",
            &json!({"matchers": matchers, "durationMs": 600_000}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{body}");
    body["data"]["id"].clone()
}

/// The episodes `GET /api/v1/alerts?…` lists.
async fn alerts(app: &TestApp, query: &str) -> Vec<Value> {
    app.data(&format!("/api/v1/alerts{query}")).await["alerts"]
        .as_array()
        .unwrap()
        .clone()
}

both_backends!(
    silences_are_validated_listed_and_removed,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let post = |body: Value| {
            let app = &app;
            async move {
                app.send_json(Method::POST, "/api/v1/alerts/silences", &body)
                    .await
            }
        };
        for (body, code) in [
            (
                json!({"matchers": {}, "durationMs": 1000}),
                "invalid_silence",
            ),
            (
                json!({"matchers": {"rule": "nope"}, "durationMs": 1000}),
                "invalid_silence",
            ),
            (json!({"matchers": {"service": "db"}}), "invalid_silence"),
            (
                json!({"matchers": {"service": "db"}, "durationMs": 1000,
                   "endsAt": "2099-01-01T00:00:00Z"}),
                "invalid_silence",
            ),
            (
                json!({"matchers": {"service": "db"}, "endsAt": "2001-01-01T00:00:00Z"}),
                "invalid_silence",
            ),
            (
                json!({"matchers": {"service": "db"}, "durationMs": 100_000_000_000u64}),
                "invalid_silence",
            ),
            (
                json!({"matchers": {"host": "db"}, "durationMs": 1000}),
                "invalid_body",
            ),
        ] {
            assert_error(post(body.clone()).await, 400, code).await;
        }
        let (s, body) = json(
            post(
                json!({"matchers": {"service": "db", "rule": "circuit-open"},
                     "durationMs": 3_600_000, "comment": "maintenance"}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 201, "{body}");
        let id = body["data"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            body["data"]["matchers"],
            json!({"rule": "circuit-open", "service": "db"})
        );
        assert_eq!(body["data"]["comment"], "maintenance");
        let listed = app.data("/api/v1/alerts/silences").await;
        assert_eq!(listed["silences"][0]["id"], id.as_str(), "{listed}");

        let r = app
            .send_json(
                Method::DELETE,
                &format!("/api/v1/alerts/silences/{id}"),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 204);
        let r = app
            .send_json(
                Method::DELETE,
                &format!("/api/v1/alerts/silences/{id}"),
                &json!({}),
            )
            .await;
        assert_error(r, 404, "silence_not_found").await;
        assert_eq!(
            app.data("/api/v1/alerts/silences").await["silences"],
            json!([])
        );

        assert_error(
            app.get("/api/v1/alerts?state=open").await,
            400,
            "invalid_query",
        )
        .await;
        assert_error(
            app.get("/api/v1/alerts?since=yesterday").await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(alerts(&app, "?state=firing").await, Vec::<Value>::new());
        app.stop().await;
    }
);

both_backends!(
    an_open_circuit_fires_once_and_resolves_once,
    |backend| async move {
        let receiver = Receiver::start(0).await;
        let mut env = TestEnv::new(backend).await;
        alert_env(&mut env, &receiver);
        env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
        let app = TestApp::spawn_with(env).await;
        app.fail_calls("svc", 5, "connection refused");
        eventually(Duration::from_secs(10), "a firing message", || async {
            receiver.about("firing", "circuit-open", "breaker", "svc") == 1
        })
        .await;
        let firing = alerts(&app, "?state=firing").await;
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert_eq!(firing[0]["rule"], "circuit-open");
        assert_eq!(firing[0]["severity"], "page");
        assert_eq!(
            firing[0]["summary"],
            "circuit svc is OPEN: connection refused"
        );
        let message = &receiver.bodies()[0];
        assert_eq!(
            message["alerts"][0]["fingerprint"],
            firing[0]["fingerprint"]
        );
        assert!(message["alerts"][0].get("endsAt").is_none(), "{message}");
        // Still open: evaluated many times, sent once.
        stays(Duration::from_millis(600), "one firing message", || async {
            receiver.bodies().len() == 1
        })
        .await;

        let r = app
            .send_json(
                Method::POST,
                "/api/v1/circuit-breakers/svc/reset",
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 200);
        eventually(Duration::from_secs(10), "a resolved message", || async {
            receiver.about("resolved", "circuit-open", "breaker", "svc") == 1
        })
        .await;
        let resolved = alerts(&app, "?state=resolved").await;
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert!(resolved[0]["endsAt"].is_string());
        let message = receiver.bodies()[1].clone();
        assert!(message["alerts"][0]["endsAt"].is_string(), "{message}");
        stays(Duration::from_millis(500), "nothing more", || async {
            receiver.bodies().len() == 2
        })
        .await;
        let sent = app.data("/api/v1/alerts/notifications").await;
        let states: Vec<&str> = sent["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["sent", "sent"]);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("jarvis_alert_notifications_total{result=\"sent\"} 2"),
            "{metrics}"
        );
        assert!(metrics.contains("jarvis_alerts_firing{severity=\"page\"} 0"));
        app.stop().await;
    }
);

/// An app whose webhook is `receiver` (at most `max_attempts` per message) and whose circuit
/// `svc` opens: waits until the one notification is in `state`; the app and the notification.
async fn one_notification(
    backend: Backend,
    receiver: &Receiver,
    max_attempts: u32,
    state: &str,
) -> (TestApp, Value) {
    let mut env = TestEnv::new(backend).await;
    alert_env(&mut env, receiver);
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
    env.set("JARVIS_ALERT_MAX_ATTEMPTS", &max_attempts.to_string());
    let app = TestApp::spawn_with(env).await;
    app.fail_calls("svc", 5, "refused");
    let n = eventually_some(
        Duration::from_secs(10),
        &format!("the notification {state}"),
        || async {
            let n = app.data("/api/v1/alerts/notifications").await["notifications"][0].clone();
            (n["state"] == state).then_some(n)
        },
    )
    .await;
    (app, n)
}

both_backends!(
    a_failing_receiver_is_retried_then_given_up,
    |backend| async move {
        // Fails twice, then takes the message: three attempts of one notification.
        let receiver = Receiver::start(2).await;
        let (app, n) = one_notification(backend, &receiver, 3, "sent").await;
        assert_eq!(n["attempts"], 3, "{n}");
        let bodies = receiver.bodies();
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "the same message each time"
        );
        app.stop().await;

        // Never accepts: recorded as failed after the last attempt, without the URL.
        let receiver = Receiver::start(usize::MAX).await;
        let (app, n) = one_notification(backend, &receiver, 2, "failed").await;
        assert_eq!(n["attempts"], 2, "{n}");
        assert_eq!(n["lastError"], "HTTP 500");
        assert_eq!(receiver.bodies().len(), 2);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("jarvis_alert_notifications_total{result=\"failed\"} 1"));
        assert!(metrics.contains("jarvis_alert_notifications_total{result=\"retried\"} 1"));
        app.stop().await;
    }
);

both_backends!(
    a_silenced_alert_is_recorded_not_sent,
    |backend| async move {
        let receiver = Receiver::start(0).await;
        let mut env = TestEnv::new(backend).await;
        alert_env(&mut env, &receiver);
        env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
        let app = TestApp::spawn_with(env).await;
        let silence = silence(&app, json!({"breaker": "quiet"})).await;
        app.fail_calls("quiet", 5, "refused");
        let firing = eventually_some(Duration::from_secs(10), "the episode", || async {
            alerts(&app, "?state=firing").await.first().cloned()
        })
        .await;
        assert_eq!(firing["silencedBy"], silence);
        app.send_json(
            Method::POST,
            "/api/v1/circuit-breakers/quiet/reset",
            &json!({}),
        )
        .await;
        eventually(Duration::from_secs(10), "resolved", || async {
            alerts(&app, "?state=resolved").await.len() == 1
        })
        .await;
        stays(Duration::from_millis(500), "nothing sent", || async {
            receiver.bodies().is_empty()
        })
        .await;
        assert_eq!(
            app.data("/api/v1/alerts/notifications").await["notifications"],
            json!([])
        );
        app.stop().await;
    }
);

/// The instances' firing circuit-open episodes of `service`.
async fn episodes(p: &TestProcess, service: &str) -> Vec<Value> {
    let (s, body) = p.api(Method::GET, "/api/v1/alerts", None).await;
    assert_eq!(s, 200, "{body}");
    body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "circuit-open" && a["labels"]["service"] == service)
        .cloned()
        .collect()
}

/// The acceptance test of issue 16: two instances, one outage, one firing and one resolved
/// message; with a silence, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_one_alert_and_one_resolve_per_outage() {
    let receiver = Receiver::start(0).await;
    let service = FakeService::start(Mode::Ok).await;
    let mut env = TestEnv::new(Backend::Postgres).await;
    alert_env(&mut env, &receiver);
    env.set("JARVIS_ALERT_INTERVAL_MS", "200");
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "1500");
    env.set("JARVIS_BREAKER_LEASE_MS", "1000");
    env.set("JARVIS_BREAKER_RECONCILE_MS", "500");
    let mut ps = Vec::new();
    for i in 0..2 {
        env.set("JARVIS_INSTANCE_ID", &format!("inst-{i}"));
        ps.push(TestProcess::start(&env).await);
    }
    register_service_on_all(&ps, "flaky", &service.url("/health"), 200, 2000).await;

    // The outage: one firing message, whichever instance opened the episode.
    service.set_mode(Mode::Fail);
    eventually(Duration::from_secs(20), "the firing message", || async {
        receiver.about("firing", "circuit-open", "service", "flaky") == 1
    })
    .await;
    service.set_mode(Mode::Ok);
    eventually(Duration::from_secs(20), "the resolved message", || async {
        receiver.about("resolved", "circuit-open", "service", "flaky") == 1
    })
    .await;
    stays(
        Duration::from_secs(2),
        "exactly one firing and one resolved message",
        || async {
            receiver.about("firing", "circuit-open", "service", "flaky") == 1
                && receiver.about("resolved", "circuit-open", "service", "flaky") == 1
        },
    )
    .await;
    for p in &ps {
        let e = episodes(p, "flaky").await;
        assert_eq!(e.len(), 1, "one episode: {e:?}");
        assert_eq!(e[0]["state"], "resolved");
    }
    // And nothing else reached the receiver for that outage: one firing, one resolved message
    // in all (a trip forecast for the same service is not a second page).
    let all = receiver.bodies();
    assert_eq!(all.len(), 2, "{all:#?}");

    // Silenced (through the other instance): recorded, not sent.
    let (s, body) = ps[1]
        .api(
            Method::POST,
            "/api/v1/alerts/silences",
            Some(json!({"matchers": {"service": "flaky"}, "durationMs": 600_000})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    service.set_mode(Mode::Fail);
    eventually(Duration::from_secs(20), "the silenced episode", || async {
        episodes(&ps[0], "flaky")
            .await
            .iter()
            .any(|e| e["state"] == "firing" && e["silencedBy"] == body["data"]["id"])
    })
    .await;
    service.set_mode(Mode::Ok);
    eventually(
        Duration::from_secs(20),
        "the silenced episode resolved",
        || async {
            let e = episodes(&ps[0], "flaky").await;
            e.len() == 2 && e.iter().all(|e| e["state"] == "resolved")
        },
    )
    .await;
    stays(
        Duration::from_secs(1),
        "nothing sent while silenced",
        || async {
            receiver.about("firing", "circuit-open", "service", "flaky") == 1
                && receiver.about("resolved", "circuit-open", "service", "flaky") == 1
        },
    )
    .await;
    // The webhook's URL (its token) reached no log line.
    let mut text = std::fs::read_to_string(env.log_file()).unwrap_or_default();
    for p in &ps {
        text += &p.stdout();
        text += &p.stderr();
    }
    assert!(text.contains("alert notification sent"), "{text}");
    assert!(
        !text.contains("secret-token-xyz"),
        "the webhook URL reached the log"
    );
}

both_backends!(
    failing_tasks_fire_the_failure_rate_and_burn_rate_alerts,
    |backend| async move {
        let receiver = Receiver::start(0).await;
        let mut env = TestEnv::new(backend).await;
        alert_env(&mut env, &receiver);
        env.set("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1000");
        let app = TestApp::spawn_with(env).await;
        let agent = FakeService::start(Mode::Fail).await;
        let (s, body) = app
            .put_agent("render", json!({"url": agent.url("/run")}))
            .await;
        assert_eq!(s, 201, "{body}");
        let tasks: Vec<Value> = (0..20)
            .map(|_| json!({"domain": "render", "action": "draw", "maxAttempts": 1}))
            .collect();
        app.submit_batch(json!(tasks)).await;
        // 20 of 20 failed in the last minutes: above the 0.3 threshold, and a burn rate of 100×
        // of the 99 % objective's budget over 1 h and 5 min.
        let firing = eventually_some(Duration::from_secs(20), "both alerts", || async {
            let firing = alerts(&app, "?state=firing").await;
            let rules: Vec<&str> = firing.iter().filter_map(|a| a["rule"].as_str()).collect();
            (rules.contains(&"failure-rate") && rules.contains(&"slo-burn-page")).then_some(firing)
        })
        .await;
        let fr = firing.iter().find(|a| a["rule"] == "failure-rate").unwrap();
        assert_eq!(fr["labels"], json!({"domain": "render", "action": "draw"}));
        // The rule may first fire while some of the 20 are still running: at least its
        // minimum of 10 tasks, all failed.
        let summary = fr["summary"].as_str().unwrap();
        let counted: u32 = summary
            .strip_prefix("render/draw: 100% of ")
            .and_then(|rest| rest.strip_suffix(" tasks failed in the last 5m (threshold 30%)"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected summary {summary:?}"));
        assert!((10..=20).contains(&counted), "{summary}");
        let burn = firing
            .iter()
            .find(|a| a["rule"] == "slo-burn-page")
            .unwrap();
        assert!(
            burn["summary"]
                .as_str()
                .unwrap()
                .contains("burns 100.0× over 1h and 100.0× over 5m"),
            "{burn}"
        );
        // Each sent once (in one message when both fired in the same evaluation).
        eventually(Duration::from_secs(10), "both sent", || async {
            receiver.about("firing", "failure-rate", "domain", "render") == 1
                && receiver.about("firing", "slo-burn-page", "domain", "render") == 1
        })
        .await;
        app.stop().await;
    }
);

both_backends!(
    an_alert_outliving_its_silence_is_sent_then,
    |backend| async move {
        let receiver = Receiver::start(0).await;
        let mut env = TestEnv::new(backend).await;
        alert_env(&mut env, &receiver);
        env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
        let app = TestApp::spawn_with(env).await;
        let id = silence(&app, json!({"rule": "circuit-open"}))
            .await
            .as_str()
            .unwrap()
            .to_string();
        app.fail_calls("svc", 5, "refused");
        eventually(Duration::from_secs(10), "the silenced episode", || async {
            alerts(&app, "?state=firing")
                .await
                .first()
                .is_some_and(|a| a["silencedBy"] == id.as_str())
        })
        .await;
        assert!(receiver.bodies().is_empty());
        // The silence goes while the circuit is still open: the firing message goes now.
        let r = app
            .send_json(
                Method::DELETE,
                &format!("/api/v1/alerts/silences/{id}"),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 204);
        eventually(
            Duration::from_secs(10),
            "the late firing message",
            || async { receiver.about("firing", "circuit-open", "breaker", "svc") == 1 },
        )
        .await;
        let firing = alerts(&app, "?state=firing").await;
        assert_eq!(firing.len(), 1, "the same episode: {firing:?}");
        assert!(firing[0]["silencedBy"].is_null());
        app.send_json(
            Method::POST,
            "/api/v1/circuit-breakers/svc/reset",
            &json!({}),
        )
        .await;
        eventually(Duration::from_secs(10), "the resolved message", || async {
            receiver.about("resolved", "circuit-open", "breaker", "svc") == 1
        })
        .await;
        app.stop().await;
    }
);

both_backends!(a_webhook_gets_no_more_than_its_rate, |backend| async move {
    let receiver = Receiver::start(0).await;
    let mut env = TestEnv::new(backend).await;
    alert_env(&mut env, &receiver);
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "600000");
    env.set("JARVIS_ALERT_RATE_PER_MIN", "1");
    let app = TestApp::spawn_with(env).await;
    app.fail_calls("first", 5, "refused");
    eventually(Duration::from_secs(10), "the first message", || async {
        receiver.bodies().len() == 1
    })
    .await;
    app.fail_calls("second", 5, "refused");
    eventually(
        Duration::from_secs(10),
        "the second alert queued",
        || async {
            let n = app.data("/api/v1/alerts/notifications").await;
            n["notifications"].as_array().unwrap().len() == 2
        },
    )
    .await;
    // One message a minute: the second waits, its attempt not counted.
    stays(
        Duration::from_secs(1),
        "the second message waits",
        || async { receiver.bodies().len() == 1 },
    )
    .await;
    let n = app.data("/api/v1/alerts/notifications").await["notifications"][0].clone();
    assert_eq!(n["state"], "pending", "{n}");
    assert_eq!(n["attempts"], 0, "{n}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("jarvis_alert_notifications_total{result=\"deferred\"}"));
    app.stop().await;
});

// A service slowing toward its timeout: the trip forecast is sent as a `predicted-trip` alert
// ahead of the trip, then the circuit-open alert follows (the forecast came true).
both_backends!(
    a_slowing_service_is_announced_before_its_circuit_opens,
    |backend| async move {
        let receiver = Receiver::start(0).await;
        let mut env = TestEnv::new(backend).await;
        alert_env(&mut env, &receiver);
        env.set("CIRCUIT_BREAKER_TIMEOUT_MS", "60000");
        let app = TestApp::spawn_with(env).await;
        // 10 ms, then 20 ms slower with every check: the 600 ms timeout is reached at the 30th
        // check (3 s), and five timeouts in a row open the circuit.
        let slowing = FakeService::start(Mode::Ramp {
            from_ms: 10,
            step_ms: 20,
        })
        .await;
        app.put_service(
            "slowing",
            json!({"url": slowing.url("/"), "intervalMs": 100, "timeoutMs": 600}),
        )
        .await;
        eventually(
            Duration::from_secs(30),
            "the circuit-open alert",
            || async { receiver.about("firing", "circuit-open", "service", "slowing") == 1 },
        )
        .await;
        let rules: Vec<String> = receiver
            .bodies()
            .iter()
            .filter(|b| b["status"] == "firing")
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["labels"]["service"] == "slowing")
            .map(|a| a["rule"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(rules, ["predicted-trip", "circuit-open"], "{rules:?}");
        app.stop().await;
    }
);
