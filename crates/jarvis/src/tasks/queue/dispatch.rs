//! The workers of one instance: the dispatcher claims batches into a local buffer ordered by
//! priority, and each worker keeps its slot and takes the next buffered task itself.

use super::*;

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

    pub(super) async fn dispatcher(self: Arc<Self>) {
        let poll = Duration::from_millis(self.settings.poll_ms);
        let prefetch = self.settings.prefetch as usize;
        let mut stop = self.stopping.subscribe();
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            self.start_buffered();
            let buffered = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).len();
            let free = self.slots.available_permits();
            let want = (free + prefetch).saturating_sub(buffered);
            let mut wait = poll;
            if want > 0 && buffered <= prefetch / 2 {
                let now = self.now();
                match self
                    .store
                    .claim_tasks(self.lease_from(now), want as u32)
                    .await
                {
                    Ok(tasks) => {
                        failures = 0;
                        let n = tasks.len();
                        if n > 0 {
                            {
                                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                                for t in &tasks {
                                    held.insert(t.id, self.held_claim());
                                }
                            }
                            self.buffer
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(tasks.into_iter().map(Ready));
                            self.start_buffered();
                        }
                        if n == want {
                            continue;
                        }
                        // Drained for now: sleep until the next delayed task is due.
                        match self.store.next_run_at().await {
                            Ok(Some(next)) => {
                                let until = (next - self.now())
                                    .to_std()
                                    .unwrap_or(Duration::ZERO)
                                    .max(Duration::from_millis(5));
                                wait = wait.min(until);
                            }
                            Ok(None) => {}
                            Err(_) => {}
                        }
                    }
                    Err(e) => {
                        self.store_failed();
                        failures += 1;
                        if failures == 1 || failures % 30 == 0 {
                            tracing::warn!(error = %e, failures, "cannot claim tasks; retrying");
                        }
                        wait = Duration::from_millis((100 * u64::from(failures)).min(2_000));
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
