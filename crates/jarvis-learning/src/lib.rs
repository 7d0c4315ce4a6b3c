//! The learning library of Jarvis: what to run next, learned from what ran before.
//!
//! Jarvis records every task execution (parameters, success, duration, impact score, failure
//! reason, cost). This crate turns those records into decisions, with no database, no I/O and no
//! async — the server feeds it and stores what it returns. Its state is a set of mergeable,
//! serialisable [`Aggregates`] per domain/action, so several Jarvis instances can update their
//! own and combine them through the store in any order.
//!
//! # Code map
//!
//! - [`estimate`] — success rates with uncertainty: Wilson interval, Beta posterior, Φ.
//! - [`value_key`] — how a JSON parameter value becomes a countable key (numbers as buckets).
//! - [`sketch`] — DDSketch, a mergeable quantile sketch for durations.
//! - [`failure`] — failure messages normalised into templates, fingerprints and groups.
//! - [`adjust`] — per-value evidence corrected for the other parameters of the same runs.
//! - [`aggregates`] — [`Execution`] in, [`Aggregates`] out: `observe` and `merge`.
//! - [`config`] — [`LearningConfig`], the objective, and the optional [`ParameterSpace`].
//! - [`recommend`](mod@recommend) — [`recommend()`]: the best parameters, their confidence, alternatives.
//! - [`explore`] — [`choose`]: factored Thompson sampling for the parameters a caller left out.
//! - [`forecast`] — [`Forecaster`]: smoothed latency and error rate, and the chance of a circuit trip ahead.
//! - [`forecast_sim`] — generated outages and noise that measure how early and how falsely it warns.
//! - [`timeout`] — the learned timeout and the warning for a timeout that is too short.
//! - [`slo`] — objectives and multiwindow, multi-burn-rate alerts.
//! - [`sim`] — a simulated agent and an experiment that measures what learning gains.
//!
//! # Use by the server
//!
//! ```
//! use jarvis_learning::{choose, recommend, Aggregates, Execution, LearningConfig};
//! use rand::SeedableRng;
//! use serde_json::{json, Map};
//!
//! let config = LearningConfig::default();
//! let mut aggregates = Aggregates::new();
//! for i in 0..40 {
//!     aggregates.observe(&Execution {
//!         parameters: json!({"genre": if i % 2 == 0 { "pop" } else { "metal" }})
//!             .as_object().cloned().unwrap(),
//!         success: i % 2 == 0 || i % 5 == 0,
//!         duration_ms: 1_000 + i,
//!         impact_score: Some(70.0),
//!         failure_reason: Some(format!("render failed after {i} ms")),
//!         cost_usd: None,
//!         timed_out: false,
//!     });
//! }
//! let recommendation = recommend(&aggregates, &config);
//! assert_eq!(recommendation.parameters["genre"], "pop");
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let choice = choose(&aggregates, &Map::new(), &config, &mut rng);
//! assert!(choice.learned["genre"].probability > 0.0);
//! ```
//!
//! # Invariants
//!
//! - Pure: no I/O, no clock, no global state; randomness only through the caller's RNG.
//! - `merge` is exactly associative and commutative, with `Aggregates::new()` as identity.
//! - Every stored type round-trips through serde (JSON field names are camelCase).
//! - No panics on odd input: NaN, negative or out-of-range numbers are clamped or ignored as
//!   each item documents.

pub mod adjust;
pub mod aggregates;
pub mod config;
pub mod estimate;
pub mod explore;
pub mod failure;
pub mod forecast;
pub mod forecast_sim;
pub mod recommend;
pub mod sim;
pub mod sketch;
pub mod slo;
pub mod timeout;
pub mod value_key;

pub use aggregates::{Aggregates, Execution, OutcomeStats, Summary, ValueStats};
pub use config::{LearningConfig, ParameterSpace};
pub use estimate::{normal_cdf, success_rate, wilson_interval, BetaPosterior, Interval, Z_95};
pub use explore::{choose, Choice, LearnedValue};
pub use failure::{cluster_templates, fingerprint, normalize, FailureGroups, Fingerprint};
pub use forecast::{Forecast, ForecastConfig, Forecaster, Limits, Outcome};
pub use recommend::{
    rank_values, recommend, Alternative, Recommendation, RecommendationSource, ValueEstimate,
};
pub use sketch::DurationSketch;
pub use timeout::{
    learned_timeout, learned_timeout_for, timeout_warning, why_no_learned_timeout, TimeoutPolicy,
    TimeoutWarning,
};
pub use value_key::ValueKey;
