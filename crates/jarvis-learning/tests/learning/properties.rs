//! Properties that must hold for any input: merge laws, serde round trips, fingerprint
//! stability, estimator bounds.

use jarvis_learning::{
    fingerprint, normalize, wilson_interval, Aggregates, DurationSketch, Execution, Z_95,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn parameters() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::option::of(prop::sample::select(vec!["pop", "rock", "metal"])),
        prop::option::of(-5i64..300),
        prop::option::of(-2.0f64..2.0),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(genre, bpm, temperature, flag)| {
            let mut map = Map::new();
            if let Some(genre) = genre {
                map.insert("genre".into(), json!(genre));
            }
            if let Some(bpm) = bpm {
                map.insert("bpm".into(), json!(bpm));
            }
            if let Some(t) = temperature {
                map.insert("temperature".into(), json!(t));
            }
            if let Some(flag) = flag {
                map.insert("flag".into(), json!(flag));
            }
            map
        })
}

fn execution() -> impl Strategy<Value = Execution> {
    (
        parameters(),
        any::<bool>(),
        0u64..200_000,
        prop::option::of(-10.0f64..120.0),
        prop::option::of(0u32..100_000),
        prop::option::of(0.0f64..2.0),
        any::<bool>(),
    )
        .prop_map(
            |(parameters, success, duration_ms, impact, reason, cost, timed_out)| Execution {
                parameters,
                success,
                duration_ms,
                impact_score: impact,
                failure_reason: reason.map(|n| match n % 3 {
                    0 => format!("timeout after {n} ms"),
                    1 => format!("upstream 10.0.0.{}:80 returned 503", n % 255),
                    _ => format!("render failed for genre g{}", n % 4),
                }),
                cost_usd: cost,
                timed_out,
            },
        )
}

fn aggregates() -> impl Strategy<Value = Aggregates> {
    prop::collection::vec(execution(), 0..25).prop_map(|executions| {
        let mut aggregates = Aggregates::new();
        for execution in &executions {
            aggregates.observe(execution);
        }
        aggregates
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_is_commutative(a in aggregates(), b in aggregates()) {
        prop_assert_eq!(Aggregates::merged(&a, &b), Aggregates::merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in aggregates(), b in aggregates(), c in aggregates()) {
        let left = Aggregates::merged(&Aggregates::merged(&a, &b), &c);
        let right = Aggregates::merged(&a, &Aggregates::merged(&b, &c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn empty_is_the_identity(a in aggregates()) {
        prop_assert_eq!(Aggregates::merged(&a, &Aggregates::new()), a.clone());
        prop_assert_eq!(Aggregates::merged(&Aggregates::new(), &a), a);
    }

    #[test]
    fn merging_partitions_equals_observing_all(executions in prop::collection::vec(execution(), 0..40), split in 0usize..40) {
        let split = split.min(executions.len());
        let (mut all, mut left, mut right) = (Aggregates::new(), Aggregates::new(), Aggregates::new());
        for (i, execution) in executions.iter().enumerate() {
            all.observe(execution);
            if i < split { left.observe(execution) } else { right.observe(execution) };
        }
        prop_assert_eq!(Aggregates::merged(&left, &right), all);
    }

    #[test]
    fn aggregates_round_trip_through_json(a in aggregates()) {
        let json = serde_json::to_string(&a).unwrap();
        let back: Aggregates = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn fingerprints_ignore_the_varying_parts(
        n1 in 0u64..10_000_000, n2 in 0u64..10_000_000,
        ip in (0u8..=255, 0u8..=255), port in 1u16..65535,
        id in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        word in "[a-z]{1,12}",
    ) {
        let message = |n: u64, ip: (u8, u8), port: u16, id: &str, word: &str| {
            format!("task {id} timed out after {n} ms calling 10.0.{}.{}:{port} with key '{word}'", ip.0, ip.1)
        };
        prop_assert_eq!(
            fingerprint(&message(n1, ip, port, &id, &word)),
            fingerprint(&message(n2, (ip.1, ip.0), 8080, "00000000-0000-0000-0000-000000000000", "x"))
        );
    }

    #[test]
    fn normalisation_is_bounded_and_idempotent(message in "[ -~]{0,300}") {
        let template = normalize(&message);
        prop_assert!(template.chars().count() <= jarvis_learning::failure::MAX_TEMPLATE_CHARS);
        prop_assert_eq!(normalize(&template), template.clone());
        prop_assert_eq!(fingerprint(&message), fingerprint(&message));
    }

    #[test]
    fn wilson_interval_is_a_valid_interval(successes in 0u64..10_000, runs in 0u64..10_000, z in 0.0f64..5.0) {
        let interval = wilson_interval(successes, runs, z);
        prop_assert!(0.0 <= interval.lower && interval.lower <= interval.upper && interval.upper <= 1.0);
        if runs > 0 {
            let p = successes.min(runs) as f64 / runs as f64;
            prop_assert!(interval.lower <= p + 1e-12 && p - 1e-12 <= interval.upper);
        }
        // A wider z never gives a narrower interval.
        let wider = wilson_interval(successes, runs, z + 1.0);
        prop_assert!(wider.lower <= interval.lower + 1e-12 && wider.upper + 1e-12 >= interval.upper);
        let _ = Z_95;
    }

    #[test]
    fn sketch_quantiles_are_within_one_percent(values in prop::collection::vec(1u64..10_000_000, 1..300), q in 0.0f64..=1.0) {
        let mut sketch = DurationSketch::new();
        values.iter().for_each(|v| sketch.add(*v));
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        let truth = sorted[rank] as f64;
        let estimate = sketch.quantile(q).unwrap() as f64;
        prop_assert!((estimate - truth).abs() <= 0.01 * truth + 1.0, "q{} estimate {} truth {}", q, estimate, truth);
    }
}
