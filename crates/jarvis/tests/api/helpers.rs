//! The test harness: a real Jarvis on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, in-process (`TestApp`) or as a child process (`TestProcess`).
//!
//! PostgreSQL tests never skip: when the server at `JARVIS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) cannot be reached they fail.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use jarvis::app::Application;
use jarvis::config::Config;
use serde_json::Value;
use sqlx::Connection;

/// A token long enough to satisfy the configuration rules.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("JARVIS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin = pg_admin_url();
        let name = format!("jarvis_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for this test: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        TestDatabase {
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Dropped on a runtime that may be shutting down: use a short-lived thread and runtime.
        let admin = pg_admin_url();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The environment for a test instance: fresh data and log directories, a fixed token, port 0.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub vars: HashMap<String, String>,
    pub db: Option<TestDatabase>,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert("JARVIS_PORT".into(), "0".into());
        vars.insert("JARVIS_BIND".into(), "127.0.0.1".into());
        vars.insert("JARVIS_AUTH_TOKEN".into(), TOKEN.into());
        own_directories(&mut vars, dir.path());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = TestDatabase::create().await;
                vars.insert("DATABASE_URL".into(), db.url.clone());
                Some(db)
            }
        };
        TestEnv { dir, vars, db }
    }

    /// The environment of another instance on this one's database: the same variables, its
    /// own data and log directories. The database stays owned by `self`.
    pub fn another_instance(&self) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = self.vars.clone();
        own_directories(&mut vars, dir.path());
        TestEnv {
            dir,
            vars,
            db: None,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("logs").join("jarvis-combined.log")
    }

    /// Points `DATABASE_URL` at a [`TcpProxy`] in front of this environment's PostgreSQL
    /// database, so the test can make the database unreachable and bring it back; returns the
    /// proxy and the direct URL (for the test's own queries).
    pub async fn database_behind_proxy(&mut self) -> (TcpProxy, String) {
        let real = self
            .db
            .as_ref()
            .expect("a PostgreSQL environment")
            .url
            .clone();
        let mut parsed = url::Url::parse(&real).unwrap();
        let target = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(5432)
        );
        let proxy = TcpProxy::start(target.parse().unwrap()).await;
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(proxy.port)).unwrap();
        self.set("DATABASE_URL", parsed.as_str());
        (proxy, real)
    }
}

/// Points the data and log directories into `dir`.
fn own_directories(vars: &mut HashMap<String, String>, dir: &Path) {
    vars.insert(
        "JARVIS_DATA_DIR".into(),
        dir.join("data").display().to_string(),
    );
    vars.insert(
        "JARVIS_LOG_DIR".into(),
        dir.join("logs").display().to_string(),
    );
}

/// Jarvis running inside the test process.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub env: TestEnv,
    state: jarvis::app::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(TestEnv::new(backend).await).await
    }

    pub async fn spawn_with(env: TestEnv) -> TestApp {
        // The in-process server must not bind port 0 from the variables: Config does that.
        let config = Config::from_env_map(&env.vars, None).expect("test configuration");
        let app = Application::build(config).await.expect("build application");
        let port = app.port();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::new(),
            env,
            state,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The running application's shared state.
    pub fn state(&self) -> &jarvis::app::AppState {
        &self.state
    }

    /// GET with the token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// Sends `method path` with the token and a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GETs `path`, which must answer 200 in the success envelope, and returns its `data`.
    pub async fn data(&self, path: &str) -> Value {
        let (s, body) = json(self.get(path).await).await;
        assert_eq!(s, 200, "{path}: {body}");
        assert_eq!(body["success"], true, "{body}");
        body["data"].clone()
    }

    /// The `name` of each item of the list at `path`, in the order given.
    pub async fn names(&self, path: &str) -> Vec<String> {
        self.data(path)
            .await
            .as_array()
            .unwrap_or_else(|| panic!("{path} is not a list"))
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The view of breaker `name` (`Null` when there is none).
    pub async fn breaker(&self, name: &str) -> Value {
        let (_, body) = json(self.get(&format!("/api/v1/circuit-breakers/{name}")).await).await;
        body["data"][name].clone()
    }

    /// Makes `n` calls through breaker `name` that fail with `reason`; each must be admitted.
    pub fn fail_calls(&self, name: &str, n: usize, reason: &str) {
        let name = jarvis::names::Name::parse(name).unwrap();
        for _ in 0..n {
            self.state
                .breakers
                .acquire(&name)
                .expect("the call is admitted")
                .failure(reason);
        }
    }

    /// Creates or replaces monitored service `name`.
    pub async fn put_service(&self, name: &str, body: Value) {
        let r = self
            .send_json(
                reqwest::Method::PUT,
                &format!("/api/v1/services/{name}"),
                &body,
            )
            .await;
        let (s, b) = json(r).await;
        assert!(s == 200 || s == 201, "{b}");
    }

    pub async fn delete_service(&self, name: &str) {
        let r = self
            .send_json(
                reqwest::Method::DELETE,
                &format!("/api/v1/services/{name}"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status(), 204);
    }

    /// The health monitor's view of service `name` (`Null` when it has none).
    pub async fn service_health(&self, name: &str) -> Value {
        self.data("/api/v1/health/services").await["services"][name].clone()
    }

    /// Creates or replaces the agent of `domain`; the answer.
    pub async fn put_agent(&self, domain: &str, body: Value) -> (u16, Value) {
        json(
            self.send_json(
                reqwest::Method::PUT,
                &format!("/api/v1/agents/{domain}"),
                &body,
            )
            .await,
        )
        .await
    }

    /// Task `id` as the API shows it.
    pub async fn task(&self, id: &str) -> Value {
        self.data(&format!("/api/v1/tasks/{id}")).await
    }

    /// Submits a task with `?wait=true` and returns it finished (the answer must be 200).
    pub async fn run_task(&self, body: Value) -> Value {
        let (s, body) = json(
            self.send_json(reqwest::Method::POST, "/api/v1/execute?wait=true", &body)
                .await,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        body["data"].clone()
    }

    /// Submits `tasks` (a JSON array) as one batch, which must be accepted (202); the answer's
    /// `data`.
    pub async fn submit_batch(&self, tasks: Value) -> Value {
        let (s, body) = json(
            self.send_json(
                reqwest::Method::POST,
                "/api/v1/tasks/batch",
                &serde_json::json!({ "tasks": tasks }),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        body["data"].clone()
    }

    /// Waits for at least `n` history rows of task `id` (the recorder writes them
    /// asynchronously) and returns them, newest first.
    pub async fn history_rows(&self, id: &str, n: usize) -> Vec<Value> {
        let path = format!("/api/v1/tasks/executions?taskId={id}");
        eventually_some(
            Duration::from_secs(30),
            &format!("{n} history rows of task {id}"),
            || async {
                let rows = self.data(&path).await["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                (rows.len() >= n).then_some(rows)
            },
        )
        .await
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let _ = self.stop_keep_env().await;
    }

    /// Stops the server and gives back its environment (same database, same directories), to
    /// start it again.
    pub async fn stop_keep_env(mut self) -> TestEnv {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        let TestApp { env, .. } = self;
        env
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting: a test that waits for something to happen polls for it; it never sleeps a guess.

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it returns `Some`, at most `limit`: the one wait loop of
/// these tests (the helpers below and the harness's own waits go through it).
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `check` returns `Some` and returns that; panics naming `what` after `limit`.
pub async fn eventually_some<T, F, Fut>(limit: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(limit, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits until `check` is true; panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(limit, what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Checks that `holds` stays true for the whole of `window` (looking every 20 ms); panics
/// naming `what` as soon as it is not. For what must *not* happen: there is no event to wait
/// for, so the window has to pass, and a test that lets one pass says so by calling this.
pub async fn stays<F, Fut>(window: Duration, what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + window;
    loop {
        assert!(holds().await, "{what}");
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(POLL.min(until - Instant::now())).await;
    }
}

/// Reads a response as `(status, json)`.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, value)
}

/// Asserts the error envelope with the given status and code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, body) = json(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// Sends `method url` with the token (and `body` as JSON) and reads the answer as
/// `(status, json)`: for servers the test reaches by URL (a [`TestProcess`]).
pub async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json(r.send().await.expect("request")).await
}

/// The path of the `jarvis` binary built for these tests.
pub fn jarvis_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jarvis")
}

/// Runs `jarvis <args>` to completion with exactly `vars` as its environment (plus PATH).
pub fn run_jarvis(
    args: &[&str],
    vars: &HashMap<String, String>,
    cwd: &Path,
) -> std::process::Output {
    let mut cmd = Command::new(jarvis_bin());
    cmd.args(args).env_clear().current_dir(cwd);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(vars);
    cmd.output().expect("run jarvis")
}

/// A `jarvis serve` child process. Killed (SIGKILL) when dropped, unless stopped.
pub struct TestProcess {
    pub child: Child,
    pub port: u16,
    pub address: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Registers the service `name` at `url` through `ps[0]` and waits until every instance of
/// `ps` has checked it and found it up.
pub async fn register_service_on_all(
    ps: &[TestProcess],
    name: &str,
    url: &str,
    interval_ms: u64,
    timeout_ms: u64,
) {
    let (s, body) = ps[0]
        .api(
            reqwest::Method::PUT,
            &format!("/api/v1/services/{name}"),
            Some(
                serde_json::json!({"url": url, "intervalMs": interval_ms, "timeoutMs": timeout_ms}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    eventually(
        Duration::from_secs(20),
        "every instance checks the service",
        || async {
            for p in ps {
                let (_, body) = p
                    .api(reqwest::Method::GET, "/api/v1/health/services", None)
                    .await;
                if body["data"]["services"][name]["status"] != "up" {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

impl TestProcess {
    /// Starts `jarvis serve` with `env`'s variables on a free port and waits for `/health`.
    pub async fn start(env: &TestEnv) -> TestProcess {
        let port = free_port();
        let mut vars = env.vars.clone();
        vars.insert("JARVIS_PORT".into(), port.to_string());
        let out = env.dir.path().join(format!("stdout-{port}.log"));
        let err = env.dir.path().join(format!("stderr-{port}.log"));
        let mut cmd = Command::new(jarvis_bin());
        cmd.arg("serve")
            .env_clear()
            .current_dir(env.dir.path())
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        let child = cmd.spawn().expect("spawn jarvis serve");
        let process = TestProcess {
            child,
            port,
            address: format!("http://127.0.0.1:{port}"),
            stdout_path: out,
            stderr_path: err,
        };
        process.wait_healthy(Duration::from_secs(30)).await;
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Creates or replaces the agent of `domain`; the answer.
    pub async fn put_agent(&self, domain: &str, body: Value) -> (u16, Value) {
        self.api(
            reqwest::Method::PUT,
            &format!("/api/v1/agents/{domain}"),
            Some(body),
        )
        .await
    }

    /// Submits `tasks` (a JSON array) as one batch, which must be accepted (202); the answer's
    /// `data`.
    pub async fn submit_batch(&self, tasks: Value) -> Value {
        let (s, body) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/tasks/batch",
                Some(serde_json::json!({ "tasks": tasks })),
            )
            .await;
        assert_eq!(s, 202, "{body}");
        body["data"].clone()
    }

    /// Sends `method path` with the token (and `body` as JSON) and reads the answer.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        api(&reqwest::Client::new(), method, self.url(path), body).await
    }

    async fn wait_healthy(&self, limit: Duration) {
        let client = reqwest::Client::new();
        let healthy = poll(limit, || async {
            let r = client.get(self.url("/health")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        if healthy.is_none() {
            panic!(
                "jarvis did not become healthy in {limit:?}; stderr: {}",
                self.stderr()
            );
        }
    }

    /// Sends a signal to the child (`kill -<sig>`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the child to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        eventually_some(limit, "jarvis to exit", || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Services for the health monitor to check

/// How a [`FakeService`] answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 `{"status":"ok","success":true}`: a healthy service, and as an agent (any path
    /// answers the same) a successful attempt of the agent protocol.
    Ok,
    /// 503.
    Fail,
    /// 200 after a delay (ms): a slow service, not a wait of the test.
    Slow(u64),
    /// 200 after `from_ms + step_ms × (requests before this one)`: a service slowing down.
    Ramp { from_ms: u64, step_ms: u64 },
}

/// One request a fake service received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: SystemTime,
    pub correlation_id: Option<String>,
}

#[derive(Clone)]
struct FakeShared {
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
}

async fn fake_answer(State(s): State<FakeShared>, headers: HeaderMap) -> axum::response::Response {
    let before = s.hits.lock().unwrap().len() as u64;
    s.hits.lock().unwrap().push(Hit {
        at: SystemTime::now(),
        correlation_id: headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Ok => (StatusCode::OK, "{\"status\":\"ok\",\"success\":true}").into_response(),
        Mode::Fail => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        Mode::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::OK, "{\"status\":\"ok\",\"success\":true}").into_response()
        }
        Mode::Ramp { from_ms, step_ms } => {
            tokio::time::sleep(Duration::from_millis(from_ms + step_ms * before)).await;
            (StatusCode::OK, "{\"status\":\"ok\",\"success\":true}").into_response()
        }
    }
}

/// A real HTTP service on 127.0.0.1 that counts the requests it receives, can fail on demand,
/// and can be stopped and started again on the same port.
pub struct FakeService {
    pub port: u16,
    shared: FakeShared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl FakeService {
    pub async fn start(mode: Mode) -> FakeService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = FakeShared {
            hits: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
        };
        let mut s = FakeService {
            port: listener.local_addr().unwrap().port(),
            shared,
            shutdown: None,
            handle: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let router = axum::Router::new()
            .fallback(fake_answer)
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.handle = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        }));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.hits.lock().unwrap().len()
    }

    /// Stops listening and closes every connection (the port refuses connections after this).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Listens on the same port again, with a fresh request count.
    pub async fn restart(&mut self) {
        self.shared.hits.lock().unwrap().clear();
        let port = self.port;
        let listener = eventually_some(
            Duration::from_secs(5),
            &format!("port {port} to be free to listen on again"),
            || async move {
                tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        self.serve(listener);
    }
}

/// A service that accepts connections and never answers.
pub struct HangingService {
    pub port: u16,
    handle: tokio::task::JoinHandle<()>,
}

impl HangingService {
    pub async fn start() -> HangingService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        HangingService { port, handle }
    }
}

impl Drop for HangingService {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A port with nothing listening.
pub fn closed_port() -> u16 {
    free_port()
}

/// Log lines of a JSON log file, parsed.
pub fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Runs the same async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// A TCP proxy on 127.0.0.1 in front of another address, which a test can cut (every open
/// connection is closed and new ones are dropped at once) and restore: a database that goes away
/// mid-run without stopping the machine's shared server.
pub struct TcpProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let gen_tx = generation.clone();
        let up2 = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = gen_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy {
            port,
            up,
            generation,
            task,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Breaker `name` as instance `p` shows it (`Null` when it has none).
pub async fn breaker(p: &TestProcess, name: &str) -> serde_json::Value {
    let (_, body) = p
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/circuit-breakers/{name}"),
            None,
        )
        .await;
    body["data"][name].clone()
}

/// A successful attempt of `domain/action` that finished at `finished` after `duration_ms`,
/// with a task of its own and nothing else set: records to store or spool directly.
pub fn success_record(
    domain: &str,
    action: &str,
    finished: chrono::DateTime<chrono::Utc>,
    duration_ms: u64,
) -> jarvis::model::record::ExecutionRecord {
    jarvis::model::record::ExecutionRecord {
        record_id: uuid::Uuid::now_v7(),
        task_id: uuid::Uuid::now_v7(),
        domain: domain.into(),
        action: action.into(),
        attempt: 1,
        parameters: serde_json::json!({}),
        learned_parameters: None,
        success: true,
        duration_ms,
        impact_score: None,
        failure_reason: None,
        failure_group: None,
        cost_usd: None,
        correlation_id: None,
        instance_id: None,
        started_at: finished,
        finished_at: finished,
        timed_out: false,
        model_call: None,
    }
}
