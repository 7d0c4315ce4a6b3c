//! The cascade benchmark: callers → service A → service B, with B failing, run with and
//! without a Jarvis circuit breaker in front of B, side by side under the same load.
//!
//! Everything is a real HTTP service on 127.0.0.1 in this one process:
//!
//! * **B** is a raw TCP/HTTP server whose behaviour the schedule switches: `up` (answers in a
//!   few ms), `dies` (listener closed and connections dropped: connection refused), `hangs`
//!   (accepts, reads the request, never answers), `slows` (answers after a delay).
//! * **A** is an axum service with a bounded worker pool (a semaphore: a request waits for a
//!   worker at most `--queue-ms`, else 503 `busy`), like a thread-per-request server. Each
//!   request runs to completion on its worker even if the caller gave up (as a thread
//!   would). `GET /needs-b` calls B with a timeout of `--b-timeout-ms`; `GET /local` does
//!   not need B (a few ms of work). Variant `without` calls B directly; variant `with` calls
//!   B through a `jarvis_breaker::Breaker` built exactly as the Jarvis server builds its
//!   breakers (consecutive failures, open period, default classifier: timeouts, connection
//!   errors and 5xx are failures), and answers 503 at once when the breaker rejects.
//! * **Callers** send an open-loop stream (fixed rate, the same request sequence to both
//!   variants at the same instants) with a timeout of `--caller-timeout-ms`.
//!
//! Per failure mode a fresh pair of A and B is started for each variant: B is up for
//! `--before-s`, fails for `--fail-s`, is up again for `--after-s`.
//!
//! A *cascading failure* is a failed caller request that did not need B: B's failure spread to
//! work that has nothing to do with it (A's workers were all waiting on B). Failures of
//! requests that needed B and were sent while B was failing are B's own. The third kind are
//! *recovery failures*: requests that needed B, sent while B was up, that failed anyway — A's
//! backlog after B came back (without a breaker), or the breaker still open after B came back
//! (with one). The report gives both "cascading" and "beyond B" (cascading + recovery).
//!
//! ```sh
//! cargo run --release -p jarvis-breaker --example cascade -- --out bench/out/cascade.md
//! ```
//!
//! `--help` lists the options. `bench/cascade/run.sh` is the one command.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use jarvis_breaker::{Breaker, CallError, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    rate: u32,
    need_b_pct: u32,
    workers: usize,
    queue_ms: u64,
    b_timeout_ms: u64,
    caller_timeout_ms: u64,
    b_latency_ms: u64,
    local_ms: u64,
    slow_ms: u64,
    slow_below_ms: u64,
    before_s: u64,
    fail_s: u64,
    after_s: u64,
    threshold: u32,
    open_ms: u64,
    modes: Vec<Mode>,
    out: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            rate: 100,
            need_b_pct: 70,
            workers: 16,
            queue_ms: 1000,
            b_timeout_ms: 2000,
            caller_timeout_ms: 3000,
            b_latency_ms: 5,
            local_ms: 5,
            slow_ms: 3000,
            slow_below_ms: 1500,
            before_s: 5,
            fail_s: 20,
            after_s: 10,
            threshold: 5,
            open_ms: 5000,
            modes: vec![
                Mode::Dies,
                Mode::Hangs,
                Mode::Slows,
                Mode::SlowsBelowTimeout,
            ],
            out: None,
        }
    }
}

const HELP: &str = "cascade [options]
  --rate N              caller requests per second, to each variant (100)
  --need-b-pct N        share of requests that need B, in percent (70)
  --workers N           A's worker pool (16)
  --queue-ms N          how long a request waits for a worker of A before 503 busy (1000)
  --b-timeout-ms N      A's timeout on its calls to B (2000)
  --caller-timeout-ms N the callers' timeout (3000)
  --b-latency-ms N      B's answer time while up (5)
  --local-ms N          A's own work per request (5)
  --slow-ms N           B's answer time in mode `slows` (3000)
  --slow-below-ms N     B's answer time in mode `slows-below-timeout` (1500)
  --before-s N --fail-s N --after-s N   the schedule of each mode (5, 20, 10)
  --threshold N         consecutive failures that open the breaker (5)
  --open-ms N           how long the breaker stays open before a trial (5000)
  --modes LIST          dies,hangs,slows,slows-below-timeout
  --out FILE            also write the Markdown report to FILE";

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{value}` is not a whole number"))
        };
        match flag.as_str() {
            "--rate" => o.rate = num()?.clamp(1, 10_000) as u32,
            "--need-b-pct" => o.need_b_pct = num()?.min(100) as u32,
            "--workers" => o.workers = num()?.max(1) as usize,
            "--queue-ms" => o.queue_ms = num()?,
            "--b-timeout-ms" => o.b_timeout_ms = num()?.max(1),
            "--caller-timeout-ms" => o.caller_timeout_ms = num()?.max(1),
            "--b-latency-ms" => o.b_latency_ms = num()?,
            "--local-ms" => o.local_ms = num()?,
            "--slow-ms" => o.slow_ms = num()?,
            "--slow-below-ms" => o.slow_below_ms = num()?,
            "--before-s" => o.before_s = num()?,
            "--fail-s" => o.fail_s = num()?.max(1),
            "--after-s" => o.after_s = num()?,
            "--threshold" => o.threshold = num()?.max(1) as u32,
            "--open-ms" => o.open_ms = num()?.max(1),
            "--modes" => {
                o.modes = value
                    .split(',')
                    .map(|m| Mode::parse(m.trim()).ok_or_else(|| format!("unknown mode `{m}`")))
                    .collect::<Result<_, _>>()?
            }
            "--out" => o.out = Some(value),
            _ => return Err(format!("unknown option {flag}\n{HELP}")),
        }
    }
    Ok(o)
}

/// How B fails during the failure window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Dies,
    Hangs,
    Slows,
    SlowsBelowTimeout,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "dies" => Mode::Dies,
            "hangs" => Mode::Hangs,
            "slows" => Mode::Slows,
            "slows-below-timeout" => Mode::SlowsBelowTimeout,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Dies => "dies",
            Mode::Hangs => "hangs",
            Mode::Slows => "slows",
            Mode::SlowsBelowTimeout => "slows-below-timeout",
        }
    }

    fn describe(self, o: &Opts) -> String {
        match self {
            Mode::Dies => "B's process is gone: connection refused".into(),
            Mode::Hangs => "B accepts and never answers".into(),
            Mode::Slows => format!(
                "B answers after {} ms (A gives up after {} ms)",
                o.slow_ms, o.b_timeout_ms
            ),
            Mode::SlowsBelowTimeout => format!(
                "B answers after {} ms, below A's timeout of {} ms",
                o.slow_below_ms, o.b_timeout_ms
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Service B

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BState {
    Up,
    Down,
    Hang,
    Slow(u64),
}

/// B: a minimal HTTP/1.1 server (GET, keep-alive) whose behaviour can be switched.
struct ServiceB {
    addr: SocketAddr,
    state: Mutex<BState>,
    latency: Duration,
    /// Bumped when B dies: every open connection closes.
    epoch: watch::Sender<u64>,
    accept: Mutex<Option<JoinHandle<()>>>,
    requests: AtomicU64,
}

impl ServiceB {
    async fn start(latency: Duration) -> Arc<ServiceB> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind B");
        let b = Arc::new(ServiceB {
            addr: listener.local_addr().expect("B address"),
            state: Mutex::new(BState::Up),
            latency,
            epoch: watch::channel(0).0,
            accept: Mutex::new(None),
            requests: AtomicU64::new(0),
        });
        b.spawn_accept(listener);
        b
    }

    fn spawn_accept(self: &Arc<Self>, listener: TcpListener) {
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Arc::clone(&me);
                let epoch = me.epoch.subscribe();
                tokio::spawn(async move { conn.serve(stream, epoch).await });
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    fn state(&self) -> BState {
        *self.state.lock().unwrap()
    }

    async fn set(self: &Arc<Self>, new: BState) {
        let old = std::mem::replace(&mut *self.state.lock().unwrap(), new);
        if new == BState::Down && old != BState::Down {
            // The process is gone: no listener (connect is refused) and no connection.
            let task = self.accept.lock().unwrap().take();
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
            self.epoch.send_modify(|e| *e += 1);
        } else if old == BState::Down && new != BState::Down {
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            self.spawn_accept(listener);
        } else if new != BState::Hang && old == BState::Hang {
            // A hung process that comes back does not answer the requests it swallowed.
            self.epoch.send_modify(|e| *e += 1);
        }
    }

    async fn serve(&self, mut stream: TcpStream, mut epoch: watch::Receiver<u64>) {
        let mut buf = Vec::with_capacity(1024);
        loop {
            tokio::select! {
                _ = epoch.changed() => return,
                got = read_head(&mut stream, &mut buf) => if !got { return },
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let delay = match self.state() {
                BState::Up => self.latency,
                BState::Slow(ms) => Duration::from_millis(ms),
                BState::Down => return,
                BState::Hang => {
                    // Hold the connection until the caller closes it; never answer.
                    let mut scratch = [0u8; 1024];
                    tokio::select! {
                        _ = epoch.changed() => {}
                        _ = async { while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {} } => {}
                    }
                    return;
                }
            };
            tokio::select! {
                _ = epoch.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let answer =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
    }
}

/// Reads one request head (the benchmark's requests have no body) into `buf` and drops it.
/// False when the connection closed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            return true;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Service A

/// A's gauges and counters, sampled by the benchmark.
#[derive(Default)]
struct AStats {
    busy_workers: AtomicI64,
    inflight_b: AtomicI64,
    calls_to_b: AtomicU64,
    calls_to_b_while_failing: AtomicU64,
    rejected: AtomicU64,
}

struct ServiceA {
    workers: Semaphore,
    queue: Duration,
    local_work: Duration,
    client: reqwest::Client,
    b_url: String,
    breaker: Option<Arc<Breaker>>,
    /// Set by the schedule while B is failing (only to count wasted calls).
    b_failing: Arc<AtomicBool>,
    stats: AStats,
}

/// Increments a gauge for as long as it lives.
struct Held<'a>(&'a AtomicI64);

impl<'a> Held<'a> {
    fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Held(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type Answer = (StatusCode, &'static str);

impl ServiceA {
    async fn start(
        o: &Opts,
        b: SocketAddr,
        breaker: Option<Arc<Breaker>>,
        b_failing: Arc<AtomicBool>,
    ) -> (Arc<ServiceA>, SocketAddr) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(o.b_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let a = Arc::new(ServiceA {
            workers: Semaphore::new(o.workers),
            queue: Duration::from_millis(o.queue_ms),
            local_work: Duration::from_millis(o.local_ms),
            client,
            b_url: format!("http://{b}/work"),
            breaker,
            b_failing,
            stats: AStats::default(),
        });
        let app = Router::new()
            .route("/local", get(local))
            .route("/needs-b", get(needs_b))
            .with_state(Arc::clone(&a));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind A");
        let addr = listener.local_addr().expect("A address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (a, addr)
    }

    /// Runs one request on a worker of the pool, to completion even if the caller goes away
    /// (as a thread of a thread-per-request server would).
    async fn handle(self: Arc<Self>, needs_b: bool) -> Answer {
        tokio::spawn(async move {
            let Ok(Ok(_worker)) = tokio::time::timeout(self.queue, self.workers.acquire()).await
            else {
                return (StatusCode::SERVICE_UNAVAILABLE, "busy: no free worker");
            };
            let _busy = Held::new(&self.stats.busy_workers);
            tokio::time::sleep(self.local_work).await;
            if needs_b {
                self.use_b().await
            } else {
                (StatusCode::OK, "ok")
            }
        })
        .await
        .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, "worker panicked"))
    }

    async fn call_b(&self) -> Result<u16, reqwest::Error> {
        self.stats.calls_to_b.fetch_add(1, Ordering::Relaxed);
        if self.b_failing.load(Ordering::Relaxed) {
            self.stats
                .calls_to_b_while_failing
                .fetch_add(1, Ordering::Relaxed);
        }
        let _conn = Held::new(&self.stats.inflight_b);
        let resp = self.client.get(&self.b_url).send().await?;
        let status = resp.status().as_u16();
        resp.bytes().await?;
        Ok(status)
    }

    async fn use_b(&self) -> Answer {
        let result = match &self.breaker {
            None => self.call_b().await.map_err(CallError::Inner),
            Some(breaker) => {
                breaker
                    .call_with(self.call_b(), |r| match r {
                        Ok(status) => Outcome::Status(*status),
                        Err(e) if e.is_timeout() => Outcome::Timeout,
                        Err(e) if e.is_connect() => Outcome::Connection,
                        Err(_) => Outcome::Error,
                    })
                    .await
            }
        };
        match result {
            Ok(status) if (200..300).contains(&status) => (StatusCode::OK, "ok"),
            Ok(_) => (StatusCode::BAD_GATEWAY, "B answered an error"),
            Err(CallError::Rejected(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "B unavailable: circuit open",
                )
            }
            Err(CallError::Inner(e)) if e.is_timeout() => {
                (StatusCode::GATEWAY_TIMEOUT, "B timed out")
            }
            Err(_) => (StatusCode::BAD_GATEWAY, "B unreachable"),
        }
    }
}

async fn local(AxState(a): AxState<Arc<ServiceA>>) -> Answer {
    a.handle(false).await
}

async fn needs_b(AxState(a): AxState<Arc<ServiceA>>) -> Answer {
    a.handle(true).await
}

// ---------------------------------------------------------------------------------------------
// Callers and measurement

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    NeedsB,
}

/// How a caller request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Ok,
    /// An error answer in under 100 ms.
    FastError,
    /// An error answer that took 100 ms or more.
    SlowError,
    /// No answer within the caller's timeout.
    Timeout,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When the request was sent, ms since the start of the mode.
    at_ms: u64,
    kind: Kind,
    result: Got,
    latency_ms: f64,
}

const FAST_MS: f64 = 100.0;

async fn one_call(client: reqwest::Client, url: String, at_ms: u64, kind: Kind) -> Sample {
    let t0 = Instant::now();
    let res = client.get(&url).send().await;
    let ok = match res {
        Ok(r) => {
            let good = r.status().is_success();
            match r.bytes().await {
                Ok(_) => Ok(good),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let result = match ok {
        Ok(true) => Got::Ok,
        Err(e) if e.is_timeout() => Got::Timeout,
        _ if latency_ms < FAST_MS => Got::FastError,
        _ => Got::SlowError,
    };
    Sample {
        at_ms,
        kind,
        result,
        latency_ms,
    }
}

/// One variant's figures for one mode.
#[derive(Default, Debug, Clone)]
struct Figures {
    requests: usize,
    failed: usize,
    failed_local: usize,
    failed_b_outside: usize,
    b_caused: usize,
    fast: usize,
    slow: usize,
    timeout: usize,
    p50_window: f64,
    p99_window: f64,
    p99_local_window: f64,
    max_inflight_b: i64,
    mean_inflight_b_window: f64,
    max_busy: i64,
    calls_to_b: u64,
    calls_while_failing: u64,
    b_received: u64,
    rejected: u64,
    /// Max in-flight calls to B per second of the mode.
    inflight_series: Vec<i64>,
}

impl Figures {
    /// Failed requests that did not need B.
    fn cascading(&self) -> usize {
        self.failed_local
    }

    /// Every failure B's own failure does not explain: cascading plus recovery failures.
    fn beyond_b(&self) -> usize {
        self.failed_local + self.failed_b_outside
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

struct Variant {
    a: Arc<ServiceA>,
    a_addr: SocketAddr,
    b: Arc<ServiceB>,
    samples: Arc<Mutex<Vec<Sample>>>,
    series: Arc<Mutex<Vec<i64>>>,
    max_inflight: Arc<AtomicI64>,
    max_busy: Arc<AtomicI64>,
    window_inflight: Arc<Mutex<(f64, u64)>>,
}

async fn run_mode(mode: Mode, o: &Opts) -> [Figures; 2] {
    let fail_state = match mode {
        Mode::Dies => BState::Down,
        Mode::Hangs => BState::Hang,
        Mode::Slows => BState::Slow(o.slow_ms),
        Mode::SlowsBelowTimeout => BState::Slow(o.slow_below_ms),
    };
    let b_failing = Arc::new(AtomicBool::new(false));
    let mut variants = Vec::new();
    for with_breaker in [false, true] {
        let b = ServiceB::start(Duration::from_millis(o.b_latency_ms)).await;
        let breaker = with_breaker.then(|| {
            // The Jarvis server builds every breaker like this (crates/jarvis/src/breakers):
            // consecutive failures, the open period, the default classifier; one trial at a
            // time in HALF_OPEN, two successes close it.
            Arc::new(
                Breaker::builder("service-b")
                    .failure_threshold(o.threshold)
                    .open_duration(Duration::from_millis(o.open_ms))
                    .build()
                    .expect("breaker settings"),
            )
        });
        let (a, a_addr) = ServiceA::start(o, b.addr, breaker, Arc::clone(&b_failing)).await;
        variants.push(Variant {
            a,
            a_addr,
            b,
            samples: Arc::default(),
            series: Arc::default(),
            max_inflight: Arc::default(),
            max_busy: Arc::default(),
            window_inflight: Arc::default(),
        });
    }
    let variants = Arc::new(variants);
    let caller = reqwest::Client::builder()
        .timeout(Duration::from_millis(o.caller_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("caller client");

    let start = Instant::now();
    let fail_from = Duration::from_secs(o.before_s);
    let fail_to = fail_from + Duration::from_secs(o.fail_s);
    let load_end = fail_to + Duration::from_secs(o.after_s);
    let window = fail_from.as_millis() as u64..fail_to.as_millis() as u64;

    // The failure schedule, the same instants for both variants.
    let schedule = {
        let variants = Arc::clone(&variants);
        let b_failing = Arc::clone(&b_failing);
        tokio::spawn(async move {
            tokio::time::sleep_until((start + fail_from).into()).await;
            b_failing.store(true, Ordering::Relaxed);
            for v in variants.iter() {
                v.b.set(fail_state).await;
            }
            tokio::time::sleep_until((start + fail_to).into()).await;
            for v in variants.iter() {
                v.b.set(BState::Up).await;
            }
            b_failing.store(false, Ordering::Relaxed);
        })
    };

    // Gauges sampled every 10 ms.
    let sampler = {
        let variants = Arc::clone(&variants);
        let window = window.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                let now_ms = start.elapsed().as_millis() as u64;
                let second = (now_ms / 1000) as usize;
                for v in variants.iter() {
                    let inflight = v.a.stats.inflight_b.load(Ordering::Relaxed);
                    let busy = v.a.stats.busy_workers.load(Ordering::Relaxed);
                    v.max_inflight.fetch_max(inflight, Ordering::Relaxed);
                    v.max_busy.fetch_max(busy, Ordering::Relaxed);
                    let mut s = v.series.lock().unwrap();
                    if s.len() <= second {
                        s.resize(second + 1, 0);
                    }
                    s[second] = s[second].max(inflight);
                    if window.contains(&now_ms) {
                        let mut w = v.window_inflight.lock().unwrap();
                        w.0 += inflight as f64;
                        w.1 += 1;
                    }
                }
            }
        })
    };

    // Open-loop load: request i at start + i / rate, the same kind for both variants.
    let interval = Duration::from_secs_f64(1.0 / o.rate as f64);
    let total = (load_end.as_secs_f64() * o.rate as f64) as u64;
    let mut calls = Vec::with_capacity(total as usize * 2);
    for i in 0..total {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at.into()).await;
        // Spread the kinds evenly: in every 100 consecutive requests exactly need_b_pct need B.
        let kind = if (i * 37 % 100) < o.need_b_pct as u64 {
            Kind::NeedsB
        } else {
            Kind::Local
        };
        let at_ms = at.duration_since(start).as_millis() as u64;
        for v in variants.iter() {
            let path = match kind {
                Kind::Local => "local",
                Kind::NeedsB => "needs-b",
            };
            let url = format!("http://{}/{path}", v.a_addr);
            let client = caller.clone();
            let samples = Arc::clone(&v.samples);
            calls.push(tokio::spawn(async move {
                let s = one_call(client, url, at_ms, kind).await;
                samples.lock().unwrap().push(s);
            }));
        }
    }
    for c in calls {
        let _ = c.await;
    }
    let _ = schedule.await;
    sampler.abort();

    let mut out: [Figures; 2] = Default::default();
    for (i, v) in variants.iter().enumerate() {
        let samples = v.samples.lock().unwrap().clone();
        let mut f = Figures {
            requests: samples.len(),
            ..Figures::default()
        };
        let mut lat_window = Vec::new();
        let mut lat_local_window = Vec::new();
        for s in &samples {
            let in_window = window.contains(&s.at_ms);
            if in_window {
                lat_window.push(s.latency_ms);
                if s.kind == Kind::Local {
                    lat_local_window.push(s.latency_ms);
                }
            }
            if s.result == Got::Ok {
                continue;
            }
            f.failed += 1;
            match s.result {
                Got::FastError => f.fast += 1,
                Got::SlowError => f.slow += 1,
                Got::Timeout => f.timeout += 1,
                Got::Ok => {}
            }
            match (s.kind, in_window) {
                (Kind::Local, _) => f.failed_local += 1,
                (Kind::NeedsB, false) => f.failed_b_outside += 1,
                (Kind::NeedsB, true) => f.b_caused += 1,
            }
        }
        lat_window.sort_by(f64::total_cmp);
        lat_local_window.sort_by(f64::total_cmp);
        f.p50_window = percentile(&lat_window, 50.0);
        f.p99_window = percentile(&lat_window, 99.0);
        f.p99_local_window = percentile(&lat_local_window, 99.0);
        f.max_inflight_b = v.max_inflight.load(Ordering::Relaxed);
        f.max_busy = v.max_busy.load(Ordering::Relaxed);
        let w = *v.window_inflight.lock().unwrap();
        f.mean_inflight_b_window = if w.1 > 0 { w.0 / w.1 as f64 } else { 0.0 };
        f.calls_to_b = v.a.stats.calls_to_b.load(Ordering::Relaxed);
        f.calls_while_failing = v.a.stats.calls_to_b_while_failing.load(Ordering::Relaxed);
        f.b_received = v.b.requests.load(Ordering::Relaxed);
        f.rejected = v.a.stats.rejected.load(Ordering::Relaxed);
        f.inflight_series = v.series.lock().unwrap().clone();
        out[i] = f;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Report

fn reduction(without: usize, with: usize) -> String {
    if without == 0 {
        return if with == 0 {
            "— (none without)".into()
        } else {
            format!("+{with} (none without)")
        };
    }
    let r = 100.0 * (without as f64 - with as f64) / without as f64;
    format!("{r:.1} %")
}

fn report(o: &Opts, results: &[(Mode, [Figures; 2])], elapsed: Duration) -> String {
    let mut md = String::new();
    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    let _ = writeln!(md, "# Cascade benchmark, {}\n", now.trim());
    let _ = writeln!(
        md,
        "Callers → A → B on 127.0.0.1, one process; {} requests/s to each variant ({} % need B), \
         open loop, caller timeout {} ms. A: {} workers, a request waits at most {} ms for one \
         (else 503), {} ms of own work, timeout {} ms on calls to B. B answers in {} ms while up. \
         Schedule per mode: B up {} s, failing {} s, up {} s. Breaker (variant `with`): opens \
         after {} consecutive failures, open {} ms, one trial at a time, closes after 2 \
         successful trials. Run took {:.0} s.\n",
        o.rate,
        o.need_b_pct,
        o.caller_timeout_ms,
        o.workers,
        o.queue_ms,
        o.local_ms,
        o.b_timeout_ms,
        o.b_latency_ms,
        o.before_s,
        o.fail_s,
        o.after_s,
        o.threshold,
        o.open_ms,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Cascading failure: a failed request that did not need B (B's failure spread to A's other \
         work). B-caused: a failed request that needed B, sent while B was failing. Recovery \
         failure: a failed request that needed B, sent while B was up (A's backlog, or a breaker \
         still open after B came back). Beyond B = cascading + recovery. Fast error: an error \
         answer in < {FAST_MS} ms; slow error: an error answer after that; timeout: no answer \
         within the caller's timeout. Latency: requests sent while B was failing (a timeout \
         counts as the caller's timeout). Wasted calls: calls A made to B while B was failing.\n"
    );
    let _ = writeln!(
        md,
        "| mode | variant | requests | failed | B-caused | cascading | recovery | fast / slow error / timeout | p50 ms | p99 ms | p99 no-B ms | max calls A→B in flight (mean while failing) | max busy workers | wasted calls to B | rejected by breaker |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (mode, figs) in results {
        for (f, name) in figs.iter().zip(["without", "with Jarvis"]) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | **{}** | {} | {} / {} / {} | {:.1} | {:.1} | {:.1} | {} ({:.1}) | {} / {} | {} | {} |",
                mode.name(),
                name,
                f.requests,
                f.failed,
                f.b_caused,
                f.cascading(),
                f.failed_b_outside,
                f.fast,
                f.slow,
                f.timeout,
                f.p50_window,
                f.p99_window,
                f.p99_local_window,
                f.max_inflight_b,
                f.mean_inflight_b_window,
                f.max_busy,
                o.workers,
                f.calls_while_failing,
                f.rejected,
            );
        }
    }
    let _ = writeln!(md, "\n## Without → with Jarvis\n");
    let _ = writeln!(md, "| mode | B's failure | cascading failures | fewer | beyond B (cascading + recovery) | fewer | all failures | wasted calls to B |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let mut sum = [[0usize; 3]; 2];
    for (mode, [without, with]) in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} → {} | **{}** | {} → {} | {} | {} → {} | {} → {} |",
            mode.name(),
            mode.describe(o),
            without.cascading(),
            with.cascading(),
            reduction(without.cascading(), with.cascading()),
            without.beyond_b(),
            with.beyond_b(),
            reduction(without.beyond_b(), with.beyond_b()),
            without.failed,
            with.failed,
            without.calls_while_failing,
            with.calls_while_failing,
        );
        if *mode != Mode::SlowsBelowTimeout {
            for (i, f) in [without, with].into_iter().enumerate() {
                sum[i][0] += f.cascading();
                sum[i][1] += f.beyond_b();
                sum[i][2] += f.failed;
            }
        }
    }
    let [w, j] = sum;
    let _ = writeln!(
        md,
        "| dies + hangs + slows | | {} → {} | **{}** | {} → {} | {} | {} → {} | |",
        w[0],
        j[0],
        reduction(w[0], j[0]),
        w[1],
        j[1],
        reduction(w[1], j[1]),
        w[2],
        j[2],
    );
    let _ = writeln!(md, "\n## Calls from A to B in flight, max per second\n");
    let _ = writeln!(
        md,
        "B fails from second {} to second {}.\n",
        o.before_s,
        o.before_s + o.fail_s
    );
    for (mode, figs) in results {
        for (f, name) in figs.iter().zip(["without", "with Jarvis"]) {
            let series: Vec<String> = f.inflight_series.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(md, "- {} / {}: {}", mode.name(), name, series.join(" "));
        }
    }
    md
}

#[tokio::main]
async fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let mut results: Vec<(Mode, [Figures; 2])> = Vec::new();
    for &mode in &o.modes {
        eprintln!(
            "cascade: mode {} ({} s)…",
            mode.name(),
            o.before_s + o.fail_s + o.after_s
        );
        let figs = run_mode(mode, &o).await;
        eprintln!(
            "cascade: mode {}: cascading failures without {} / with {}",
            mode.name(),
            figs[0].cascading(),
            figs[1].cascading()
        );
        results.push((mode, figs));
    }
    let md = report(&o, &results, started.elapsed());
    print!("{md}");
    if let Some(path) = &o.out {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, &md).expect("write the report");
        eprintln!("cascade: report written to {path}");
    }
}
