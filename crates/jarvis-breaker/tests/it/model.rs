//! Property tests: random sequences of calls, held permits and time steps, checked step by
//! step against a small reference model of the state machine.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use jarvis_breaker::{Breaker, FailureRate, ManualClock, Permit, State, Window};
use proptest::prelude::*;

const THRESHOLD: u32 = 3;
const OPEN_MS: u64 = 1_000;
const MAX_OPEN_MS: u64 = 4_000;
const MAX_TRIALS: u32 = 2;
const TO_CLOSE: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Success,
    Failure,
    Ignore,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Acquire and report at once.
    Call(Report),
    /// Acquire and keep the permit.
    Hold,
    /// Report the outcome of the held permit at this index (modulo the count).
    Finish(usize, Report),
    /// Let time pass.
    Advance(u64),
}

fn report() -> impl Strategy<Value = Report> {
    prop_oneof![
        3 => Just(Report::Success),
        3 => Just(Report::Failure),
        1 => Just(Report::Ignore),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => report().prop_map(Op::Call),
        2 => Just(Op::Hold),
        2 => (any::<usize>(), report()).prop_map(|(i, r)| Op::Finish(i, r)),
        3 => prop_oneof![0u64..200, Just(OPEN_MS), 0u64..5_000].prop_map(Op::Advance),
    ]
}

/// The reference model: the rules of the issue, written as plainly as possible.
#[derive(Debug)]
struct Model {
    state: State,
    generation: u64,
    failures: u32,
    successes: u32,
    in_flight: u32,
    open_until: u64,
    level: u32,
    now: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            state: State::Closed,
            generation: 0,
            failures: 0,
            successes: 0,
            in_flight: 0,
            open_until: 0,
            level: 0,
            now: 0,
        }
    }

    /// `Some((generation, trial))` when admitted.
    fn acquire(&mut self) -> Option<(u64, bool)> {
        match self.state {
            State::Closed => Some((self.generation, false)),
            State::Open => {
                if self.now < self.open_until {
                    return None;
                }
                self.state = State::HalfOpen;
                self.generation += 1;
                self.successes = 0;
                self.in_flight = 1;
                Some((self.generation, true))
            }
            State::HalfOpen => {
                if self.in_flight < MAX_TRIALS {
                    self.in_flight += 1;
                    Some((self.generation, true))
                } else {
                    None
                }
            }
        }
    }

    fn open(&mut self) {
        let period = (OPEN_MS << self.level.min(10)).min(MAX_OPEN_MS);
        self.state = State::Open;
        self.generation += 1;
        self.open_until = self.now + period;
        self.successes = 0;
        self.in_flight = 0;
    }

    fn report(&mut self, (generation, trial): (u64, bool), report: Report) {
        if generation != self.generation {
            return;
        }
        match report {
            Report::Success => {
                self.failures = 0;
                if trial {
                    self.successes += 1;
                    if self.successes >= TO_CLOSE {
                        self.state = State::Closed;
                        self.generation += 1;
                        self.successes = 0;
                        self.in_flight = 0;
                        self.level = 0;
                    } else {
                        self.in_flight -= 1;
                    }
                }
            }
            Report::Failure => {
                self.failures += 1;
                if trial {
                    self.level += 1;
                    self.open();
                } else if self.failures >= THRESHOLD {
                    self.open();
                }
            }
            Report::Ignore => {
                if trial {
                    self.in_flight -= 1;
                }
            }
        }
    }
}

fn finish(permit: Permit<'_>, report: Report) {
    match report {
        Report::Success => permit.success(),
        Report::Failure => permit.failure("model failure"),
        Report::Ignore => permit.ignore(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn consecutive_policy_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new());
        let b = Breaker::builder("model")
            .clock(clock.clone())
            .failure_threshold(THRESHOLD)
            .open_duration(Duration::from_millis(OPEN_MS))
            .backoff(2.0, Duration::from_millis(MAX_OPEN_MS))
            .half_open_max_trials(MAX_TRIALS)
            .successes_to_close(TO_CLOSE)
            .build()
            .unwrap();
        let mut m = Model::new();
        let mut held: Vec<(Permit<'_>, (u64, bool))> = Vec::new();
        let (mut admitted, mut rejected) = (0u64, 0u64);

        for op in ops {
            match op {
                Op::Call(r) => {
                    let expected = m.acquire();
                    let got = b.try_acquire();
                    prop_assert_eq!(got.is_ok(), expected.is_some(), "admission after {:?}", m);
                    if let (Ok(p), Some(t)) = (got, expected) {
                        prop_assert_eq!((p.generation(), p.is_trial()), t);
                        admitted += 1;
                        finish(p, r);
                        m.report(t, r);
                    } else {
                        rejected += 1;
                    }
                }
                Op::Hold => {
                    let expected = m.acquire();
                    let got = b.try_acquire();
                    prop_assert_eq!(got.is_ok(), expected.is_some(), "admission after {:?}", m);
                    if let (Ok(p), Some(t)) = (got, expected) {
                        admitted += 1;
                        held.push((p, t));
                    } else {
                        rejected += 1;
                    }
                }
                Op::Finish(i, r) => {
                    if !held.is_empty() {
                        let (p, t) = held.swap_remove(i % held.len());
                        finish(p, r);
                        m.report(t, r);
                    }
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    m.now += ms;
                }
            }
            let s = b.snapshot();
            prop_assert_eq!(s.state, m.state);
            prop_assert_eq!(s.generation, m.generation);
            prop_assert_eq!(s.failure_count, m.failures);
            if m.state == State::HalfOpen {
                prop_assert_eq!(s.success_count, m.successes);
                prop_assert_eq!(s.trials_in_flight, m.in_flight);
            }
            prop_assert_eq!(s.rejected_calls, rejected);
            prop_assert_eq!(s.total_calls, admitted - held.len() as u64 + rejected);
        }
    }

    #[test]
    fn failure_rate_count_window_matches_the_model(
        outcomes in proptest::collection::vec(any::<bool>(), 1..300),
        size in 1u32..20,
        min_pct in 1u32..=100,
        threshold_pct in 1u32..=100,
    ) {
        let minimum = (size * min_pct).div_ceil(100).max(1);
        let threshold = f64::from(threshold_pct) / 100.0;
        let b = Breaker::builder("rate")
            .failure_rate(FailureRate {
                window: Window::Count(size),
                minimum_calls: minimum,
                threshold,
                slow_call: None,
            })
            .build()
            .unwrap();
        let mut window: VecDeque<bool> = VecDeque::new();
        for failed in outcomes {
            let p = b.try_acquire().unwrap();
            if failed { p.failure("x") } else { p.success() }
            if window.len() == size as usize {
                window.pop_front();
            }
            window.push_back(failed);
            let failures = window.iter().filter(|f| **f).count() as f64;
            let should_open = window.len() >= minimum as usize
                && failures / window.len() as f64 >= threshold;
            prop_assert_eq!(b.state() == State::Open, should_open);
            if should_open {
                // Start again from an empty window.
                b.force_closed();
                window.clear();
            }
        }
    }
}
