//! The `jarvis` binary: parses the command line and hands over to the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jarvis::app::{shutdown_signal, Application};
use jarvis::cli::{Cli, Command, ConfigCommand};
use jarvis::client::Connection;
use jarvis::config::Config;

/// jemalloc instead of glibc's malloc, with background threads that return freed memory to the
/// OS (after jemalloc's 10 s dirty-page decay) even when nothing allocates. Measured with
/// bench/health (20,000 services, then 15,000 deleted, 5,000 left): glibc kept its per-thread
/// arenas (the runtime's, the SQLite worker threads') fragmented and never gave them back,
/// 407 MiB under load rising to 600 MiB after the load dropped; with jemalloc 300 MiB under load
/// and 245 MiB after, and 0.039 instead of 0.063 ms of CPU per check. `unprefixed_malloc`
/// makes SQLite's own allocations use it too.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            jarvis::say!("jarvis: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let Cli { config, command } = cli;
    let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    // The operator subcommands are clients of a running Jarvis: they read only where it is
    // (`--url`, `JARVIS_URL`, else the configured port) and the token, never the server's
    // whole configuration.
    let connect = |c: Connection| c.resolve(config.as_deref(), &vars);
    match command {
        Command::Healthcheck { url, timeout_ms } => {
            let url = match url {
                Some(url) => url,
                None => {
                    let given = vars
                        .get("JARVIS_URL")
                        .filter(|u| !u.trim().is_empty())
                        .cloned();
                    match connect(Connection {
                        url: given,
                        token: None,
                    }) {
                        Ok(c) => format!("{}/health", c.base().trim_end_matches('/')),
                        // 1, not 2: Docker reserves exit code 2 of a health check.
                        Err(e) => {
                            jarvis::say!("jarvis: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
            };
            return healthcheck(&url, timeout_ms).await;
        }
        Command::Health(args) => {
            return match connect(args.connection.clone()) {
                Ok(c) => health(&c, args).await,
                Err(e) => config_error(e),
            };
        }
        Command::Tasks {
            connection,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => match jarvis::cli::tasks::run(&c, command).await {
                    Ok(code) => code,
                    Err(e) => failed(e),
                },
                Err(e) => config_error(e),
            };
        }
        Command::Breakers {
            connection,
            json,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::breakers::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Ai {
            connection,
            json,
            command,
        } => {
            let command = command.unwrap_or(jarvis::cli::ai::AiCommand::Usage {
                by: "model".into(),
                since: None,
                until: None,
            });
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::ai::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Schedules {
            connection,
            json,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::schedules::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Services {
            connection,
            json,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::services::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Agents {
            connection,
            json,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::agents::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Alerts {
            connection,
            json,
            command,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::alerts::run(&c, json, command).await),
                Err(e) => config_error(e),
            };
        }
        Command::Trace {
            connection,
            json,
            correlation_id,
        } => {
            return match connect(connection) {
                Ok(c) => done(jarvis::cli::trace::run(&c, json, &correlation_id).await),
                Err(e) => config_error(e),
            };
        }
        Command::Serve | Command::Migrate | Command::Config { .. } => {}
    }
    let prefix = match jarvis::config::secrets_prefix(&vars) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    // The token variables the environment leaves to the secret `<prefix>/app`, read again at
    // each token reload (rotation without a restart).
    let app_secret = prefix
        .as_deref()
        .and_then(|p| jarvis::secrets::AppSecret::new(p, &vars));
    if let Some(prefix) = prefix {
        match jarvis::secrets::load(&prefix, &vars).await {
            Ok(found) => {
                jarvis::say!(
                    "jarvis: {} value(s) read from Secrets Manager under {prefix}",
                    found.len()
                );
                vars.extend(found);
            }
            Err(e) => {
                jarvis::say!("jarvis: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut config = match Config::from_env_map(&vars, config) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    config.auth.app_secret = app_secret;
    // The configuration keeps what it needs (tokens only as hashes once the server is built):
    // this copy of the environment, with the tokens and secrets in it, goes now.
    drop(vars);
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => match migrate(&config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(e),
        },
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            jarvis::cli::common::outln(
                &serde_json::to_string_pretty(&config.masked_view()).unwrap_or_default(),
            );
            jarvis::say!("configuration OK");
            ExitCode::SUCCESS
        }
        _ => unreachable!("client commands are handled above"),
    }
}

/// A configuration that cannot be read: exit 2, as for `serve`.
fn config_error(e: jarvis::config::ConfigError) -> ExitCode {
    jarvis::say!("jarvis: {e}");
    ExitCode::from(2)
}

/// A command that failed: its error chain on one line, exit 1.
fn failed(e: anyhow::Error) -> ExitCode {
    jarvis::say!("jarvis: {e:#}");
    ExitCode::from(1)
}

/// Exit 0, or 1 with the error.
fn done(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

async fn serve(config: Config) -> ExitCode {
    let guard = match jarvis::telemetry::init(&config) {
        Ok(g) => g,
        Err(e) => {
            jarvis::say!("jarvis: cannot set up logging: {e:#}");
            return ExitCode::from(1);
        }
    };
    let code = match Application::build(config).await {
        Ok(app) => {
            jarvis::say!("Jarvis dashboard: {}", app.dashboard_url());
            match app.run_until(shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Jarvis stopped with an error");
                    jarvis::say!("jarvis: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Jarvis cannot start");
            jarvis::say!("jarvis: {e:#}");
            ExitCode::from(1)
        }
    };
    drop(guard);
    code
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = jarvis::store::open(&config.store).await?;
    store.migrate().await?;
    store.close().await;
    jarvis::say!("migrations applied ({:?} store)", store.backend());
    Ok(())
}

async fn health(connection: &Connection, args: jarvis::cli::HealthArgs) -> ExitCode {
    use jarvis::cli::health as report;
    if let Some(command) = args.command {
        return done(report::run(connection, args.json, command).await);
    }
    let data = match report::fetch(connection).await {
        Ok(d) => d,
        Err(e) => {
            jarvis::say!("jarvis: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        jarvis::cli::common::outln(&jarvis::client::json_text(&data).unwrap_or_default());
    } else {
        jarvis::cli::common::out(&report::table(&data));
    }
    if data.status == jarvis::health::Overall::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn healthcheck(url: &str, timeout_ms: u64) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            jarvis::say!("jarvis: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            jarvis::say!("jarvis: {url} answered {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            jarvis::say!("jarvis: {url}: {e}");
            ExitCode::from(1)
        }
    }
}
