//! The command line: `jarvis serve`, `jarvis migrate`, `jarvis config check`,
//! `jarvis healthcheck`, and one subcommand per capability for operators.

pub mod breakers;
pub mod health;
pub mod schedules;
pub mod tasks;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Jarvis: a control plane for autonomous agents and the services they depend on.
#[derive(Debug, Parser)]
#[command(name = "jarvis", version, about, long_about = None)]
pub struct Cli {
    /// Config file (services, agents, per-breaker settings). Default: $JARVIS_CONFIG, else
    /// ./jarvis.toml when it exists.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server, the workers and the health monitor (port 4000 by default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the health of every monitored service of a running Jarvis (exit 0 pass or warn,
    /// 1 fail, 2 when Jarvis cannot be asked).
    Health(HealthArgs),
    /// Submit, inspect and cancel tasks, read statistics and execution records of a running
    /// Jarvis.
    Tasks {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::cli::tasks::Connection,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::tasks::TasksCommand,
    },
    /// List the circuit breakers of a running Jarvis, or open, close or reset one.
    Breakers {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<crate::cli::breakers::BreakersCommand>,
    },
    /// List the schedules of a running Jarvis with their next run times, or pause, resume or
    /// delete one.
    Schedules {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<crate::cli::schedules::SchedulesCommand>,
    },
    /// Exit 0 when a running Jarvis answers /health with 200 (for container health checks).
    Healthcheck {
        /// The health URL.
        #[arg(long, default_value = "http://127.0.0.1:4000/health")]
        url: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

/// Arguments of `jarvis health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connection: crate::client::Connection,
    /// Print the JSON of `GET /api/v1/health/services` instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `jarvis config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets masked.
    Check,
}
