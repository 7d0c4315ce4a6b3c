//! Shutdown: stop claiming, release what did not start, let running attempts finish within
//! the grace period, then write every settlement.

use super::*;

impl TaskQueue {
    /// Stops claiming, releases buffered tasks, lets running attempts finish within `grace`
    /// (then stops and requeues them, the interrupted attempt counted), and writes every
    /// settlement. The recorder is flushed by its owner afterwards.
    pub async fn shutdown(self: &Arc<Self>, grace: Duration) {
        let _ = self.stopping.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let buffered: Vec<Task> = self
            .buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|r| r.0)
            .collect();
        if !buffered.is_empty() {
            tracing::info!(
                tasks = buffered.len(),
                "releasing claimed tasks that did not start"
            );
        }
        self.release_unstarted(&buffered);
        if self.running() > 0 {
            tracing::info!(
                running = self.running(),
                "waiting for running tasks to finish"
            );
        }
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        if self.running() > 0 {
            tracing::warn!(
                running = self.running(),
                "grace period over; interrupting running tasks"
            );
            let ids = self.held_ids();
            for id in ids {
                self.stop_local(id, Stop::Shutdown);
            }
            let hard = tokio::time::Instant::now() + Duration::from_secs(2);
            while self.running() > 0 && tokio::time::Instant::now() < hard {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let _ = tokio::time::timeout(
            self.lease() + Duration::from_secs(1),
            self.flush_settlements(),
        )
        .await;
        for h in self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
        tracing::info!("task workers stopped");
    }
}

impl TaskQueue {
    /// Gives back claimed tasks that never started (the attempt their claim counted is not
    /// spent): the buffer at shutdown, and what claims still in flight then bring.
    pub(super) fn release_unstarted(&self, tasks: &[Task]) {
        for t in tasks {
            self.settle(
                t,
                Settlement {
                    id: t.id,
                    attempt: t.attempts,
                    status: if t.status == TaskStatus::Waiting {
                        TaskStatus::Waiting
                    } else {
                        TaskStatus::Queued
                    },
                    attempts_delta: -1,
                    run_at: None,
                    result: None,
                    error: t.error.clone(),
                    finished_at: None,
                    duration_ms: None,
                },
            );
        }
    }
}
