//! Per-thread call counters.
//!
//! Every call that reaches an outcome bumps one counter (successes, failures, ignored or
//! rejected). A single shared `AtomicU64` would make every call from every core write the
//! same cache line, which is what makes other breakers slow under concurrency. Instead,
//! each breaker has one cache-line-sized slot per *thread slot id*: a process-wide id
//! that a thread claims on first use and gives back when it exits. A slot has exactly one
//! writer at a time, so an increment is a plain relaxed load and store (no locked
//! read-modify-write, no contention) and is still exact. Readers sum the slots.
//!
//! A breaker has `2 × available_parallelism` slots (at least 8, at most 256). Threads
//! whose id does not fit share one overflow slot updated with `fetch_add`: still exact,
//! only slower.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

const UNSET: usize = usize::MAX;
/// Used by a thread whose slot id was returned (during thread teardown).
const OVERFLOW: usize = usize::MAX - 1;

thread_local! {
    static SLOT_ID: Cell<usize> = const { Cell::new(UNSET) };
    static SLOT_GUARD: SlotGuard = const { SlotGuard(Cell::new(UNSET)) };
}

/// Returns the thread's slot id to the pool when the thread exits.
struct SlotGuard(Cell<usize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let id = self.0.get();
        if id == UNSET {
            return;
        }
        // From now on this thread (still running other destructors) uses the overflow slot,
        // so the next owner of `id` is its only writer.
        SLOT_ID.with(|c| c.set(OVERFLOW));
        let mut ids = ids().lock().unwrap_or_else(|e| e.into_inner());
        ids.free.push(id);
    }
}

#[derive(Default)]
struct Ids {
    next: usize,
    free: Vec<usize>,
}

fn ids() -> &'static Mutex<Ids> {
    static IDS: OnceLock<Mutex<Ids>> = OnceLock::new();
    IDS.get_or_init(Mutex::default)
}

fn slot_id() -> usize {
    let id = SLOT_ID.with(Cell::get);
    if id != UNSET {
        id
    } else {
        claim_slot_id()
    }
}

#[cold]
fn claim_slot_id() -> usize {
    let id = {
        let mut ids = ids().lock().unwrap_or_else(|e| e.into_inner());
        // Prefer the smallest free id so that ids stay below the slot count.
        if let Some((pos, _)) = ids.free.iter().enumerate().min_by_key(|(_, id)| **id) {
            ids.free.swap_remove(pos)
        } else {
            ids.next += 1;
            ids.next - 1
        }
    };
    if SLOT_GUARD.try_with(|g| g.0.set(id)).is_err() {
        // The thread is being torn down: do not claim anything.
        ids()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(id);
        SLOT_ID.with(|c| c.set(OVERFLOW));
        return OVERFLOW;
    }
    SLOT_ID.with(|c| c.set(id));
    id
}

fn slots_per_breaker() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        (cores * 2).clamp(8, 256)
    })
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Count {
    Success = 0,
    Failure = 1,
    Ignored = 2,
    Rejected = 3,
}

/// One thread slot's counters, alone on its (pair of) cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Slot([AtomicU64; 4]);

/// Totals read from the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub successes: u64,
    pub failures: u64,
    pub ignored: u64,
    pub rejected: u64,
}

impl Totals {
    pub(crate) fn minus(self, base: Totals) -> Totals {
        Totals {
            successes: self.successes.wrapping_sub(base.successes),
            failures: self.failures.wrapping_sub(base.failures),
            ignored: self.ignored.wrapping_sub(base.ignored),
            rejected: self.rejected.wrapping_sub(base.rejected),
        }
    }
}

pub(crate) struct Counters {
    slots: Box<[Slot]>,
    overflow: Slot,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            slots: (0..slots_per_breaker()).map(|_| Slot::default()).collect(),
            overflow: Slot::default(),
        }
    }

    #[inline]
    pub(crate) fn bump(&self, which: Count) {
        let i = which as usize;
        // `UNSET` and `OVERFLOW` are out of range too, so one bounds check covers them.
        match self.slots.get(SLOT_ID.with(Cell::get)) {
            Some(slot) => {
                // Single writer: a plain load and store is an exact increment.
                let c = &slot.0[i];
                c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
            }
            None => self.bump_cold(i),
        }
    }

    #[cold]
    #[inline(never)]
    fn bump_cold(&self, i: usize) {
        match self.slots.get(slot_id()) {
            Some(slot) => {
                let c = &slot.0[i];
                c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
            }
            None => {
                self.overflow.0[i].fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut sums = [0u64; 4];
        for slot in self.slots.iter().chain(std::iter::once(&self.overflow)) {
            for (sum, c) in sums.iter_mut().zip(slot.0.iter()) {
                *sum = sum.wrapping_add(c.load(Relaxed));
            }
        }
        Totals {
            successes: sums[0],
            failures: sums[1],
            ignored: sums[2],
            rejected: sums[3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_exactly_across_many_short_lived_threads() {
        let counters = Arc::new(Counters::new());
        let n_threads = 3 * slots_per_breaker() + 5;
        let per_thread = 1000u64;
        // Waves of threads, some alive at once beyond the slot count (overflow path).
        let handles: Vec<_> = (0..n_threads)
            .map(|_| {
                let c = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..per_thread {
                        c.bump(Count::Success);
                    }
                    c.bump(Count::Rejected);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let t = counters.totals();
        assert_eq!(t.successes, n_threads as u64 * per_thread);
        assert_eq!(t.rejected, n_threads as u64);
        assert_eq!(t.failures, 0);
    }
}
