//! The targets of the learning issue, on the simulated agent: learning fails at least 30 %
//! fewer tasks than the better of fixed-default and random parameters, and recommends a best
//! configuration within 500 tasks.
//!
//! The seeds are fixed (the first three the simulation was ever run with, 42, 1 and 2) — not
//! chosen afterwards; three keep the debug-build test near a minute. Over seeds 0–19 the failure target held for all 20 and the 500-task
//! target for 16 (seeds 7, 13, 15 and 16 needed 579, 539, 544 and 694 tasks); see the crate's
//! report.

use jarvis_learning::sim::{run_experiment, BeatAgent, ExperimentConfig, Strategy};

#[test]
fn learning_meets_the_targets_on_fixed_seeds() {
    for seed in [42, 1, 2] {
        let report = run_experiment(&BeatAgent, &ExperimentConfig::new(seed));
        let table = report.to_table();
        println!("{table}");
        assert!(
            report.failure_reduction() >= 0.30,
            "seed {seed}: reduction {:.3}\n{table}",
            report.failure_reduction()
        );
        let learning = report.strategy(Strategy::Learning);
        assert!(
            learning.first_best_at.is_some_and(|at| at <= 500),
            "seed {seed}: first best at {:?}\n{table}",
            learning.first_best_at
        );
        // Learning also has the least regret and the highest impact per task.
        for baseline in [Strategy::Default, Strategy::Random] {
            let baseline = report.strategy(baseline);
            assert!(
                learning.cumulative_regret < baseline.cumulative_regret,
                "{table}"
            );
            assert!(
                learning.mean_impact_per_task > baseline.mean_impact_per_task,
                "{table}"
            );
        }
    }
}
