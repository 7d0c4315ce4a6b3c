//! A real HTTP agent on 127.0.0.1 for the task tests: records every call and answers as told.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

/// How the agent answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// `{"success": true, "impactScore": 80, "output": {...}, "costUsd": 0.01}`.
    Succeed,
    /// `{"success": false, "error": "<text> <attempt>7 ms"}`.
    Fail(String),
    /// This HTTP status with an empty body.
    Status(u16),
    /// Waits this long, then succeeds (a slow agent; not a wait of the test).
    Delay(Duration),
    /// 200 with exactly this JSON body (an agent that may not speak the protocol).
    Body(Value),
}

/// One call the agent received.
#[derive(Debug, Clone)]
pub struct Call {
    pub body: Value,
    pub correlation_header: Option<String>,
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Calls whose parameters hold `"hold": true` wait until this turns true.
    release: watch::Receiver<bool>,
}

pub struct TestAgent {
    pub url: String,
    shared: Shared,
    release: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let call = Call {
        body: body.clone(),
        correlation_header: headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        at: Instant::now(),
    };
    s.calls.lock().unwrap().push(call);
    if body["parameters"]["hold"] == true {
        let mut r = s.release.clone();
        while !*r.borrow() {
            if r.changed().await.is_err() {
                break;
            }
        }
    }
    let behaviour = s.behaviour.lock().unwrap().clone();
    match behaviour {
        Behaviour::Succeed => Json(json!({
            "success": true, "impactScore": 80, "costUsd": 0.01,
            "output": {"echo": body["parameters"].clone()}
        }))
        .into_response(),
        Behaviour::Fail(text) => Json(json!({
            "success": false,
            "error": format!("{text} {}7 ms", body["attempt"]),
        }))
        .into_response(),
        Behaviour::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Behaviour::Body(body) => Json(body).into_response(),
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            Json(json!({"success": true})).into_response()
        }
    }
}

impl TestAgent {
    pub async fn start(behaviour: Behaviour) -> TestAgent {
        let (release, release_rx) = watch::channel(false);
        let shared = Shared {
            calls: Arc::new(Mutex::new(Vec::new())),
            behaviour: Arc::new(Mutex::new(behaviour)),
            release: release_rx,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/run", post(handle))
            .with_state(shared.clone());
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestAgent {
            url: format!("http://127.0.0.1:{port}/run"),
            shared,
            release,
            handle,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
