//! Leases: the keeper renews what this instance holds; the reclaimer takes back what a dead
//! or cut-off holder left, deciding per attempt from its record and its call mark.

use super::*;

impl TaskQueue {
    /// Renews the lease of every held task, every third of the lease, in one statement; stops
    /// what is no longer held (cancelled elsewhere, or reclaimed after a stall).
    pub(super) async fn lease_keeper(self: Arc<Self>) {
        let every = self.lease() / 3;
        let mut stop = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {
                    if *stop.borrow() {
                        // Keep renewing while in-flight attempts finish after a shutdown signal.
                    }
                }
            }
            let claims: HashMap<Uuid, u64> = self.held_claims().into_iter().collect();
            let ids: Vec<Uuid> = claims.keys().copied().collect();
            if ids.is_empty() {
                if *stop.borrow() && self.running() == 0 {
                    return;
                }
                continue;
            }
            let until = self.now() + chrono::TimeDelta::milliseconds(self.settings.lease_ms as i64);
            match self.store.extend_leases(&self.instance, &ids, until).await {
                Ok(kept) => {
                    let kept: HashSet<Uuid> = kept.into_iter().collect();
                    for id in ids.into_iter().filter(|id| !kept.contains(id)) {
                        // Rare: cancelled elsewhere (the attempt is recorded as stopped), or
                        // reclaimed (the reclaimer dealt with the attempt), or settled and
                        // claimed again by this instance since `ids` was taken.
                        let task = self.store.get_task(id).await;
                        if let Some(why) = lost_lease(task.ok().flatten().as_ref(), &self.instance)
                        {
                            self.stop_claim(id, claims.get(&id).copied(), why);
                        }
                    }
                }
                Err(e) => {
                    self.store_failed();
                    tracing::warn!(error = %e, tasks = ids.len(), "cannot renew task leases")
                }
            }
        }
    }

    /// Takes back tasks whose holder stopped renewing its lease (see [`ReclaimOutcome`]):
    /// records only an attempt cut off mid-call. Waits a whole lease after any store trouble
    /// of its own (and the store waits as long after its own restart): a holder that is alive
    /// but was cut off from the store renews its leases as soon as it can, and must not lose
    /// them for that.
    pub(super) async fn reclaimer(self: Arc<Self>) {
        let every = (self.lease() / 2).max(Duration::from_millis(100));
        let mut stop = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            self.reclaim_once().await;
        }
    }

    /// One pass of the reclaimer: what expired before now on the queue's clock, unless a store
    /// call of this instance failed, or the process's wall time stepped, within the last lease.
    /// Returns how many tasks it took back (`None`: skipped or failed).
    pub(super) async fn reclaim_once(&self) -> Option<usize> {
        if self.store_troubled_recently() || self.clock_stepped_recently() {
            return None;
        }
        let now = self.now();
        match self
            .store
            .reclaim_expired(now, RECLAIM_BATCH, self.lease())
            .await
        {
            Ok(list) => Some(self.took_back(list, now).await),
            Err(e) => {
                self.store_failed();
                tracing::warn!(error = %e, "cannot reclaim expired task leases");
                None
            }
        }
    }

    /// Takes back, before this instance claims anything, every task a process that is gone
    /// left running: the embedded store's `serve` holds its data directory's lock
    /// (`files::ServeLock`), so no other worker of that store is alive, and its tasks need not
    /// wait for their leases to expire. The records the dead process left in its history spool
    /// are stored first, so an attempt it recorded is settled as recorded. Returns how many
    /// tasks were taken back.
    pub async fn take_back_orphans(&self) -> usize {
        if !self.settings.workers_enabled {
            return 0;
        }
        self.recorder.flush().await;
        let mut total = 0;
        loop {
            let now = self.now();
            match self.store.reclaim_orphaned(now, RECLAIM_BATCH).await {
                Ok(list) => {
                    let n = list.len();
                    total += self.took_back(list, now).await;
                    if n < RECLAIM_BATCH as usize {
                        break;
                    }
                }
                Err(e) => {
                    // The reclaimer takes them back once their leases expire.
                    tracing::warn!(error = %e, "cannot take back the tasks of the previous process");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::warn!(
                tasks = total,
                "took back the tasks a previous process on this data directory left running"
            );
        }
        total
    }

    /// Records, announces and counts what a reclaim took back (see [`ReclaimOutcome`]).
    async fn took_back(
        &self,
        list: Vec<crate::store::Reclaimed>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> usize {
        let count = list.len();
        let mut announce = Vec::new();
        for r in list {
            let task = &r.task;
            let lost_by = r.lost_by.as_deref().unwrap_or("?");
            match r.outcome {
                ReclaimOutcome::Interrupted => {
                    let started = r.attempt_started_at.unwrap_or(now);
                    let reason =
                        task.error.clone().unwrap_or_else(|| "lease expired".into());
                    let ended = interrupted_at(started, r.lost_lease_until, self.lease(), now);
                    let duration = (ended - started).num_milliseconds().max(0) as u64;
                    let record =
                        attempt_record(task, r.lost_by.clone(), started, ended, duration)
                            .with_failure(&reason);
                    task_span(task).in_scope(|| {
                        tracing::warn!(
                            lost_by,
                            status = %task.status,
                            attempts = task.attempts,
                            "reclaimed a task whose worker stopped renewing its lease mid-call"
                        )
                    });
                    self.recorder.record(record);
                }
                ReclaimOutcome::Recorded => task_span(task).in_scope(|| {
                    tracing::warn!(
                        lost_by,
                        status = %task.status,
                        attempts = task.attempts,
                        "reclaimed a task whose worker recorded its attempt but did not settle it; settled as recorded"
                    )
                }),
                ReclaimOutcome::GivenBack => task_span(task).in_scope(|| {
                    tracing::warn!(
                        lost_by,
                        attempts = task.attempts,
                        "reclaimed a task whose agent was never called; attempt given back"
                    )
                }),
            }
            if task.status.is_final() {
                self.metrics
                    .finished(task.domain.as_str(), task.action.as_str(), task.status);
                let _ = self.finished.send(task.id);
                if task.notify_done {
                    announce.push(task.id);
                }
            }
        }
        if !announce.is_empty() {
            if let Err(e) = self.store.notify_finished(&announce).await {
                tracing::warn!(error = %e, "cannot announce reclaimed tasks; waiters poll");
            }
        }
        if count > 0 {
            self.wake.notify_one();
        }
        count
    }
}

/// When an attempt its holder lost ended, as far as anyone can tell: at the holder's last lease
/// renewal (the lease it last set, less one lease of this instance's), never before the attempt
/// started nor after `now`. The holder died somewhere between that renewal and the next one it
/// missed; `now` (when the lease was found expired, or a restart found it) would count the whole
/// wait for the lease, or the whole downtime, as the attempt's duration.
pub(super) fn interrupted_at(
    started: chrono::DateTime<chrono::Utc>,
    lost_lease_until: Option<chrono::DateTime<chrono::Utc>>,
    lease: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    let renewed = lost_lease_until
        .map(|until| until - chrono::TimeDelta::from_std(lease).unwrap_or_default())
        .unwrap_or(now);
    renewed.clamp(started, now.max(started))
}

/// Why a held task whose renewal matched nothing is to be stopped, from its row as read after
/// the renewal; `None` when the row says this instance holds it (running, locked by it).
///
/// That happens without anything lost: the task was settled (given back to wait for an OPEN
/// circuit, or a retry) between the moment the keeper listed the held tasks and its renewal,
/// and claimed again by this instance before the keeper read the row. (Claimed again after
/// the keeper read the row, the task is held under a new claim number, which the keeper does
/// not stop either: [`TaskQueue::stop_claim`].) Stopping it then stopped
/// a live attempt of this very instance mid-call, without a record; its lease expired and the
/// reclaimer recorded it as interrupted and ran it again, sometimes after its agent had already
/// succeeded (bench/chaos, hang: 15 of 830 tasks ran again after a recorded success). The new
/// claim has a fresh lease, renewed on the next round.
pub(super) fn lost_lease(task: Option<&Task>, instance: &str) -> Option<Stop> {
    match task {
        Some(t) if t.status == TaskStatus::Cancelled => Some(Stop::Cancelled),
        Some(t) if t.status == TaskStatus::Running && t.locked_by.as_deref() == Some(instance) => {
            None
        }
        _ => Some(Stop::LeaseLost),
    }
}
