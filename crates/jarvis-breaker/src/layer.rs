//! A `tower` layer: every request to the wrapped service goes through a breaker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::Breaker;
use crate::classify::Outcome;
use crate::permit::OwnedPermit;
use crate::state::{CallError, Rejected};

/// Maps a service's result to an [`Outcome`] for the breaker's classifier.
///
/// Any `Fn(&Result<T, E>) -> Outcome` closure is one; for example, for an HTTP client,
/// `|r| match r { Ok(resp) => Outcome::Status(resp.status().as_u16()), Err(e) if e.is_timeout() => Outcome::Timeout, Err(_) => Outcome::Connection }`.
pub trait ClassifyResult<T, E> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

/// The default [`ClassifyResult`]: `Ok` is [`Outcome::Success`], `Err` is [`Outcome::Error`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorsAreFailures;

impl<T, E> ClassifyResult<T, E> for ErrorsAreFailures {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Error,
        }
    }
}

impl<T, E, F> ClassifyResult<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// Wraps services in a [`BreakerService`] sharing one breaker.
///
/// ```
/// use std::sync::Arc;
/// use jarvis_breaker::{Breaker, BreakerLayer};
///
/// let breaker = Arc::new(Breaker::new("backend"));
/// let layer = BreakerLayer::new(breaker);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct BreakerLayer<C = ErrorsAreFailures> {
    breaker: Arc<Breaker>,
    classify: C,
}

impl BreakerLayer {
    /// A layer that counts every `Err` as a failure.
    pub fn new(breaker: Arc<Breaker>) -> Self {
        BreakerLayer {
            breaker,
            classify: ErrorsAreFailures,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Uses `classify` to map results to outcomes (for example to count HTTP 5xx
    /// responses, which are `Ok` for an HTTP client, as failures).
    pub fn with_classifier<C2>(self, classify: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

impl<C> fmt::Debug for BreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.breaker.name())
            .finish()
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

/// A service whose calls go through a breaker. A rejected call fails at once with
/// [`CallError::Rejected`] without calling the inner service. Readiness is the inner
/// service's: the breaker rejects, it never applies backpressure.
#[derive(Clone)]
pub struct BreakerService<S, C = ErrorsAreFailures> {
    inner: S,
    breaker: Arc<Breaker>,
    classify: C,
}

impl<S, C> BreakerService<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, breaker: Arc<Breaker>, classify: C) -> Self {
        BreakerService {
            inner,
            breaker,
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug, C> fmt::Debug for BreakerService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.name())
            .finish()
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Error: fmt::Display,
    C: ClassifyResult<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => ResponseFuture {
                kind: Kind::Called {
                    fut: self.inner.call(req),
                },
                permit: Some(permit),
                classify: self.classify.clone(),
            },
            Err(rejected) => ResponseFuture {
                kind: Kind::Rejected { rejected },
                permit: None,
                classify: self.classify.clone(),
            },
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] fut: F },
        Rejected { rejected: Rejected },
    }
}

pin_project! {
    /// The response future of [`BreakerService`]. Dropping it before completion ignores
    /// the call (see [`Permit`](crate::Permit)).
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        permit: Option<OwnedPermit>,
        classify: C,
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Display,
    C: ClassifyResult<T, E>,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { rejected } => Poll::Ready(Err(CallError::Rejected(*rejected))),
            KindProj::Called { fut } => {
                let result = ready!(fut.poll(cx));
                if let Some(permit) = this.permit.take() {
                    let outcome = this.classify.classify(&result);
                    match &result {
                        Ok(_) => permit.record(outcome, outcome),
                        Err(e) => permit.record(outcome, e),
                    }
                }
                Poll::Ready(result.map_err(CallError::Inner))
            }
        }
    }
}
