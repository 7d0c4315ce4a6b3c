//! Uptime in the store: this instance's counts added every sync, the stored counts read back
//! (so every instance shows the checks of all), old buckets pruned.

use super::*;

/// How long uptime buckets are kept in the store: the day window and some slack (hour buckets
/// are kept longer, `store::health::UPTIME_HOURS_KEEP_SECS`, for the analytics API).
const UPTIME_KEEP_SECS: u64 = 2 * 86_400;
/// How often old uptime buckets are deleted.
const UPTIME_PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// The stored uptime buckets of the last hour and day, by service (empty if the store cannot
/// be read: uptime then starts from this instance's own checks).
pub(super) async fn uptime_seed(inner: &Inner) -> HashMap<String, Vec<UptimeCount>> {
    let now = unix_now() as i64;
    let since_5m = now - i64::from(HOUR_BUCKET) * 13;
    let since_1h = now - i64::from(DAY_BUCKET) * 25;
    let mut seed: HashMap<String, Vec<UptimeCount>> = HashMap::new();
    match inner.store.uptime_counts(since_5m, since_1h).await {
        Ok(counts) => {
            for c in counts {
                seed.entry(c.service.clone()).or_default().push(c);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read stored uptime; counting from now"),
    }
    seed
}

/// Adds this instance's uptime counts to the store every `JARVIS_HEALTH_UPTIME_SYNC_MS` (and
/// once more when stopped); with PostgreSQL, reads the current buckets of every instance back.
pub(super) async fn sync_uptime(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    if !inner.config.enabled {
        return;
    }
    let every = inner.config.uptime_sync;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        inner.write_uptime().await;
        if inner.store.backend() == Backend::Postgres {
            inner.read_uptime().await;
        }
        if last_prune.is_none_or(|t| t.elapsed() >= UPTIME_PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let before = unix_now().saturating_sub(UPTIME_KEEP_SECS) as i64;
            if let Err(e) = inner.store.prune_uptime(before).await {
                tracing::warn!(error = %e, "cannot delete old uptime counts");
            }
        }
    }
    inner.write_uptime().await;
}

impl Inner {
    pub(super) fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds every service's pending uptime counts to the store; on failure they are kept for
    /// the next sync.
    pub(super) async fn write_uptime(&self) {
        let mut taken: Vec<(Arc<Slot>, Vec<Pending>)> = Vec::new();
        for slot in self.all_slots() {
            let pending = slot
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uptime
                .take_pending();
            if !pending.is_empty() {
                taken.push((slot, pending));
            }
        }
        if taken.is_empty() {
            return;
        }
        let counts: Vec<UptimeCount> = taken
            .iter()
            .flat_map(|(slot, pending)| {
                pending.iter().map(|p| UptimeCount {
                    service: slot.spec.name.to_string(),
                    width_s: p.width_s,
                    bucket_start: p.bucket_start as i64,
                    up: i64::from(p.up),
                    total: i64::from(p.total),
                    latency_sum_ms: p.latency_sum_ms.min(i64::MAX as u64) as i64,
                    latency_count: i64::from(p.latency_count),
                })
            })
            .collect();
        if let Err(e) = self.store.add_uptime(&counts).await {
            tracing::warn!(error = %e, services = taken.len(), "cannot write uptime counts; keeping them for the next sync");
            for (slot, pending) in taken {
                slot.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .uptime
                    .restore_pending(&pending);
            }
        }
    }

    /// Sets the current (and previous) buckets of every service to the stored counts of all
    /// instances plus this instance's pending ones.
    pub(super) async fn read_uptime(&self) {
        let now = unix_now() as i64;
        let since_5m =
            now / i64::from(HOUR_BUCKET) * i64::from(HOUR_BUCKET) - i64::from(HOUR_BUCKET);
        let since_1h = now / i64::from(DAY_BUCKET) * i64::from(DAY_BUCKET) - i64::from(DAY_BUCKET);
        let counts = match self.store.uptime_counts(since_5m, since_1h).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read uptime counts");
                return;
            }
        };
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        for c in counts {
            if let Some(slot) = slots.get(&c.service) {
                slot.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .uptime
                    .set_stored(
                        c.width_s,
                        c.bucket_start.max(0) as u64,
                        c.up.max(0) as u64,
                        c.total.max(0) as u64,
                    );
            }
        }
    }
}
