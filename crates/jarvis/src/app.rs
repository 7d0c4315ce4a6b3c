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
use axum::serve::ListenerExt;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::breakers::metrics::BreakerMetrics;
use crate::breakers::shared::{BreakerSync, SharedSettings};
use crate::breakers::BreakerRegistry;
use crate::config::{Config, Environment};
use crate::health::{Checker, Monitor};
use crate::history::{Recorder, RecorderTask};
use crate::metrics::Metrics;
use crate::store::Backend;
use crate::store::{self, Store};
use crate::tasks::metrics::TaskMetrics;
use crate::tasks::queue::QueueParts;
use crate::tasks::{BuiltinAgents, TaskQueue};

pub use crate::api::state::AppState;

/// Background work started with the server and stopped after it: each entry gets the shutdown
/// signal and finishes its pending work before returning.
type BackgroundTask = Box<
    dyn FnOnce(watch::Receiver<bool>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send,
>;

/// A built application: bound to its port, store open and migrated, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    recorder: RecorderTask,
    background: Vec<BackgroundTask>,
}

impl Application {
    /// Opens and migrates the store, resolves the auth token and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Application::build_with(config, BuiltinAgents::with_defaults()).await
    }

    /// Like [`Application::build`], with the built-in agents to serve (`noop` and whatever
    /// other modules register, such as the health monitor's `system-health`).
    pub async fn build_with(
        mut config: Config,
        builtins: BuiltinAgents,
    ) -> anyhow::Result<Application> {
        let store = store::open(&config.store).await?;
        store
            .migrate()
            .await
            .context("applying the database migrations")?;
        if let Err(e) = store::sync_clock(store.as_ref()).await {
            tracing::warn!(error = %e, "cannot read the database server's clock; this machine's is used until it can");
        }
        seed_from_file(&config, store.as_ref()).await?;
        let keyring = Arc::new(build_keyring(&mut config)?);
        let addr = SocketAddr::new(config.server.bind, config.server.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let metrics = Arc::new(Metrics::new());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let coordinate = store.backend() == Backend::Postgres;
        let breakers = Arc::new(
            BreakerRegistry::new(
                config.breakers.defaults,
                config.file.breakers.clone(),
                Arc::new(BreakerMetrics::new(metrics.clone())),
            )
            .shared(events_tx, coordinate),
        );
        let breaker_sync = BreakerSync::new(
            store.clone(),
            breakers.clone(),
            config.server.instance_id.clone(),
            SharedSettings {
                coordinate,
                quorum: config.breakers.quorum,
                lease: config.breakers.lease,
                reconcile_every: config.breakers.reconcile,
            },
        );
        // Before serving: an open circuit stays open across a restart.
        breaker_sync.load().await;
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let mut background: Vec<BackgroundTask> = Vec::new();
        // Time by the database server's clock (the embedded store: this machine's, steps only
        // once they held a minute): a step of this machine's clock then moves no lease, retry
        // time or `runAt` (`clock`).
        if store.backend() == Backend::Postgres {
            let store = store.clone();
            background.push(Box::new(move |stop| {
                Box::pin(store::clock_sync_loop(store, stop))
            }));
        } else {
            background.push(Box::new(|stop| {
                Box::pin(crate::clock::follow_machine_loop(stop))
            }));
        }
        {
            let sync = breaker_sync.clone();
            background.push(Box::new(move |stop| {
                Box::pin(sync.run(events_rx, notes_rx, stop))
            }));
            let store = store.clone();
            background.push(Box::new(move |stop| {
                Box::pin(async move { store.watch_breakers(notes_tx, stop).await })
            }));
        }
        let checker = Checker::new(breakers.clone()).context("building the health check client")?;
        let health = Arc::new(Monitor::new(
            store.clone(),
            checker,
            config.health,
            config.server.instance_id.clone(),
            metrics.clone(),
        ));
        // A deleted service takes its breaker with it, on every instance.
        health.forget_breakers_through(breaker_sync.clone());
        {
            let monitor = Arc::downgrade(&health);
            breaker_sync.on_removed(move |_| {
                if let Some(m) = monitor.upgrade() {
                    m.services_changed();
                }
            });
        }
        let learner = crate::learning::Learner::new(
            store.clone(),
            config.learning.clone(),
            &config.server.instance_id,
        );
        {
            let learner = learner.clone();
            background.push(Box::new(move |stop| Box::pin(learner.run(stop))));
        }
        let (recorder, recorder_task) = Recorder::start_observed(
            store.clone(),
            &config.server.data_dir,
            metrics.clone(),
            Some(Arc::new(vec![
                learner.clone() as Arc<dyn crate::history::recorder::BatchObserver>,
                health.domain_forecasts().clone(),
            ])),
        );
        // Every health round is recorded in task history as system-health/monitor-services.
        health.add_sink(Arc::new(crate::health::as_tasks::HistorySink::new(
            recorder.clone(),
            config.server.instance_id.clone(),
        )));
        let spend = crate::ai::spend::Spend::new(
            store.clone(),
            crate::ai::price::PriceTable::new(&config.file.ai.prices),
            config.file.ai.budgets.clone(),
            metrics.clone(),
        );
        // Budgets start from the spend the store holds (this month's, every instance's).
        spend.flush().await;
        {
            let spend = spend.clone();
            background.push(Box::new(move |stop| Box::pin(spend.run(stop))));
        }
        let ai = Arc::new(
            crate::ai::Gateway::new(
                &config.integrations,
                &config.file.ai.models,
                breakers.clone(),
                spend,
            )
            .context("building the AI gateway's HTTP client")?
            .with_cache(crate::ai::cache::ResponseCache::new(
                &config.integrations.ai_cache,
                config.integrations.redis.as_ref(),
                &metrics,
            )),
        );
        // The config file's model groups are written to the store at every start (replacing
        // what the API stored under their names, as [agents] and [services] are); from then
        // on every instance serves what the store holds.
        let now_ms = crate::clock::now().timestamp_millis();
        for (name, group) in &config.file.ai.models {
            let json = serde_json::to_string(group).expect("a group serializes");
            store
                .put_ai_model(name, &json, now_ms)
                .await
                .with_context(|| format!("writing model group {name} to the store"))?;
        }
        ai.sync_groups(&*store).await;
        {
            let (ai, store) = (ai.clone(), store.clone());
            background.push(Box::new(move |stop| {
                Box::pin(ai.run_group_sync(store, stop))
            }));
        }
        let tasks = TaskQueue::new(QueueParts {
            store: store.clone(),
            breakers: breakers.clone(),
            builtins,
            recorder,
            metrics: Arc::new(TaskMetrics::new(metrics.clone())),
            settings: config.tasks,
            concurrency: config.tasks.concurrency,
            instance: config.server.instance_id.clone(),
            clock: crate::clock::system(),
            ai: Some(ai.clone()),
        });
        if config.tasks.history_retention_days > 0 {
            let store = store.clone();
            let retention = std::time::Duration::from_secs(
                u64::from(config.tasks.history_retention_days) * 86_400,
            );
            background.push(Box::new(move |stop| {
                Box::pin(crate::history::retention_loop(
                    store,
                    retention,
                    std::time::Duration::from_secs(3_600),
                    stop,
                ))
            }));
        }
        {
            // Minute rollups (48 h) and breaker transitions (the history's retention).
            let store = store.clone();
            let keep = (config.tasks.history_retention_days > 0).then(|| {
                std::time::Duration::from_secs(
                    u64::from(config.tasks.history_retention_days) * 86_400,
                )
            });
            background.push(Box::new(move |stop| {
                Box::pin(crate::analytics::retention_loop(
                    store,
                    keep,
                    std::time::Duration::from_secs(600),
                    stop,
                ))
            }));
        }
        // Every instance runs the scheduler: ticks are claimed in the store, so any number of
        // instances submit one task per tick (see `schedules::scheduler`).
        let agent_defaults = Arc::new(crate::agents::AgentDefaults::default());
        let scheduler = crate::schedules::Scheduler::new(
            store.clone(),
            tasks.clone(),
            learner.clone(),
            agent_defaults.clone(),
            metrics.clone(),
        );
        {
            let scheduler = scheduler.clone();
            background.push(Box::new(move |stop| Box::pin(scheduler.run(stop))));
        }
        let (traces, trace_writer) = crate::trace::Tracer::start(
            store.clone(),
            &config.server.instance_id,
            std::time::Duration::from_secs(
                u64::from(config.telemetry.trace_retention_hours) * 3_600,
            ),
        );
        background.push(Box::new(move |stop| Box::pin(trace_writer.run(stop))));
        if let Some(endpoint) = &config.telemetry.otlp_endpoint {
            let exporter = crate::trace::otel::start(endpoint, &config.telemetry.service_name)
                .context("building the OTLP span exporter")?;
            if let Some(exporter) = exporter {
                background.push(Box::new(move |stop| Box::pin(exporter.run(stop))));
            }
        }
        tasks.set_tracer(traces.clone());
        if config.alerts.enabled {
            let engine = crate::alerts::AlertEngine::new(
                store.clone(),
                breakers.clone(),
                health.clone(),
                config.alerts.clone(),
                config.server.instance_id.clone(),
                metrics.clone(),
            )
            .context("building the alert notifier's HTTP client")?;
            background.push(Box::new(move |stop| Box::pin(engine.run(stop))));
        }
        let auth = Arc::new(crate::api::auth::Auth {
            keyring: keyring.clone(),
            limits: crate::api::auth::RateLimits::new(&config.auth),
        });
        let sessions = Arc::new(crate::dashboard::Sessions::new());
        {
            let (auth, sessions) = (auth.clone(), sessions.clone());
            background.push(Box::new(move |stop| {
                Box::pin(auth_upkeep(auth, sessions, stop))
            }));
        }
        let state = AppState {
            sessions,
            traces,
            ai,
            scheduler,
            health,
            requests: Arc::new(crate::emf::RequestStats::default()),
            breakers,
            breaker_sync,
            learner,
            agent_defaults,
            metrics,
            tasks,
            instance_id: config.server.instance_id.clone(),
            config: Arc::new(config),
            store,
            auth,
            started_at: Instant::now(),
        };
        {
            let state = state.clone();
            let interval = state.config.telemetry.emf_interval;
            let namespace = state.config.telemetry.metrics_namespace.clone();
            background.push(Box::new(move |stop| {
                Box::pin(crate::emf::run(state, interval, namespace, stop))
            }));
        }
        Ok(Application {
            listener,
            state,
            background,
            recorder: recorder_task,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Where a browser on this machine finds the dashboard (`http://127.0.0.1:PORT/` when bound
    /// to every address).
    pub fn dashboard_url(&self) -> String {
        let ip = match self.state.config.server.bind {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{ip}:{}/", self.port())
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
        let Application {
            listener,
            state,
            background,
            recorder,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let handles: Vec<_> = background
            .into_iter()
            .map(|task| tokio::spawn(task(stop_rx.clone())))
            .collect();
        let grace = state.config.server.shutdown_grace;
        // On the embedded store, the data directory's lock says whether this is its only
        // `serve`: then what is left running belongs to a process that died, and is taken
        // back before the workers start rather than when its leases expire. Held until this
        // function returns.
        let serve_lock = if state.store.backend() == Backend::Sqlite {
            crate::files::ServeLock::try_take(&state.config.server.data_dir)
        } else {
            None
        };
        // The workers start once that is done (it first stores the dead process's history
        // spool, which after a long outage can take seconds); the API serves meanwhile, so
        // `/health` answers and submissions are stored.
        let workers = {
            let queue = state.tasks.clone();
            let orphans = serve_lock.is_some();
            tokio::spawn(async move {
                if orphans {
                    queue.take_back_orphans().await;
                }
                queue.start().await;
            })
        };
        let router = crate::api::router(state.clone());
        tracing::info!(
            port = listener.local_addr().map(|a| a.port()).unwrap_or(0),
            backend = ?state.store.backend(),
            environment = ?state.config.server.environment,
            instance = %state.instance_id,
            "Jarvis is listening"
        );

        state.health.start();

        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let queue = state.tasks.clone();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "shutdown requested; finishing in-flight requests and tasks"
            );
            let _ = stopping_tx.send(true);
            // The workers stop claiming now and drain alongside the HTTP requests (once
            // started: a shutdown during the take-back above waits for it).
            tokio::spawn(async move {
                let _ = workers.await;
                queue.shutdown(grace).await;
                let _ = drained_tx.send(());
            });
        };
        // TCP_NODELAY on every accepted connection: a streamed answer (SSE on `/v1/*`) is many
        // small writes, and with Nagle each one after the first waited for the client's delayed
        // ACK (40 ms a chunk; bench/ai measured 46 streamed calls/s at concurrency 1 without it).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
        // The peer's address reaches the per-address rate limit (`api::auth`).
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
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
        let _ = drained_rx.await;
        // Checks stop first, so that their last results are queued and written.
        state.health.stop().await;
        // Background work finishes its pending writes before the store closes.
        let _ = stop_tx.send(true);
        let drain = async {
            for h in handles {
                let _ = h.await;
            }
        };
        if tokio::time::timeout(grace.max(std::time::Duration::from_secs(1)), drain)
            .await
            .is_err()
        {
            tracing::warn!("background work did not finish within the grace period");
        }
        recorder.stop(state.tasks.recorder().clone()).await;
        // The last records reached the learner with the recorder's final batch.
        state.learner.flush().await;
        served?;
        state.store.close().await;
        tracing::info!("Jarvis stopped");
        Ok(())
    }
}

/// Writes the services, agents and schedules of the config file into the store (the file wins over what
/// the API stored under the same name, once, at start).
async fn seed_from_file(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let now = crate::clock::now();
    for (name, entry) in &config.file.services {
        let name = crate::names::Name::parse(name)?;
        let spec = entry
            .clone()
            .into_spec(name.clone(), now)
            .map_err(|e| anyhow::anyhow!("config file: services.{name}.{e}"))?;
        store.put_service(&spec).await?;
    }
    for (domain, entry) in &config.file.agents {
        let domain = crate::names::Name::parse(domain)?;
        let spec = entry
            .clone()
            .into_spec(domain.clone(), now)
            .map_err(|e| anyhow::anyhow!("config file: agents.{domain}.{e}"))?;
        let before = store.get_agent(domain.as_str()).await?;
        store.put_agent(&spec).await?;
        // The agent's health check is the service named after its domain (`model::agent`);
        // one the file no longer declares goes (the monitor drops it at its next reload).
        match spec.health_service(now) {
            Some(service) => {
                let service =
                    service.map_err(|e| anyhow::anyhow!("config file: agents.{domain}.{e}"))?;
                store.put_service(&service).await?;
            }
            None => {
                if let (Some(before), Some(service)) =
                    (before, store.get_service(domain.as_str()).await?)
                {
                    if before.owns(&service) {
                        store.delete_service(domain.as_str()).await?;
                    }
                }
            }
        }
    }
    for (name, entry) in &config.file.schedules {
        let name = crate::names::Name::parse(name)?;
        let spec = entry
            .clone()
            .into_spec(name.clone(), now)
            .map_err(|e| anyhow::anyhow!("config file: schedules.{name}.{e}"))?;
        // Re-applying the same timing keeps the stored next tick (missed ticks stay missed).
        store.put_schedule(&spec.to_row(now)).await?;
    }
    Ok(())
}

/// The token set at start: `JARVIS_AUTH_TOKEN` (or the development token) as an `admin` token,
/// `JARVIS_AUTH_TOKENS`, the config file's `[auth]` table and the tokens file (`crate::auth`).
/// A wrong source stops the start. From here on only hashes are kept: the configuration's
/// copies of the tokens are dropped (the config file's entries keep their SHA-256 for
/// `config check`).
fn build_keyring(config: &mut Config) -> anyhow::Result<crate::auth::Keyring> {
    use secrecy::ExposeSecret;
    let given = config.server.auth_token.is_some();
    let admin = resolve_token(config)?;
    let admin = crate::auth::Token {
        name: Arc::from(if given {
            "JARVIS_AUTH_TOKEN"
        } else {
            "dev-token"
        }),
        role: crate::auth::Role::Admin,
        hash: crate::auth::hash(admin.expose_secret()),
    };
    config.server.auth_token = None;
    // What came from Secrets Manager is read again at each reload; the rest is fixed.
    let from_secret = |key: &str| {
        config
            .auth
            .app_secret
            .as_ref()
            .is_some_and(|s| s.keys().contains(&key))
    };
    let (mut fixed, mut secret) = (Vec::new(), Vec::new());
    if given && from_secret("JARVIS_AUTH_TOKEN") {
        secret.push(admin);
    } else {
        fixed.push(admin);
    }
    if from_secret("JARVIS_AUTH_TOKENS") {
        secret.extend(config.auth.env_tokens.iter().cloned());
    } else {
        fixed.extend(config.auth.env_tokens.iter().cloned());
    }
    let sources = crate::auth::Sources {
        fixed,
        secret: config.auth.app_secret.clone(),
        config_file: config.file_path.clone(),
        tokens_file: config.auth.tokens_file.clone(),
    };
    let keyring = crate::auth::Keyring::load(sources, secret, config.auth.reload)
        .map_err(|e| anyhow::anyhow!("auth tokens: {e}"))?;
    for entry in &mut config.file.auth.tokens {
        if let Some(token) = entry.token.take() {
            let hex: String = crate::auth::hash(&token)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            entry.sha256 = Some(hex);
        }
    }
    tracing::info!(
        tokens = keyring.current().summary().join(","),
        "auth tokens loaded"
    );
    Ok(keyring)
}

/// The auth chores of a running instance: reloading tokens (SIGHUP, timer), ending the dashboard
/// sessions of tokens a reload removed, and forgetting idle rate-limit budgets.
async fn auth_upkeep(
    auth: Arc<crate::api::auth::Auth>,
    sessions: Arc<crate::dashboard::Sessions>,
    stop: watch::Receiver<bool>,
) {
    let reload = tokio::spawn(auth.keyring.clone().run(stop.clone()));
    let mut changed = auth.keyring.subscribe();
    let mut sweep = tokio::time::interval(std::time::Duration::from_secs(60));
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = changed.changed() => {
                if r.is_err() {
                    break;
                }
                let set = auth.keyring.current();
                let ended = sessions.end_unless(|h| set.find_hash(h).is_some());
                if ended > 0 {
                    tracing::info!(ended, "dashboard sessions of removed tokens ended");
                }
            }
            _ = sweep.tick() => auth.limits.forget_idle(),
        }
    }
    let _ = reload.await;
}

/// The configured token, or in development one generated on first start and kept in the data
/// directory so it stays the same across restarts. It is printed to stderr once, never logged.
fn resolve_token(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(token) = &config.server.auth_token {
        return Ok(token.clone());
    }
    debug_assert_eq!(config.server.environment, Environment::Development);
    let path = config.server.data_dir.join("dev-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 16 => {
            crate::files::restrict(&path)
                .with_context(|| format!("restricting {}", path.display()))?;
            t.trim().to_string()
        }
        _ => {
            let token = new_token();
            crate::files::create_dir(&config.server.data_dir)
                .with_context(|| format!("creating {}", config.server.data_dir.display()))?;
            write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
            token
        }
    };
    crate::say!(
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
