use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jarvis_breaker::{Breaker, BreakerBuilder, Event, ManualClock};

/// A wall-clock start that makes reported times easy to check.
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Records every event.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Event>>>);

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    #[allow(dead_code)]
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn transitions(&self) -> Vec<jarvis_breaker::Transition> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Transition(t) => Some(t),
                _ => None,
            })
            .collect()
    }
}

/// A breaker on a manual clock with an event recorder.
pub fn breaker_with(
    configure: impl FnOnce(BreakerBuilder) -> BreakerBuilder,
) -> (Breaker, Arc<ManualClock>, Recorder) {
    let clock = Arc::new(ManualClock::starting_at(epoch()));
    let rec = Recorder::default();
    let sink = rec.clone();
    let builder = Breaker::builder("svc")
        .clock(clock.clone())
        .listener(move |_: &Breaker, e: &Event| sink.0.lock().unwrap().push(*e));
    let breaker = configure(builder).build().expect("valid config");
    (breaker, clock, rec)
}

pub fn defaults() -> (Breaker, Arc<ManualClock>, Recorder) {
    breaker_with(|b| b)
}

pub fn fail(b: &Breaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("admitted").failure("boom");
    }
}

pub fn succeed(b: &Breaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("admitted").success();
    }
}

pub const MINUTE: Duration = Duration::from_secs(60);
