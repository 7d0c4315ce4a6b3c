//! The test harness: a real Jarvis on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, in-process (`TestApp`) or as a child process (`TestProcess`).
//!
//! PostgreSQL tests never skip: when the server at `JARVIS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) cannot be reached they fail.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        vars.insert(
            "JARVIS_DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        vars.insert(
            "JARVIS_LOG_DIR".into(),
            dir.path().join("logs").display().to_string(),
        );
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

/// Waits until `check` is true, polling every 20 ms, or panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

    async fn wait_healthy(&self, limit: Duration) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(self.url("/health")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if started.elapsed() > limit {
                panic!(
                    "jarvis did not become healthy in {limit:?}; stderr: {}",
                    std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > limit {
                panic!("jarvis did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// Polls `check` until it returns `Some`, at most `limit`; panics with `what` otherwise.
pub async fn eventually_some<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
