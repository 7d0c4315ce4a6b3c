//! A fast circuit breaker with no I/O, usable by any Rust service.
//!
//! A [`Breaker`] stands between a caller and a service. While `CLOSED` it lets calls
//! through and counts failures; after 5 consecutive failures (by default) it goes `OPEN`
//! and rejects calls without touching the service; after 60 s it goes `HALF_OPEN` and
//! lets one trial call through at a time; 2 successful trials close it, a failed trial
//! opens it again (optionally for longer each time, capped, with jitter).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use jarvis_breaker::{Breaker, CallError, ManualClock, State};
//!
//! let clock = Arc::new(ManualClock::new());
//! let breaker = Breaker::builder("ai-dawg-backend")
//!     .failure_threshold(5)
//!     .open_duration(Duration::from_secs(60))
//!     .clock(clock.clone())
//!     .build()?;
//!
//! // The permit API: ask, call, report.
//! for _ in 0..5 {
//!     let permit = breaker.try_acquire().expect("closed");
//!     permit.failure("connection refused");
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert!(breaker.try_acquire().is_err()); // rejected: the service is not called
//!
//! // After the open period, one trial at a time; two successes close the circuit.
//! clock.advance(Duration::from_secs(60));
//! let trial = breaker.try_acquire().expect("trial admitted");
//! assert!(breaker.try_acquire().is_err()); // a second concurrent trial is rejected
//! trial.success();
//! let r: Result<u32, CallError<String>> = breaker.call_sync(|| Ok(42));
//! assert_eq!(r, Ok(42));
//! assert_eq!(breaker.state(), State::Closed);
//!
//! let snap = breaker.snapshot();
//! assert_eq!((snap.failures, snap.rejected_calls), (5, 2));
//! # Ok::<(), jarvis_breaker::ConfigError>(())
//! ```
//!
//! Async code uses [`Breaker::call`] / [`Breaker::call_with`], or the [`BreakerLayer`]
//! for `tower` services.
//!
//! # Design
//!
//! * **Fast path.** With the default [`Policy::ConsecutiveFailures`], admitting a call
//!   into a `CLOSED` breaker is one atomic load, and reporting a success is one more load
//!   plus a per-thread counter increment: no lock, no allocation, no clock read, no write
//!   to memory shared between cores. See `counters.rs` for how the call counters stay
//!   exact without a shared cache line.
//! * **Generations.** Every transition increments a generation; a [`Permit`] remembers
//!   the generation it was admitted in, and an outcome reported after the breaker moved
//!   on is counted in the statistics but moves no state.
//! * **Half-open.** The number of concurrent trials and the number of successes that close
//!   the circuit are separate settings. Calls beyond the free trial slots are rejected,
//!   never queued. A [`Rejected`] is a small `Copy` value.
//! * **Classification.** [`Outcome`]s (errors, timeouts, connection errors, HTTP
//!   statuses, cancellations) are mapped to [`Verdict`]s by a per-breaker [`Classifier`].
//! * **Events and shared state.** A [`Listener`] registered at construction receives
//!   transitions, rejections and the state-relevant changes an instance must publish to
//!   share one state with others; [`Breaker::apply_remote`] applies state received from
//!   them, and coordinated trials ([`Breaker::grant_trial`]) let exactly one instance run
//!   the half-open trial.
//! * **Time** comes from an injectable [`Clock`]; tests use [`ManualClock`].
//!
//! # Code map
//!
//! * `breaker` — [`Breaker`], [`BreakerBuilder`]: the state word, admission, outcomes,
//!   manual and remote control, snapshots.
//! * `permit` — [`Permit`], [`OwnedPermit`]: one admitted call.
//! * `config` — [`Config`], [`Policy`], [`FailureRate`], [`Window`], [`SlowCall`].
//! * `classify` — [`Outcome`], [`Verdict`], [`Classifier`].
//! * `state` — [`State`], [`Rejected`], [`RejectReason`], [`CallError`].
//! * `events` — [`Event`], [`Transition`], [`Listener`], [`RemoteState`], [`Snapshot`].
//! * `clock` — [`Clock`], [`SystemClock`], [`ManualClock`].
//! * `layer` — [`BreakerLayer`], [`BreakerService`]: the `tower` integration.
//! * `counters`, `window` (private) — per-thread call counters; failure-rate windows.

mod breaker;
mod classify;
mod clock;
mod config;
mod counters;
mod events;
mod layer;
mod permit;
mod state;
mod window;

pub use breaker::{Breaker, BreakerBuilder};
pub use classify::{Classifier, Outcome, Verdict};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, FailureRate, Policy, SlowCall, Window, MAX_TRIALS};
pub use events::{Event, Listener, Origin, RemoteState, Snapshot, Transition};
pub use layer::{BreakerLayer, BreakerService, ClassifyResult, ErrorsAreFailures, ResponseFuture};
pub use permit::{OwnedPermit, Permit};
pub use state::{CallError, RejectReason, Rejected, State};
