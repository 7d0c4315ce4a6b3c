//! Three `jarvis serve` processes on one PostgreSQL database share their circuit breakers:
//! failures seen by different instances open the circuit for all, exactly one trial request
//! reaches the service when the open period ends, a forced open reaches the others within a
//! second, and killing the instance that holds the trial lease does not block recovery.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::*;

const OPEN_MS: u64 = 3000;

async fn all_show(ps: &[TestProcess], name: &str, state: &str) -> bool {
    for p in ps {
        if breaker(p, name).await["state"] != state {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_circuit() {
    let service = FakeService::start(Mode::Ok).await;
    let mut env = TestEnv::new(Backend::Postgres).await;
    env.set("CIRCUIT_BREAKER_TIMEOUT_MS", &OPEN_MS.to_string());
    env.set("JARVIS_BREAKER_LEASE_MS", "1500");
    env.set("JARVIS_BREAKER_RECONCILE_MS", "1000");
    env.set("JARVIS_EMF_INTERVAL_MS", "0");
    let db_url = env.db.as_ref().unwrap().url.clone();
    let mut ps = Vec::new();
    for i in 0..3 {
        env.set("JARVIS_INSTANCE_ID", &format!("inst-{i}"));
        ps.push(TestProcess::start(&env).await);
    }
    let db = sqlx::PgPool::connect(&db_url).await.unwrap();

    // Registered on one instance, checked by all three (every 300 ms each).
    // Every instance checks it (and finds it up) before it starts failing.
    register_service_on_all(&ps, "flaky", &service.url("/health"), 300, 6000).await;
    service.set_mode(Mode::Fail);

    // Failures from different instances open the circuit for all three.
    eventually(Duration::from_secs(20), "OPEN on all three", || {
        all_show(&ps, "flaky", "OPEN")
    })
    .await;
    let c0 = service.count();
    let (instances, failures): (String, i32) = sqlx::query_as(
        "SELECT failure_instances, consecutive_failures FROM circuit_breaker_state WHERE name = 'flaky'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(failures >= 5, "{failures}");
    assert!(
        instances.split(',').count() >= 2,
        "failures came from one instance only: {instances}"
    );
    for p in &ps {
        let count = breaker(p, "flaky").await["failureCount"].as_u64().unwrap();
        assert!(count >= 5, "failureCount {count}");
    }

    // While open, nobody calls the service.
    let next: String = breaker(&ps[0], "flaky").await["nextAttemptAt"]
        .as_str()
        .unwrap()
        .to_string();
    let next = chrono::DateTime::parse_from_rfc3339(&next).unwrap();
    let until_next = (next.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    stays(
        until_next.saturating_sub(Duration::from_millis(300)),
        "the service is not called while the circuit is open",
        || async { service.count() == c0 },
    )
    .await;

    // When the open period ends, exactly one trial request cluster-wide (it fails: re-open).
    eventually(Duration::from_secs(10), "the trial request", || async {
        service.count() > c0
    })
    .await;
    // A second trial from another instance would come within this window: none may.
    stays(
        Duration::from_millis(1000),
        "one trial request cluster-wide, not more",
        || async { service.count() == c0 + 1 },
    )
    .await;
    eventually(Duration::from_secs(5), "OPEN again on all three", || {
        all_show(&ps, "flaky", "OPEN")
    })
    .await;

    // A forced open on one instance shows on the other two within a second.
    let (s, body) = ps[0]
        .api(Method::POST, "/api/v1/circuit-breakers/flaky/open", None)
        .await;
    assert_eq!(s, 200, "{body}");
    let started = Instant::now();
    eventually(
        Duration::from_secs(1),
        "forced OPEN on the others",
        || async {
            breaker(&ps[1], "flaky").await["forced"] == true
                && breaker(&ps[2], "flaky").await["forced"] == true
        },
    )
    .await;
    eprintln!(
        "forced open seen on the others after {:?}",
        started.elapsed()
    );

    // Close it; the service still fails, so it opens again; then the service becomes slow, so the
    // next trial is in flight when its holder is killed.
    let (s, body) = ps[0]
        .api(Method::POST, "/api/v1/circuit-breakers/flaky/close", None)
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(
        Duration::from_secs(20),
        "OPEN (not forced) on all three",
        || async {
            for p in &ps {
                let b = breaker(p, "flaky").await;
                if b["state"] != "OPEN" || b["forced"] != false {
                    return false;
                }
            }
            true
        },
    )
    .await;
    service.set_mode(Mode::Slow(5000));
    let holder: String = eventually_some(
        Duration::from_secs(15),
        "an instance to take the trial",
        || async {
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT state, trial_holder FROM circuit_breaker_state WHERE name = 'flaky'",
            )
            .fetch_optional(&db)
            .await
            .unwrap();
            match row {
                Some((state, holder)) if state == "HALF_OPEN" => holder,
                _ => None,
            }
        },
    )
    .await;
    let k: usize = holder.trim_start_matches("inst-").parse().unwrap();
    ps[k].child.kill().unwrap();
    let _ = ps[k].child.wait();
    service.set_mode(Mode::Ok);
    let survivors: Vec<&TestProcess> = ps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != k)
        .map(|(_, p)| p)
        .collect();
    eventually(
        Duration::from_secs(30),
        "the survivors close the circuit",
        || async {
            for p in &survivors {
                if breaker(p, "flaky").await["state"] != "CLOSED" {
                    return false;
                }
            }
            true
        },
    )
    .await;
}
