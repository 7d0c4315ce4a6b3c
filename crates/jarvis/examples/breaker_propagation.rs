//! Shared-breaker benchmark: how fast a transition on instance A is seen on instance B, and how
//! many store writes 1,000 successful calls cause.
//!
//! Two Jarvis applications (each with its own connection pool, LISTEN connection and breaker
//! registry, exactly as two processes would have) share a fresh PostgreSQL database. The
//! benchmark forces the breaker open or closed on A through the operator path (the same one
//! `POST /api/v1/circuit-breakers/{name}/open` takes) and polls B's in-process breaker every
//! 50 µs until it shows the new state.
//!
//! ```sh
//! cargo run --release -p jarvis --example breaker_propagation -- [transitions] [admin-url]
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jarvis::app::Application;
use jarvis::config::Config;
use jarvis::names::Name;
use jarvis_breaker::State;
use sqlx::Connection;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

async fn app(db_url: &str, instance: &str, dir: &std::path::Path) -> Application {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db_url.to_string()),
        ("JARVIS_PORT", "0".into()),
        ("JARVIS_BIND", "127.0.0.1".into()),
        ("JARVIS_AUTH_TOKEN", "bench-token-0123456789".into()),
        ("JARVIS_INSTANCE_ID", instance.into()),
        ("JARVIS_DATA_DIR", dir.join(instance).display().to_string()),
        ("JARVIS_LOG_DIR", dir.join(instance).display().to_string()),
        ("JARVIS_BREAKER_RECONCILE_MS", "60000".into()),
        ("CIRCUIT_BREAKER_TIMEOUT_MS", "600000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Application::build(Config::from_env_map(&vars, None).expect("config"))
        .await
        .expect("build")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let transitions: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let admin = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("jarvis_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&db);
    let dir = tempfile::tempdir()?;

    let a = app(url.as_str(), "bench-a", dir.path()).await;
    let b = app(url.as_str(), "bench-b", dir.path()).await;
    let (sa, sb) = (a.state().clone(), b.state().clone());
    let (stop_a, rx_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, rx_b) = tokio::sync::oneshot::channel::<()>();
    let ha = tokio::spawn(a.run_until(async {
        let _ = rx_a.await;
    }));
    let hb = tokio::spawn(b.run_until(async {
        let _ = rx_b.await;
    }));

    let name = Name::parse("bench")?;
    sa.breakers.acquire(&name).unwrap().success();
    sb.breakers.acquire(&name).unwrap().success();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ba = sa.breakers.breaker(&name);
    let bb = sb.breakers.breaker(&name);
    let mut delays = Vec::with_capacity(transitions);
    for i in 0..transitions {
        let want = if i % 2 == 0 {
            State::Open
        } else {
            State::Closed
        };
        let started = Instant::now();
        if want == State::Open {
            ba.force_open();
        } else {
            ba.force_closed();
        }
        while bb.state() != want {
            if started.elapsed() > Duration::from_secs(5) {
                anyhow::bail!("transition {i} to {want} not seen on B within 5 s");
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        delays.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    delays.sort_by(|x, y| x.partial_cmp(y).unwrap());

    // Store writes caused by successful calls: every write bumps a row's version.
    ba.force_closed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let versions = || async {
        let mut c = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
        let v: (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(version), 0)::bigint, count(*) FROM circuit_breaker_state",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        v.0 + v.1
    };
    let before = versions().await;
    for _ in 0..1000 {
        sa.breakers.acquire(&name).unwrap().success();
        sb.breakers.acquire(&name).unwrap().success();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = versions().await - before;

    println!(
        "{{\"transitions\": {transitions}, \"propagationP50Ms\": {:.2}, \"propagationP99Ms\": {:.2}, \"propagationMaxMs\": {:.2}, \"storeWritesPer1000SuccessfulCalls\": {}}}",
        percentile(&delays, 50.0),
        percentile(&delays, 99.0),
        delays[delays.len() - 1],
        writes as f64 / 2.0
    );

    let _ = stop_a.send(());
    let _ = stop_b.send(());
    let _ = ha.await;
    let _ = hb.await;
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
