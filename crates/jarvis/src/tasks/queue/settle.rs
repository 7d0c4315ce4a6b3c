//! Settlements: batched, applied after the records of their attempts are stored, retried until
//! the store takes them; waiters and metrics told once they are.

use super::*;

impl TaskQueue {
    pub(super) fn settle(&self, task: &Task, settlement: Settlement) {
        // No new claim of the task can exist before this settlement commits: the one held now
        // is the one settled.
        let claim = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&task.id)
            .map(|h| h.claim);
        let msg = SettleMsg::Settle(Box::new(Settle {
            settlement,
            // The attempt's record, when it has one, was queued just before: this mark covers it.
            records: self.recorder.queued(),
            claim,
            domain: task.domain.to_string(),
            action: task.action.to_string(),
        }));
        if self.settle_tx.send(msg).is_err() {
            tracing::error!("task settled after the settler stopped; its lease will expire");
        }
    }

    /// Waits until every settlement handed to the settler so far is applied (returns at once
    /// when the settler is gone).
    pub(super) async fn flush_settlements(&self) {
        let (tx, rx) = oneshot::channel();
        if self.settle_tx.send(SettleMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Applies settlements in batches: whatever accumulated while the previous batch was
    /// written goes in the next one.
    pub(super) async fn settler(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<SettleMsg>) {
        while let Some(first) = rx.recv().await {
            let mut batch: Vec<Settle> = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    SettleMsg::Settle(s) => batch.push(*s),
                    SettleMsg::Flush(f) => flushes.push(f),
                }
                if batch.len() >= SETTLE_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.apply(batch).await;
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    }

    pub(super) async fn apply(&self, batch: Vec<Settle>) {
        let settlements: Vec<Settlement> = batch.iter().map(|s| s.settlement.clone()).collect();
        // Records first: every attempt of this batch queued its record before its settlement,
        // so once the records queued up to the batch's mark are written they are in the store
        // (or the local spool). A settled task whose record died with the process would be an attempt
        // without a record. (Waiting for that mark, not for a flush: a flush also waits for
        // every record queued after it in the writer's next batch, which made each settlement
        // wait up to two history batches, ~100 ms under load, and settling the bottleneck of
        // the queue; bench/queue.)
        let mark = batch.iter().map(|s| s.records).max().unwrap_or(0);
        self.recorder.written(mark).await;
        // Retried until the store takes it: the tasks stay held meanwhile, so the lease keeper
        // renews them as soon as the store is back and nobody else runs them again. (Only
        // shutdown, after its own bounded wait, abandons a settlement: the leases then expire
        // and the reclaimer settles each task from its record.)
        let mut delay = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            match self
                .store
                .settle_tasks(&self.instance, &settlements, self.now())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    self.store_failed();
                    failures += 1;
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!(error = %e, tasks = settlements.len(), failures, "cannot settle tasks yet; retrying");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        {
            // Only the settled claim: the dispatcher may have claimed the task again between
            // the commit and this lock (a retry due at once, a task given back), and that
            // claim must stay held, or its lease would not be renewed.
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for s in &batch {
                let id = s.settlement.id;
                if held.get(&id).map(|h| h.claim) == s.claim {
                    held.remove(&id);
                }
            }
        }
        let mut retry_soon = false;
        for s in &batch {
            let st = &s.settlement;
            if st.status.is_final() {
                self.metrics.finished(&s.domain, &s.action, st.status);
                let _ = self.finished.send(st.id);
            } else {
                retry_soon = true;
            }
        }
        if retry_soon {
            // Retries and waits are due later: let the dispatcher recompute its sleep.
            self.wake.notify_one();
        }
    }
}
