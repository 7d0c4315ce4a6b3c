//! Runs the learning experiment of `jarvis_learning::sim` and prints its table.
//!
//! `cargo run -p jarvis-learning --example simulate --release -- --seed 42 [--tasks 2000] [--json]`

use std::process::ExitCode;

use jarvis_learning::sim::{run_experiment, BeatAgent, ExperimentConfig};

fn main() -> ExitCode {
    let mut seed = 42;
    let mut tasks = None;
    let mut as_json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<u64> {
            let value = args.next();
            let parsed = value.as_deref().and_then(|v| v.parse().ok());
            if parsed.is_none() {
                eprintln!("{name} needs a non-negative integer, got {value:?}");
            }
            parsed
        };
        match arg.as_str() {
            "--seed" => match number("--seed") {
                Some(n) => seed = n,
                None => return ExitCode::from(2),
            },
            "--tasks" => match number("--tasks") {
                Some(n) => tasks = Some(n as usize),
                None => return ExitCode::from(2),
            },
            "--json" => as_json = true,
            "-h" | "--help" => {
                println!("usage: simulate [--seed N] [--tasks N] [--json]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                return ExitCode::from(2);
            }
        }
    }
    let mut config = ExperimentConfig::new(seed);
    if let Some(tasks) = tasks {
        config.tasks = tasks;
    }
    let report = run_experiment(&BeatAgent, &config);
    if as_json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("cannot print the report: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.to_table());
    }
    ExitCode::SUCCESS
}
