//! A deterministic simulation: a simulated agent and an experiment that measures learning.
//!
//! [`BeatAgent`] stands in for a music agent ("generate a beat") whose outcome depends on its
//! parameters in ways the learner is not told:
//!
//! | parameter | values | effect |
//! |---|---|---|
//! | `genre` | pop, rock, jazz, electronic, hiphop, metal | success 0.88–0.93 except **metal, 0.45**; impact 45–58, **electronic 75** |
//! | `bpm` | 60–180 (integer) | success × `0.55 + 0.45·exp(−((bpm − 120)/30)²)`; impact + `20·exp(−((bpm − 120)/30)²)`: **best around 120** |
//! | `quality` | draft, standard, high | success × 1.00 / 0.98 / 0.90; impact −30 / 0 / +5; median duration 6 s / 18 s / **40 s — beyond the default 30 s timeout** |
//!
//! Durations are log-normal around the median (σ = 0.35), so even `standard` exceeds a 30 s
//! timeout about 7 % of the time; impact scores get normal noise (σ = 5). Under the default
//! objective (impact weight 0.5) the best configuration is `electronic`, bpm 120, `standard`
//! (expected utility 0.889 with a long enough timeout); the naive default `pop`, bpm 100,
//! `standard` with a 30 s timeout fails about 30 % of the time, uniformly random parameters
//! about 58 %. The fast `draft` quality succeeds most often but has little impact; `high` has
//! the most impact but needs a timeout the default does not give it.
//!
//! The model is reusable outside this crate: [`BeatAgent::respond`] gives the agent's answer for
//! given parameters and an RNG (what it would do with no time limit), and [`apply_timeout`] turns
//! that into the [`Execution`] Jarvis records under a timeout. A simulation through the real
//! server and queue can serve `respond` over HTTP and let the server enforce the timeout.
//!
//! [`run_experiment`] runs N tasks three ways — fixed default parameters, uniformly random
//! parameters, and learning ([`choose`] before each task, [`Aggregates::observe`] after) — with the
//! same agent seed, and reports failed tasks, mean impact, cumulative regret (expected utility
//! lost against the best configuration with an unlimited timeout, summed over tasks) and the
//! first task after which [`recommend`] names a best configuration (one within
//! [`BEST_TOLERANCE`] of the optimum's expected utility).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::aggregates::{Aggregates, Execution};
use crate::config::{LearningConfig, ParameterSpace};
use crate::estimate::normal_cdf;
use crate::explore::choose;
use crate::recommend::recommend;

/// A configuration is "best" when its expected utility is at least `1 − BEST_TOLERANCE` of the
/// optimum's. 5 % admits exactly `electronic`, `standard` and a tempo of 111–129 bpm: the
/// right choices, with the tempo inside the best one or two buckets of the learner's 9 %-wide
/// grid (a test checks this).
pub const BEST_TOLERANCE: f64 = 0.05;

/// The timeout Jarvis applies when nothing is learned yet, in the simulation (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Genre: name, success probability factor, base impact score.
const GENRES: [(&str, f64, f64); 6] = [
    ("pop", 0.92, 55.0),
    ("rock", 0.90, 50.0),
    ("jazz", 0.88, 58.0),
    ("electronic", 0.93, 75.0),
    ("hiphop", 0.90, 55.0),
    ("metal", 0.45, 45.0),
];

/// Quality: name, success probability factor, impact adjustment, median duration in ms.
const QUALITIES: [(&str, f64, f64, f64); 3] = [
    ("draft", 1.00, -30.0, 6_000.0),
    ("standard", 0.98, 0.0, 18_000.0),
    ("high", 0.90, 5.0, 40_000.0),
];

const BPM_RANGE: (i64, i64) = (60, 180);
const BEST_BPM: f64 = 120.0;
const DURATION_SIGMA: f64 = 0.35;
const IMPACT_NOISE: f64 = 5.0;

/// What the agent answers for one run, before any timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentResponse {
    /// Whether the agent succeeds (given enough time).
    pub success: bool,
    /// How long the agent works before answering, in ms.
    pub duration_ms: u64,
    /// Its impact score when it succeeds.
    pub impact_score: Option<f64>,
    /// Its error message when it fails.
    pub error: Option<String>,
}

/// The simulated beat-generating agent. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct BeatAgent;

/// The parameters the agent understood, with its defaults for missing or invalid ones.
struct Understood {
    genre: usize,
    bpm: f64,
    quality: usize,
}

impl BeatAgent {
    /// The search space a learner can be told about (the values the agent accepts).
    pub fn search_space(&self) -> BTreeMap<String, ParameterSpace> {
        BTreeMap::from([
            (
                "genre".to_owned(),
                ParameterSpace::Categorical {
                    values: GENRES.iter().map(|g| json!(g.0)).collect(),
                },
            ),
            (
                "bpm".to_owned(),
                ParameterSpace::Numeric {
                    min: BPM_RANGE.0 as f64,
                    max: BPM_RANGE.1 as f64,
                    integer: true,
                },
            ),
            (
                "quality".to_owned(),
                ParameterSpace::Categorical {
                    values: QUALITIES.iter().map(|q| json!(q.0)).collect(),
                },
            ),
        ])
    }

    /// The parameters a user would send without help: pop, 100 bpm, standard quality.
    pub fn default_parameters(&self) -> Map<String, Value> {
        object(json!({"genre": "pop", "bpm": 100, "quality": "standard"}))
    }

    /// Uniformly random parameters from the search space.
    pub fn random_parameters<R: Rng + ?Sized>(&self, rng: &mut R) -> Map<String, Value> {
        let genre = GENRES[rng.random_range(0..GENRES.len())].0;
        let quality = QUALITIES[rng.random_range(0..QUALITIES.len())].0;
        let bpm = rng.random_range(BPM_RANGE.0..=BPM_RANGE.1);
        object(json!({"genre": genre, "bpm": bpm, "quality": quality}))
    }

    fn understand(&self, parameters: &Map<String, Value>) -> Understood {
        let index_of = |name: &str, names: &[&str], default: usize| {
            parameters
                .get(name)
                .and_then(Value::as_str)
                .and_then(|value| names.iter().position(|n| *n == value))
                .unwrap_or(default)
        };
        let genre_names: Vec<&str> = GENRES.iter().map(|g| g.0).collect();
        let quality_names: Vec<&str> = QUALITIES.iter().map(|q| q.0).collect();
        Understood {
            genre: index_of("genre", &genre_names, 0),
            bpm: parameters
                .get("bpm")
                .and_then(Value::as_f64)
                .filter(|b| b.is_finite())
                .unwrap_or(100.0),
            quality: index_of("quality", &quality_names, 1),
        }
    }

    fn bpm_success_factor(bpm: f64) -> f64 {
        0.55 + 0.45 * (-((bpm - BEST_BPM) / 30.0).powi(2)).exp()
    }

    /// The probability that the agent succeeds with these parameters, given enough time.
    pub fn success_probability(&self, parameters: &Map<String, Value>) -> f64 {
        let u = self.understand(parameters);
        GENRES[u.genre].1 * Self::bpm_success_factor(u.bpm) * QUALITIES[u.quality].1
    }

    /// The mean impact score of a successful run with these parameters.
    pub fn mean_impact(&self, parameters: &Map<String, Value>) -> f64 {
        let u = self.understand(parameters);
        let bonus = 20.0 * (-((u.bpm - BEST_BPM) / 30.0).powi(2)).exp();
        (GENRES[u.genre].2 + bonus + QUALITIES[u.quality].2).clamp(0.0, 100.0)
    }

    /// The median duration of a run with these parameters, in ms.
    pub fn median_duration_ms(&self, parameters: &Map<String, Value>) -> f64 {
        QUALITIES[self.understand(parameters).quality].3
    }

    /// The probability that a run finishes within `timeout_ms` (1 without a timeout).
    pub fn finish_probability(
        &self,
        parameters: &Map<String, Value>,
        timeout_ms: Option<u64>,
    ) -> f64 {
        match timeout_ms {
            None => 1.0,
            Some(0) => 0.0,
            Some(t) => normal_cdf(
                ((t as f64).ln() - self.median_duration_ms(parameters).ln()) / DURATION_SIGMA,
            ),
        }
    }

    /// The true expected utility of a run (see [`crate::config`] for the objective), under a
    /// timeout (`None`: unlimited).
    pub fn expected_utility(
        &self,
        parameters: &Map<String, Value>,
        timeout_ms: Option<u64>,
        impact_weight: f64,
    ) -> f64 {
        LearningConfig::utility(
            self.success_probability(parameters) * self.finish_probability(parameters, timeout_ms),
            self.mean_impact(parameters) / 100.0,
            impact_weight,
        )
    }

    /// The best configuration with an unlimited timeout and its expected utility (exhaustive
    /// search over the search space).
    pub fn best(&self, impact_weight: f64) -> (Map<String, Value>, f64) {
        let mut best = (Map::new(), f64::NEG_INFINITY);
        for genre in GENRES {
            for quality in QUALITIES {
                for bpm in BPM_RANGE.0..=BPM_RANGE.1 {
                    let parameters =
                        object(json!({"genre": genre.0, "bpm": bpm, "quality": quality.0}));
                    let utility = self.expected_utility(&parameters, None, impact_weight);
                    if utility > best.1 {
                        best = (parameters, utility);
                    }
                }
            }
        }
        best
    }

    /// The agent's answer for one run with these parameters (no time limit).
    pub fn respond<R: Rng + ?Sized>(
        &self,
        parameters: &Map<String, Value>,
        rng: &mut R,
    ) -> AgentResponse {
        let u = self.understand(parameters);
        let (genre, genre_success, _) = GENRES[u.genre];
        let quality_success = QUALITIES[u.quality].1;
        let median = QUALITIES[u.quality].3;
        let standard_normal = Normal::new(0.0, 1.0).expect("valid normal");
        let full_duration = median * (DURATION_SIGMA * standard_normal.sample(rng)).exp();

        // Each factor can fail on its own; the run succeeds when none does.
        let genre_fails = rng.random::<f64>() >= genre_success;
        let tempo_fails = rng.random::<f64>() >= Self::bpm_success_factor(u.bpm);
        let quality_fails = rng.random::<f64>() >= quality_success;
        let error = if genre_fails {
            Some(format!(
                "render failed for genre {genre}: clipping at sample {} (peak {:.2})",
                rng.random_range(1_000..900_000),
                1.0 + rng.random::<f64>()
            ))
        } else if tempo_fails {
            Some(format!(
                "tempo {} bpm drifted {:.1}% off the grid",
                u.bpm,
                rng.random_range(5.0..40.0)
            ))
        } else if quality_fails {
            Some(format!(
                "model server 10.0.{}.{}:8080 returned 503 for job {:08x}",
                rng.random_range(0..8),
                rng.random_range(2..250),
                rng.random::<u32>()
            ))
        } else {
            None
        };
        match error {
            Some(error) => AgentResponse {
                success: false,
                // A failing run gives up part-way through.
                duration_ms: (full_duration * rng.random_range(0.1..1.0)).round() as u64,
                impact_score: None,
                error: Some(error),
            },
            None => {
                let noise = IMPACT_NOISE * standard_normal.sample(rng);
                AgentResponse {
                    success: true,
                    duration_ms: full_duration.round() as u64,
                    impact_score: Some((self.mean_impact(parameters) + noise).clamp(0.0, 100.0)),
                    error: None,
                }
            }
        }
    }
}

/// The execution Jarvis records when `response` runs under `timeout_ms`: a run that takes longer
/// is cut off at the timeout and fails with `timeout after <ms> ms`.
pub fn apply_timeout(
    response: &AgentResponse,
    parameters: &Map<String, Value>,
    timeout_ms: u64,
) -> Execution {
    if response.duration_ms > timeout_ms {
        Execution {
            parameters: parameters.clone(),
            success: false,
            duration_ms: timeout_ms,
            impact_score: None,
            failure_reason: Some(format!("timeout after {timeout_ms} ms")),
            cost_usd: None,
            timed_out: true,
        }
    } else {
        Execution {
            parameters: parameters.clone(),
            success: response.success,
            duration_ms: response.duration_ms,
            impact_score: response.impact_score,
            failure_reason: response.error.clone(),
            cost_usd: None,
            timed_out: false,
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// How the parameters of each task are chosen in an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    /// Always [`BeatAgent::default_parameters`] with the default timeout.
    Default,
    /// [`BeatAgent::random_parameters`] with the default timeout.
    Random,
    /// [`choose`] from the aggregates so far, with the learned timeout once there is one.
    Learning,
}

impl Strategy {
    /// All strategies, in report order.
    pub const ALL: [Strategy; 3] = [Strategy::Default, Strategy::Random, Strategy::Learning];

    fn name(self) -> &'static str {
        match self {
            Strategy::Default => "fixed default",
            Strategy::Random => "random",
            Strategy::Learning => "learning",
        }
    }
}

/// Settings of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentConfig {
    /// Tasks per strategy.
    pub tasks: usize,
    /// The seed; the same seed gives the same report.
    pub seed: u64,
    /// The timeout used until one is learned, in ms.
    pub default_timeout_ms: u64,
    /// The learner's settings (the search space is the agent's).
    pub learning: LearningConfig,
}

impl ExperimentConfig {
    /// 2,000 tasks, a 30 s default timeout, the default learner told the agent's search space.
    /// Propensity estimates use 32 draws here: they are logged, not used to decide, and the
    /// default 200 only makes the simulation slower.
    pub fn new(seed: u64) -> Self {
        ExperimentConfig {
            tasks: 2_000,
            seed,
            default_timeout_ms: DEFAULT_TIMEOUT_MS,
            learning: LearningConfig {
                search_space: BeatAgent.search_space(),
                propensity_samples: 32,
                ..LearningConfig::default()
            },
        }
    }
}

/// The outcome of one strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyReport {
    /// The strategy.
    pub strategy: Strategy,
    /// Tasks run.
    pub tasks: usize,
    /// Tasks that failed (timeouts included).
    pub failed: usize,
    /// Tasks cut off by the timeout.
    pub timed_out: usize,
    /// The mean impact score of the successful tasks.
    pub mean_impact: Option<f64>,
    /// The mean impact score over all tasks, a failure counting 0.
    pub mean_impact_per_task: f64,
    /// The sum over tasks of (best expected utility − expected utility of what was run).
    pub cumulative_regret: f64,
    /// For learning: the first task count after which [`recommend`] names a best configuration.
    pub first_best_at: Option<usize>,
    /// For learning: the task count from which on every recommendation was a best one.
    pub stable_best_from: Option<usize>,
    /// For learning: the recommendation after the last task.
    pub final_recommendation: Option<Map<String, Value>>,
    /// For learning: the learned timeout after the last task.
    pub final_timeout_ms: Option<u64>,
}

/// The outcome of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentReport {
    /// The seed.
    pub seed: u64,
    /// Tasks per strategy.
    pub tasks: usize,
    /// The best configuration.
    pub best_parameters: Map<String, Value>,
    /// Its expected utility.
    pub best_utility: f64,
    /// One report per strategy, in [`Strategy::ALL`] order.
    pub strategies: Vec<StrategyReport>,
}

impl ExperimentReport {
    /// The report of one strategy.
    pub fn strategy(&self, strategy: Strategy) -> &StrategyReport {
        self.strategies
            .iter()
            .find(|r| r.strategy == strategy)
            .expect("every strategy is run")
    }

    /// `1 − failed(learning) / min(failed(default), failed(random))`: the share of failed tasks
    /// learning avoids against the better baseline.
    pub fn failure_reduction(&self) -> f64 {
        let baseline = self
            .strategy(Strategy::Default)
            .failed
            .min(self.strategy(Strategy::Random).failed);
        if baseline == 0 {
            return 0.0;
        }
        1.0 - self.strategy(Strategy::Learning).failed as f64 / baseline as f64
    }

    /// Whether learning cut failed tasks by at least 30 % and named a best configuration within
    /// 500 tasks (the targets of the learning issue).
    pub fn meets_targets(&self) -> bool {
        self.failure_reduction() >= 0.30
            && self
                .strategy(Strategy::Learning)
                .first_best_at
                .is_some_and(|at| at <= 500)
    }

    /// A plain-text table of the results.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}, {} tasks per strategy; best configuration {} (expected utility {:.3})",
            self.seed,
            self.tasks,
            Value::Object(self.best_parameters.clone()),
            self.best_utility
        );
        let _ = writeln!(
            out,
            "{:<14} {:>7} {:>9} {:>10} {:>12} {:>8} {:>11} {:>12}",
            "strategy",
            "failed",
            "timeouts",
            "fail rate",
            "mean impact",
            "regret",
            "first best",
            "stable from"
        );
        for report in &self.strategies {
            let at = |x: Option<usize>| x.map_or_else(|| "-".to_owned(), |x| x.to_string());
            let _ = writeln!(
                out,
                "{:<14} {:>7} {:>9} {:>9.1}% {:>12} {:>8.1} {:>11} {:>12}",
                report.strategy.name(),
                report.failed,
                report.timed_out,
                100.0 * report.failed as f64 / report.tasks.max(1) as f64,
                report
                    .mean_impact
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}")),
                report.cumulative_regret,
                at(report.first_best_at),
                at(report.stable_best_from),
            );
        }
        let learning = self.strategy(Strategy::Learning);
        let _ = writeln!(
            out,
            "learning: {:.1}% fewer failed tasks than the better baseline; final recommendation {} with timeout {} ms; targets {}",
            100.0 * self.failure_reduction(),
            learning
                .final_recommendation
                .clone()
                .map_or_else(|| "none".to_owned(), |p| Value::Object(p).to_string()),
            learning
                .final_timeout_ms
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            if self.meets_targets() { "met" } else { "NOT met" }
        );
        out
    }
}

/// Runs the experiment (see the [module docs](self)). Deterministic for a given config.
pub fn run_experiment(agent: &BeatAgent, config: &ExperimentConfig) -> ExperimentReport {
    let w = config.learning.impact_weight;
    let (best_parameters, best_utility) = agent.best(w);
    let strategies = Strategy::ALL
        .iter()
        .enumerate()
        .map(|(i, &strategy)| run_strategy(agent, config, strategy, i as u64, best_utility))
        .collect();
    ExperimentReport {
        seed: config.seed,
        tasks: config.tasks,
        best_parameters,
        best_utility,
        strategies,
    }
}

fn run_strategy(
    agent: &BeatAgent,
    config: &ExperimentConfig,
    strategy: Strategy,
    stream: u64,
    best_utility: f64,
) -> StrategyReport {
    let w = config.learning.impact_weight;
    // The agent's randomness is the same for every strategy (common random numbers); the
    // policy's is separate.
    let mut agent_rng = StdRng::seed_from_u64(config.seed);
    let mut policy_rng = StdRng::seed_from_u64(
        config
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(stream + 1),
    );
    let is_best = |parameters: &Map<String, Value>| {
        agent.expected_utility(parameters, None, w) >= (1.0 - BEST_TOLERANCE) * best_utility
    };
    let mut aggregates = Aggregates::new();
    let mut report = StrategyReport {
        strategy,
        tasks: config.tasks,
        failed: 0,
        timed_out: 0,
        mean_impact: None,
        mean_impact_per_task: 0.0,
        cumulative_regret: 0.0,
        first_best_at: None,
        stable_best_from: None,
        final_recommendation: None,
        final_timeout_ms: None,
    };
    let (mut impact_sum, mut successes) = (0.0, 0usize);
    for task in 1..=config.tasks {
        let (parameters, timeout_ms) = match strategy {
            Strategy::Default => (agent.default_parameters(), config.default_timeout_ms),
            Strategy::Random => (
                agent.random_parameters(&mut policy_rng),
                config.default_timeout_ms,
            ),
            Strategy::Learning => {
                let choice = choose(&aggregates, &Map::new(), &config.learning, &mut policy_rng);
                (
                    choice.parameters,
                    choice.timeout_ms.unwrap_or(config.default_timeout_ms),
                )
            }
        };
        report.cumulative_regret +=
            best_utility - agent.expected_utility(&parameters, Some(timeout_ms), w);
        let response = agent.respond(&parameters, &mut agent_rng);
        let execution = apply_timeout(&response, &parameters, timeout_ms);
        if execution.success {
            successes += 1;
            impact_sum += execution.impact_score.unwrap_or(0.0);
        } else {
            report.failed += 1;
        }
        if execution.timed_out {
            report.timed_out += 1;
        }
        if strategy == Strategy::Learning {
            aggregates.observe(&execution);
            let recommendation = recommend(&aggregates, &config.learning);
            let best = !recommendation.parameters.is_empty() && is_best(&recommendation.parameters);
            if best {
                report.first_best_at.get_or_insert(task);
                report.stable_best_from.get_or_insert(task);
            } else {
                report.stable_best_from = None;
            }
            if task == config.tasks {
                report.final_recommendation = Some(recommendation.parameters);
                report.final_timeout_ms = recommendation.timeout_ms;
            }
        }
    }
    report.mean_impact = (successes > 0).then(|| impact_sum / successes as f64);
    report.mean_impact_per_task = impact_sum / config.tasks.max(1) as f64;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_has_the_documented_shape() {
        let agent = BeatAgent;
        let (best, utility) = agent.best(0.5);
        assert_eq!(best["genre"], "electronic");
        assert_eq!(best["bpm"], 120);
        assert_eq!(best["quality"], "standard");
        assert!((utility - 0.889).abs() < 0.001, "{utility}");
        let metal = object(json!({"genre": "metal", "bpm": 120, "quality": "standard"}));
        assert!(agent.success_probability(&metal) < 0.5);
        let high = object(json!({"genre": "pop", "bpm": 120, "quality": "high"}));
        assert!(agent.finish_probability(&high, Some(DEFAULT_TIMEOUT_MS)) < 0.25);
        let default = agent.default_parameters();
        let default_success = agent.success_probability(&default)
            * agent.finish_probability(&default, Some(DEFAULT_TIMEOUT_MS));
        assert!((0.65..0.75).contains(&default_success), "{default_success}");
    }

    #[test]
    fn best_means_the_right_choices_and_a_tempo_near_120() {
        let agent = BeatAgent;
        let (_, optimum) = agent.best(0.5);
        let mut tempos = Vec::new();
        for genre in GENRES {
            for quality in QUALITIES {
                for bpm in BPM_RANGE.0..=BPM_RANGE.1 {
                    let parameters =
                        object(json!({"genre": genre.0, "bpm": bpm, "quality": quality.0}));
                    if agent.expected_utility(&parameters, None, 0.5)
                        >= (1.0 - BEST_TOLERANCE) * optimum
                    {
                        assert_eq!((genre.0, quality.0), ("electronic", "standard"));
                        tempos.push(bpm);
                    }
                }
            }
        }
        assert_eq!(tempos.first(), Some(&111));
        assert_eq!(tempos.last(), Some(&129));
    }

    #[test]
    fn responses_follow_the_model() {
        let agent = BeatAgent;
        let parameters = agent.default_parameters();
        let mut rng = StdRng::seed_from_u64(9);
        let runs = 4_000;
        let successes = (0..runs)
            .filter(|_| agent.respond(&parameters, &mut rng).success)
            .count();
        let expected = agent.success_probability(&parameters);
        let observed = successes as f64 / runs as f64;
        assert!(
            (observed - expected).abs() < 0.03,
            "{observed} vs {expected}"
        );
    }

    #[test]
    fn timeouts_are_applied() {
        let response = AgentResponse {
            success: true,
            duration_ms: 45_000,
            impact_score: Some(80.0),
            error: None,
        };
        let execution = apply_timeout(&response, &Map::new(), 30_000);
        assert!(!execution.success && execution.timed_out);
        assert_eq!(execution.duration_ms, 30_000);
        let execution = apply_timeout(&response, &Map::new(), 60_000);
        assert!(execution.success && !execution.timed_out);
    }

    #[test]
    fn experiments_are_deterministic() {
        let config = ExperimentConfig {
            tasks: 150,
            ..ExperimentConfig::new(3)
        };
        let a = run_experiment(&BeatAgent, &config);
        let b = run_experiment(&BeatAgent, &config);
        assert_eq!(a, b);
        assert_eq!(a.strategies.len(), 3);
        assert!(a.to_table().contains("learning"));
    }
}
