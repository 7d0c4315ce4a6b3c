//! The `jarvis` binary: parses the command line and hands over to the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jarvis::app::{shutdown_signal, Application};
use jarvis::cli::{Cli, Command, ConfigCommand};
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
            eprintln!("jarvis: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Healthcheck { url, timeout_ms } = &cli.command {
        return healthcheck(url, *timeout_ms).await;
    }
    if let Command::Health(args) = &cli.command {
        return health(args).await;
    }
    if let Command::Tasks {
        connection,
        command,
    } = cli.command
    {
        return match jarvis::cli::tasks::run(&connection, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jarvis: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::Breakers {
        connection,
        json,
        command,
    } = cli.command
    {
        return match jarvis::cli::breakers::run(&connection, json, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jarvis: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::Schedules {
        connection,
        json,
        command,
    } = cli.command
    {
        return match jarvis::cli::schedules::run(&connection, json, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jarvis: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    let prefix = match jarvis::config::secrets_prefix(&vars) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("jarvis: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(prefix) = prefix {
        match jarvis::secrets::load(&prefix, &vars).await {
            Ok(found) => {
                eprintln!(
                    "jarvis: {} value(s) read from Secrets Manager under {prefix}",
                    found.len()
                );
                vars.extend(found);
            }
            Err(e) => {
                eprintln!("jarvis: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let config = match Config::from_env_map(&vars, cli.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jarvis: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => match migrate(&config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jarvis: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config.masked_view()).unwrap_or_default()
            );
            eprintln!("configuration OK");
            ExitCode::SUCCESS
        }
        Command::Healthcheck { .. }
        | Command::Health(_)
        | Command::Tasks { .. }
        | Command::Breakers { .. }
        | Command::Schedules { .. } => unreachable!("handled above"),
    }
}

async fn serve(config: Config) -> ExitCode {
    let guard = match jarvis::telemetry::init(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("jarvis: cannot set up logging: {e:#}");
            return ExitCode::from(1);
        }
    };
    let code = match Application::build(config).await {
        Ok(app) => match app.run_until(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "Jarvis stopped with an error");
                eprintln!("jarvis: {e:#}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Jarvis cannot start");
            eprintln!("jarvis: {e:#}");
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
    eprintln!("migrations applied ({:?} store)", store.backend());
    Ok(())
}

async fn health(args: &jarvis::cli::HealthArgs) -> ExitCode {
    use jarvis::cli::health as report;
    let data = match report::fetch(&args.connection).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("jarvis: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", jarvis::client::json_text(&data).unwrap_or_default());
    } else {
        print!("{}", report::table(&data));
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
            eprintln!("jarvis: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("jarvis: {url} answered {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("jarvis: {url}: {e}");
            ExitCode::from(1)
        }
    }
}
