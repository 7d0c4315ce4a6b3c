//! The tower layer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use jarvis_breaker::{Breaker, BreakerLayer, CallError, Outcome, RejectReason, State};
use tower::{service_fn, Layer, ServiceExt};

#[tokio::test]
async fn the_layer_opens_and_then_stops_calling_the_service() {
    let hits = Arc::new(AtomicUsize::new(0));
    let breaker = Arc::new(Breaker::new("backend"));
    let counter = hits.clone();
    let inner = service_fn(move |req: u16| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<u16, String>(req) }
    });
    // The "HTTP client" answers Ok(status): 5xx must count as failures.
    let svc = BreakerLayer::new(breaker.clone())
        .with_classifier(|r: &Result<u16, String>| match r {
            Ok(status) => Outcome::Status(*status),
            Err(_) => Outcome::Connection,
        })
        .layer(inner);

    assert_eq!(svc.clone().oneshot(200).await, Ok(200));
    for _ in 0..5 {
        assert_eq!(svc.clone().oneshot(503).await, Ok(503));
    }
    assert_eq!(breaker.state(), State::Open);
    let r = svc.clone().oneshot(200).await;
    match r {
        Err(CallError::Rejected(rej)) => assert_eq!(rej.reason(), RejectReason::Open),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "the rejected call never reached the service"
    );
    assert_eq!(
        breaker.snapshot().last_failure_reason.as_deref(),
        Some("HTTP 503")
    );
}

#[tokio::test]
async fn errors_count_as_failures_by_default() {
    let breaker = Arc::new(Breaker::builder("b").failure_threshold(2).build().unwrap());
    let svc = BreakerLayer::new(breaker.clone()).layer(service_fn(|_: ()| async {
        Err::<(), _>("connection refused".to_string())
    }));
    for _ in 0..2 {
        assert!(matches!(
            svc.clone().oneshot(()).await,
            Err(CallError::Inner(_))
        ));
    }
    assert_eq!(breaker.state(), State::Open);
}
