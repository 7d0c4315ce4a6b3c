//! The queue and history parts of the storage trait, against both backends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;
use chrono::TimeDelta;
use jarvis::config::Config;
use jarvis::history::ExecutionRecord;
use jarvis::names::Name;
use jarvis::store::{Lease, Settlement, StatsQuery, Store, TaskFilter};
use jarvis::tasks::{NewTask, TaskStatus};
use serde_json::json;
use uuid::Uuid;

async fn open(backend: Backend) -> (TestEnv, Arc<dyn Store>) {
    let env = TestEnv::new(backend).await;
    let config = Config::from_env_map(&env.vars, None).unwrap();
    let store = jarvis::store::open(&config.store).await.unwrap();
    store.migrate().await.unwrap();
    (env, store)
}

fn new_task(i: usize, key: Option<&str>) -> NewTask {
    let now = jarvis::store::now();
    NewTask {
        // As the API makes them: time-ordered.
        id: Uuid::now_v7(),
        domain: Name::parse("noop").unwrap(),
        action: Name::parse("x").unwrap(),
        parameters: json!({"i": i}),
        learned_parameters: None,
        priority: 0,
        run_at: now,
        max_attempts: 2,
        timeout_ms: None,
        idempotency_key: key.map(str::to_string),
        correlation_id: "req-store".into(),
        created_at: now,
        notify_done: false,
        traceparent: None,
    }
}

/// A successful `music/<action>` attempt that finished at `finished` after `duration_ms`.
fn success_at(
    action: &str,
    finished: chrono::DateTime<chrono::Utc>,
    duration_ms: u64,
) -> ExecutionRecord {
    success_record("music", action, finished, duration_ms)
}

fn lease(instance: &str, secs: i64) -> Lease<'_> {
    let now = jarvis::store::now();
    Lease {
        instance,
        now,
        until: now + TimeDelta::seconds(secs),
    }
}

both_backends!(concurrent_claims_never_overlap, |backend| async move {
    let (_env, store) = open(backend).await;
    let tasks: Vec<NewTask> = (0..200).map(|i| new_task(i, None)).collect();
    let ins = store.insert_tasks(&tasks, None).await.unwrap();
    assert!(ins
        .iter()
        .all(|i| i.created && i.task.status == TaskStatus::Queued));
    assert_eq!(store.queue_depth().await.unwrap(), 200);
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let mut got = Vec::new();
            loop {
                let batch = store.claim_tasks(lease(&name, 30), 7).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                for t in &batch {
                    assert_eq!(t.status, TaskStatus::Running);
                    assert_eq!(t.attempts, 1);
                    assert_eq!(t.locked_by.as_deref(), Some(name.as_str()));
                }
                got.extend(batch.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
    assert_eq!(store.queue_depth().await.unwrap(), 0);
    store.close().await;
});

both_backends!(settlements_apply_only_to_the_holder, |backend| async move {
    let (_env, store) = open(backend).await;
    let t = new_task(0, Some("once"));
    let first = store
        .insert_tasks(std::slice::from_ref(&t), None)
        .await
        .unwrap();
    let again = store
        .insert_tasks(&[new_task(1, Some("once"))], None)
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].task.id, first[0].task.id);
    let claimed = store.claim_tasks(lease("a", 30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let done = |attempt| Settlement {
        id: t.id,
        attempt,
        status: TaskStatus::Succeeded,
        attempts_delta: 0,
        run_at: None,
        result: Some(json!({"ok": true})),
        error: None,
        finished_at: Some(jarvis::store::now()),
        duration_ms: Some(5),
    };
    let now = jarvis::store::now();
    assert_eq!(store.settle_tasks("b", &[done(1)], now).await.unwrap(), 0);
    assert_eq!(store.settle_tasks("a", &[done(2)], now).await.unwrap(), 0);
    assert_eq!(
        store
            .extend_leases("a", &[t.id], now + TimeDelta::seconds(60))
            .await
            .unwrap(),
        vec![t.id]
    );
    assert_eq!(store.settle_tasks("a", &[done(1)], now).await.unwrap(), 1);
    let got = store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(got.status, TaskStatus::Succeeded);
    assert_eq!(got.result, Some(json!({"ok": true})));
    assert_eq!(got.locked_by, None);
    // No longer held: the lease cannot be extended, nor the task cancelled.
    assert!(store
        .extend_leases("a", &[t.id], now)
        .await
        .unwrap()
        .is_empty());
    let (_, cancelled) = store.cancel_task(t.id, now).await.unwrap().unwrap();
    assert!(!cancelled);
    store.close().await;
});

// Lease renewal and call marks take a whole batch in one statement (lists bound as one
// parameter: arrays on PostgreSQL, JSON arrays on SQLite): only what this instance holds, at
// the attempt given, is renewed or marked.
both_backends!(
    renewals_and_call_marks_apply_per_task,
    |backend| async move {
        let (_env, store) = open(backend).await;
        let tasks: Vec<NewTask> = (0..4).map(|i| new_task(i, None)).collect();
        store.insert_tasks(&tasks, None).await.unwrap();
        let mine = store.claim_tasks(lease("a", 30), 3).await.unwrap();
        let theirs = store.claim_tasks(lease("b", 30), 1).await.unwrap();
        assert_eq!((mine.len(), theirs.len()), (3, 1));
        let all: Vec<Uuid> = mine.iter().chain(&theirs).map(|t| t.id).collect();
        let mut renewed = store
            .extend_leases("a", &all, jarvis::store::now() + TimeDelta::seconds(60))
            .await
            .unwrap();
        renewed.sort();
        let mut expected: Vec<Uuid> = mine.iter().map(|t| t.id).collect();
        expected.sort();
        assert_eq!(renewed, expected);
        // Two of this instance's attempts, one of its tasks at an attempt it is not on, and the
        // other instance's task.
        let marks = [
            (mine[0].id, 1),
            (mine[1].id, 1),
            (mine[2].id, 2),
            (theirs[0].id, 1),
        ];
        let mut marked = store
            .mark_called("a", &marks, jarvis::store::now())
            .await
            .unwrap();
        marked.sort();
        let mut expected = vec![mine[0].id, mine[1].id];
        expected.sort();
        assert_eq!(marked, expected);
        // Once this instance's leases are over, the marked attempts were interrupted and the
        // unmarked one is given back; the other instance's lease still runs.
        let now = jarvis::store::now();
        let mine_ids: Vec<Uuid> = mine.iter().map(|t| t.id).collect();
        let expired = store
            .extend_leases("a", &mine_ids, now - TimeDelta::seconds(1))
            .await
            .unwrap();
        assert_eq!(expired.len(), 3);
        let back = store.reclaim_expired(now, 10, GRACE).await.unwrap();
        assert_eq!(back.len(), 3);
        for r in &back {
            let want = if r.task.id == mine[2].id {
                jarvis::store::ReclaimOutcome::GivenBack
            } else {
                jarvis::store::ReclaimOutcome::Interrupted
            };
            assert_eq!(r.outcome, want, "task {}", r.task.id);
        }
        store.close().await;
    }
);

both_backends!(expired_leases_are_reclaimed_once, |backend| async move {
    use jarvis::store::ReclaimOutcome;
    let (_env, store) = open(backend).await;
    let t = new_task(0, None);
    store
        .insert_tasks(std::slice::from_ref(&t), None)
        .await
        .unwrap();
    // Claimed by an instance that called the agent and then died: its lease is already over.
    let claimed = store.claim_tasks(lease("dead", -1), 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let marked = store
        .mark_called("dead", &[(t.id, 1)], jarvis::store::now())
        .await
        .unwrap();
    assert_eq!(marked, vec![t.id]);
    // Another instance, or another attempt, cannot mark it.
    assert!(store
        .mark_called("other", &[(t.id, 1)], jarvis::store::now())
        .await
        .unwrap()
        .is_empty());
    let now = jarvis::store::now();
    let back = store.reclaim_expired(now, 10, GRACE).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].outcome, ReclaimOutcome::Interrupted);
    assert_eq!(back[0].lost_by.as_deref(), Some("dead"));
    assert_eq!(back[0].task.status, TaskStatus::Queued);
    assert_eq!(back[0].task.attempts, 1);
    assert!(back[0]
        .task
        .error
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert!(store
        .reclaim_expired(now, 10, GRACE)
        .await
        .unwrap()
        .is_empty());
    // Claimed again (attempt 2, the last), called, lost again: now it fails.
    let again = store.claim_tasks(lease("dead2", -1), 1).await.unwrap();
    assert_eq!(again[0].attempts, 2);
    store
        .mark_called("dead2", &[(t.id, 2)], jarvis::store::now())
        .await
        .unwrap();
    let back = store
        .reclaim_expired(jarvis::store::now(), 10, GRACE)
        .await
        .unwrap();
    assert_eq!(back[0].outcome, ReclaimOutcome::Interrupted);
    assert_eq!(back[0].task.status, TaskStatus::Failed);
    assert!(back[0].task.finished_at.is_some());
    store.close().await;
});

/// The store's own restart grace does not apply: the test server has been up for longer.
const GRACE: Duration = Duration::from_millis(1);

both_backends!(
    orphans_are_taken_back_whatever_their_lease,
    |backend| async move {
        use jarvis::store::ReclaimOutcome;
        let (_env, store) = open(backend).await;
        let tasks: Vec<NewTask> = (0..3).map(|i| new_task(i, None)).collect();
        store.insert_tasks(&tasks, None).await.unwrap();
        // Held for an hour by a process that is gone; one attempt was called.
        let claimed = store.claim_tasks(lease("gone", 3_600), 3).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let now = jarvis::store::now();
        store
            .mark_called("gone", &[(claimed[0].id, 1)], now)
            .await
            .unwrap();
        let expired = store.reclaim_expired(now, 10, GRACE).await.unwrap();
        assert!(expired.is_empty(), "no lease has expired: {expired:?}");
        let back = store.reclaim_orphaned(now, 10).await.unwrap();
        assert_eq!(back.len(), 3);
        for r in &back {
            let want = if r.task.id == claimed[0].id {
                ReclaimOutcome::Interrupted
            } else {
                ReclaimOutcome::GivenBack
            };
            assert_eq!(r.outcome, want, "{:?}", r.task);
            assert_eq!(r.lost_by.as_deref(), Some("gone"));
            assert!(r.task.run_at <= jarvis::store::now(), "due again at once");
        }
        // Claimable again at once.
        let again = store.claim_tasks(lease("new", 30), 3).await.unwrap();
        assert_eq!(again.len(), 3);
        store.close().await;
    }
);

both_backends!(
    an_attempt_never_called_is_given_back,
    |backend| async move {
        use jarvis::store::ReclaimOutcome;
        let (_env, store) = open(backend).await;
        let t = new_task(0, None);
        store
            .insert_tasks(std::slice::from_ref(&t), None)
            .await
            .unwrap();
        // Claimed ahead of the workers by an instance that died before starting it, twice: no
        // attempt is spent and nothing is recorded.
        for round in 0..3 {
            let claimed = store.claim_tasks(lease("dead", -1), 1).await.unwrap();
            assert_eq!(claimed[0].attempts, 1, "round {round}");
            let back = store
                .reclaim_expired(jarvis::store::now(), 10, GRACE)
                .await
                .unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].outcome, ReclaimOutcome::GivenBack);
            assert_eq!(back[0].task.status, TaskStatus::Queued);
            assert_eq!(back[0].task.attempts, 0);
        }
        // A mark from an earlier attempt does not survive the next claim.
        let claimed = store.claim_tasks(lease("a", -1), 1).await.unwrap();
        store
            .mark_called("a", &[(t.id, 1)], jarvis::store::now())
            .await
            .unwrap();
        let back = store
            .reclaim_expired(jarvis::store::now(), 10, GRACE)
            .await
            .unwrap();
        assert_eq!(back[0].outcome, ReclaimOutcome::Interrupted);
        let claimed2 = store.claim_tasks(lease("b", -1), 1).await.unwrap();
        assert_eq!((claimed[0].attempts, claimed2[0].attempts), (1, 2));
        let back = store
            .reclaim_expired(jarvis::store::now(), 10, GRACE)
            .await
            .unwrap();
        assert_eq!(back[0].outcome, ReclaimOutcome::GivenBack);
        assert_eq!(back[0].task.attempts, 1);
        store.close().await;
    }
);

both_backends!(
    a_recorded_attempt_is_settled_as_recorded,
    |backend| async move {
        use jarvis::store::ReclaimOutcome;
        let (_env, store) = open(backend).await;
        let ok = new_task(0, None);
        let bad = new_task(1, None);
        store
            .insert_tasks(&[ok.clone(), bad.clone()], None)
            .await
            .unwrap();
        let claimed = store.claim_tasks(lease("dead", -1), 2).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let now = jarvis::store::now();
        let ids: Vec<(Uuid, u32)> = vec![(ok.id, 1), (bad.id, 1)];
        store.mark_called("dead", &ids, now).await.unwrap();
        // The holder recorded both attempts, then died before settling them.
        let mut success = success_at("x", now, 25);
        success.domain = "noop".into();
        success.task_id = ok.id;
        let mut failure = success_at("x", now, 30);
        failure.domain = "noop".into();
        failure.task_id = bad.id;
        failure.success = false;
        let failure = failure.with_failure("agent said no");
        store
            .insert_history(&[success.clone(), failure.clone()])
            .await
            .unwrap();
        let back = store
            .reclaim_expired(jarvis::store::now(), 10, GRACE)
            .await
            .unwrap();
        assert_eq!(back.len(), 2);
        for r in &back {
            assert_eq!(r.outcome, ReclaimOutcome::Recorded, "{:?}", r.task);
        }
        let ok_now = store.get_task(ok.id).await.unwrap().unwrap();
        assert_eq!(
            ok_now.status,
            TaskStatus::Succeeded,
            "a recorded success never runs again"
        );
        assert_eq!(ok_now.attempts, 1);
        assert_eq!(ok_now.duration_ms, Some(25));
        assert!(ok_now.finished_at.is_some());
        let bad_now = store.get_task(bad.id).await.unwrap().unwrap();
        assert_eq!(
            bad_now.status,
            TaskStatus::Queued,
            "one attempt of two used"
        );
        assert_eq!(bad_now.error.as_deref(), Some("agent said no"));
        // A record of the same attempt arriving late (a replayed spool) is not stored twice.
        let mut late = success.clone();
        late.record_id = Uuid::now_v7();
        assert_eq!(store.insert_history(&[late]).await.unwrap(), 0);
        let stats = store
            .history_stats(&jarvis::store::StatsQuery {
                domain: "noop".into(),
                action: "x".into(),
                since: None,
                until: None,
                top_failures: 5,
                recent_successes: 5,
            })
            .await
            .unwrap();
        assert_eq!(
            stats.totals.total, 2,
            "the late record is not counted either"
        );
        store.close().await;
    }
);

/// A record whose every field is awkward to write as text: tabs, newlines, backslashes,
/// `\N`, quotes and non-ASCII in its strings and JSON; floats that do not print short;
/// a time with nanoseconds.
fn awkward_record(i: u32) -> ExecutionRecord {
    let odd =
        "tab\there, line\nbreak\r\n, back\\slash, \\N, \"quoted\", 'single', héllo ☃ \u{1F600}";
    let started = chrono::DateTime::from_timestamp(1_765_000_000, 123_456_789).unwrap();
    ExecutionRecord {
        record_id: Uuid::now_v7(),
        task_id: Uuid::now_v7(),
        domain: "awkward".into(),
        action: "x".into(),
        attempt: i + 1,
        parameters: json!({"text": odd, "n": 0.1, "big": 1e300, "tiny": 1e-300, "list": [1, "\\N"]}),
        learned_parameters: Some(json!({"t\tab": "v\nv", "x": -0.0})),
        success: i % 2 == 0,
        duration_ms: 1_234_567,
        impact_score: Some(33.333333333333336),
        failure_reason: Some(odd.to_string()),
        failure_group: Some("g\\1".into()),
        cost_usd: Some(1.0e-12 / 3.0),
        correlation_id: Some(format!("req-\t{i}\\")),
        instance_id: None,
        started_at: started,
        finished_at: started + TimeDelta::microseconds(1_500),
        timed_out: i % 2 == 1,
        model_call: Some(jarvis::history::record::ModelCall {
            model: "openai/gpt-\t4o".into(),
            deployment: "d\n1".into(),
            prompt_tokens: 12,
            completion_tokens: u32::MAX as u64 + 7,
        }),
    }
}

both_backends!(records_are_stored_exactly_as_given, |backend| async move {
    let (_env, store) = open(backend).await;
    // Stored alone (on PostgreSQL: COPY), then with one already stored (the insert that
    // skips it): either way every field reads back as given (PostgreSQL keeps times to
    // the microsecond, SQLite to the nanosecond).
    let fresh: Vec<ExecutionRecord> = (0..3).map(awkward_record).collect();
    assert_eq!(store.insert_history(&fresh).await.unwrap(), 3);
    let mut mixed: Vec<ExecutionRecord> = (3..6).map(awkward_record).collect();
    mixed.push(fresh[0].clone());
    assert_eq!(store.insert_history(&mixed).await.unwrap(), 3);
    let stored = store
        .list_executions(&jarvis::store::ExecutionFilter {
            domain: Some("awkward".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 6);
    let micros = |t: chrono::DateTime<chrono::Utc>| match backend {
        Backend::Postgres => chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap(),
        Backend::Sqlite => t,
    };
    for want in fresh.iter().chain(&mixed[..3]) {
        let got = stored
            .iter()
            .find(|s| s.record.record_id == want.record_id)
            .unwrap_or_else(|| panic!("record {} not stored", want.record_id));
        let mut want = want.clone();
        want.started_at = micros(want.started_at);
        want.finished_at = micros(want.finished_at);
        assert_eq!(got.record, want);
    }
    store.close().await;
});

both_backends!(history_is_idempotent_and_rolled_up, |backend| async move {
    let (_env, store) = open(backend).await;
    let now = jarvis::store::now();
    let record = |success: bool, ms: u64| {
        let r = ExecutionRecord {
            record_id: Uuid::new_v4(),
            task_id: Uuid::new_v4(),
            domain: "music".into(),
            action: "render".into(),
            attempt: 1,
            parameters: json!({"bpm": 120}),
            learned_parameters: None,
            success,
            duration_ms: ms,
            impact_score: success.then_some(50.0),
            failure_reason: None,
            failure_group: None,
            cost_usd: Some(0.5),
            correlation_id: Some("req-h".into()),
            instance_id: Some("i1".into()),
            started_at: now,
            finished_at: now,
            timed_out: false,
            model_call: None,
        };
        if success {
            r
        } else {
            r.with_failure("timeout after 30012 ms")
        }
    };
    let batch = vec![record(true, 100), record(true, 200), record(false, 30_000)];
    assert_eq!(store.insert_history(&batch).await.unwrap(), 3);
    // Replaying the same records (a spool written twice) stores and counts nothing more.
    assert_eq!(store.insert_history(&batch).await.unwrap(), 0);
    let mut more = batch.clone();
    more.push(record(false, 29_877));
    assert_eq!(store.insert_history(&more).await.unwrap(), 1);
    assert_eq!(store.count_executions(None).await.unwrap(), 4);
    let raw = store
        .history_stats(&StatsQuery {
            domain: "music".into(),
            action: "render".into(),
            since: None,
            until: None,
            top_failures: 5,
            recent_successes: 10,
        })
        .await
        .unwrap();
    let stats = jarvis::history::Stats::from_raw("music", "render", None, None, raw);
    assert_eq!((stats.total, stats.succeeded, stats.failed), (4, 2, 2));
    assert_eq!(stats.avg_impact_score, Some(50.0));
    assert!((stats.total_cost_usd - 2.0).abs() < 1e-9);
    assert_eq!(stats.common_failure_reasons.len(), 1);
    assert_eq!(stats.common_failure_reasons[0].count, 2);
    assert_eq!(
        stats.common_failure_reasons[0].reason,
        "timeout after <num> ms"
    );
    assert_eq!(stats.optimal_parameters["bpm"], json!(120));
    let p50 = stats.p50_duration_ms.unwrap();
    assert!((190..=210).contains(&p50), "{p50}");
    // Retention removes old records.
    assert_eq!(
        store
            .purge_history(now + TimeDelta::seconds(1), 100)
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.count_executions(None).await.unwrap(), 0);
    store.close().await;
});

both_backends!(tasks_are_listed_newest_first, |backend| async move {
    let (_env, store) = open(backend).await;
    // Three submissions in order, one of them a batch of two.
    let first = vec![new_task(0, None)];
    let batch = vec![new_task(1, None), new_task(2, None)];
    let last = vec![new_task(3, Some("k-last"))];
    for tasks in [&first, &batch, &last] {
        store.insert_tasks(tasks, None).await.unwrap();
    }
    let listed = store
        .list_tasks(&TaskFilter {
            domain: Some("noop".into()),
            action: None,
            status: Some(TaskStatus::Queued),
            limit: 3,
        })
        .await
        .unwrap();
    let order: Vec<Uuid> = listed.iter().map(|t| t.id).collect();
    assert_eq!(order, vec![last[0].id, batch[1].id, batch[0].id]);
    // An idempotency key still returns the stored task rather than a duplicate.
    let again = store
        .insert_tasks(&[new_task(9, Some("k-last"))], None)
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].task.id, last[0].id);
    // Two tasks with one new key in the same batch: the first is stored, the second is it.
    let pair = vec![new_task(10, Some("k-pair")), new_task(11, Some("k-pair"))];
    let out = store.insert_tasks(&pair, None).await.unwrap();
    assert!(out[0].created && !out[1].created);
    assert_eq!((out[0].task.id, out[1].task.id), (pair[0].id, pair[0].id));
    store.close().await;
});

both_backends!(
    retention_deletes_only_old_records_in_chunks,
    |backend| async move {
        let (_env, store) = open(backend).await;
        let now = jarvis::store::now();
        let record = |finished| success_at("render", finished, 5);
        // 25 records two days old, then 7 recent ones, inserted in that (time) order.
        let old: Vec<_> = (0..25).map(|_| record(now - TimeDelta::days(2))).collect();
        let new: Vec<_> = (0..7).map(|_| record(now)).collect();
        store.insert_history(&old).await.unwrap();
        store.insert_history(&new).await.unwrap();
        let cutoff = now - TimeDelta::days(1);
        // Chunks of 10: 10, 10, then the last 5 old ones (the chunk reached the recent records).
        let mut chunks = Vec::new();
        loop {
            let n = store.purge_history(cutoff, 10).await.unwrap();
            chunks.push(n);
            if n < 10 {
                break;
            }
        }
        assert_eq!(chunks, vec![10, 10, 5]);
        assert_eq!(store.count_executions(None).await.unwrap(), 7);
        // Nothing more to delete: the recent records stay.
        assert_eq!(store.purge_history(cutoff, 10).await.unwrap(), 0);
        assert_eq!(store.count_executions(None).await.unwrap(), 7);
        store.close().await;
    }
);

both_backends!(
    duration_histogram_over_days_and_edge_hours,
    |backend| async move {
        use jarvis::history::rollup::{bucket_of, hour_of};
        use std::collections::BTreeMap;
        let (_env, store) = open(backend).await;
        let now = jarvis::store::now();
        // Records every 5 hours over 6 days, with durations spread over many buckets, written in
        // three batches (so rollup rows are also added to, not only inserted).
        let records: Vec<ExecutionRecord> = (0..29)
            .map(|i| {
                let finished = now - TimeDelta::hours(5 * i);
                success_at("mix", finished, 1 + (i as u64 * 7919) % 5000)
            })
            .collect();
        for chunk in records.chunks(10) {
            store.insert_history(chunk).await.unwrap();
        }
        // Ranges: everything, one cutting through days at both ends, one inside a day.
        let ranges = [
            (None, None),
            (
                Some(now - TimeDelta::hours(100)),
                Some(now - TimeDelta::hours(7)),
            ),
            (
                Some(now - TimeDelta::hours(30)),
                Some(now - TimeDelta::hours(26)),
            ),
        ];
        for (since, until) in ranges {
            let raw = store
                .history_stats(&StatsQuery {
                    domain: "music".into(),
                    action: "mix".into(),
                    since,
                    until,
                    top_failures: 5,
                    recent_successes: 10,
                })
                .await
                .unwrap();
            let mut expected: BTreeMap<i16, i64> = BTreeMap::new();
            for r in &records {
                let h = hour_of(r.finished_at);
                if since.is_some_and(|s| h < hour_of(s)) || until.is_some_and(|u| h > hour_of(u)) {
                    continue;
                }
                *expected.entry(bucket_of(r.duration_ms)).or_default() += 1;
            }
            let got: BTreeMap<i16, i64> = raw.durations.iter().copied().collect();
            assert_eq!(got, expected, "range {since:?}..={until:?}");
            assert_eq!(raw.totals.total, expected.values().sum::<i64>());
        }
        store.close().await;
    }
);

/// Counts what the recorder hands its observer (the learner, in the server).
#[derive(Default)]
struct Seen(std::sync::Mutex<Vec<Uuid>>);

impl jarvis::history::recorder::BatchObserver for Seen {
    fn observe(&self, records: &[ExecutionRecord]) {
        self.0
            .lock()
            .unwrap()
            .extend(records.iter().map(|r| r.record_id));
    }
}

both_backends!(
    spooled_records_feed_the_observer_once_stored,
    |backend| async move {
        let (env, store) = open(backend).await;
        // A spool left by an earlier run that could not reach the store.
        let spool_dir = env.dir.path().join("spool");
        std::fs::create_dir_all(&spool_dir).unwrap();
        let now = jarvis::store::now();
        let left: Vec<ExecutionRecord> = (0..3).map(|_| success_at("spooled", now, 10)).collect();
        let lines: String = left
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(spool_dir.join(jarvis::history::recorder::SPOOL_FILE), lines).unwrap();
        let seen = Arc::new(Seen::default());
        let (recorder, task) = jarvis::history::Recorder::start_observed(
            store.clone(),
            &spool_dir,
            Arc::new(jarvis::metrics::Metrics::new()),
            Some(seen.clone()),
        );
        // A record of this run, written directly.
        let fresh = success_at("fresh", now, 5);
        recorder.record(fresh.clone());
        recorder.flush().await;
        eventually(
            Duration::from_secs(20),
            "the spool to be replayed",
            || async { store.count_executions(None).await.unwrap() == 4 },
        )
        .await;
        eventually(
            Duration::from_secs(5),
            "the observer to see all four",
            || async { seen.0.lock().unwrap().len() >= 4 },
        )
        .await;
        let mut observed = seen.0.lock().unwrap().clone();
        observed.sort();
        let mut expected: Vec<Uuid> = left.iter().map(|r| r.record_id).collect();
        expected.push(fresh.record_id);
        expected.sort();
        assert_eq!(
            observed, expected,
            "each stored record observed exactly once"
        );
        task.stop(recorder).await;
        assert!(!spool_dir
            .join(jarvis::history::recorder::SPOOL_FILE)
            .exists());
        store.close().await;
    }
);

both_backends!(
    the_recorder_says_when_the_records_before_a_mark_are_written,
    |backend| async move {
        let (env, store) = open(backend).await;
        let spool_dir = env.dir.path().join("spool");
        let (recorder, task) = jarvis::history::Recorder::start(
            store.clone(),
            &spool_dir,
            Arc::new(jarvis::metrics::Metrics::new()),
        );
        assert_eq!(recorder.queued(), 0);
        // Nothing queued: the mark is passed at once.
        tokio::time::timeout(Duration::from_secs(1), recorder.written(0))
            .await
            .expect("mark 0 is passed at once");
        let now = jarvis::store::now();
        let first: Vec<ExecutionRecord> = (0..3).map(|_| success_at("mark", now, 1)).collect();
        for r in &first {
            recorder.record(r.clone());
        }
        let mark = recorder.queued();
        assert_eq!(mark, 3, "each record counted as it is queued");
        // Records queued after the mark are not waited for, but those before it are stored
        // when the wait ends.
        for _ in 0..50 {
            recorder.record(success_at("after", now, 1));
        }
        tokio::time::timeout(Duration::from_secs(20), recorder.written(mark))
            .await
            .expect("the records before the mark are written");
        for r in &first {
            assert_eq!(
                store.count_executions(Some(r.task_id)).await.unwrap(),
                1,
                "a record before the mark is in the store when the wait ends"
            );
        }
        assert_eq!(recorder.queued(), 53);
        tokio::time::timeout(Duration::from_secs(20), recorder.written(53))
            .await
            .expect("every record is written in the end");
        assert_eq!(store.count_executions(None).await.unwrap(), 53);
        task.stop(recorder.clone()).await;
        // A writer that is gone holds nobody up.
        tokio::time::timeout(Duration::from_secs(1), recorder.written(1_000))
            .await
            .expect("no wait once the writer stopped");
        store.close().await;
    }
);

both_backends!(a_shared_store_lends_its_clock, |backend| async move {
    let (_env, store) = open(backend).await;
    let server = store.database_time().await.unwrap();
    let synced = jarvis::store::sync_clock(&*store).await.unwrap();
    match backend {
        // This machine's PostgreSQL keeps this machine's time.
        Backend::Postgres => {
            let server = server.expect("PostgreSQL has a clock");
            let off = (server - chrono::Utc::now()).num_milliseconds().abs();
            assert!(off < 2_000, "PostgreSQL's clock is {off} ms off");
            // The server's reading is taken within the round trip, on this machine's clock:
            // the process's wall time does not move away from it (it moved by half the round
            // trip, its waits included, when the reading was taken as made halfway).
            let machine = synced
                .expect("a sync on PostgreSQL")
                .num_milliseconds()
                .abs();
            assert!(machine < 50, "{machine} ms");
        }
        // The embedded store has no clock of its own: the process keeps the machine's.
        Backend::Sqlite => {
            assert_eq!(server, None);
            assert_eq!(synced, None);
        }
    }
});
