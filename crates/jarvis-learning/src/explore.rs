//! Choosing parameters for the next run: exploration versus exploitation.
//!
//! [`choose`] fills in the parameters a caller left out, one parameter at a time, by **factored
//! Thompson sampling**: for every candidate value it draws a utility from the value's posterior
//! — success `p ~ Beta(1 + s, 1 + f)`, impact fraction `q ~ Beta(1 + Σimpact/100, 1 + n − Σimpact/100)`,
//! utility `p × ((1 − w) + w × q)` — and takes the value with the highest draw. With probability
//! [`LearningConfig::exploration_share`] it picks a candidate uniformly at random instead.
//!
//! Why Thompson sampling rather than UCB:
//! * several Jarvis instances choose concurrently from the same, slightly stale aggregates.
//!   UCB is deterministic, so every instance would pick the same value until the next update;
//!   Thompson sampling randomises, spreading concurrent choices in proportion to how likely
//!   each value is to be best;
//! * feedback arrives late (a run takes seconds to minutes) — the same argument applies;
//! * it needs no tuning constant, handles 0/1 outcomes and bounded rewards natively, and an
//!   early lucky value does not lock in: its posterior stays wide until it has many runs;
//! * its choices are random with a known distribution, so the probability of each choice can be
//!   logged for offline evaluation of other policies (inverse propensity weighting).
//!
//! Why factored (one posterior per value of each parameter, not per combination): it learns from
//! every run about every parameter, so evidence accumulates on ~20 values instead of hundreds of
//! combinations. [`crate::recommend`](mod@crate::recommend) checks the combinations for interactions.
//!
//! The logged probability of a learned value is
//! `ε/K + (1 − ε) × P̂(Thompson picks it)`, where `K` is the number of candidates and `P̂` is
//! estimated from [`LearningConfig::propensity_samples`] extra draws (Laplace-smoothed, so never
//! 0). For a numeric parameter it is the probability of the *bucket*; the number inside the
//! bucket is then drawn uniformly (from the search space's part of the bucket, or from the range
//! of values seen in it).
//!
//! Candidates per parameter: the search space's values if one is declared (unseen values start
//! from the uniform prior and so get tried), otherwise the values seen so far. Parameters filled
//! in are those of the search space and those present in at least
//! [`LearningConfig::min_parameter_share`] of the runs.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adjust::{adjusted_evidence, Evidence, EvidenceMap};
use crate::aggregates::{Aggregates, ValueStats};
use crate::config::{sample_in_bucket, LearningConfig, ParameterSpace};
use crate::estimate::BetaPosterior;
use crate::recommend::considered_parameters;
use crate::timeout::learned_timeout_for;
use crate::value_key::ValueKey;

/// The parameters for one run, and how each learned value was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    /// All parameters: the given ones unchanged, plus the learned ones.
    pub parameters: Map<String, Value>,
    /// The values the learner filled in.
    pub learned: BTreeMap<String, LearnedValue>,
    /// The names the caller gave (sorted); these were not touched.
    pub given: Vec<String>,
    /// The learned timeout in ms for these parameters, once there is enough data
    /// (see [`learned_timeout_for`]).
    pub timeout_ms: Option<u64>,
}

impl Choice {
    /// The probability of the whole learned assignment (the product over parameters, which are
    /// chosen independently); 1 when nothing was learned.
    pub fn probability(&self) -> f64 {
        self.learned.values().map(|l| l.probability).product()
    }
}

/// One value the learner filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LearnedValue {
    /// The value.
    pub value: Value,
    /// Its key (for numbers, the bucket that was chosen).
    pub key: ValueKey,
    /// The probability with which this key was chosen (see the [module docs](self)).
    pub probability: f64,
    /// Whether it was picked uniformly at random (the exploration share) rather than by
    /// Thompson sampling.
    pub explored: bool,
    /// The number of candidates it was chosen from.
    pub candidates: usize,
}

struct Candidate<'a> {
    key: ValueKey,
    stats: Option<&'a ValueStats>,
    evidence: Option<Evidence>,
}

/// Fills in the parameters missing from `given`. See the [module docs](self).
pub fn choose<R: Rng + ?Sized>(
    aggregates: &Aggregates,
    given: &Map<String, Value>,
    config: &LearningConfig,
    rng: &mut R,
) -> Choice {
    let w = config.effective_impact_weight(aggregates.total.impact_runs > 0);
    let epsilon = config.exploration();
    let samples = config.propensity_samples.max(16);
    let mut parameters = given.clone();
    let mut learned = BTreeMap::new();
    let evidence = adjusted_evidence(aggregates);
    for name in considered_parameters(aggregates, config) {
        if given.contains_key(&name) {
            continue;
        }
        let space = config.search_space.get(&name);
        let candidates = candidates(aggregates, &evidence, &name, space);
        if candidates.is_empty() {
            continue;
        }
        let count = candidates.len();
        let explored = epsilon > 0.0 && rng.random::<f64>() < epsilon;
        let index = if explored {
            rng.random_range(0..count)
        } else {
            thompson_pick(&candidates, w, config.cost_tolerance, rng)
        };
        let probability = if count == 1 {
            1.0
        } else if epsilon >= 1.0 {
            1.0 / count as f64
        } else {
            let wins = (0..samples)
                .filter(|_| thompson_pick(&candidates, w, config.cost_tolerance, rng) == index)
                .count();
            let thompson_share = (wins as f64 + 1.0) / (f64::from(samples) + 1.0);
            epsilon / count as f64 + (1.0 - epsilon) * thompson_share
        };
        let chosen = &candidates[index];
        let Some(value) = materialise(&chosen.key, chosen.stats, space, rng) else {
            continue;
        };
        parameters.insert(name.clone(), value.clone());
        learned.insert(
            name,
            LearnedValue {
                value,
                key: chosen.key.clone(),
                probability,
                explored,
                candidates: count,
            },
        );
    }
    let mut given_names: Vec<String> = given.keys().cloned().collect();
    given_names.sort();
    let timeout_ms = learned_timeout_for(aggregates, &parameters, &config.timeout);
    Choice {
        parameters,
        learned,
        given: given_names,
        timeout_ms,
    }
}

fn candidates<'a>(
    aggregates: &'a Aggregates,
    evidence: &EvidenceMap,
    name: &str,
    space: Option<&ParameterSpace>,
) -> Vec<Candidate<'a>> {
    let observed = aggregates.parameters.get(name);
    let stats_of = |key: &ValueKey| observed.and_then(|values| values.get(key));
    let evidence_of = |key: &ValueKey| {
        evidence
            .get(name)
            .and_then(|values| values.get(key))
            .copied()
    };
    match space {
        Some(space) => space
            .candidate_keys()
            .into_iter()
            .map(|key| Candidate {
                stats: stats_of(&key),
                evidence: evidence_of(&key),
                key,
            })
            .collect(),
        None => observed
            .into_iter()
            .flatten()
            .filter(|(key, stats)| {
                stats.outcome.runs > 0 && (key.bucket().is_none() || stats.range.is_some())
            })
            .map(|(key, stats)| Candidate {
                key: key.clone(),
                stats: Some(stats),
                evidence: evidence_of(key),
            })
            .collect(),
    }
}

/// One round of Thompson sampling: the index of the candidate with the highest utility draw
/// (ties: the first); with a cost tolerance, the cheapest of the candidates whose draw is
/// within it of the best (see `LearningConfig::cost_tolerance`).
fn thompson_pick<R: Rng + ?Sized>(
    candidates: &[Candidate<'_>],
    w: f64,
    cost_tolerance: f64,
    rng: &mut R,
) -> usize {
    let draws: Vec<f64> = candidates.iter().map(|c| utility_draw(c, w, rng)).collect();
    let mut best = (0, f64::NEG_INFINITY);
    for (index, draw) in draws.iter().enumerate() {
        if *draw > best.1 {
            best = (index, *draw);
        }
    }
    let tolerance = if cost_tolerance.is_nan() {
        0.0
    } else {
        cost_tolerance.clamp(0.0, 1.0)
    };
    let costed = candidates
        .iter()
        .any(|c| c.stats.is_some_and(|s| !s.cost.is_empty()));
    if tolerance == 0.0 || !costed {
        return best.0;
    }
    let floor = best.1 * (1.0 - tolerance);
    let cost = |c: &Candidate<'_>| c.stats.and_then(|s| s.cost.mean_usd()).unwrap_or(0.0);
    let mut pick = best.0;
    for (index, candidate) in candidates.iter().enumerate() {
        if draws[index] < floor {
            continue;
        }
        let (c, p) = (cost(candidate), cost(&candidates[pick]));
        if c < p || (c == p && draws[index] > draws[pick]) {
            pick = index;
        }
    }
    pick
}

/// A draw of a candidate's utility from its posteriors.
fn utility_draw<R: Rng + ?Sized>(candidate: &Candidate<'_>, w: f64, rng: &mut R) -> f64 {
    let (success, impact) = match candidate.evidence {
        Some(evidence) => (evidence.success_posterior(), evidence.impact_posterior()),
        None => (BetaPosterior::UNIFORM, BetaPosterior::UNIFORM),
    };
    let p = success.sample(rng);
    if w > 0.0 {
        LearningConfig::utility(p, impact.sample(rng), w)
    } else {
        p
    }
}

/// A concrete value for a chosen key.
fn materialise<R: Rng + ?Sized>(
    key: &ValueKey,
    stats: Option<&ValueStats>,
    space: Option<&ParameterSpace>,
    rng: &mut R,
) -> Option<Value> {
    if let Some(value) = space.and_then(|space| space.sample_value(key, rng)) {
        return Some(value);
    }
    if let Some(value) = key.categorical_value() {
        return Some(value);
    }
    let bucket = key.bucket()?;
    let range = stats?.range?;
    sample_in_bucket(bucket, range.min, range.max, range.integral, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::Execution;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn observe_n(
        aggregates: &mut Aggregates,
        parameters: Value,
        successes: usize,
        failures: usize,
    ) {
        let parameters = parameters.as_object().cloned().unwrap();
        for i in 0..successes + failures {
            aggregates.observe(&Execution {
                parameters: parameters.clone(),
                success: i < successes,
                duration_ms: 1_000,
                impact_score: None,
                failure_reason: None,
                cost_usd: None,
                timed_out: false,
            });
        }
    }

    fn space() -> LearningConfig {
        let mut config = LearningConfig::default();
        config.search_space.insert(
            "genre".into(),
            ParameterSpace::Categorical {
                values: vec![json!("pop"), json!("rock"), json!("metal")],
            },
        );
        config.search_space.insert(
            "bpm".into(),
            ParameterSpace::Numeric {
                min: 60.0,
                max: 180.0,
                integer: true,
            },
        );
        config
    }

    #[test]
    fn fills_only_what_is_missing() {
        let config = space();
        let mut rng = StdRng::seed_from_u64(1);
        let given = json!({"genre": "jazz", "seed": 7})
            .as_object()
            .cloned()
            .unwrap();
        let choice = choose(&Aggregates::new(), &given, &config, &mut rng);
        assert_eq!(choice.parameters["genre"], json!("jazz"));
        assert_eq!(choice.parameters["seed"], json!(7));
        assert_eq!(choice.given, vec!["genre".to_owned(), "seed".to_owned()]);
        assert_eq!(choice.learned.keys().collect::<Vec<_>>(), vec!["bpm"]);
        let bpm = choice.parameters["bpm"].as_i64().unwrap();
        assert!((60..=180).contains(&bpm));
        let learned = &choice.learned["bpm"];
        assert!(learned.probability > 0.0 && learned.probability <= 1.0);
        assert_eq!(choice.probability(), learned.probability);
        assert_eq!(choice.timeout_ms, None);
    }

    #[test]
    fn nothing_to_fill_without_data_or_space() {
        let mut rng = StdRng::seed_from_u64(1);
        let choice = choose(
            &Aggregates::new(),
            &Map::new(),
            &LearningConfig::default(),
            &mut rng,
        );
        assert!(choice.parameters.is_empty() && choice.learned.is_empty());
        assert_eq!(choice.probability(), 1.0);
    }

    #[test]
    fn exploits_a_clear_winner_but_keeps_exploring() {
        let config = space();
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"genre": "pop", "bpm": 120}), 90, 10);
        observe_n(
            &mut aggregates,
            json!({"genre": "rock", "bpm": 120}),
            50,
            50,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "metal", "bpm": 120}),
            10,
            90,
        );
        let mut rng = StdRng::seed_from_u64(3);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut probability_of_pop = 0.0;
        for _ in 0..1_000 {
            let choice = choose(&aggregates, &Map::new(), &config, &mut rng);
            let genre = choice.parameters["genre"].as_str().unwrap().to_owned();
            if genre == "pop" {
                probability_of_pop = choice.learned["genre"].probability;
            }
            *counts.entry(genre).or_default() += 1;
        }
        // Thompson sampling almost always picks pop; the 5 % uniform share still tries the others
        // (about 1.7 % each).
        assert!(counts["pop"] > 950, "{counts:?}");
        assert!(counts.get("metal").copied().unwrap_or(0) >= 3, "{counts:?}");
        // Logged probability ≈ 0.05/3 + 0.95 × ~1.
        assert!(probability_of_pop > 0.95 && probability_of_pop <= 1.0);
    }

    #[test]
    fn lucky_early_value_does_not_lock_in() {
        // One success of an unseen-before value versus a solid 80 %: Thompson sampling keeps
        // trying the lucky value often (its posterior is wide), but does not always take it.
        let mut config = space();
        config.exploration_share = 0.0;
        config.search_space.remove("bpm");
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"genre": "pop"}), 80, 20);
        observe_n(&mut aggregates, json!({"genre": "rock"}), 1, 0);
        let mut rng = StdRng::seed_from_u64(4);
        let rock = (0..2_000)
            .filter(|_| {
                choose(&aggregates, &Map::new(), &config, &mut rng).parameters["genre"] == "rock"
            })
            .count();
        // Beta(2,1) beats Beta(81,21) with probability ≈ 0.35 … 0.45 (metal, unseen, also gets
        // some picks).
        assert!((400..1_200).contains(&rock), "{rock}");
    }

    #[test]
    fn uses_observed_values_without_a_space() {
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"temperature": 0.7}), 10, 0);
        observe_n(&mut aggregates, json!({"temperature": 0.71}), 10, 0);
        let config = LearningConfig {
            exploration_share: f64::NAN,
            ..LearningConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(5);
        let choice = choose(&aggregates, &Map::new(), &config, &mut rng);
        let t = choice.parameters["temperature"].as_f64().unwrap();
        assert!((0.7..=0.71).contains(&t), "{t}");
        assert!(!choice.learned["temperature"].explored);
    }

    #[test]
    fn full_exploration_is_uniform() {
        let mut config = space();
        config.exploration_share = 1.0;
        let mut rng = StdRng::seed_from_u64(6);
        let choice = choose(&Aggregates::new(), &Map::new(), &config, &mut rng);
        assert!(choice.learned.values().all(|l| l.explored));
        assert!((choice.learned["genre"].probability - 1.0 / 3.0).abs() < 1e-12);
    }

    /// A closed loop: the learner picks a model, the (simulated) agent runs it with the given
    /// success rate and cost, the learner observes it. Returns how often each model was picked
    /// in the last `tail` rounds.
    fn model_loop(
        config: &LearningConfig,
        models: &[(&str, f64, f64)],
        rounds: usize,
        tail: usize,
        seed: u64,
    ) -> BTreeMap<String, usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut aggregates = Aggregates::new();
        let mut picked = BTreeMap::new();
        for round in 0..rounds {
            let choice = choose(&aggregates, &Map::new(), config, &mut rng);
            let model = choice.parameters["model"].as_str().unwrap().to_string();
            let (_, success_rate, cost) = models.iter().find(|m| m.0 == model).unwrap();
            let success = rng.random::<f64>() < *success_rate;
            aggregates.observe(&Execution {
                parameters: choice.parameters.clone(),
                success,
                duration_ms: 100,
                impact_score: None,
                failure_reason: None,
                cost_usd: Some(*cost),
                timed_out: false,
            });
            if round >= rounds - tail {
                *picked.entry(model).or_insert(0) += 1;
            }
        }
        picked
    }

    fn models_space() -> LearningConfig {
        let mut config = LearningConfig::default();
        config.search_space.insert(
            "model".into(),
            ParameterSpace::Categorical {
                values: vec![json!("openai/gpt-4o"), json!("openai/gpt-4o-mini")],
            },
        );
        config
    }

    #[test]
    fn between_models_that_succeed_equally_the_cheaper_one_wins() {
        let config = models_space();
        let models = [
            ("openai/gpt-4o", 0.98, 0.010),
            ("openai/gpt-4o-mini", 0.98, 0.0006),
        ];
        for seed in 1..=5 {
            let picked = model_loop(&config, &models, 400, 100, seed);
            let mini = picked.get("openai/gpt-4o-mini").copied().unwrap_or(0);
            // The exploration share (5 %) still tries the other now and then.
            assert!(mini >= 85, "seed {seed}: {picked:?}");
        }
        // Without the tolerance, cost plays no part: neither model dominates.
        let no_cost = LearningConfig {
            cost_tolerance: 0.0,
            ..models_space()
        };
        let picked = model_loop(&no_cost, &models, 400, 100, 7);
        let mini = picked.get("openai/gpt-4o-mini").copied().unwrap_or(0);
        assert!((15..=85).contains(&mini), "{picked:?}");
    }

    #[test]
    fn a_cheaper_model_that_fails_more_is_not_chosen_for_its_price() {
        let config = models_space();
        let models = [
            ("openai/gpt-4o", 0.97, 0.010),
            ("openai/gpt-4o-mini", 0.6, 0.0006),
        ];
        for seed in 1..=5 {
            let picked = model_loop(&config, &models, 400, 100, seed);
            let big = picked.get("openai/gpt-4o").copied().unwrap_or(0);
            assert!(big >= 85, "seed {seed}: {picked:?}");
        }
    }

    #[test]
    fn value_costs_merge_like_the_rest() {
        let mut a = Aggregates::new();
        let mut b = Aggregates::new();
        let run = |cost| Execution {
            parameters: json!({"model": "m"}).as_object().cloned().unwrap(),
            success: true,
            duration_ms: 1,
            impact_score: None,
            failure_reason: None,
            cost_usd: cost,
            timed_out: false,
        };
        a.observe(&run(Some(0.25)));
        b.observe(&run(Some(0.75)));
        b.observe(&run(None));
        let merged = Aggregates::merged(&a, &b);
        let stats = &merged.parameters["model"][&ValueKey::of(&json!("m")).unwrap()];
        assert_eq!(stats.cost.runs, 2);
        assert_eq!(stats.cost.mean_usd(), Some(0.5));
        assert_eq!(stats.outcome.runs, 3);
    }

    #[test]
    fn the_recommended_model_is_the_cheaper_of_two_that_do_equally_well() {
        let run = |model: &str, success: bool, cost: f64| Execution {
            parameters: json!({"model": model}).as_object().cloned().unwrap(),
            success,
            duration_ms: 10,
            impact_score: None,
            failure_reason: None,
            cost_usd: Some(cost),
            timed_out: false,
        };
        let config = models_space();
        let mut equal = Aggregates::new();
        for _ in 0..30 {
            equal.observe(&run("big", true, 0.01));
            equal.observe(&run("mini", true, 0.0006));
        }
        let ranked = crate::recommend::rank_values(&equal, "model", &config);
        assert_eq!(ranked[0].value, json!("mini"), "{ranked:?}");
        assert_eq!(ranked[0].cost_per_run_usd, Some(0.0006));
        assert_eq!(ranked[1].cost_per_run_usd, Some(0.01));
        let mut worse = Aggregates::new();
        for i in 0..30 {
            worse.observe(&run("big", true, 0.01));
            worse.observe(&run("mini", i % 2 == 0, 0.0006));
        }
        let ranked = crate::recommend::rank_values(&worse, "model", &config);
        assert_eq!(ranked[0].value, json!("big"), "{ranked:?}");
    }
}
