//! Building and running the application: the shared state, the listener, graceful shutdown.
//!
//! `main` turns the command line into a [`Config`] and calls [`Application::build`] then
//! [`Application::run_until`]; the integration tests do the same with port 0 and a fresh
//! database, so what is tested is what runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::breakers::metrics::BreakerMetrics;
use crate::breakers::BreakerRegistry;
use crate::config::{Config, Environment};
use crate::health::{Checker, Monitor};
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// State shared by every handler and background task. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// The bearer token every `/api/v1` call must present.
    pub auth_token: SecretString,
    /// This instance's name (logs, history rows, breaker updates).
    pub instance_id: String,
    /// When the process started serving.
    pub started_at: Instant,
    /// Every named circuit breaker.
    pub breakers: Arc<BreakerRegistry>,
    /// The Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// The health monitor (started by [`Application::run_until`]).
    pub health: Arc<Monitor>,
}

/// A built application: bound to its port, store open and migrated, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens and migrates the store, resolves the auth token and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = store::open(&config.store).await?;
        store
            .migrate()
            .await
            .context("applying the database migrations")?;
        seed_from_file(&config, store.as_ref()).await?;
        let auth_token = resolve_token(&config)?;
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let metrics = Arc::new(Metrics::new());
        let breakers = Arc::new(BreakerRegistry::new(
            config.breakers,
            config.file.breakers.clone(),
            Arc::new(BreakerMetrics::new(metrics.clone())),
        ));
        let checker = Checker::new(breakers.clone()).context("building the health check client")?;
        let health = Arc::new(Monitor::new(
            store.clone(),
            checker,
            config.health,
            config.instance_id.clone(),
            metrics.clone(),
        ));
        let state = AppState {
            health,
            breakers,
            metrics,
            instance_id: config.instance_id.clone(),
            config: Arc::new(config),
            store,
            auth_token,
            started_at: Instant::now(),
        };
        Ok(Application { listener, state })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests use it to reach the store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops taking connections and lets in-flight
    /// requests finish for at most the configured grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, state } = self;
        let grace = state.config.shutdown_grace;
        let router = crate::api::router(state.clone());
        tracing::info!(
            port = listener.local_addr().map(|a| a.port()).unwrap_or(0),
            backend = ?state.store.backend(),
            environment = ?state.config.environment,
            instance = %state.instance_id,
            "Jarvis is listening"
        );

        state.health.start();

        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "shutdown requested; finishing in-flight requests"
            );
            let _ = stopping_tx.send(true);
        };
        let serve = axum::serve(listener, router).with_graceful_shutdown(signal);
        let mut stopping = stopping_rx;
        let deadline = async move {
            // Resolves only once shutdown was requested and the grace period has passed.
            while !*stopping.borrow() {
                if stopping.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            result = serve => result.context("serving HTTP"),
            () = deadline => {
                tracing::warn!("grace period over; abandoning requests still in flight");
                Ok(())
            }
        };
        // Checks stop before the store closes, so the last results are written.
        state.health.stop().await;
        served?;
        state.store.close().await;
        tracing::info!("Jarvis stopped");
        Ok(())
    }
}

/// Writes the services and agents of the config file into the store (the file wins over what
/// the API stored under the same name, once, at start).
async fn seed_from_file(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let now = store::now();
    for (name, entry) in &config.file.services {
        let name = crate::names::Name::parse(name)?;
        let spec = crate::health::ServiceInput::from(entry)
            .into_spec(name.clone(), now)
            .map_err(|e| anyhow::anyhow!("config file: services.{name}.{e}"))?;
        store.put_service(&spec).await?;
    }
    for (domain, entry) in &config.file.agents {
        let domain = crate::names::Name::parse(domain)?;
        let spec = crate::agents::AgentInput {
            url: entry.url.clone(),
            timeout_ms: entry.timeout_ms,
        }
        .into_spec(domain.clone(), now)
        .map_err(|e| anyhow::anyhow!("config file: agents.{domain}.{e}"))?;
        store.put_agent(&spec).await?;
    }
    Ok(())
}

/// The configured token, or in development one generated on first start and kept in the data
/// directory so it stays the same across restarts. It is printed to stderr once, never logged.
fn resolve_token(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(token) = &config.auth_token {
        return Ok(token.clone());
    }
    debug_assert_eq!(config.environment, Environment::Development);
    let path = config.data_dir.join("dev-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 16 => t.trim().to_string(),
        _ => {
            let token = new_token();
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
            token
        }
    };
    eprintln!(
        "JARVIS_AUTH_TOKEN is not set; development token (kept in {}): {token}",
        path.display()
    );
    Ok(SecretString::from(token))
}

fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
