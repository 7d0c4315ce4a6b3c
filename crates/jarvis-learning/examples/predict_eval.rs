//! Evaluates the trip forecaster on generated scenarios (`jarvis_learning::forecast_sim`) and
//! prints a Markdown table: lead time before the breaker trips, false warnings per service per
//! day.
//!
//! `cargo run -p jarvis-learning --release --example predict_eval -- [--seed N] [--services N]
//! [--horizon-secs S] [--trend-beta B] [--damping D] [--json]`

use std::process::ExitCode;

use jarvis_learning::forecast_sim::{run_scenario, Scenario, SimConfig};
use jarvis_learning::ForecastConfig;

fn main() -> ExitCode {
    let mut seed = 42u64;
    let mut sim = SimConfig::default();
    let mut config = ForecastConfig::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Option<f64> {
            let v = args.next();
            let parsed = v.as_deref().and_then(|v| v.parse::<f64>().ok());
            if parsed.is_none_or(|p| !p.is_finite() || p < 0.0) {
                eprintln!("{name} needs a non-negative number, got {v:?}");
                return None;
            }
            parsed
        };
        match arg.as_str() {
            "--seed" => match value("--seed") {
                Some(v) => seed = v as u64,
                None => return ExitCode::from(2),
            },
            "--services" => match value("--services") {
                Some(v) if v >= 1.0 => sim.services = v as u32,
                _ => return ExitCode::from(2),
            },
            "--horizon-secs" => match value("--horizon-secs") {
                Some(v) if v > 0.0 => config.horizon_secs = v,
                _ => return ExitCode::from(2),
            },
            "--trend-beta" => match value("--trend-beta") {
                Some(v) if v <= 1.0 => config.trend_beta = v,
                _ => return ExitCode::from(2),
            },
            "--damping" => match value("--damping") {
                Some(v) if v <= 1.0 => config.damping = v,
                _ => return ExitCode::from(2),
            },
            "--json" => json = true,
            other => {
                eprintln!("unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    if !json {
        println!(
            "Checks every {} s, timeout {} ms, {} failures open the circuit for {} s; \
             horizon {} s, warn at p ≥ {}, clear below {}; {} services per scenario, seed {seed}.\n",
            sim.interval_secs,
            sim.timeout_ms,
            sim.failure_threshold,
            sim.open_secs,
            config.horizon_secs,
            config.warn_probability,
            config.clear_probability,
            sim.services,
        );
        println!("| scenario | hours/service | outages tripped | warned | lead p10 | lead p50 | warned ≥ 30 s | warnings | false | false/service/day |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    for scenario in Scenario::ALL {
        let r = run_scenario(scenario, &sim, &config, seed);
        if json {
            println!(
                "{}",
                serde_json::to_string(&r).expect("a report serializes")
            );
            continue;
        }
        let secs = |v: Option<f64>| v.map_or("—".to_string(), |s| format!("{s:.0} s"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
            serde_json::to_value(scenario)
                .expect("a scenario serializes")
                .as_str()
                .unwrap_or("?"),
            r.hours_per_service,
            r.outages_tripped,
            r.warned_trips,
            secs(r.lead_p10_secs),
            secs(r.lead_p50_secs),
            r.warned_30s_share
                .map_or("—".to_string(), |s| format!("{:.0} %", 100.0 * s)),
            r.warnings,
            r.false_warnings,
            r.false_per_service_day,
        );
    }
    ExitCode::SUCCESS
}
