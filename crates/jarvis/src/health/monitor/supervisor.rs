//! The supervisor: one task per service, kept in step with the store's list (a cheap
//! fingerprint poll, a full read when it changed) and with changes made through the API.

use super::*;

/// Keeps one task per service in step with the store.
pub(super) async fn supervise(
    inner: Arc<Inner>,
    history: History,
    mut stopped: watch::Receiver<bool>,
) {
    if inner.config.enabled {
        // Uptime counts kept from before this start (and other instances'), handed to each
        // service's slot when the first read of the list creates it.
        let mut seed = uptime_seed(&inner).await;
        let mut reload = tokio::time::interval(inner.config.reload);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The periodic poll reads only a fingerprint of the list; the whole list (thousands of
        // rows, decoded on a runtime thread) is read when it changed, after a local change, and
        // at least every FULL_RELOAD_EVERY polls as a safety net.
        const FULL_RELOAD_EVERY: u32 = 30;
        let mut known: Option<crate::store::ServicesFingerprint> = None;
        let mut polls_since_full = 0u32;
        loop {
            let local_change = tokio::select! {
                _ = reload.tick() => false,
                () = inner.changed.notified() => true,
                _ = stopped.changed() => break,
            };
            polls_since_full += 1;
            if local_change {
                // Coalesce a burst of API changes (a script deleting thousands of services)
                // into one read of the list.
                tokio::time::sleep(LOCAL_CHANGE_DEBOUNCE.min(inner.config.reload)).await;
                let _ = tokio::time::timeout(Duration::ZERO, inner.changed.notified()).await;
            }
            if !local_change && known.is_some() && polls_since_full < FULL_RELOAD_EVERY {
                match inner.store.services_fingerprint().await {
                    Ok(f) if Some(f) == known => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the service list fingerprint");
                        continue;
                    }
                }
            }
            // Read before the list, so that a change made in between is seen next time.
            let fingerprint = inner.store.services_fingerprint().await.ok();
            match inner.store.list_services().await {
                Ok(specs) => {
                    known = fingerprint;
                    polls_since_full = 0;
                    apply(&inner, &history, specs, &mut seed);
                    seed = HashMap::new();
                    *inner.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = fingerprint;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot read the service list; checking the services already known"
                ),
            }
        }
    } else {
        tracing::info!("health monitor disabled (JARVIS_HEALTH_MONITOR=false)");
        let _ = stopped.changed().await;
    }
    let slots = inner.slots.write().unwrap_or_else(|e| e.into_inner());
    inner.closed.store(true, Ordering::SeqCst);
    for slot in slots.values() {
        slot.stop();
    }
}

/// Starts, restarts and stops service tasks so that they match `specs`.
pub(super) fn apply(
    inner: &Arc<Inner>,
    history: &History,
    specs: Vec<ServiceSpec>,
    seed: &mut HashMap<String, Vec<UptimeCount>>,
) {
    let mut slots = inner.slots.write().unwrap_or_else(|e| e.into_inner());
    let wanted: HashMap<&str, &ServiceSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut gone = Vec::new();
    slots.retain(|name, slot| {
        let keep = wanted.contains_key(name.as_str());
        if !keep {
            slot.stop();
            tracing::info!(service = %name, "service no longer monitored");
            gone.push(name.clone());
        }
        keep
    });
    if let (false, Some(sync)) = (gone.is_empty(), inner.breaker_sync.get()) {
        // After the tasks are aborted, so that no check creates the breaker again.
        let sync = sync.clone();
        tokio::spawn(async move {
            for name in gone {
                sync.service_gone(&name).await;
            }
        });
    }
    for spec in &specs {
        upsert(
            inner,
            history,
            &mut slots,
            spec,
            seed.remove(spec.name.as_str()),
        );
    }
    inner.metrics.services.set(slots.len() as f64);
}

/// Puts `spec` in its slot and starts its task, unless the slot already checks exactly this
/// definition. A changed definition keeps what was seen under the old one and stops the old
/// task; a new service starts from `seed` (stored uptime counts), if any.
pub(super) fn upsert(
    inner: &Arc<Inner>,
    history: &History,
    slots: &mut HashMap<String, Arc<Slot>>,
    spec: &ServiceSpec,
    seed: Option<Vec<UptimeCount>>,
) {
    let name = spec.name.as_str();
    let previous = slots.get(name).cloned();
    if previous.as_ref().is_some_and(|p| p.spec == *spec) {
        return;
    }
    let seen = match previous {
        Some(p) => {
            p.stop();
            std::mem::take(&mut *p.seen.lock().unwrap_or_else(|e| e.into_inner()))
        }
        None => {
            let mut seen = Seen::default();
            for c in seed.unwrap_or_default() {
                seen.uptime.set_stored(
                    c.width_s,
                    c.bucket_start.max(0) as u64,
                    c.up.max(0) as u64,
                    c.total.max(0) as u64,
                );
            }
            seen
        }
    };
    let slot = Arc::new(Slot {
        spec: spec.clone(),
        seen: Mutex::new(seen),
        task: Mutex::new(None),
    });
    slots.insert(name.to_string(), slot.clone());
    let task = tokio::spawn(run_service(inner.clone(), history.clone(), slot.clone()));
    *slot.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    tracing::info!(
        service = name,
        url = %spec.url,
        interval_ms = spec.interval_ms,
        timeout_ms = spec.timeout_ms,
        critical = spec.critical,
        "service monitored"
    );
}
