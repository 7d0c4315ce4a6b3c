//! Per-call cost of a breaker, side by side with failsafe 1.3, recloser 1.4 and no breaker.
//!
//! Run: `cargo bench -p jarvis-breaker --bench breaker`. The method and the numbers are in
//! `bench/breaker/README.md`. At the end a summary table with the ratios is printed
//! (read back from criterion's own estimates of this run).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use failsafe::CircuitBreaker as _;
use jarvis_breaker::{Breaker, FailureRate, ManualClock, Window, MAX_TRIALS};

type Op = fn() -> Result<u64, &'static str>;

#[inline(always)]
fn op() -> Result<u64, &'static str> {
    Ok(black_box(1))
}

fn failsafe_consecutive() -> impl failsafe::CircuitBreaker + Clone + Send + Sync + 'static {
    let backoff = failsafe::backoff::constant(Duration::from_secs(60));
    let policy = failsafe::failure_policy::consecutive_failures(5, backoff);
    failsafe::Config::new().failure_policy(policy).build()
}

fn failsafe_default() -> impl failsafe::CircuitBreaker + Clone + Send + Sync + 'static {
    failsafe::Config::new().build()
}

fn jarvis_rate() -> Breaker {
    Breaker::builder("rate")
        .failure_rate(FailureRate {
            window: Window::Count(100),
            minimum_calls: 100,
            threshold: 0.5,
            slow_call: None,
        })
        .build()
        .expect("valid")
}

/// Runs `body` `iters` times on each of 2 threads started together; returns the longer
/// of the two threads' times, so criterion reports the cost of one call per thread
/// while the other thread hammers the same breaker.
fn two_threads<S: Sync>(shared: &S, iters: u64, body: fn(&S)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        body(shared);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(40);
}

fn closed_single(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_1_thread");
    configure(&mut g);
    g.bench_function("no_breaker", |b| b.iter(|| black_box((op as Op)())));
    let jarvis = Breaker::new("bench");
    g.bench_function("jarvis", |b| {
        b.iter(|| black_box(black_box(&jarvis).call_sync(op)))
    });
    g.bench_function("jarvis_permit", |b| {
        b.iter(|| {
            let permit = black_box(&jarvis).try_acquire();
            if let Ok(permit) = permit {
                let r = op();
                permit.success();
                let _ = black_box(r);
            }
        })
    });
    let rate = jarvis_rate();
    g.bench_function("jarvis_failure_rate_policy", |b| {
        b.iter(|| black_box(black_box(&rate).call_sync(op)))
    });
    let fs = failsafe_consecutive();
    g.bench_function("failsafe_consecutive", |b| {
        b.iter(|| black_box(black_box(&fs).call(op)))
    });
    let fsd = failsafe_default();
    g.bench_function("failsafe_default", |b| {
        b.iter(|| black_box(black_box(&fsd).call(op)))
    });
    let rc = recloser::Recloser::default();
    g.bench_function("recloser", |b| {
        b.iter(|| black_box(black_box(&rc).call(op)))
    });
    g.finish();
}

fn closed_two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_2_threads");
    configure(&mut g);
    g.bench_function("no_breaker", |b| {
        b.iter_custom(|iters| {
            two_threads(&(), iters, |_| {
                let _ = black_box((op as Op)());
            })
        })
    });
    let jarvis = Breaker::new("bench");
    g.bench_function("jarvis", |b| {
        b.iter_custom(|iters| {
            two_threads(&jarvis, iters, |br| {
                let _ = black_box(black_box(br).call_sync(op));
            })
        })
    });
    let rate = jarvis_rate();
    g.bench_function("jarvis_failure_rate_policy", |b| {
        b.iter_custom(|iters| {
            two_threads(&rate, iters, |br| {
                let _ = black_box(black_box(br).call_sync(op));
            })
        })
    });
    let fs = failsafe_consecutive();
    g.bench_function("failsafe_consecutive", |b| {
        b.iter_custom(|iters| {
            two_threads(&fs, iters, |br| {
                let _ = black_box(black_box(br).call(op));
            })
        })
    });
    let fsd = failsafe_default();
    g.bench_function("failsafe_default", |b| {
        b.iter_custom(|iters| {
            two_threads(&fsd, iters, |br| {
                let _ = black_box(black_box(br).call(op));
            })
        })
    });
    let rc = recloser::Recloser::default();
    g.bench_function("recloser", |b| {
        b.iter_custom(|iters| {
            two_threads(&rc, iters, |br| {
                let _ = black_box(black_box(br).call(op));
            })
        })
    });
    g.finish();
}

fn open_rejected(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_rejected");
    configure(&mut g);
    let jarvis = Breaker::new("bench");
    jarvis.force_open();
    let jarvis_timed = Breaker::new("bench-timed");
    for _ in 0..5 {
        let _ = jarvis_timed.call_sync(|| Err::<u64, _>("down"));
    }
    assert!(jarvis_timed.try_acquire().is_err());
    g.bench_function("jarvis_open_period", |b| {
        b.iter(|| black_box(black_box(&jarvis_timed).call_sync(op)))
    });
    g.bench_function("jarvis_forced_open", |b| {
        b.iter(|| black_box(black_box(&jarvis).call_sync(op)))
    });
    let fs = failsafe_consecutive();
    for _ in 0..5 {
        let _ = fs.call(|| Err::<u64, _>("down"));
    }
    assert!(!fs.is_call_permitted());
    g.bench_function("failsafe_consecutive", |b| {
        b.iter(|| black_box(black_box(&fs).call(op)))
    });
    let rc = recloser::Recloser::custom().closed_len(1).build();
    let _ = rc.call(|| Err::<u64, _>("down"));
    let _ = rc.call(|| Err::<u64, _>("down"));
    assert!(rc.call(op).is_err());
    g.bench_function("recloser", |b| {
        b.iter(|| black_box(black_box(&rc).call(op)))
    });
    g.finish();
}

fn half_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("half_open");
    configure(&mut g);
    // A half-open breaker with free trial slots: the admission is one CAS, releasing the
    // slot (`ignore`) another.
    let clock = Arc::new(ManualClock::new());
    let wide = Breaker::builder("half-open")
        .half_open_max_trials(MAX_TRIALS)
        .successes_to_close(u32::MAX)
        .clock(clock.clone())
        .build()
        .expect("valid");
    for _ in 0..5 {
        let _ = wide.call_sync(|| Err::<u64, _>("down"));
    }
    clock.advance(Duration::from_secs(61));
    wide.try_acquire().expect("trial").ignore();
    g.bench_function("jarvis_trial_admit_and_release", |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&wide).try_acquire() {
                p.ignore();
            }
        })
    });
    // A half-open breaker whose single trial slot is taken: the rejection.
    let clock2 = Arc::new(ManualClock::new());
    let full = Breaker::builder("half-open-full")
        .clock(clock2.clone())
        .build()
        .expect("valid");
    for _ in 0..5 {
        let _ = full.call_sync(|| Err::<u64, _>("down"));
    }
    clock2.advance(Duration::from_secs(61));
    let held = full.try_acquire().expect("trial");
    g.bench_function("jarvis_trial_slot_taken_rejected", |b| {
        b.iter(|| black_box(black_box(&full).try_acquire().map(|p| p.ignore())))
    });
    drop(held);
    // The OPEN -> HALF_OPEN transition itself, taken by the first call after the period.
    g.bench_function("jarvis_open_to_half_open_first_trial", |b| {
        b.iter_batched_ref(
            || {
                let clock = Arc::new(ManualClock::new());
                let br = Breaker::builder("t")
                    .clock(clock.clone())
                    .build()
                    .expect("valid");
                br.force_open();
                br.force_closed();
                for _ in 0..5 {
                    let _ = br.call_sync(|| Err::<u64, _>("down"));
                }
                clock.advance(Duration::from_secs(61));
                br
            },
            |br| {
                if let Ok(p) = br.try_acquire() {
                    p.success();
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

// ---------------------------------------------------------------- summary

fn criterion_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            // Benches run from the package directory; the workspace target is two levels up.
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
        });
    target.join("criterion")
}

fn read_estimates(group: &str, bench: &str, file: &str) -> Option<String> {
    let path = criterion_dir()
        .join(group)
        .join(bench)
        .join("new")
        .join(file);
    std::fs::read_to_string(path).ok()
}

/// The numbers of a JSON array `"key":[...]` (criterion's files are flat enough for this).
fn json_array(text: &str, key: &str) -> Vec<f64> {
    let Some(at) = text.find(&format!("\"{key}\":[")) else {
        return vec![];
    };
    let rest = &text[at + key.len() + 4..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The median estimate (ns per call) criterion wrote for `group/bench` in this run.
fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let text = read_estimates(group, bench, "estimates.json")?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse().ok()
}

/// The fastest sample (ns per call): the one least disturbed by other work on the machine.
fn min_sample_ns(group: &str, bench: &str) -> Option<f64> {
    let text = read_estimates(group, bench, "sample.json")?;
    let iters = json_array(&text, "iters");
    let times = json_array(&text, "times");
    iters
        .iter()
        .zip(times.iter())
        .filter(|(i, _)| **i > 0.0)
        .map(|(i, t)| t / i)
        .min_by(|a, b| a.total_cmp(b))
}

const PEERS: [&str; 3] = ["failsafe_consecutive", "recloser", "failsafe_default"];

fn table(title: &str, stat: fn(&str, &str) -> Option<f64>, with_two_threads: bool) {
    println!("\n### {title}\n");
    println!("| case | no breaker | jarvis | failsafe consecutive | recloser | failsafe default | jarvis failure-rate policy | jarvis / best peer | target | met |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, group, single) in [
        ("CLOSED, 1 thread", "closed_1_thread", true),
        (
            "CLOSED, 2 threads on one breaker",
            "closed_2_threads",
            false,
        ),
    ] {
        if !single && !with_two_threads {
            continue;
        }
        let get = |b: &str| stat(group, b);
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        let best = PEERS
            .iter()
            .filter_map(|p| get(p).map(|v| (v, *p)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let jarvis = get("jarvis");
        let ratio = match (jarvis, best) {
            (Some(j), Some((b, name))) => format!("{:.3} (best: {name})", j / b),
            _ => "n/a".into(),
        };
        let (target, met) = match (jarvis, best) {
            (Some(j), _) if single => ("<= 3 ns".to_string(), j <= 3.0),
            (Some(j), Some((b, _))) => (format!("<= {:.2} ns (best / 3)", b / 3.0), j <= b / 3.0),
            _ => ("n/a".to_string(), false),
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {ratio} | {target} | {} |",
            fmt(get("no_breaker")),
            fmt(jarvis),
            fmt(get("failsafe_consecutive")),
            fmt(get("recloser")),
            fmt(get("failsafe_default")),
            fmt(get("jarvis_failure_rate_policy")),
            if met { "yes" } else { "NO" },
        );
    }
    println!("\n| other case | ns per call |\n|---|---|");
    for (group, bench) in [
        ("closed_1_thread", "jarvis_permit"),
        ("open_rejected", "jarvis_open_period"),
        ("open_rejected", "failsafe_consecutive"),
        ("open_rejected", "recloser"),
        ("open_rejected", "jarvis_forced_open"),
        ("half_open", "jarvis_trial_admit_and_release"),
        ("half_open", "jarvis_trial_slot_taken_rejected"),
        ("half_open", "jarvis_open_to_half_open_first_trial"),
    ] {
        if let Some(v) = stat(group, bench) {
            println!("| {group}/{bench} | {v:.2} |");
        }
    }
}

fn summary() {
    println!("\n## Summary (ns per call; ratio = jarvis / best peer)");
    // Other work on the machine distorts every number; say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        println!(
            "\nload average at the end of the run: {} ({cores} cores)",
            load.trim()
        );
    }
    table("Median (criterion's estimate)", median_ns, true);
    // With 2 threads the fastest sample is likely one where the threads did not overlap
    // (one was descheduled), which says nothing about contention: 1-thread cases only.
    table(
        "Fastest sample (least disturbed by other processes; 1-thread cases only)",
        min_sample_ns,
        false,
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    closed_single(&mut c);
    closed_two_threads(&mut c);
    open_rejected(&mut c);
    half_open(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and runs every
    // benchmark once as a smoke test: no fresh estimates, so no summary.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
