//! A mock OpenAI-compatible upstream for the AI gateway benchmark (`bench/ai/`): fast enough
//! that the proxies in front of it, not it, are what is measured.
//!
//! It answers `POST /v1/chat/completions` (JSON, or SSE when the body says `"stream": true`),
//! `POST /v1/embeddings` and `GET /v1/models` with fixed OpenAI-shaped answers, after an
//! optional fixed delay. With `--fail` every `/v1/*` request is answered 500 with OpenAI's error
//! shape: the failing first deployment of the fallback measurement. `GET /stats` counts the
//! requests it answered (so a run can tell how many reached a failing deployment).
//!
//! ```sh
//! cargo run --release -p jarvis --example ai_mock -- --port 18101 [--delay-ms 0] [--fail] [--threads 1]
//! ```

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use serde::Deserialize;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "mock OpenAI-compatible upstream for bench/ai")]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Delay before every answer (a stream's first event included), in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer every /v1 request with HTTP 500.
    #[arg(long)]
    fail: bool,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What every handler shares.
struct Mock {
    delay: Duration,
    fail: bool,
    chat: AtomicU64,
    streamed: AtomicU64,
    embeddings: AtomicU64,
    models: AtomicU64,
    failed: AtomicU64,
}

impl Mock {
    async fn wait(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

/// The only fields of a request the mock looks at.
#[derive(Deserialize)]
struct RequestFields {
    #[serde(default)]
    stream: bool,
}

const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#;

const CHUNKS: [&str; 4] = [
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"! How can I help?\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
];

const EMBEDDING: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093,0.0159,-0.0076,0.0212,-0.0021,0.0087,0.0140,-0.0045,0.0098,0.0011,-0.0130,0.0067,0.0172,-0.0088,0.0054]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}"#;

const MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"system"},{"id":"text-embedding-3-small","object":"model","created":1700000001,"owned_by":"system"}]}"#;

const FAILURE: &str = r#"{"error":{"message":"the mock upstream is failing on purpose","type":"server_error","param":null,"code":"mock_failure"}}"#;

fn json(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn failure(mock: &Mock) -> Response {
    mock.failed.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        FAILURE,
    )
        .into_response()
}

async fn chat(State(mock): State<Arc<Mock>>, body: Bytes) -> Response {
    mock.wait().await;
    if mock.fail {
        return failure(&mock);
    }
    let fields: RequestFields = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    if !fields.stream {
        mock.chat.fetch_add(1, Ordering::Relaxed);
        return json(CHAT);
    }
    mock.streamed.fetch_add(1, Ordering::Relaxed);
    let events = futures_util::stream::iter(
        CHUNKS
            .iter()
            .map(|c| Ok::<_, Infallible>(Bytes::from_static(c.as_bytes()))),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(events))
        .expect("a valid response")
}

async fn embeddings(State(mock): State<Arc<Mock>>) -> Response {
    mock.wait().await;
    if mock.fail {
        return failure(&mock);
    }
    mock.embeddings.fetch_add(1, Ordering::Relaxed);
    json(EMBEDDING)
}

async fn models(State(mock): State<Arc<Mock>>) -> Response {
    mock.wait().await;
    if mock.fail {
        return failure(&mock);
    }
    mock.models.fetch_add(1, Ordering::Relaxed);
    json(MODELS)
}

async fn stats(State(mock): State<Arc<Mock>>) -> Response {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    axum::Json(serde_json::json!({
        "chat": n(&mock.chat),
        "streamed": n(&mock.streamed),
        "embeddings": n(&mock.embeddings),
        "models": n(&mock.models),
        "failed": n(&mock.failed),
    }))
    .into_response()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mock = Arc::new(Mock {
        delay: Duration::from_millis(args.delay_ms),
        fail: args.fail,
        chat: AtomicU64::new(0),
        streamed: AtomicU64::new(0),
        embeddings: AtomicU64::new(0),
        models: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/stats", get(stats))
        .with_state(mock);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            // No Nagle delay on the answers (a stream's events are separate writes).
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
                .await?
                .tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
            eprintln!(
                "ai_mock: listening on 127.0.0.1:{} (delay {} ms{})",
                args.port,
                args.delay_ms,
                if args.fail { ", failing with 500" } else { "" }
            );
            axum::serve(listener, app).await?;
            Ok(())
        })
}
