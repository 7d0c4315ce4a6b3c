//! The queue's time-driven decisions on a manual clock: retry backoff, lease expiry and the
//! reclaimer's wait after store trouble. A real (SQLite) store in a temporary directory; the
//! clock moves only when a test moves it, so nothing here sleeps.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rand::SeedableRng;
use serde_json::json;

use super::attempt::backoff;
use super::*;
use crate::breakers::metrics::BreakerMetrics;
use crate::clock::{Clock, ManualClock};
use crate::config::{BreakerDefaults, StoreConfig};
use crate::metrics::Metrics;
use crate::tasks::input::TaskInput;

/// A queue without workers (nothing claims on its own) on a fresh SQLite store, reading time
/// from `clock`.
struct Fixture {
    queue: Arc<TaskQueue>,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    settings: TaskSettings,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open(&StoreConfig::Sqlite {
        path: dir.path().join("jarvis.db"),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let breakers = Arc::new(BreakerRegistry::new(
        BreakerDefaults::default(),
        BTreeMap::new(),
        Arc::new(BreakerMetrics::new(metrics.clone())),
    ));
    let (recorder, _task) = Recorder::start(store.clone(), dir.path(), metrics.clone());
    // A wall clock in the past (2024-01-01T00:00:00Z): whatever the real time, only this
    // clock's moves count.
    let clock = Arc::new(ManualClock::starting_at(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200),
    ));
    let settings = TaskSettings {
        workers_enabled: false,
        ..TaskSettings::default()
    };
    let queue = TaskQueue::new(QueueParts {
        store: store.clone(),
        breakers,
        builtins: crate::tasks::agents::BuiltinAgents::with_defaults(),
        recorder,
        metrics: Arc::new(TaskMetrics::new(metrics)),
        settings,
        concurrency: 2,
        instance: "test-instance".into(),
        clock: clock.clone(),
        ai: None,
    });
    queue.start().await;
    Fixture {
        queue,
        store,
        clock,
        settings,
        _dir: dir,
    }
}

impl Fixture {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        clock::utc(&*self.clock)
    }

    /// One task, stored and then claimed by `holder` at the clock's time, with the queue's
    /// lease.
    async fn claimed_by(&self, holder: &str) -> Task {
        let input: TaskInput =
            serde_json::from_value(json!({"domain": "billing", "action": "charge"})).unwrap();
        let new = input.validate("", "corr-1", self.now()).unwrap();
        self.store.insert_tasks(&[new], None).await.unwrap();
        let now = self.now();
        let lease = Lease {
            instance: holder,
            now,
            until: now + chrono::TimeDelta::milliseconds(self.settings.lease_ms as i64),
        };
        let mut claimed = self.store.claim_tasks(lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        claimed.remove(0)
    }

    async fn task(&self, id: Uuid) -> Task {
        self.store.get_task(id).await.unwrap().unwrap()
    }
}

#[test]
fn backoff_doubles_per_attempt_up_to_the_cap_with_equal_jitter() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for attempt in 1..=12u32 {
        let full = (1_000f64 * 2f64.powi(attempt as i32 - 1)).min(30_000.0);
        for _ in 0..200 {
            let d = backoff(1_000, 30_000, attempt, &mut rng).as_millis() as f64;
            assert!(
                d >= (full / 2.0).round() && d <= full,
                "attempt {attempt}: {d} ms outside [{}, {full}]",
                full / 2.0
            );
        }
    }
    // The jitter really spreads retries: 200 draws of one attempt are not all alike.
    let draws: HashSet<u128> = (0..200)
        .map(|_| backoff(1_000, 30_000, 3, &mut rng).as_millis())
        .collect();
    assert!(draws.len() > 50, "only {} distinct delays", draws.len());
    // No attempt number overflows the doubling.
    assert!(backoff(1_000, 30_000, u32::MAX, &mut rng).as_millis() <= 30_000);
}

#[tokio::test]
async fn a_failed_attempt_runs_again_after_its_backoff_on_the_queue_clock() {
    let f = fixture().await;
    let task = f.claimed_by("test-instance").await;
    f.clock.advance(Duration::from_millis(40));
    let failed_at = f.now();
    f.queue.finish(
        &task,
        task.started_at.unwrap(),
        f.clock.now(),
        AgentAnswer::Failure {
            reason: "upstream said no".into(),
        },
        false,
    );
    f.queue.flush_settlements().await;
    let after = f.task(task.id).await;
    assert_eq!(after.status, TaskStatus::Queued);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.error.as_deref(), Some("upstream said no"));
    let delay = (after.run_at - failed_at).num_milliseconds();
    let base = f.settings.retry_base_ms as i64;
    assert!(
        delay >= base / 2 && delay <= base,
        "retry {delay} ms after the failure, expected within [{}, {base}] of the queue clock",
        base / 2
    );
    // Not claimable before its time on the store's clock…
    let early = Lease {
        instance: "test-instance",
        now: failed_at + chrono::TimeDelta::milliseconds(base / 2 - 1),
        until: failed_at + chrono::TimeDelta::seconds(60),
    };
    assert!(f.store.claim_tasks(early, 10).await.unwrap().is_empty());
    // …and claimable once it is due.
    f.clock.advance(Duration::from_millis(base as u64 + 1));
    let due = Lease {
        instance: "test-instance",
        now: f.now(),
        until: f.now() + chrono::TimeDelta::seconds(60),
    };
    let again = f.store.claim_tasks(due, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_only_after_the_lease_has_passed() {
    let f = fixture().await;
    let task = f.claimed_by("dead-instance").await;
    let lease = Duration::from_millis(f.settings.lease_ms);
    assert_eq!(f.queue.reclaim_once().await, Some(0));
    f.clock.advance(lease - Duration::from_millis(1));
    assert_eq!(
        f.queue.reclaim_once().await,
        Some(0),
        "reclaimed before expiry"
    );
    assert_eq!(f.task(task.id).await.status, TaskStatus::Running);
    f.clock.advance(Duration::from_millis(2));
    assert_eq!(f.queue.reclaim_once().await, Some(1));
    let back = f.task(task.id).await;
    // Its agent was never called: the attempt is given back, not spent.
    assert_eq!(back.status, TaskStatus::Queued);
    assert_eq!(back.attempts, 0);
    assert_eq!(back.locked_by, None);
    assert_eq!(f.queue.reclaim_once().await, Some(0), "reclaimed twice");
}

#[tokio::test]
async fn the_reclaimer_waits_a_whole_lease_after_its_own_store_trouble() {
    let f = fixture().await;
    let task = f.claimed_by("cut-off-instance").await;
    let lease = Duration::from_millis(f.settings.lease_ms);
    f.clock.advance(lease + Duration::from_secs(1));
    // A store call of this instance failed just now: the holder may have been cut off from
    // the store too, and must get a lease's time to renew.
    f.queue.store_failed();
    assert_eq!(f.queue.reclaim_once().await, None);
    f.clock.advance(lease - Duration::from_millis(1));
    assert_eq!(f.queue.reclaim_once().await, None);
    assert_eq!(f.task(task.id).await.status, TaskStatus::Running);
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.queue.reclaim_once().await, Some(1));
    assert_eq!(f.task(task.id).await.status, TaskStatus::Queued);
}

/// A held task whose renewal matched nothing is stopped only when its row says it is no longer
/// this instance's: a task settled and claimed again by this instance between the keeper's list
/// and its renewal keeps running (stopping it stopped a live attempt mid-call: bench/chaos,
/// hang).
#[tokio::test]
async fn a_renewal_miss_stops_only_what_this_instance_no_longer_holds() {
    let f = fixture().await;
    let ours = f.claimed_by("test-instance").await;
    let row = f.task(ours.id).await;
    assert_eq!(leases::lost_lease(Some(&row), "test-instance"), None);
    let theirs = f.claimed_by("other-instance").await;
    let row = f.task(theirs.id).await;
    assert_eq!(
        leases::lost_lease(Some(&row), "test-instance"),
        Some(Stop::LeaseLost)
    );
    let mut given_back = row.clone();
    given_back.status = TaskStatus::Queued;
    given_back.locked_by = None;
    assert_eq!(
        leases::lost_lease(Some(&given_back), "test-instance"),
        Some(Stop::LeaseLost)
    );
    let mut cancelled = row;
    cancelled.status = TaskStatus::Cancelled;
    assert_eq!(
        leases::lost_lease(Some(&cancelled), "test-instance"),
        Some(Stop::Cancelled)
    );
    assert_eq!(
        leases::lost_lease(None, "test-instance"),
        Some(Stop::LeaseLost)
    );
}

/// A renewal that missed an earlier claim of a task does not stop the claim held now.
#[tokio::test]
async fn a_renewal_miss_does_not_stop_a_newer_claim() {
    let f = fixture().await;
    let task = f.claimed_by("test-instance").await;
    let first = f.queue.held_claim();
    let first_claim = first.claim;
    f.queue.held.lock().unwrap().insert(task.id, first);
    // Settled and claimed again: a new claim number.
    let again = f.queue.held_claim();
    assert_ne!(again.claim, first_claim);
    f.queue.held.lock().unwrap().insert(task.id, again);
    f.queue
        .stop_claim(task.id, Some(first_claim), Stop::LeaseLost);
    assert!(
        f.queue.held_ids().contains(&task.id),
        "the newer claim was stopped"
    );
    let now_held = f.queue.held_claims()[0].1;
    f.queue.stop_claim(task.id, Some(now_held), Stop::LeaseLost);
    assert!(
        f.queue.held_ids().is_empty(),
        "the claim the renewal missed is stopped"
    );
}

/// The settler forgets only the claim it settled: a claim of the same task made between the
/// settlement's commit and the settler's bookkeeping stays held (and so renewed).
#[tokio::test]
async fn a_settlement_forgets_only_the_claim_it_settled() {
    let f = fixture().await;
    let task = f.claimed_by("test-instance").await;
    let first = f.queue.held_claim();
    f.queue.held.lock().unwrap().insert(task.id, first);
    let settle = |claim| Settle {
        settlement: Settlement {
            id: task.id,
            attempt: task.attempts,
            status: TaskStatus::Queued,
            attempts_delta: 0,
            run_at: Some(f.now()),
            result: None,
            error: Some("retry".into()),
            finished_at: None,
            duration_ms: Some(1),
        },
        records: 0,
        claim,
        domain: task.domain.to_string(),
        action: task.action.to_string(),
    };
    // Handed to the settler under the first claim…
    let held_then = f.queue.held_claims()[0].1;
    // …and, before its bookkeeping, the task was claimed again.
    let again = f.queue.held_claim();
    let again_claim = again.claim;
    f.queue.held.lock().unwrap().insert(task.id, again);
    f.queue.apply(vec![settle(Some(held_then))]).await;
    assert_eq!(
        f.queue.held_claims(),
        vec![(task.id, again_claim)],
        "the newer claim was forgotten"
    );
    assert_eq!(f.task(task.id).await.status, TaskStatus::Queued);
    // Its own settlement forgets it.
    f.queue.apply(vec![settle(Some(again_claim))]).await;
    assert!(f.queue.held_ids().is_empty());
}

#[test]
fn an_interrupted_attempt_ends_at_its_holders_last_renewal() {
    use super::leases::interrupted_at;
    use chrono::TimeDelta;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
        .unwrap()
        .to_utc();
    let lease = Duration::from_secs(30);
    let s = |n: i64| t0 + TimeDelta::seconds(n);
    // Renewed at +50 s (lease until +80 s), found expired at +85 s: it ran 50 s, not 85.
    assert_eq!(interrupted_at(t0, Some(s(80)), lease, s(85)), s(50));
    // Found by a restart an hour later, its lease still (or long) expired: the same.
    assert_eq!(interrupted_at(t0, Some(s(80)), lease, s(3_600)), s(50));
    // Never renewed after the claim (lease until +30 s): it ended as far as we know at once.
    assert_eq!(interrupted_at(t0, Some(s(30)), lease, s(40)), t0);
    // A holder with a longer lease than ours: never later than now.
    assert_eq!(interrupted_at(t0, Some(s(200)), lease, s(100)), s(100));
    // No lease known, or a clock behind the start: now, and never before the start.
    assert_eq!(interrupted_at(t0, None, lease, s(40)), s(40));
    assert_eq!(interrupted_at(t0, Some(s(80)), lease, s(-5)), t0);
}
