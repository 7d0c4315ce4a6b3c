//! The hooks for sharing one state across instances: remote state, versions, coordinated
//! trials.

use std::time::Duration;

use jarvis_breaker::{Event, Origin, RejectReason, RemoteState, State};

use crate::helpers::*;

fn remote(state: State, version: u64) -> RemoteState {
    RemoteState {
        state,
        forced: false,
        consecutive_failures: 5,
        half_open_successes: 0,
        next_attempt_in: Some(Duration::from_secs(10)),
        version,
    }
}

#[test]
fn a_remote_open_is_applied_reported_as_remote_and_not_counted_locally() {
    let (b, clock, rec) = defaults();
    let before = b.try_acquire().unwrap(); // admitted under the old generation
    assert!(b.apply_remote(remote(State::Open, 1)));
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.failure_count, s.remote_version),
        (State::Open, 5, Some(1))
    );
    assert_eq!(s.next_attempt_at, Some(epoch() + Duration::from_secs(10)));
    let t = rec.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].origin, t[0].to), (Origin::Remote, State::Open));
    // A late outcome from before the remote state moves nothing.
    before.failure("late");
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(10))
    );
    clock.advance(Duration::from_secs(10));
    assert!(b.try_acquire().unwrap().is_trial());
}

#[test]
fn stale_versions_are_ignored_and_own_writes_are_not_echoed() {
    let (b, _, _) = defaults();
    assert!(b.apply_remote(remote(State::Open, 5)));
    assert!(!b.apply_remote(remote(State::Closed, 4)));
    assert!(!b.apply_remote(remote(State::Closed, 5)));
    assert_eq!(b.state(), State::Open);
    b.set_remote_version(9);
    assert!(!b.apply_remote(remote(State::Closed, 9)));
    assert!(b.apply_remote(remote(State::Closed, 10)));
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn remote_counts_in_the_same_state_keep_the_generation() {
    let (b, _, rec) = defaults();
    let p = b.try_acquire().unwrap();
    let mut r = remote(State::Closed, 1);
    r.consecutive_failures = 4;
    assert!(b.apply_remote(r));
    assert_eq!(b.generation(), 0);
    assert!(rec.transitions().is_empty());
    // The cluster has seen 4 failures; the fifth, local, opens the circuit here.
    p.failure("fifth");
    assert_eq!(b.state(), State::Open);
    assert_eq!(rec.transitions()[0].origin, Origin::Local);
}

#[test]
fn a_remote_half_open_means_the_trial_runs_elsewhere_until_its_lease_expires() {
    let (b, clock, _) = defaults();
    fail(&b, 5);
    let mut r = remote(State::HalfOpen, 1);
    r.next_attempt_in = Some(Duration::from_secs(30)); // the other instance's lease
    assert!(b.apply_remote(r));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::AwaitingTrial
    );
    clock.advance(Duration::from_secs(30));
    let trial = b.try_acquire().expect("lease expired: take the trial here");
    assert!(trial.is_trial());
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    trial.success();
}

#[test]
fn a_remote_forced_open_holds() {
    let (b, clock, _) = defaults();
    let mut r = remote(State::Open, 1);
    r.forced = true;
    assert!(b.apply_remote(r));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::ForcedOpen
    );
    assert!(b.snapshot().forced);
}

#[test]
fn coordinated_trials_wait_for_a_grant() {
    let (b, clock, rec) = breaker_with(|b| b.coordinated_trials(true));
    fail(&b, 5);
    let generation = b.generation();
    clock.advance(MINUTE);
    for _ in 0..3 {
        assert_eq!(
            b.try_acquire().unwrap_err().reason(),
            RejectReason::AwaitingTrial
        );
    }
    let due: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::TrialDue { .. }))
        .collect();
    assert_eq!(due, [Event::TrialDue { generation }], "reported once");
    assert!(!b.grant_trial(generation + 7), "wrong generation");
    assert!(b.grant_trial(generation));
    assert!(!b.grant_trial(generation), "already granted");
    let trial = b.try_acquire().unwrap();
    assert!(trial.is_trial());
    trial.success();
    succeed(&b, 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn coordination_can_be_switched_off_when_the_store_is_down() {
    let (b, clock, _) = breaker_with(|b| b.coordinated_trials(true));
    fail(&b, 5);
    clock.advance(MINUTE);
    assert!(b.try_acquire().is_err());
    b.set_coordinated(false);
    assert!(b.try_acquire().unwrap().is_trial());
}

#[test]
fn state_names_round_trip() {
    for s in [State::Closed, State::Open, State::HalfOpen] {
        assert_eq!(State::parse(s.as_str()), Some(s));
    }
    assert_eq!(State::HalfOpen.to_string(), "HALF_OPEN");
    assert_eq!(State::parse("half_open"), None);
}
