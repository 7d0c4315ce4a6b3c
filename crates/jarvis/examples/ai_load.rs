//! Load generator of the AI gateway benchmark (`bench/ai/run.sh` starts the processes and calls
//! it): the same chat requests, in one run, to the mock upstream directly and to every proxy in
//! front of it, closed loop at each concurrency, with latency percentiles, added latency over
//! the direct calls, requests/s, errors and the proxies' peak RSS.
//!
//! A target is `NAME|BASE_URL|API_KEY|MODEL|PID` (PID empty for none); the first one is the
//! baseline (the mock, direct) that added latency is measured against. A `--fallback` target is
//! measured the same way with a model whose first deployment fails; `--fallback-missing
//! NAME|WHY` puts a proxy that cannot do it in the table with the reason.
//!
//! ```sh
//! cargo run --release -p jarvis --example ai_load -- \
//!   --target 'direct|http://127.0.0.1:18101/v1|dummy|gpt-4o-mini|' \
//!   --target "jarvis|http://127.0.0.1:18103/v1|$TOKEN|openai/gpt-4o-mini|$JARVIS_PID" \
//!   --concurrency 1,32 --duration-secs 10 --jsonl out.jsonl --markdown out.md
//! ```
//!
//! Each cell: a fresh client, `--warmup-secs` of requests that are not counted (connections
//! opened, caches warm), then `--duration-secs` measured. Every request's latency is kept (no
//! histogram buckets), percentiles are nearest-rank. An answer counts as an error unless it is
//! 200 with a complete body (a JSON chat completion, or a stream that ends with `[DONE]`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use serde_json::{json, Value};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "closed-loop load generator for bench/ai")]
struct Args {
    /// `NAME|BASE_URL|API_KEY|MODEL|PID`; the first is the direct baseline.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// A target whose model's first deployment fails (same syntax).
    #[arg(long = "fallback")]
    fallbacks: Vec<String>,
    /// `NAME|WHY`: a proxy that has no fallback yet, shown with the reason.
    #[arg(long = "fallback-missing")]
    fallback_missing: Vec<String>,
    /// The failing upstream's `/stats` URL (counts the calls that reached it).
    #[arg(long)]
    failing_stats: Option<String>,
    /// Concurrency levels (in-flight requests), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Request kinds: `chat` (JSON answer) and/or `stream` (SSE), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "chat")]
    kinds: Vec<String>,
    /// Measured seconds per cell.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Unmeasured seconds before each cell.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// How many times the whole side-by-side is repeated.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// JSON lines output (appended), one per cell.
    #[arg(long)]
    jsonl: Option<String>,
    /// Markdown report output (overwritten).
    #[arg(long)]
    markdown: Option<String>,
    /// Tokio worker threads of the generator (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One system under test.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    base_url: String,
    key: String,
    model: String,
    pid: Option<u32>,
}

impl Target {
    fn parse(spec: &str) -> anyhow::Result<Target> {
        let parts: Vec<&str> = spec.split('|').collect();
        anyhow::ensure!(
            parts.len() == 5,
            "a target is NAME|BASE_URL|API_KEY|MODEL|PID, got {} fields",
            parts.len()
        );
        Ok(Target {
            name: parts[0].to_string(),
            base_url: parts[1].trim_end_matches('/').to_string(),
            key: parts[2].to_string(),
            model: parts[3].to_string(),
            pid: if parts[4].is_empty() {
                None
            } else {
                Some(parts[4].parse()?)
            },
        })
    }
}

/// One measured cell, as written to the JSON lines.
#[derive(Debug, Clone, Serialize)]
struct Cell {
    run: usize,
    kind: String,
    target: String,
    fallback: bool,
    concurrency: usize,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    rps: f64,
    mean_us: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    added_p50_us: Option<f64>,
    added_p99_us: Option<f64>,
    /// Peak RSS (VmHWM) of the target's process tree so far, KiB.
    peak_rss_kib: Option<u64>,
    /// CPU time of the target's process tree per request (warm-up included), µs; 10 ms
    /// resolution over the whole cell.
    cpu_us_per_request: Option<f64>,
    /// Calls that reached the failing upstream during the cell.
    failing_upstream_calls: Option<u64>,
    loadavg_before: String,
    loadavg_after: String,
    unix_time: u64,
}

/// What one worker measured.
#[derive(Default)]
struct WorkerResult {
    latencies_ns: Vec<u64>,
    /// Every answered request, warm-up included.
    sent: u64,
    errors: u64,
    first_error: Option<String>,
}

fn body(kind: &str, model: &str) -> Vec<u8> {
    let mut v = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to the benchmark."}
        ],
        "max_tokens": 32,
        "temperature": 0.7
    });
    if kind == "stream" {
        v["stream"] = Value::Bool(true);
    }
    serde_json::to_vec(&v).expect("a JSON value serializes")
}

/// Sends one request and reads the whole answer; `Err` says why it is not a good answer.
async fn one(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    payload: &[u8],
    stream: bool,
) -> Result<(), String> {
    let response = client
        .post(url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_vec())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("read: {e}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let complete = if stream {
        bytes.windows(6).any(|w| w == b"[DONE]")
    } else {
        bytes.windows(9).any(|w| w == b"\"choices\"")
    };
    if complete {
        Ok(())
    } else {
        Err(format!("incomplete answer ({} bytes)", bytes.len()))
    }
}

async fn worker(
    client: reqwest::Client,
    url: String,
    key: String,
    payload: Vec<u8>,
    stream: bool,
    measure_from: Instant,
    until: Instant,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    loop {
        let started = Instant::now();
        if started >= until {
            return result;
        }
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            one(&client, &url, &key, &payload, stream),
        )
        .await
        .unwrap_or_else(|_| Err("no answer within 60 s".into()));
        let elapsed = started.elapsed();
        result.sent += 1;
        if started < measure_from {
            continue;
        }
        match outcome {
            Ok(()) => result.latencies_ns.push(elapsed.as_nanos() as u64),
            Err(e) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(e);
                }
                // A proxy that refuses at once must not turn the loop into a busy spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `pid` and its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// CPU time (user + system) of the process tree of `pid` so far, in clock ticks of
/// `/proc/PID/stat` (USER_HZ, 100 a second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let mut total = 0;
    let mut any = false;
    for p in process_tree(pid) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces: fields are counted after its `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
            total += u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
            any = true;
        }
    }
    any.then_some(total)
}

/// The sum of VmHWM over the process tree of `pid`, KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let mut total = 0;
    let mut any = false;
    for p in process_tree(pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            total += kib;
            any = true;
        }
    }
    any.then_some(total)
}

async fn failing_calls(url: &Option<String>) -> Option<u64> {
    let url = url.as_ref()?;
    let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    v["failed"].as_u64()
}

/// Measures one cell.
async fn measure(
    args: &Args,
    run: usize,
    kind: &str,
    target: &Target,
    fallback: bool,
    concurrency: usize,
) -> anyhow::Result<Cell> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .tcp_nodelay(true)
        .build()?;
    let url = format!("{}/chat/completions", target.base_url);
    let payload = body(kind, &target.model);
    let stream = kind == "stream";
    let loadavg_before = loadavg();
    let cpu_before = target.pid.and_then(cpu_ticks);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_secs);
    let until = measure_from + Duration::from_secs_f64(args.duration_secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                url.clone(),
                target.key.clone(),
                payload.clone(),
                stream,
                measure_from,
                until,
            ))
        })
        .collect();
    // Counted from the end of the warm-up, as the latencies are.
    tokio::time::sleep_until(measure_from.into()).await;
    let failing_before = match fallback {
        true => failing_calls(&args.failing_stats).await,
        false => None,
    };
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut sent = 0;
    for h in handles {
        let r = h.await?;
        sent += r.sent;
        latencies.extend(r.latencies_ns);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let seconds = measure_from.elapsed().as_secs_f64();
    let cpu_after = target.pid.and_then(cpu_ticks);
    let failing_after = failing_calls(&args.failing_stats).await;
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let mean_us = if latencies.is_empty() {
        f64::NAN
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1000.0
    };
    Ok(Cell {
        run,
        kind: kind.to_string(),
        target: target.name.clone(),
        fallback,
        concurrency,
        requests,
        errors,
        first_error,
        seconds,
        rps: requests as f64 / seconds,
        mean_us,
        p50_us: percentile(&latencies, 50.0),
        p90_us: percentile(&latencies, 90.0),
        p99_us: percentile(&latencies, 99.0),
        max_us: latencies.last().map_or(f64::NAN, |&v| v as f64 / 1000.0),
        added_p50_us: None,
        added_p99_us: None,
        peak_rss_kib: target.pid.and_then(peak_rss_kib),
        cpu_us_per_request: match (cpu_before, cpu_after) {
            (Some(b), Some(a)) if sent > 0 => Some((a - b) as f64 * 10_000.0 / sent as f64),
            _ => None,
        },
        failing_upstream_calls: match (fallback, failing_before, failing_after) {
            (true, Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        },
        loadavg_before,
        loadavg_after: loadavg(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

fn ms(us: f64) -> String {
    if us.is_nan() {
        "—".into()
    } else if us.abs() < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn opt_ms(us: Option<f64>) -> String {
    us.map_or("—".into(), |v| format!("+{}", ms(v)).replace("+-", "−"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("—".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn table(out: &mut String, cells: &[Cell], missing: &[(String, String)]) {
    out.push_str(
        "| kind | target | c | requests | req/s | p50 | p99 | added p50 | added p99 | errors | CPU/request | peak RSS | load avg (before → after) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in cells {
        let name = if c.fallback {
            format!("{} (fallback)", c.target)
        } else {
            c.target.clone()
        };
        let errors = match (&c.first_error, c.failing_upstream_calls) {
            (Some(e), _) => format!("{} ({})", c.errors, e.replace('|', "/")),
            (None, Some(f)) => format!("{} ({f} calls reached the failing upstream)", c.errors),
            (None, None) => c.errors.to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} → {} |",
            c.kind,
            name,
            c.concurrency,
            c.requests,
            c.rps,
            ms(c.p50_us),
            ms(c.p99_us),
            opt_ms(c.added_p50_us),
            opt_ms(c.added_p99_us),
            errors,
            c.cpu_us_per_request
                .map_or("—".into(), |v| format!("{v:.0} µs")),
            mib(c.peak_rss_kib),
            c.loadavg_before,
            c.loadavg_after
        );
    }
    for (name, why) in missing {
        let _ = writeln!(
            out,
            "| chat | {name} (fallback) | — | — | — | — | — | {why} | — | — | — | — | — |"
        );
    }
}

/// The issue's targets, checked on the medians over runs (chat, highest concurrency).
fn verdict(out: &mut String, cells: &[Cell], targets: &[Target]) {
    let Some(&c) = cells
        .iter()
        .filter(|c| c.kind == "chat")
        .map(|c| c.concurrency)
        .collect::<Vec<_>>()
        .iter()
        .max()
    else {
        return;
    };
    let med = |target: &str, f: &dyn Fn(&Cell) -> f64| {
        median(
            cells
                .iter()
                .filter(|x| x.kind == "chat" && !x.fallback && x.target == target)
                .filter(|x| x.concurrency == c)
                .map(f)
                .collect(),
        )
    };
    let Some(jarvis) = targets.iter().find(|t| t.name == "jarvis") else {
        return;
    };
    let litellm = targets.iter().find(|t| t.name == "litellm");
    let added_p50 = med(&jarvis.name, &|x| x.added_p50_us.unwrap_or(f64::NAN));
    let added_p99 = med(&jarvis.name, &|x| x.added_p99_us.unwrap_or(f64::NAN));
    let rps = med(&jarvis.name, &|x| x.rps);
    let rss = cells
        .iter()
        .filter(|x| x.target == jarvis.name)
        .filter_map(|x| x.peak_rss_kib)
        .max();
    let errors: u64 = cells
        .iter()
        .filter(|x| x.target == jarvis.name && !x.fallback)
        .map(|x| x.errors)
        .sum();
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(
        out,
        "\nTargets of issue 14 (chat, c={c}, medians over runs):\n\n| target | Jarvis | verdict |\n|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| added p50 ≤ 100 µs | {} | {} |",
        opt_ms(Some(added_p50)),
        met(added_p50 <= 100.0)
    );
    let _ = writeln!(
        out,
        "| added p99 ≤ 1 ms | {} | {} |",
        opt_ms(Some(added_p99)),
        met(added_p99 <= 1000.0)
    );
    if let Some(l) = litellm {
        let lrps = med(&l.name, &|x| x.rps);
        let ratio = rps / lrps;
        let _ = writeln!(
            out,
            "| req/s ≥ 50× LiteLLM | {rps:.0} vs {lrps:.0} = {ratio:.1}× | {} |",
            met(ratio >= 50.0)
        );
        let lerrors: u64 = cells
            .iter()
            .filter(|x| x.target == l.name && !x.fallback)
            .map(|x| x.errors)
            .sum();
        let _ = writeln!(
            out,
            "| no errors where LiteLLM has none | {errors} (LiteLLM {lerrors}) | {} |",
            met(lerrors > 0 || errors == 0)
        );
    }
    let _ = writeln!(
        out,
        "| peak RSS < 60 MiB | {} | {} |",
        mib(rss),
        met(rss.is_some_and(|k| k < 60 * 1024))
    );
}

async fn run_all(args: Args) -> anyhow::Result<()> {
    let targets: Vec<Target> = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<anyhow::Result<_>>()?;
    let fallbacks: Vec<Target> = args
        .fallbacks
        .iter()
        .map(|t| Target::parse(t))
        .collect::<anyhow::Result<_>>()?;
    let missing: Vec<(String, String)> = args
        .fallback_missing
        .iter()
        .map(|m| {
            let (n, w) = m.split_once('|').unwrap_or((m, ""));
            (n.to_string(), w.to_string())
        })
        .collect();
    let mut jsonl = match &args.jsonl {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let mut all: Vec<Cell> = Vec::new();
    let mut report = String::new();
    for run in 1..=args.runs {
        let mut cells: Vec<Cell> = Vec::new();
        for kind in &args.kinds {
            for &c in &args.concurrency {
                let mut baseline: Option<(f64, f64)> = None;
                let group: Vec<(&Target, bool)> = targets
                    .iter()
                    .map(|t| (t, false))
                    .chain(
                        fallbacks
                            .iter()
                            .filter(|_| kind == "chat")
                            .map(|t| (t, true)),
                    )
                    .collect();
                for (i, (target, fallback)) in group.into_iter().enumerate() {
                    let mut cell = measure(&args, run, kind, target, fallback, c).await?;
                    if i == 0 {
                        baseline = Some((cell.p50_us, cell.p99_us));
                    } else if let Some((b50, b99)) = baseline {
                        cell.added_p50_us = Some(cell.p50_us - b50);
                        cell.added_p99_us = Some(cell.p99_us - b99);
                    }
                    eprintln!(
                        "run {run} {kind} c={c} {}{}: {} req, {:.0} req/s, p50 {}, p99 {}, added p50 {}, p99 {}, errors {}, cpu/req {}, rss {}, load {}",
                        cell.target,
                        if fallback { " (fallback)" } else { "" },
                        cell.requests,
                        cell.rps,
                        ms(cell.p50_us),
                        ms(cell.p99_us),
                        opt_ms(cell.added_p50_us),
                        opt_ms(cell.added_p99_us),
                        cell.errors,
                        cell.cpu_us_per_request
                            .map_or("—".into(), |v| format!("{v:.0} µs")),
                        mib(cell.peak_rss_kib),
                        cell.loadavg_after
                    );
                    if let Some(f) = jsonl.as_mut() {
                        writeln!(f, "{}", serde_json::to_string(&cell)?)?;
                    }
                    cells.push(cell);
                }
            }
        }
        let _ = writeln!(report, "\n### Run {run}\n");
        table(&mut report, &cells, &missing);
        all.extend(cells);
    }
    verdict(&mut report, &all, &targets);
    print!("{report}");
    if let Some(p) = &args.markdown {
        let mut header = format!(
            "# AI gateway benchmark\n\n{} run(s), {} s measured per cell after {} s warm-up, \
             closed loop; added latency is over the direct calls to the mock in the same run; \
             peak RSS (VmHWM) and CPU/request are those of the target's process tree (for `direct`: the mock's). Machine: {} cores.\n",
            args.runs,
            args.duration_secs,
            args.warmup_secs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        header.push_str(&report);
        std::fs::write(p, header)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run_all(args))
}
