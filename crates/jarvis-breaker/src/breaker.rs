//! The breaker itself: the state word, admission, outcomes, manual and remote control.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::classify::{Outcome, Verdict};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, FailureRate, Policy};
use crate::counters::{Count, Counters, Totals};
use crate::events::{Event, Listener, Origin, RemoteState, Snapshot, Transition};
use crate::permit::{OwnedPermit, Permit, Ticket};
use crate::state::{CallError, RejectReason, Rejected, State};
use crate::window::{duration_nanos, RateWindow, Sample};

// The state word packs everything admission needs, so that admitting a call is one load
// (CLOSED) or one compare-and-swap (HALF_OPEN):
//
//   bits 0..2   state: CLOSED, OPEN, HALF_OPEN
//   bit  2      HELD: OPEN held by an operator (no trial until closed or reset)
//   bit  3      ELSEWHERE: HALF_OPEN whose trial runs on another instance (admit none)
//   bits 4..16  trial calls in flight (HALF_OPEN only)
//   bits 16..64 generation: +1 at every transition
//
// Every change of state or generation is made while holding `cold`; without the lock only
// the in-flight trial count changes (admission and release, by CAS). So a lock holder
// sees state and generation stable and may store a whole new word: a racing CAS on the
// old word fails and retries against the new one.
const ST_MASK: u64 = 0b11;
const ST_CLOSED: u64 = 0;
const ST_OPEN: u64 = 1;
const ST_HALF: u64 = 2;
const HELD: u64 = 1 << 2;
const ELSEWHERE: u64 = 1 << 3;
const INFLIGHT_SHIFT: u32 = 4;
const INFLIGHT_ONE: u64 = 1 << INFLIGHT_SHIFT;
const INFLIGHT_MASK: u64 = 0xFFF << INFLIGHT_SHIFT;
const GEN_SHIFT: u32 = 16;

const REASON_MAX: usize = 256;

#[inline]
fn gen_of(w: u64) -> u64 {
    w >> GEN_SHIFT
}

#[inline]
fn compose(generation: u64, bits: u64) -> u64 {
    (generation << GEN_SHIFT) | bits
}

fn state_of(w: u64) -> State {
    match w & ST_MASK {
        ST_CLOSED => State::Closed,
        ST_OPEN => State::Open,
        _ => State::HalfOpen,
    }
}

fn inflight(w: u64) -> u32 {
    ((w & INFLIGHT_MASK) >> INFLIGHT_SHIFT) as u32
}

/// The fields every call reads, alone on their cache lines: nothing else written often
/// shares them, so in a healthy CLOSED breaker every core keeps them cached.
#[repr(align(128))]
struct Hot {
    word: AtomicU64,
    /// Consecutive failures. Written only by failures and by the first success after them.
    failures: AtomicU32,
    consecutive_policy: bool,
    needs_call_time: bool,
    /// `0` when `consecutive_policy && !needs_call_time` (a CLOSED call then needs nothing
    /// but the word), else `ST_OPEN`: OR-ed into the word, it makes one test cover both.
    not_plain: u64,
}

/// Everything touched only on failures, transitions and reads for the API, behind a lock.
struct Cold {
    half_open_successes: u32,
    /// Failed trials since the circuit last closed: the exponent of the open-period growth.
    backoff_level: u32,
    last_failure_at: Option<SystemTime>,
    reason: String,
    has_reason: bool,
    opened_at: Option<SystemTime>,
    next_attempt_at: Option<SystemTime>,
    window: Option<RateWindow>,
    remote_version: Option<u64>,
    /// Counter totals at the last reset.
    baseline: Totals,
    rng: u64,
}

impl Cold {
    fn set_reason(&mut self, reason: &dyn fmt::Display) {
        self.reason.clear();
        let _ = write!(self.reason, "{reason}");
        if self.reason.len() > REASON_MAX {
            let mut end = REASON_MAX;
            while !self.reason.is_char_boundary(end) {
                end -= 1;
            }
            self.reason.truncate(end);
        }
        self.has_reason = true;
    }

    /// splitmix64: good enough to spread open periods, no dependency.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// How to open the circuit.
struct OpenSpec {
    generation: u64,
    origin: Origin,
    forced: bool,
    /// `None`: held open.
    period: Option<Duration>,
    /// Shown as `opened_at`; `None`: now.
    opened_at: Option<SystemTime>,
}

/// At most three events come out of one operation; kept on the stack.
struct Events {
    buf: [Option<Event>; 3],
}

impl Events {
    fn new() -> Self {
        Events { buf: [None; 3] }
    }

    fn push(&mut self, event: Event) {
        if let Some(slot) = self.buf.iter_mut().find(|e| e.is_none()) {
            *slot = Some(event);
        }
    }
}

/// A circuit breaker. Share it with `Arc<Breaker>`; every method takes `&self`.
///
/// See the [crate documentation](crate) for the states and an example.
pub struct Breaker {
    hot: Hot,
    /// Monotonic nanoseconds (since `origin`) at which an OPEN circuit may try again
    /// (`u64::MAX`: never, until an operator or a remote state says so).
    open_until: AtomicU64,
    /// The generation for which `Event::TrialDue` was reported.
    trial_due_gen: AtomicU64,
    coordinated: AtomicBool,
    counters: Counters,
    cold: Mutex<Cold>,
    listener: Option<Arc<dyn Listener>>,
    clock: Arc<dyn Clock>,
    origin: Instant,
    config: Config,
    name: String,
}

/// Builds a [`Breaker`]; start with [`Breaker::builder`].
pub struct BreakerBuilder {
    name: String,
    config: Config,
    clock: Option<Arc<dyn Clock>>,
    listener: Option<Arc<dyn Listener>>,
    jitter_seed: Option<u64>,
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("has_listener", &self.listener.is_some())
            .finish()
    }
}

impl BreakerBuilder {
    /// Replaces every setting at once.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the trip policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Uses the consecutive-failures policy with this threshold (default 5).
    pub fn failure_threshold(self, threshold: u32) -> Self {
        self.policy(Policy::ConsecutiveFailures { threshold })
    }

    /// Uses the failure-rate policy.
    pub fn failure_rate(self, rate: FailureRate) -> Self {
        self.policy(Policy::FailureRate(rate))
    }

    /// How long the circuit stays open before a trial (default 60 s). Also raises
    /// `max_open_duration` to it when lower.
    pub fn open_duration(mut self, open: Duration) -> Self {
        self.config.open_duration = open;
        self.config.max_open_duration = self.config.max_open_duration.max(open);
        self
    }

    /// Multiplies the open period by `multiplier` after each failed trial, up to `max`.
    pub fn backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.backoff_multiplier = multiplier;
        self.config.max_open_duration = max;
        self
    }

    /// Adds up to `fraction` (0.0–1.0) of random extra time to each open period.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config.jitter = fraction;
        self
    }

    /// Seeds the jitter's random numbers (for reproducible tests).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Concurrent trial calls allowed in `HALF_OPEN` (default 1).
    pub fn half_open_max_trials(mut self, trials: u32) -> Self {
        self.config.half_open_max_trials = trials;
        self
    }

    /// Successful trials that close the circuit (default 2).
    pub fn successes_to_close(mut self, successes: u32) -> Self {
        self.config.half_open_successes_to_close = successes;
        self
    }

    /// Sets what counts as a failure.
    pub fn classifier(mut self, classifier: crate::Classifier) -> Self {
        self.config.classifier = classifier;
        self
    }

    /// Waits for [`Breaker::grant_trial`] instead of starting half-open trials alone.
    pub fn coordinated_trials(mut self, coordinated: bool) -> Self {
        self.config.coordinated_trials = coordinated;
        self
    }

    /// Uses this clock instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Registers the listener that receives every [`Event`]. It must not block.
    pub fn listener(self, listener: impl Listener) -> Self {
        self.listener_arc(Arc::new(listener))
    }

    /// Registers a shared listener that receives every [`Event`]. It must not block.
    pub fn listener_arc(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Validates the settings and builds the breaker, `CLOSED`, generation 0.
    pub fn build(self) -> Result<Breaker, ConfigError> {
        self.config.validate()?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let seed = self.jitter_seed.unwrap_or_else(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(&self.name)
        });
        let window = match self.config.policy {
            Policy::FailureRate(rate) => Some(RateWindow::new(rate)),
            Policy::ConsecutiveFailures { .. } => None,
        };
        Ok(Breaker {
            hot: Hot {
                word: AtomicU64::new(compose(0, ST_CLOSED)),
                failures: AtomicU32::new(0),
                consecutive_policy: matches!(
                    self.config.policy,
                    Policy::ConsecutiveFailures { .. }
                ),
                needs_call_time: self.config.needs_call_time(),
                not_plain: if matches!(self.config.policy, Policy::ConsecutiveFailures { .. })
                    && !self.config.needs_call_time()
                {
                    0
                } else {
                    ST_OPEN
                },
            },
            open_until: AtomicU64::new(0),
            trial_due_gen: AtomicU64::new(u64::MAX),
            coordinated: AtomicBool::new(self.config.coordinated_trials),
            counters: Counters::new(),
            cold: Mutex::new(Cold {
                half_open_successes: 0,
                backoff_level: 0,
                last_failure_at: None,
                reason: String::new(),
                has_reason: false,
                opened_at: None,
                next_attempt_at: None,
                window,
                remote_version: None,
                baseline: Totals::default(),
                rng: seed,
            }),
            listener: self.listener,
            origin: clock.now(),
            clock,
            config: self.config,
            name: self.name,
        })
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.hot.word.load(Ordering::Acquire);
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &state_of(w))
            .field("generation", &gen_of(w))
            .field("consecutive_failures", &self.consecutive_failures())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A breaker with the default settings ([`Config::default`]) and the system clock.
    pub fn new(name: impl Into<String>) -> Breaker {
        match Breaker::builder(name).build() {
            Ok(b) => b,
            Err(e) => unreachable!("the default configuration is valid: {e}"),
        }
    }

    /// Starts building a breaker named `name` with the default settings.
    pub fn builder(name: impl Into<String>) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            config: Config::default(),
            clock: None,
            listener: None,
            jitter_seed: None,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current state (an `OPEN` circuit becomes `HALF_OPEN` on the first call after
    /// its open period).
    pub fn state(&self) -> State {
        state_of(self.hot.word.load(Ordering::Acquire))
    }

    /// The current generation: it grows by one at every transition.
    pub fn generation(&self) -> u64 {
        gen_of(self.hot.word.load(Ordering::Acquire))
    }

    /// The current consecutive-failure count.
    pub fn consecutive_failures(&self) -> u32 {
        self.hot.failures.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- admission

    /// Asks to make one call. On `Ok`, make the call and report its outcome on the
    /// [`Permit`]; on `Err`, do not call the service.
    ///
    /// In a `CLOSED` breaker with the consecutive-failures policy this is a single atomic
    /// load: no lock, no allocation, no clock read.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.acquire_ticket()
            .map(|ticket| Permit::new(self, ticket))
    }

    /// Like [`Breaker::try_acquire`], but the permit owns a reference to the breaker, so it
    /// can be moved into a `'static` future or another thread (costs an `Arc` clone).
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        self.acquire_ticket()
            .map(|ticket| OwnedPermit::new(Arc::clone(self), ticket))
    }

    #[inline]
    fn acquire_ticket(&self) -> Result<Ticket, Rejected> {
        let w = self.hot.word.load(Ordering::Acquire);
        if w & ST_MASK == ST_CLOSED {
            return Ok(self.ticket(gen_of(w), false));
        }
        self.acquire_slow(w)
    }

    #[inline]
    fn ticket(&self, generation: u64, trial: bool) -> Ticket {
        let started = if self.hot.needs_call_time {
            Some(self.now_nanos())
        } else {
            None
        };
        Ticket::new(generation, trial, started)
    }

    // Not `#[cold]`: rejecting in OPEN is a path worth making fast too, and LLVM inlines
    // next to nothing into a cold function. Out of line so that the CLOSED path stays small.
    #[inline(never)]
    fn acquire_slow(&self, mut w: u64) -> Result<Ticket, Rejected> {
        loop {
            match w & ST_MASK {
                ST_CLOSED => return Ok(self.ticket(gen_of(w), false)),
                ST_OPEN => {
                    if w & HELD != 0 {
                        return Err(self.reject(State::Open, RejectReason::ForcedOpen, None));
                    }
                    self.check_open_period_over(w, State::Open)?;
                    if let Some(ticket) = self.enter_half_open(w) {
                        return Ok(ticket);
                    }
                }
                _ => {
                    if w & ELSEWHERE != 0 {
                        self.check_open_period_over(w, State::HalfOpen)?;
                        if let Some(ticket) = self.enter_half_open(w) {
                            return Ok(ticket);
                        }
                    } else if inflight(w) >= self.config.half_open_max_trials {
                        return Err(self.reject(State::HalfOpen, RejectReason::HalfOpenFull, None));
                    } else {
                        match self.hot.word.compare_exchange_weak(
                            w,
                            w + INFLIGHT_ONE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return Ok(self.ticket(gen_of(w), true)),
                            Err(current) => {
                                w = current;
                                continue;
                            }
                        }
                    }
                }
            }
            w = self.hot.word.load(Ordering::Acquire);
        }
    }

    /// `Ok` when the open period (or the remote trial's lease) of the generation in `w` is
    /// over and this breaker may start a trial itself.
    #[inline]
    fn check_open_period_over(&self, w: u64, state: State) -> Result<(), Rejected> {
        let now = self.now_nanos();
        let until = self.open_until.load(Ordering::Acquire);
        if now < until {
            return Err(if w & ELSEWHERE != 0 {
                self.reject(state, RejectReason::AwaitingTrial, None)
            } else {
                let retry = (until != u64::MAX).then(|| Duration::from_nanos(until - now));
                self.reject(state, RejectReason::Open, retry)
            });
        }
        if self.coordinated.load(Ordering::Relaxed) {
            let generation = gen_of(w);
            // Load first: waiting callers then only read the shared line.
            if self.trial_due_gen.load(Ordering::Acquire) != generation
                && self.trial_due_gen.swap(generation, Ordering::AcqRel) != generation
            {
                self.emit_one(Event::TrialDue { generation });
            }
            return Err(self.reject(state, RejectReason::AwaitingTrial, None));
        }
        Ok(())
    }

    /// Moves the generation seen in `seen` to `HALF_OPEN` and takes its first trial slot.
    /// `None` when another thread changed the state first.
    #[cold]
    fn enter_half_open(&self, seen: u64) -> Option<Ticket> {
        let event = {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            if w != seen {
                return None;
            }
            self.half_open_locked(&mut cold, w, Origin::Local, 0, 1)
        };
        let ticket = self.ticket(event.generation, true);
        self.emit_one(Event::Transition(event));
        Some(ticket)
    }

    #[inline]
    fn reject(
        &self,
        state: State,
        reason: RejectReason,
        retry_after: Option<Duration>,
    ) -> Rejected {
        self.counters.bump(Count::Rejected);
        let rejected = Rejected::new(state, reason, retry_after);
        self.emit_one(Event::Rejected(rejected));
        rejected
    }

    // ---------------------------------------------------------------- outcomes

    #[inline]
    pub(crate) fn complete(&self, ticket: Ticket, verdict: Verdict, reason: &dyn fmt::Display) {
        match verdict {
            Verdict::Success => self.complete_success(ticket),
            Verdict::Failure => self.complete_failure(ticket, reason),
            Verdict::Ignore => self.complete_ignore(ticket),
        }
    }

    #[inline]
    pub(crate) fn complete_success(&self, ticket: Ticket) {
        self.counters.bump(Count::Success);
        if ticket.trial() {
            self.on_trial_success(ticket);
        } else if self.hot.consecutive_policy {
            // The hot path: a healthy CLOSED breaker has nothing to reset.
            if self.hot.failures.load(Ordering::Relaxed) != 0 {
                self.on_success_after_failures(ticket);
            }
        } else {
            self.on_rate_outcome(ticket, false, &"");
        }
    }

    pub(crate) fn complete_failure(&self, ticket: Ticket, reason: &dyn fmt::Display) {
        self.counters.bump(Count::Failure);
        if !ticket.trial() && !self.hot.consecutive_policy {
            self.on_rate_outcome(ticket, true, reason);
        } else {
            self.on_failure(ticket, reason);
        }
    }

    pub(crate) fn complete_ignore(&self, ticket: Ticket) {
        self.counters.bump(Count::Ignored);
        if ticket.trial() {
            self.release_trial(ticket.generation());
        }
    }

    /// Frees the trial slot of a half-open generation, if it is still current.
    fn release_trial(&self, generation: u64) {
        let mut w = self.hot.word.load(Ordering::Acquire);
        loop {
            if gen_of(w) != generation || w & ST_MASK != ST_HALF || inflight(w) == 0 {
                return;
            }
            match self.hot.word.compare_exchange_weak(
                w,
                w - INFLIGHT_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => w = current,
            }
        }
    }

    #[cold]
    fn on_success_after_failures(&self, ticket: Ticket) {
        let mut events = Events::new();
        {
            let _cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            if gen_of(w) == ticket.generation() && w & ST_MASK == ST_CLOSED {
                let previous = self.hot.failures.swap(0, Ordering::Relaxed);
                if previous != 0 {
                    events.push(Event::FailuresReset {
                        previous,
                        generation: ticket.generation(),
                    });
                }
            }
        }
        self.emit(&events);
    }

    #[cold]
    fn on_trial_success(&self, ticket: Ticket) {
        let mut events = Events::new();
        {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            if gen_of(w) != ticket.generation() || w & ST_MASK != ST_HALF {
                return;
            }
            self.hot.failures.store(0, Ordering::Relaxed);
            cold.half_open_successes = cold.half_open_successes.saturating_add(1);
            if cold.half_open_successes >= self.config.half_open_successes_to_close {
                events.push(Event::Transition(self.close_locked(
                    &mut cold,
                    w,
                    Origin::Local,
                )));
            } else {
                self.release_trial(ticket.generation());
                events.push(Event::TrialSucceeded {
                    half_open_successes: cold.half_open_successes,
                    generation: ticket.generation(),
                });
            }
        }
        self.emit(&events);
    }

    /// A failure under the consecutive-failures policy, or a failed trial under any policy.
    #[cold]
    fn on_failure(&self, ticket: Ticket, reason: &dyn fmt::Display) {
        let wall = self.clock.wall();
        let mut events = Events::new();
        {
            let mut cold = self.lock();
            cold.last_failure_at = Some(wall);
            cold.set_reason(reason);
            let w = self.hot.word.load(Ordering::Acquire);
            if gen_of(w) != ticket.generation() {
                // Admitted under an earlier state: counted in the totals, moves nothing.
                return;
            }
            let failures = self.hot.failures.load(Ordering::Relaxed).saturating_add(1);
            self.hot.failures.store(failures, Ordering::Relaxed);
            match w & ST_MASK {
                ST_CLOSED if !ticket.trial() => {
                    events.push(Event::FailureRecorded {
                        consecutive_failures: failures,
                        generation: ticket.generation(),
                    });
                    if let Policy::ConsecutiveFailures { threshold } = self.config.policy {
                        if failures >= threshold {
                            events.push(Event::Transition(self.open_locked(
                                &mut cold,
                                w,
                                Origin::Local,
                                false,
                            )));
                        }
                    }
                }
                ST_HALF if ticket.trial() => {
                    cold.backoff_level = cold.backoff_level.saturating_add(1);
                    events.push(Event::Transition(self.open_locked(
                        &mut cold,
                        w,
                        Origin::Local,
                        false,
                    )));
                }
                _ => {}
            }
        }
        self.emit(&events);
    }

    /// An outcome of a CLOSED call under the failure-rate policy.
    #[cold]
    fn on_rate_outcome(&self, ticket: Ticket, failed: bool, reason: &dyn fmt::Display) {
        let now = self.now_nanos();
        let wall = failed.then(|| self.clock.wall());
        let elapsed = ticket
            .started()
            .map(|s| Duration::from_nanos(now.saturating_sub(s)));
        let mut events = Events::new();
        {
            let mut cold = self.lock();
            if let Some(wall) = wall {
                cold.last_failure_at = Some(wall);
                cold.set_reason(reason);
            }
            let w = self.hot.word.load(Ordering::Acquire);
            if gen_of(w) != ticket.generation() || w & ST_MASK != ST_CLOSED {
                return;
            }
            if failed {
                let failures = self.hot.failures.load(Ordering::Relaxed).saturating_add(1);
                self.hot.failures.store(failures, Ordering::Relaxed);
                events.push(Event::FailureRecorded {
                    consecutive_failures: failures,
                    generation: ticket.generation(),
                });
            } else {
                let previous = self.hot.failures.swap(0, Ordering::Relaxed);
                if previous != 0 {
                    events.push(Event::FailuresReset {
                        previous,
                        generation: ticket.generation(),
                    });
                }
            }
            let trip = match cold.window.as_mut() {
                Some(window) => {
                    let slow = window.is_slow(elapsed);
                    window.record(Sample { failed, slow }, now)
                }
                None => false,
            };
            if trip {
                events.push(Event::Transition(self.open_locked(
                    &mut cold,
                    w,
                    Origin::Local,
                    false,
                )));
            }
        }
        self.emit(&events);
    }

    // ---------------------------------------------------------------- transitions

    fn lock(&self) -> MutexGuard<'_, Cold> {
        // A listener never runs under this lock, and nothing under it panics; still, a
        // poisoned lock must not take every call down with it.
        self.cold.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        duration_nanos(self.clock.now().saturating_duration_since(self.origin))
    }

    fn open_period(&self, cold: &mut Cold) -> Duration {
        let c = &self.config;
        let mut period = c.open_duration;
        if c.backoff_multiplier > 1.0 && cold.backoff_level > 0 {
            let exp = i32::try_from(cold.backoff_level).unwrap_or(i32::MAX);
            let grown = c.open_duration.as_secs_f64() * c.backoff_multiplier.powi(exp);
            period = if grown.is_finite() && grown < c.max_open_duration.as_secs_f64() {
                Duration::from_secs_f64(grown)
            } else {
                c.max_open_duration
            };
        }
        if c.jitter > 0.0 {
            // 53 random bits → a uniform fraction in [0, 1).
            let unit = (cold.next_random() >> 11) as f64 / (1u64 << 53) as f64;
            period += period.mul_f64(c.jitter * unit);
        }
        period
    }

    fn open_locked(&self, cold: &mut Cold, w: u64, origin: Origin, forced: bool) -> Transition {
        let period = (!forced).then(|| self.open_period(cold));
        let open = OpenSpec {
            generation: gen_of(w) + 1,
            origin,
            forced,
            period,
            opened_at: None,
        };
        self.open_with(cold, w, open)
    }

    fn open_with(&self, cold: &mut Cold, w: u64, open: OpenSpec) -> Transition {
        let OpenSpec {
            generation,
            origin,
            forced,
            period,
            opened_at,
        } = open;
        let now = self.now_nanos();
        let until = period.map_or(u64::MAX, |p| now.saturating_add(duration_nanos(p)));
        self.open_until.store(until, Ordering::Release);
        let wall = self.clock.wall();
        cold.opened_at = Some(opened_at.unwrap_or(wall));
        cold.next_attempt_at = period.map(|p| wall + p);
        cold.half_open_successes = 0;
        if let Some(window) = cold.window.as_mut() {
            window.clear();
        }
        let bits = ST_OPEN | if forced { HELD } else { 0 };
        self.hot
            .word
            .store(compose(generation, bits), Ordering::Release);
        Transition {
            from: state_of(w),
            to: State::Open,
            generation,
            origin,
            forced,
            consecutive_failures: self.hot.failures.load(Ordering::Relaxed),
            half_open_successes: 0,
            open_for: period,
        }
    }

    fn close_locked(&self, cold: &mut Cold, w: u64, origin: Origin) -> Transition {
        self.hot.failures.store(0, Ordering::Relaxed);
        cold.half_open_successes = 0;
        cold.backoff_level = 0;
        cold.opened_at = None;
        cold.next_attempt_at = None;
        if let Some(window) = cold.window.as_mut() {
            window.clear();
        }
        let generation = gen_of(w) + 1;
        self.hot
            .word
            .store(compose(generation, ST_CLOSED), Ordering::Release);
        Transition {
            from: state_of(w),
            to: State::Closed,
            generation,
            origin,
            forced: false,
            consecutive_failures: 0,
            half_open_successes: 0,
            open_for: None,
        }
    }

    /// `bits`: `0` with `taken` trial slots, or `ELSEWHERE`.
    fn half_open_locked(
        &self,
        cold: &mut Cold,
        w: u64,
        origin: Origin,
        bits: u64,
        taken: u64,
    ) -> Transition {
        cold.half_open_successes = 0;
        cold.next_attempt_at = None;
        let generation = gen_of(w) + 1;
        self.hot.word.store(
            compose(generation, ST_HALF | bits) + taken * INFLIGHT_ONE,
            Ordering::Release,
        );
        Transition {
            from: state_of(w),
            to: State::HalfOpen,
            generation,
            origin,
            forced: false,
            consecutive_failures: self.hot.failures.load(Ordering::Relaxed),
            half_open_successes: 0,
            open_for: None,
        }
    }

    #[inline]
    fn emit_one(&self, event: Event) {
        if let Some(listener) = &self.listener {
            listener.on_event(self, &event);
        }
    }

    fn emit(&self, events: &Events) {
        if let Some(listener) = &self.listener {
            for event in events.buf.iter().flatten() {
                listener.on_event(self, event);
            }
        }
    }

    // ---------------------------------------------------------------- manual control

    /// Opens the circuit and holds it open (no trial) until [`Breaker::force_closed`] or
    /// [`Breaker::reset`]. Reports a [`Transition`] with [`Origin::Manual`].
    pub fn force_open(&self) {
        let t = {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            self.open_locked(&mut cold, w, Origin::Manual, true)
        };
        self.emit_one(Event::Transition(t));
    }

    /// Closes the circuit: consecutive failures, half-open progress and open-period growth
    /// start again from zero; statistics are kept. Always reports a [`Transition`] with
    /// [`Origin::Manual`] (even `CLOSED` → `CLOSED`) so that it can be propagated.
    pub fn force_closed(&self) {
        let t = {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            self.close_locked(&mut cold, w, Origin::Manual)
        };
        self.emit_one(Event::Transition(t));
    }

    /// Like [`Breaker::force_closed`], and also clears the statistics (call totals, last
    /// failure) shown in the [`Snapshot`].
    pub fn reset(&self) {
        let t = {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            cold.baseline = self.counters.totals();
            cold.last_failure_at = None;
            cold.has_reason = false;
            cold.reason.clear();
            self.close_locked(&mut cold, w, Origin::Manual)
        };
        self.emit_one(Event::Transition(t));
    }

    // ---------------------------------------------------------------- remote state

    /// Applies state that came from another instance (for example a shared store).
    ///
    /// Returns `false`, changing nothing, when `remote.version` is not above the last
    /// version applied or recorded with [`Breaker::set_remote_version`]. Otherwise the
    /// counts are taken as given and, if the state differs, the breaker moves to it with a
    /// new generation (outcomes of calls admitted before are then ignored) and reports a
    /// [`Transition`] with [`Origin::Remote`], which a sharing listener must not echo.
    /// A remote `HALF_OPEN` means the trial runs elsewhere: this instance rejects every
    /// call (see [`RemoteState::next_attempt_in`]).
    pub fn apply_remote(&self, remote: RemoteState) -> bool {
        self.apply_remote_at(remote, None)
    }

    /// Like [`Breaker::apply_remote`], with the wall-clock time the circuit opened (as
    /// stored), shown in the snapshot as `opened_at`.
    pub fn apply_remote_at(&self, remote: RemoteState, opened_at: Option<SystemTime>) -> bool {
        let event = {
            let mut cold = self.lock();
            if cold.remote_version.is_some_and(|v| remote.version <= v) {
                return false;
            }
            cold.remote_version = Some(remote.version);
            let w = self.hot.word.load(Ordering::Acquire);
            self.hot
                .failures
                .store(remote.consecutive_failures, Ordering::Relaxed);
            let bits = match remote.state {
                State::Closed => ST_CLOSED,
                State::Open if remote.forced => ST_OPEN | HELD,
                State::Open => ST_OPEN,
                State::HalfOpen => ST_HALF | ELSEWHERE,
            };
            let same = w & (ST_MASK | HELD | ELSEWHERE) == bits;
            let mut t = match remote.state {
                State::Closed if same => None,
                State::Closed => Some(self.close_locked(&mut cold, w, Origin::Remote)),
                State::Open => {
                    let period =
                        (!remote.forced).then(|| remote.next_attempt_in.unwrap_or(Duration::ZERO));
                    let opened = opened_at.or(if same { cold.opened_at } else { None });
                    // Same state, new deadline: keep the generation.
                    let generation = if same { gen_of(w) } else { gen_of(w) + 1 };
                    let open = OpenSpec {
                        generation,
                        origin: Origin::Remote,
                        forced: remote.forced,
                        period,
                        opened_at: opened,
                    };
                    let t = self.open_with(&mut cold, w, open);
                    (!same).then_some(t)
                }
                State::HalfOpen => {
                    let now = self.now_nanos();
                    let until = remote
                        .next_attempt_in
                        .map_or(u64::MAX, |d| now.saturating_add(duration_nanos(d)));
                    self.open_until.store(until, Ordering::Release);
                    if let Some(at) = opened_at {
                        cold.opened_at = Some(at);
                    }
                    if same {
                        None
                    } else {
                        Some(self.half_open_locked(&mut cold, w, Origin::Remote, ELSEWHERE, 0))
                    }
                }
            };
            self.hot
                .failures
                .store(remote.consecutive_failures, Ordering::Relaxed);
            cold.half_open_successes = remote.half_open_successes;
            if let Some(t) = t.as_mut() {
                t.consecutive_failures = remote.consecutive_failures;
                t.half_open_successes = remote.half_open_successes;
            }
            t
        };
        if let Some(t) = event {
            self.emit_one(Event::Transition(t));
        }
        true
    }

    /// Records that the shared state is at `version` because this instance wrote it, so
    /// that the same state coming back (for example by a notification) is ignored by
    /// [`Breaker::apply_remote`]. Never lowers the recorded version.
    pub fn set_remote_version(&self, version: u64) {
        let mut cold = self.lock();
        cold.remote_version = Some(cold.remote_version.map_or(version, |v| v.max(version)));
    }

    /// With coordinated trials: moves the circuit from `OPEN` (generation `generation`) to
    /// `HALF_OPEN` so that this instance runs the trial, typically once it holds the
    /// cluster-wide trial lease. Returns `false` if the breaker is no longer in that
    /// generation, is held open by an operator, or is not waiting for a trial.
    /// Reports a [`Transition`] with [`Origin::Local`].
    pub fn grant_trial(&self, generation: u64) -> bool {
        let t = {
            let mut cold = self.lock();
            let w = self.hot.word.load(Ordering::Acquire);
            let waiting = match w & ST_MASK {
                ST_OPEN => w & HELD == 0,
                ST_HALF => w & ELSEWHERE != 0,
                _ => false,
            };
            if gen_of(w) != generation || !waiting {
                return false;
            }
            self.half_open_locked(&mut cold, w, Origin::Local, 0, 0)
        };
        self.emit_one(Event::Transition(t));
        true
    }

    /// Switches coordinated trials on or off at run time; for example off while the shared
    /// store is unreachable, so that the breaker recovers on its own.
    pub fn set_coordinated(&self, coordinated: bool) {
        self.coordinated.store(coordinated, Ordering::Relaxed);
    }

    /// Whether trials are coordinated (see [`Config::coordinated_trials`]).
    pub fn is_coordinated(&self) -> bool {
        self.coordinated.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- reading

    /// The breaker's state and statistics, for the API and metrics. Takes the internal lock
    /// briefly and allocates (the name, the reason): not for the hot path.
    pub fn snapshot(&self) -> Snapshot {
        let cold = self.lock();
        let w = self.hot.word.load(Ordering::Acquire);
        let state = state_of(w);
        let totals = self.counters.totals().minus(cold.baseline);
        Snapshot {
            name: self.name.clone(),
            state,
            forced: w & (ST_MASK | HELD) == ST_OPEN | HELD,
            failure_count: self.hot.failures.load(Ordering::Relaxed),
            success_count: if state == State::HalfOpen {
                cold.half_open_successes
            } else {
                0
            },
            trials_in_flight: if state == State::HalfOpen {
                inflight(w)
            } else {
                0
            },
            total_calls: totals
                .successes
                .wrapping_add(totals.failures)
                .wrapping_add(totals.ignored)
                .wrapping_add(totals.rejected),
            rejected_calls: totals.rejected,
            successes: totals.successes,
            failures: totals.failures,
            ignored: totals.ignored,
            last_failure_at: cold.last_failure_at,
            last_failure_reason: cold.has_reason.then(|| cold.reason.clone()),
            opened_at: if state == State::Closed {
                None
            } else {
                cold.opened_at
            },
            next_attempt_at: if state == State::Open {
                cold.next_attempt_at
            } else {
                None
            },
            generation: gen_of(w),
            remote_version: cold.remote_version,
            policy: self.config.policy,
            description: self.config.to_string(),
        }
    }

    // ---------------------------------------------------------------- helpers

    /// Runs `f` through the breaker: `Ok` is a success, `Err` a failure (its `Display` is
    /// the failure reason). A rejected call does not run `f`.
    // `always`: measured, LLVM otherwise keeps this generic wrapper out of line in callers
    // from other crates, which costs more than the breaker itself.
    #[inline(always)]
    pub fn call_sync<T, E, F>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Display,
    {
        let w = self.hot.word.load(Ordering::Acquire);
        if (w | self.hot.not_plain) & ST_MASK == ST_CLOSED {
            // The steps of `try_acquire` + `success` without the branches that cannot be
            // taken here (trial, clock, failure-rate window).
            let ticket = Ticket::new(gen_of(w), false, None);
            // Records the call as ignored if `f` panics, like any dropped permit.
            let guard = Permit::new(self, ticket);
            return match f() {
                Ok(value) => {
                    guard.disarm();
                    self.counters.bump(Count::Success);
                    if self.hot.failures.load(Ordering::Relaxed) != 0 {
                        self.on_success_after_failures(ticket);
                    }
                    Ok(value)
                }
                Err(e) => {
                    guard.failure(&e);
                    Err(CallError::Inner(e))
                }
            };
        }
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        match f() {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(e) => {
                permit.failure(&e);
                Err(CallError::Inner(e))
            }
        }
    }

    /// Awaits `fut` through the breaker: `Ok` is a success, `Err` a failure (its
    /// `Display` is the failure reason). If the returned future is dropped before `fut`
    /// finishes (the caller gave up), the call is ignored, neither success nor failure.
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        match fut.await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(e) => {
                permit.failure(&e);
                Err(CallError::Inner(e))
            }
        }
    }

    /// Awaits `fut` through the breaker, mapping its result to an [`Outcome`] with
    /// `classify` (for example an HTTP response with status 503 to
    /// [`Outcome::Status`]); the breaker's [`Classifier`](crate::Classifier) decides
    /// whether that outcome is a failure.
    pub async fn call_with<F, T, E, C>(&self, fut: F, classify: C) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
        C: FnOnce(&Result<T, E>) -> Outcome,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = fut.await;
        let outcome = classify(&result);
        match &result {
            Ok(_) => permit.record(outcome, outcome),
            Err(e) => permit.record(outcome, e),
        }
        result.map_err(CallError::Inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_layout_round_trips() {
        let w = compose(12345, ST_HALF) + 3 * INFLIGHT_ONE;
        assert_eq!(gen_of(w), 12345);
        assert_eq!(state_of(w), State::HalfOpen);
        assert_eq!(inflight(w), 3);
        assert_eq!(
            crate::config::MAX_TRIALS,
            (INFLIGHT_MASK >> INFLIGHT_SHIFT) as u32
        );
    }

    #[test]
    fn hot_fields_have_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<Hot>(), 128);
    }
}
