//! The learning simulation through the real server and queue (issue 7's acceptance).
//!
//! For each seed and each strategy — fixed default parameters, uniformly random parameters,
//! learning (`"useLearned": true`) — this starts a fresh Jarvis (real HTTP server, real queue
//! and workers, real recorder and learner; an embedded SQLite file, or a fresh PostgreSQL
//! database with `--database-url`), serves the learning library's simulated `BeatAgent` as a
//! real HTTP agent on 127.0.0.1, and submits N tasks over HTTP (`POST /api/v1/execute?wait=true`,
//! a few in flight). Jarvis enforces the timeouts; the learner only sees what the recorder
//! records.
//!
//! * **Deterministic agent**: the agent draws each task's outcome from an RNG seeded with the
//!   seed and the task's index (sent as the bookkeeping parameter `_sim`, which the learner
//!   never learns), so every strategy meets the same random numbers.
//! * **Time scale**: the agent sleeps `duration / scale` (default 100: a 18 s render takes
//!   180 ms) and every time in Jarvis is scaled alike (agent timeout 30 s / scale, learned
//!   timeout bounds 1 s … 600 s / scale), so timeouts cut off the same runs as in the model.
//! * **Breakers off**: the model has no outages; five timeouts in a row would otherwise open the
//!   agent's circuit and pause the run for a minute.
//!
//! Reported per strategy: failed tasks, timeouts, mean impact of successful tasks, cumulative
//! regret (expected utility lost against the best configuration with no time limit, from the
//! parameters and timeout each task actually ran with), and for learning the number of finished
//! tasks after which `GET /api/v1/tasks/recommendations` first names a best configuration
//! (within 5 % of the optimum's expected utility; the library's `BEST_TOLERANCE`).
//!
//! ```sh
//! cargo run --release -p jarvis --example learning_sim -- --seeds 1,2,3 [--tasks 2000]
//!     [--scale 100] [--in-flight 8] [--flush-ms 250] [--database-url postgres://…/postgres]
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use jarvis::app::Application;
use jarvis::config::Config;
use jarvis_learning::sim::{BeatAgent, BEST_TOLERANCE, DEFAULT_TIMEOUT_MS};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

const TOKEN: &str = "sim-token-0123456789abcdef";
const DOMAIN: &str = "music";
const ACTION: &str = "generate-beat";
const IMPACT_WEIGHT: f64 = 0.5;

#[derive(Debug, Clone)]
struct Args {
    seeds: Vec<u64>,
    tasks: usize,
    scale: f64,
    in_flight: usize,
    flush_ms: u64,
    exploration: f64,
    database_url: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seeds: vec![1, 2, 3],
        tasks: 2_000,
        scale: 100.0,
        in_flight: 8,
        flush_ms: 250,
        exploration: 0.05,
        database_url: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = raw
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{} needs a value", raw[i]))?;
        match raw[i].as_str() {
            "--seeds" => {
                args.seeds = value
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--tasks" => args.tasks = value.parse()?,
            "--scale" => args.scale = value.parse()?,
            "--in-flight" => args.in_flight = value.parse()?,
            "--flush-ms" => args.flush_ms = value.parse()?,
            "--exploration" => args.exploration = value.parse()?,
            "--database-url" => args.database_url = Some(value.clone()),
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 2;
    }
    Ok(args)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Default,
    Random,
    Learning,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Default => "fixed default",
            Strategy::Random => "random",
            Strategy::Learning => "learning",
        }
    }
}

/// The simulated agent over HTTP.
async fn serve_agent(
    seed: u64,
    scale: f64,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let handler = move |Json(body): Json<Value>| async move {
        let mut parameters = body["parameters"].as_object().cloned().unwrap_or_default();
        let index = parameters
            .remove("_sim")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let mut rng = StdRng::seed_from_u64(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03)),
        );
        let response = BeatAgent.respond(&parameters, &mut rng);
        tokio::time::sleep(Duration::from_secs_f64(
            response.duration_ms as f64 / scale / 1_000.0,
        ))
        .await;
        Json(if response.success {
            json!({
                "success": true,
                "impactScore": response.impact_score,
                "output": {"impactScore": response.impact_score, "simDurationMs": response.duration_ms},
            })
        } else {
            json!({"success": false, "error": response.error})
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = Router::new().route("/run", post(handler));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://127.0.0.1:{port}/run"), handle))
}

/// One task's outcome as the runner saw it.
#[derive(Debug, Clone)]
struct Outcome {
    success: bool,
    timed_out: bool,
    impact: Option<f64>,
    regret: f64,
}

#[derive(Debug, Clone)]
struct Report {
    strategy: Strategy,
    tasks: usize,
    failed: usize,
    timed_out: usize,
    mean_impact: Option<f64>,
    regret: f64,
    first_best_at: Option<usize>,
    stable_best_from: Option<usize>,
    final_recommendation: Option<Value>,
    final_timeout_ms: Option<u64>,
    seconds: f64,
}

struct Jarvis {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    database: Option<(String, String)>,
}

async fn start_jarvis(args: &Args, run: &str) -> anyhow::Result<Jarvis> {
    let dir = tempfile::tempdir()?;
    let scale = args.scale;
    let toml = format!(
        r#"[learning]
timeoutMinMs = {min}
timeoutMaxMs = {max}

[learning.spaces."{DOMAIN}/{ACTION}".genre]
kind = "categorical"
values = ["pop", "rock", "jazz", "electronic", "hiphop", "metal"]

[learning.spaces."{DOMAIN}/{ACTION}".bpm]
kind = "numeric"
min = 60
max = 180
integer = true

[learning.spaces."{DOMAIN}/{ACTION}".quality]
kind = "categorical"
values = ["draft", "standard", "high"]
"#,
        min = (1_000.0 / scale).ceil().max(1.0) as u64,
        max = (600_000.0 / scale).ceil() as u64,
    );
    let config_path = dir.path().join("jarvis.toml");
    std::fs::write(&config_path, toml)?;
    let mut vars: HashMap<String, String> = [
        ("JARVIS_PORT", "0".to_string()),
        ("JARVIS_BIND", "127.0.0.1".into()),
        ("JARVIS_AUTH_TOKEN", TOKEN.into()),
        ("JARVIS_INSTANCE_ID", format!("sim-{run}")),
        ("JARVIS_DATA_DIR", dir.path().display().to_string()),
        ("JARVIS_LOG_DIR", dir.path().display().to_string()),
        ("JARVIS_CONCURRENCY", (args.in_flight * 2).to_string()),
        ("JARVIS_LEARNING_FLUSH_MS", args.flush_ms.to_string()),
        ("JARVIS_LEARNING_EXPLORATION", args.exploration.to_string()),
        ("CIRCUIT_BREAKER_ENABLED", "false".into()),
        ("LOG_LEVEL", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut database = None;
    if let Some(admin) = &args.database_url {
        use sqlx::Connection;
        let name = format!(
            "jarvis_sim_{}_{}",
            std::process::id(),
            run.replace('-', "_")
        );
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let mut url = url::Url::parse(admin)?;
        url.set_path(&name);
        vars.insert("DATABASE_URL".into(), url.to_string());
        database = Some((admin.clone(), name));
    }
    let config = Config::from_env_map(&vars, Some(config_path))?;
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Ok(Jarvis {
        base,
        stop,
        handle,
        _dir: dir,
        database,
    })
}

impl Jarvis {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let _ = self.handle.await;
        if let Some((admin, name)) = self.database {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn run_strategy(
    args: &Args,
    seed: u64,
    strategy: Strategy,
    best_utility: f64,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let (agent_url, agent) = serve_agent(seed, args.scale).await?;
    let jarvis = start_jarvis(args, &format!("{seed}-{}", strategy as u8)).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let default_timeout_real = (DEFAULT_TIMEOUT_MS as f64 / args.scale).round() as u64;
    let r = http
        .put(format!("{}/api/v1/agents/{DOMAIN}", jarvis.base))
        .bearer_auth(TOKEN)
        .json(&json!({"url": agent_url, "timeoutMs": default_timeout_real}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "registering the agent: {}",
        r.status()
    );

    // The random strategy's parameters are drawn up front from its own seeded stream.
    let mut policy_rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(7));
    let planned: Vec<Map<String, Value>> = (0..args.tasks)
        .map(|_| match strategy {
            Strategy::Default => BeatAgent.default_parameters(),
            Strategy::Random => BeatAgent.random_parameters(&mut policy_rng),
            Strategy::Learning => Map::new(),
        })
        .collect();
    let planned = Arc::new(planned);
    let next = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; args.tasks]));
    let checks: Arc<Mutex<Vec<(usize, bool)>>> = Arc::new(Mutex::new(Vec::new()));
    let is_best = move |p: &Map<String, Value>| {
        !p.is_empty()
            && BeatAgent.expected_utility(p, None, IMPACT_WEIGHT)
                >= (1.0 - BEST_TOLERANCE) * best_utility
    };

    let mut workers = Vec::new();
    for _ in 0..args.in_flight {
        let (http, base) = (http.clone(), jarvis.base.clone());
        let (planned, next, finished) = (planned.clone(), next.clone(), finished.clone());
        let (outcomes, checks) = (outcomes.clone(), checks.clone());
        let (tasks, scale) = (args.tasks, args.scale);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= tasks {
                    return Ok::<(), anyhow::Error>(());
                }
                let mut parameters = planned[i].clone();
                parameters.insert("_sim".into(), json!(i));
                let mut body = json!({
                    "domain": DOMAIN, "action": ACTION, "parameters": parameters, "maxAttempts": 1,
                });
                if strategy == Strategy::Learning {
                    body["useLearned"] = json!(true);
                }
                let answer: Value = http
                    .post(format!("{base}/api/v1/execute?wait=true&waitMs=120000"))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                let task = &answer["data"];
                anyhow::ensure!(
                    task["status"] == "succeeded" || task["status"] == "failed",
                    "task {i} did not finish: {answer}"
                );
                let mut ran_with = object(&task["parameters"]);
                ran_with.remove("_sim");
                let timeout_real = task["timeoutMs"].as_u64().unwrap_or(default_timeout_real);
                let timeout_sim = (timeout_real as f64 * scale).round() as u64;
                let regret = best_utility
                    - BeatAgent.expected_utility(&ran_with, Some(timeout_sim), IMPACT_WEIGHT);
                let error = task["error"].as_str().unwrap_or("");
                outcomes.lock().unwrap()[i] = Some(Outcome {
                    success: task["status"] == "succeeded",
                    timed_out: error.starts_with("agent timed out"),
                    impact: task["result"]["impactScore"].as_f64(),
                    regret,
                });
                let done = finished.fetch_add(1, Ordering::SeqCst) + 1;
                if strategy == Strategy::Learning {
                    let rec: Value = http
                        .get(format!(
                            "{base}/api/v1/tasks/recommendations?domain={DOMAIN}&action={ACTION}"
                        ))
                        .bearer_auth(TOKEN)
                        .send()
                        .await?
                        .json()
                        .await?;
                    let best = is_best(&object(&rec["data"]["parameters"]));
                    checks.lock().unwrap().push((done, best));
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    // The final recommendation, once every result is in the shared state.
    tokio::time::sleep(Duration::from_millis(args.flush_ms * 3 + 100)).await;
    let rec: Value = http
        .get(format!(
            "{}/api/v1/tasks/recommendations?domain={DOMAIN}&action={ACTION}",
            jarvis.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    jarvis.stop().await?;
    agent.abort();

    let outcomes: Vec<Outcome> = outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|o| o.clone().expect("every task finished"))
        .collect();
    let successes: Vec<&Outcome> = outcomes.iter().filter(|o| o.success).collect();
    let impacts: Vec<f64> = successes.iter().filter_map(|o| o.impact).collect();
    let mut checks = checks.lock().unwrap().clone();
    checks.sort();
    let first_best_at = checks.iter().find(|c| c.1).map(|c| c.0);
    let stable_best_from = match checks.iter().rposition(|c| !c.1) {
        None => checks.first().map(|c| c.0),
        Some(last_miss) => checks.get(last_miss + 1).map(|c| c.0),
    };
    Ok(Report {
        strategy,
        tasks: args.tasks,
        failed: outcomes.iter().filter(|o| !o.success).count(),
        timed_out: outcomes.iter().filter(|o| o.timed_out).count(),
        mean_impact: (!impacts.is_empty())
            .then(|| impacts.iter().sum::<f64>() / impacts.len() as f64),
        regret: outcomes.iter().map(|o| o.regret).sum(),
        first_best_at,
        stable_best_from,
        final_recommendation: (strategy == Strategy::Learning)
            .then(|| rec["data"]["parameters"].clone()),
        final_timeout_ms: rec["data"]["timeoutMs"].as_u64(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn at(x: Option<usize>) -> String {
    x.map_or_else(|| "-".into(), |x| x.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (best, best_utility) = BeatAgent.best(IMPACT_WEIGHT);
    println!(
        "learning simulation through the real server: {} tasks per strategy, time scale 1/{}, {} in flight, flush {} ms, exploration {}, store {}",
        args.tasks,
        args.scale,
        args.in_flight,
        args.flush_ms,
        args.exploration,
        if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    println!(
        "best configuration {} (expected utility {best_utility:.3})\n",
        Value::Object(best)
    );
    println!("| seed | strategy | failed | timeouts | fail rate | mean impact | regret | first best at | stable best from | wall s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for &seed in &args.seeds {
        let mut reports = Vec::new();
        for strategy in [Strategy::Default, Strategy::Random, Strategy::Learning] {
            let r = run_strategy(&args, seed, strategy, best_utility).await?;
            println!(
                "| {seed} | {} | {} | {} | {:.1}% | {} | {:.1} | {} | {} | {:.0} |",
                r.strategy.name(),
                r.failed,
                r.timed_out,
                100.0 * r.failed as f64 / r.tasks.max(1) as f64,
                r.mean_impact
                    .map_or_else(|| "-".into(), |x| format!("{x:.1}")),
                r.regret,
                at(r.first_best_at),
                at(r.stable_best_from),
                r.seconds,
            );
            reports.push(r);
        }
        let baseline = reports[0].failed.min(reports[1].failed);
        let learning = &reports[2];
        let reduction = if baseline == 0 {
            0.0
        } else {
            1.0 - learning.failed as f64 / baseline as f64
        };
        let met = reduction >= 0.30 && learning.first_best_at.is_some_and(|a| a <= 500);
        summary.push(format!(
            "seed {seed}: learning {:.1}% fewer failed tasks than the better baseline ({} vs {}); first best at {}; final recommendation {} (timeout {} ms); targets {}",
            100.0 * reduction,
            learning.failed,
            baseline,
            at(learning.first_best_at),
            learning
                .final_recommendation
                .clone()
                .unwrap_or(Value::Null),
            learning
                .final_timeout_ms
                .map_or_else(|| "-".into(), |t| t.to_string()),
            if met { "met" } else { "NOT met" }
        ));
    }
    println!();
    for line in summary {
        println!("{line}");
    }
    Ok(())
}
