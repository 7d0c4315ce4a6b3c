//! The command line: `jarvis serve`, `jarvis migrate`, `jarvis config check`,
//! `jarvis healthcheck`, and one subcommand per capability for operators (`breakers`, `health`,
//! `tasks`, `schedules`, `services`, `agents`), each a client of a running Jarvis that finds it
//! through `crate::client::Connection`.
//!
//! Everything the CLI prints goes through [`out`], so that output into a closed pipe
//! (`jarvis config check | head -1`) ends the command quietly instead of with a panic.

pub mod agents;
pub mod breakers;
pub mod health;
pub mod schedules;
pub mod services;
pub mod tasks;

use std::fmt::Write as _;
use std::io::Write as _;
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

/// Writes `text` to stdout as it is. When stdout is a closed pipe (`jarvis … | head -1`), the
/// process ends at once with exit 0 and no message: the reader has what it wanted.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("jarvis: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// [`out`] with a newline after `text`.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
}

/// The body of a `put` command: the `--body` JSON object (if any) with the fields given as
/// options set over it.
pub fn put_body<'a>(
    body: Option<&str>,
    given: impl IntoIterator<Item = (&'a str, Option<serde_json::Value>)>,
) -> anyhow::Result<serde_json::Value> {
    let mut fields = match body {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => anyhow::bail!("--body must be a JSON object"),
            Err(e) => anyhow::bail!("--body is not JSON: {e}"),
        },
    };
    for (k, v) in given {
        if let Some(v) = v {
            fields.insert(k.into(), v);
        }
    }
    Ok(serde_json::Value::Object(fields))
}

/// `label: value` lines, the values aligned.
pub fn labelled(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (label, value) in lines {
        let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
    }
    out
}

/// Prints one item: as JSON with `--json`, else as its labelled `detail`.
pub fn print_one<T: serde::Serialize>(
    json: bool,
    one: &T,
    detail: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        outln(&crate::client::json_text(one)?);
    } else {
        out(&detail(one));
    }
    Ok(())
}

/// A `--since`/`--until` value, checked as the API checks it ([`crate::timeparse`]: an RFC 3339
/// time, or a date meaning the whole UTC day) and sent as given, so a date means the same day
/// here and in the API. For clap's `value_parser`, so a wrong value is refused before any
/// request.
pub fn when(raw: &str) -> Result<String, String> {
    crate::timeparse::parse_bound(raw, crate::timeparse::Bound::Since)?;
    Ok(raw.trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_times_are_accepted() {
        assert_eq!(super::when("2026-12-06").unwrap(), "2026-12-06");
        assert_eq!(
            super::when("2026-12-06T09:30:00+01:00").unwrap(),
            "2026-12-06T09:30:00+01:00"
        );
        assert!(super::when("2026-13-06").is_err());
        assert!(super::when("yesterday").is_err());
    }
}
