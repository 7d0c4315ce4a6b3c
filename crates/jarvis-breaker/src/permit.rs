//! Permits: the right to make one call, and the duty to report how it went.

use std::fmt;
use std::sync::Arc;

use crate::breaker::Breaker;
use crate::classify::{Outcome, Verdict};

/// What a permit remembers about its admission. Two plain words (no `bool` or `Option`
/// fields) so that it stays in registers, or at least is stored and reloaded at full
/// width, on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// `generation << 1 | trial`. The generation the call was admitted in: an outcome
    /// reported after the breaker moved to another generation is counted in the totals
    /// but moves no state. `trial`: whether this is a half-open trial call.
    tagged: u64,
    /// Monotonic start time (breaker-relative nanoseconds), `u64::MAX` when the policy
    /// does not need it.
    started: u64,
}

impl Ticket {
    #[inline]
    pub(crate) fn new(generation: u64, trial: bool, started: Option<u64>) -> Self {
        Ticket {
            tagged: generation << 1 | u64::from(trial),
            started: started.unwrap_or(u64::MAX),
        }
    }

    #[inline]
    pub(crate) fn generation(self) -> u64 {
        self.tagged >> 1
    }

    #[inline]
    pub(crate) fn trial(self) -> bool {
        self.tagged & 1 != 0
    }

    #[inline]
    pub(crate) fn started(self) -> Option<u64> {
        (self.started != u64::MAX).then_some(self.started)
    }
}

/// The right to make one call, from [`Breaker::try_acquire`].
///
/// Report the outcome with [`Permit::success`], [`Permit::failure`], [`Permit::record`] or
/// [`Permit::ignore`]. **A permit dropped without an outcome** (for example because the
/// future holding it was cancelled, or the code panicked) counts as *ignored*: it is
/// neither a success nor a failure, and a half-open trial slot it held is released at
/// once so that another caller can run the trial.
#[must_use = "report the outcome with success(), failure() or record(); dropping the permit ignores the call"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    ticket: Ticket,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(breaker: &'a Breaker, ticket: Ticket) -> Self {
        Permit { breaker, ticket }
    }

    #[inline]
    fn take(self) -> (&'a Breaker, Ticket) {
        let parts = (self.breaker, self.ticket);
        // Only references and `Copy` data: forgetting leaks nothing, and skips `Drop`,
        // which would record the call as ignored.
        std::mem::forget(self);
        parts
    }

    /// Forgets the permit without recording anything (the caller records the outcome).
    #[inline]
    pub(crate) fn disarm(self) {
        self.take();
    }

    /// The call succeeded.
    #[inline]
    pub fn success(self) {
        let (breaker, ticket) = self.take();
        breaker.complete_success(ticket);
    }

    /// The call failed; `reason` becomes the breaker's `lastFailureReason`.
    pub fn failure(self, reason: impl fmt::Display) {
        let (breaker, ticket) = self.take();
        breaker.complete_failure(ticket, &reason);
    }

    /// The call's outcome says nothing about the service (for example the caller cancelled
    /// it): neither success nor failure. Same as dropping the permit.
    pub fn ignore(self) {
        let (breaker, ticket) = self.take();
        breaker.complete_ignore(ticket);
    }

    /// Reports an [`Outcome`]; the breaker's [`Classifier`](crate::Classifier) decides
    /// whether it is a success, a failure (with `reason`) or ignored.
    pub fn record(self, outcome: Outcome, reason: impl fmt::Display) {
        let (breaker, ticket) = self.take();
        let verdict = breaker.config().classifier.classify(outcome);
        breaker.complete(ticket, verdict, &reason);
    }

    /// The generation the call was admitted in.
    pub fn generation(&self) -> u64 {
        self.ticket.generation()
    }

    /// Whether this call is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.ticket.trial()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.complete_ignore(self.ticket);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name())
            .field("generation", &self.ticket.generation())
            .field("trial", &self.ticket.trial())
            .finish()
    }
}

/// A [`Permit`] that owns an `Arc` of its breaker, from [`Breaker::try_acquire_owned`]:
/// it can live in a `'static` future. Same rules, including for a drop without outcome.
#[must_use = "report the outcome with success(), failure() or record(); dropping the permit ignores the call"]
pub struct OwnedPermit {
    breaker: Arc<Breaker>,
    ticket: Ticket,
    done: bool,
}

impl OwnedPermit {
    pub(crate) fn new(breaker: Arc<Breaker>, ticket: Ticket) -> Self {
        OwnedPermit {
            breaker,
            ticket,
            done: false,
        }
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.breaker.complete_success(self.ticket);
    }

    /// The call failed; `reason` becomes the breaker's `lastFailureReason`.
    pub fn failure(mut self, reason: impl fmt::Display) {
        self.done = true;
        self.breaker.complete_failure(self.ticket, &reason);
    }

    /// Neither success nor failure. Same as dropping the permit.
    pub fn ignore(mut self) {
        self.done = true;
        self.breaker.complete_ignore(self.ticket);
    }

    /// Reports an [`Outcome`], classified by the breaker's classifier.
    pub fn record(mut self, outcome: Outcome, reason: impl fmt::Display) {
        self.done = true;
        let verdict: Verdict = self.breaker.config().classifier.classify(outcome);
        self.breaker.complete(self.ticket, verdict, &reason);
    }

    /// The generation the call was admitted in.
    pub fn generation(&self) -> u64 {
        self.ticket.generation()
    }

    /// Whether this call is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.ticket.trial()
    }

    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.complete_ignore(self.ticket);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.name())
            .field("generation", &self.ticket.generation())
            .field("trial", &self.ticket.trial())
            .finish()
    }
}
