//! The workers of one instance: the dispatcher claims batches into a local buffer ordered by
//! priority, and each worker keeps its slot and takes the next buffered task itself.

use super::*;

/// Most claims in flight at once (see [`TaskQueue::dispatcher`]).
const MAX_CLAIMS: usize = 2;

impl TaskQueue {
    /// Registers the stop channel of an attempt about to start.
    pub(super) fn arm(&self, id: Uuid) -> oneshot::Receiver<Stop> {
        let (tx, rx) = oneshot::channel();
        if let Some(h) = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            h.stop = Some(tx);
        }
        rx
    }

    /// The next buffered task for a worker that just finished one, unless the instance is
    /// stopping. Wakes the dispatcher when the buffer runs low, so that it claims the next
    /// batch while the workers keep draining what is left.
    pub(super) fn next_buffered(&self) -> Option<Task> {
        if self.stopping() {
            return None;
        }
        let (next, left) = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let next = buffer.pop().map(|r| r.0);
            (next, buffer.len())
        };
        if next.is_some() && left <= self.settings.prefetch as usize / 2 {
            self.wake.notify_one();
        }
        next
    }

    /// Starts a worker on `task`. The worker keeps its slot and takes the next buffered task
    /// itself when it is done, so a backlog drains without a round trip through the
    /// dispatcher (which may be waiting for its next claim meanwhile).
    pub(super) fn spawn_attempt(self: &Arc<Self>, task: Task, permit: OwnedSemaphorePermit) {
        let rx = self.arm(task.id);
        self.running.fetch_add(1, AtomicOrdering::Relaxed);
        let queue = self.clone();
        tokio::spawn(async move {
            let mut current = Some((task, rx));
            while let Some((task, rx)) = current.take() {
                let span = task_span(&task);
                queue.attempt(task, rx).instrument(span).await;
                if let Some(next) = queue.next_buffered() {
                    let rx = queue.arm(next.id);
                    current = Some((next, rx));
                }
            }
            queue.running.fetch_sub(1, AtomicOrdering::Relaxed);
            drop(permit);
            queue.wake.notify_one();
        });
    }

    /// Starts buffered tasks while workers are free.
    pub(super) fn start_buffered(self: &Arc<Self>) {
        loop {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                return;
            };
            let next = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                Some(Ready(task)) => self.spawn_attempt(task, permit),
                None => return,
            }
        }
    }

    /// Keeps the buffer fed: claims due tasks while workers are free or the buffer is below
    /// its prefetch, with up to [`MAX_CLAIMS`] claims in flight on a backlog.
    ///
    /// One claim at a time left the workers idle while it ran: a claim of 1,000 tasks took
    /// ~40 ms on PostgreSQL, the workers drained the buffer's half in ~10 ms and then waited for
    /// it, three quarters of the time, with the database's CPU a third idle (bench/queue/README.md,
    /// session 11). Two claims of half the batch each, the second started
    /// while the first is in flight, keep one claim running while the workers drain what the
    /// other brought. The second claim is started only once a claim came back full (a backlog),
    /// so an idle instance woken for one task sends one claim.
    pub(super) async fn dispatcher(self: Arc<Self>) {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let poll = Duration::from_millis(self.settings.poll_ms);
        let prefetch = self.settings.prefetch as usize;
        let chunk = ((self.concurrency as usize + prefetch) / MAX_CLAIMS).max(1);
        let mut stop = self.stopping.subscribe();
        let mut failures = 0u32;
        let mut claims = FuturesUnordered::new();
        // Tasks asked for by the claims in flight.
        let mut asked_in_flight = 0usize;
        // The last claim came back full: more are likely due, so claims may overlap.
        let mut backlog = false;
        // The last claim came back short (or failed): no claim until woken or `wait` is over.
        let mut idle_until: Option<tokio::time::Instant> = None;
        let mut wait = poll;
        loop {
            if *stop.borrow() {
                // Claims in flight are let finish and what they took is given back at once
                // (the shutdown has released the buffer already), rather than left to wait for
                // its lease to expire.
                while let Some((_, result)) = claims.next().await {
                    let result: Result<Vec<Task>, StoreError> = result;
                    if let Ok(tasks) = result {
                        self.hold(&tasks);
                        self.release_unstarted(&tasks);
                    }
                }
                return;
            }
            self.start_buffered();
            let buffered = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).len();
            let free = self.slots.available_permits();
            let have = buffered + asked_in_flight;
            let want = (free + prefetch).saturating_sub(have);
            let may_overlap = claims.is_empty() || (backlog && claims.len() < MAX_CLAIMS);
            let resting = idle_until.is_some_and(|t| tokio::time::Instant::now() < t);
            if want > 0 && !resting && may_overlap && (have <= prefetch / 2 || want >= chunk) {
                let n = want.min(chunk);
                asked_in_flight += n;
                let lease = self.lease_from(self.now());
                let store = self.store.clone();
                let instance = self.instance.clone();
                claims.push(async move {
                    let lease = Lease {
                        instance: &instance,
                        now: lease.now,
                        until: lease.until,
                    };
                    (n, store.claim_tasks(lease, n as u32).await)
                });
                continue;
            }
            let sleep = match idle_until {
                Some(t) if resting => tokio::time::sleep_until(t),
                _ => tokio::time::sleep(wait),
            };
            tokio::select! {
                Some((asked, result)) = claims.next(), if !claims.is_empty() => {
                    asked_in_flight -= asked;
                    match result {
                        Ok(tasks) => {
                            failures = 0;
                            let n = tasks.len();
                            self.take_claimed(tasks);
                            backlog = n == asked;
                            if backlog {
                                // More are due, whatever another claim found.
                                idle_until = None;
                            } else if !claims.is_empty() {
                                // Another claim is in flight: no new one meanwhile; what it
                                // brings decides (not asked for the next due time here, which
                                // would leave that claim's tasks unread until answered).
                                idle_until = Some(tokio::time::Instant::now() + poll);
                            } else {
                                // Drained for now: rest until the next delayed task is due (or
                                // a submission, a finished worker, the poll wakes us).
                                wait = poll;
                                if let Ok(Some(next)) = self.store.next_run_at().await {
                                    let until = (next - self.now())
                                        .to_std()
                                        .unwrap_or(Duration::ZERO)
                                        .max(Duration::from_millis(5));
                                    wait = wait.min(until);
                                }
                                idle_until = Some(tokio::time::Instant::now() + wait);
                            }
                        }
                        Err(e) => {
                            self.store_failed();
                            failures += 1;
                            backlog = false;
                            if failures == 1 || failures % 30 == 0 {
                                tracing::warn!(error = %e, failures, "cannot claim tasks; retrying");
                            }
                            wait = Duration::from_millis((100 * u64::from(failures)).min(2_000));
                            idle_until = Some(tokio::time::Instant::now() + wait);
                        }
                    }
                }
                _ = self.wake.notified() => {
                    // A store that failed a moment ago is not asked again at once.
                    if failures == 0 {
                        idle_until = None;
                    }
                }
                _ = sleep => {
                    idle_until = None;
                    wait = poll;
                }
                _ = stop.changed() => {}
            }
        }
    }

    /// Holds and buffers tasks a claim brought, and starts them on free workers.
    fn take_claimed(self: &Arc<Self>, tasks: Vec<Task>) {
        if tasks.is_empty() {
            return;
        }
        self.hold(&tasks);
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks.into_iter().map(Ready));
        self.start_buffered();
    }
}
