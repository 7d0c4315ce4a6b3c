//! The command line: `jarvis serve`, `jarvis migrate`, `jarvis config check`,
//! `jarvis healthcheck`, and one subcommand per capability for operators (`breakers`, `health`,
//! `tasks`, `schedules`, `services`, `agents`, `trace`, `alerts`), each a client of a running Jarvis that finds it
//! through `crate::client::Connection`.
//!
//! Everything the CLI prints goes through [`out`], so that output into a closed pipe
//! (`jarvis config check | head -1`) ends the command quietly instead of with a panic.

pub mod agents;
pub mod ai;
pub mod alerts;
pub mod breakers;
pub mod common;
pub mod health;
pub mod schedules;
pub mod services;
pub mod tasks;
pub mod trace;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Jarvis: a control plane for autonomous agents and the services they depend on.
#[derive(Debug, Parser)]
#[command(name = "jarvis", version, about, long_about = None)]
pub struct Cli {
    /// Config file (services, agents, per-breaker settings). Default: $JARVIS_CONFIG, else
    /// ./jarvis.toml when it exists. The client commands read the server's port from it
    /// (`[server] port`) when neither --url, JARVIS_URL nor JARVIS_PORT/PORT say where the
    /// server is; a file that cannot be read is an error.
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
    /// 1 fail, 2 when Jarvis cannot be asked), or one service's check history.
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
    /// What the AI gateway of a running Jarvis used and spent (`usage`, the default), its
    /// budgets, prices and models.
    Ai {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to show (default: usage this month by model).
        #[command(subcommand)]
        command: Option<crate::cli::ai::AiCommand>,
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
    /// List, show, register or remove the monitored services of a running Jarvis.
    Services {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<crate::cli::services::ServicesCommand>,
    },
    /// List, show, register or remove the HTTP agents (one per task domain) of a running
    /// Jarvis.
    Agents {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<crate::cli::agents::AgentsCommand>,
    },
    /// Print everything a running Jarvis knows about one correlation ID as a timeline: the
    /// request, tasks, attempts, agent and model calls, breaker decisions, health checks and
    /// the instance's log lines.
    Trace {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a timeline.
        #[arg(long)]
        json: bool,
        /// The correlation ID (`X-Correlation-ID` of a request, `hc-…` of a health check).
        correlation_id: String,
    },
    /// The alert history of a running Jarvis (`list`, the default), and its silences: add one
    /// (`silence --service NAME --duration 2h`), list them, remove one.
    Alerts {
        /// Where the server is.
        #[command(flatten)]
        connection: crate::client::Connection,
        /// Print the raw JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<crate::cli::alerts::AlertsCommand>,
    },
    /// Exit 0 when a running Jarvis answers /health with a 2xx, else 1 (for container health
    /// checks; needs no token).
    Healthcheck {
        /// The health URL [default: $JARVIS_URL/health, else http://127.0.0.1:PORT/health with
        /// the port of JARVIS_PORT/PORT or `[server] port` of the config file, else 4000]
        #[arg(long)]
        url: Option<String>,
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
    /// Print the JSON of the answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do (default: the health of every service).
    #[command(subcommand)]
    pub command: Option<crate::cli::health::HealthCommand>,
}

/// `jarvis config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets masked.
    Check,
}
