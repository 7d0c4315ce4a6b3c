//! `jarvis services [list|show|put|delete]`: the monitored services of a running Jarvis
//! (`/api/v1/services`), registered and inspected from a terminal.

use clap::Subcommand;
use serde_json::Value;

use crate::cli::common::{labelled, print_one, put_body};

use crate::api::types::ServiceSpec;
use crate::client::{json_text, Connection};

/// `jarvis services …`
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Every service, by name (the default).
    List,
    /// One service with every field, labelled.
    Show {
        /// The service's name.
        name: String,
    },
    /// Register a service, or replace the one of that name (PUT /api/v1/services/{name}); the
    /// monitor checks it at once. Fields left out take their defaults:
    /// `jarvis services put api http://127.0.0.1:3001/health --critical`.
    Put {
        /// The service's name (also its circuit breaker's).
        name: String,
        /// What is checked: http(s)://… (a request) or tcp://host:port (a connect); may be
        /// left out when --body gives it.
        #[arg(value_name = "URL")]
        address: Option<String>,
        /// Interval between checks, ms.
        #[arg(long)]
        interval_ms: Option<u64>,
        /// Timeout of one check, ms.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// The overall status fails when this service is down.
        #[arg(long)]
        critical: bool,
        /// A status code that means up (repeatable; default: any 2xx).
        #[arg(long = "expected-status", value_name = "CODE")]
        expected_status: Vec<u16>,
        /// HTTP method of the check (default GET).
        #[arg(long)]
        method: Option<String>,
        /// A correct answer slower than this (ms) is `degraded`.
        #[arg(long)]
        degraded_latency_ms: Option<u64>,
        /// The whole body of the PUT as a JSON object (docs/api.md, Services); the options
        /// above are set over it.
        #[arg(long, value_name = "JSON")]
        body: Option<String>,
    },
    /// Remove a service: its checks stop, its uptime and circuit breaker go.
    Delete {
        /// The service's name.
        name: String,
    },
}

/// The table of `jarvis services`: a row per service.
pub fn table(services: &[ServiceSpec]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "URL".into(),
        "INTERVAL".into(),
        "TIMEOUT".into(),
        "CRITICAL".into(),
        "EXPECTED STATUS".into(),
    ]];
    for s in services {
        rows.push([
            s.name.to_string(),
            s.url.clone(),
            format!("{} ms", s.interval_ms),
            format!("{} ms", s.timeout_ms),
            if s.critical { "yes" } else { "no" }.into(),
            statuses(&s.expected_status),
        ]);
    }
    crate::client::columns(&rows, "(no service)")
}

fn statuses(codes: &[u16]) -> String {
    if codes.is_empty() {
        "any 2xx".into()
    } else {
        codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Every field of one service, one labelled line each.
pub fn detail(s: &ServiceSpec) -> String {
    let lines = [
        ("name", s.name.to_string()),
        ("url", s.url.clone()),
        ("method", s.method.clone()),
        ("interval", format!("{} ms", s.interval_ms)),
        ("timeout", format!("{} ms", s.timeout_ms)),
        ("critical", if s.critical { "yes" } else { "no" }.into()),
        ("expected status", statuses(&s.expected_status)),
        (
            "expect body",
            s.expect_body
                .as_ref()
                .and_then(|b| serde_json::to_string(b).ok())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "degraded above",
            s.degraded_latency_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms} ms")),
        ),
        ("created at", crate::api::types::wire_time(&s.created_at)),
        ("updated at", crate::api::types::wire_time(&s.updated_at)),
    ];
    labelled(&lines)
}

/// Runs one `jarvis services` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<ServicesCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let path = |name: &str| format!("/api/v1/services/{name}");
    let one: ServiceSpec = match command.unwrap_or(ServicesCommand::List) {
        ServicesCommand::List => {
            let all: Vec<ServiceSpec> = client.get("/api/v1/services").await?;
            if json {
                crate::cli::common::outln(&json_text(&all)?);
            } else {
                crate::cli::common::out(&table(&all));
            }
            return Ok(());
        }
        ServicesCommand::Show { name } => client.get(&path(&name)).await?,
        ServicesCommand::Put {
            name,
            address,
            interval_ms,
            timeout_ms,
            critical,
            expected_status,
            method,
            degraded_latency_ms,
            body,
        } => {
            let fields = put_body(
                body.as_deref(),
                [
                    ("url", address.map(Value::from)),
                    ("intervalMs", interval_ms.map(Value::from)),
                    ("timeoutMs", timeout_ms.map(Value::from)),
                    ("critical", critical.then_some(Value::Bool(true))),
                    (
                        "expectedStatus",
                        (!expected_status.is_empty()).then(|| Value::from(expected_status)),
                    ),
                    ("method", method.map(Value::from)),
                    ("degradedLatencyMs", degraded_latency_ms.map(Value::from)),
                ],
            )?;
            client.put(&path(&name), &fields).await?
        }
        ServicesCommand::Delete { name } => {
            client.delete::<()>(&path(&name)).await?;
            crate::cli::common::outln(&format!("service {name} deleted"));
            return Ok(());
        }
    };
    print_one(json, &one, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ServiceSpec> {
        serde_json::from_value(serde_json::json!([
            {"name": "api", "url": "http://127.0.0.1:3001/health", "method": "GET",
             "intervalMs": 5000, "timeoutMs": 3000, "critical": true, "expectedStatus": [200, 204],
             "expectBody": {"pointer": "/status", "equals": "ok"}, "degradedLatencyMs": 1000,
             "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:01.5Z"},
            {"name": "redis", "url": "tcp://127.0.0.1:6379", "method": "GET",
             "intervalMs": 5000, "timeoutMs": 3000, "critical": false, "expectedStatus": [],
             "expectBody": null, "degradedLatencyMs": null,
             "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}
        ]))
        .unwrap()
    }

    #[test]
    fn the_table_and_the_detail_show_every_service_field() {
        let all = sample();
        assert_eq!(
            table(&all),
            concat!(
                "NAME   URL                           INTERVAL  TIMEOUT  CRITICAL  EXPECTED STATUS\n",
                "api    http://127.0.0.1:3001/health  5000 ms   3000 ms  yes       200,204\n",
                "redis  tcp://127.0.0.1:6379          5000 ms   3000 ms  no        any 2xx\n",
            )
        );
        assert!(table(&[]).contains("(no service)"));
        assert_eq!(
            detail(&all[0]),
            concat!(
                "name:            api\n",
                "url:             http://127.0.0.1:3001/health\n",
                "method:          GET\n",
                "interval:        5000 ms\n",
                "timeout:         3000 ms\n",
                "critical:        yes\n",
                "expected status: 200,204\n",
                "expect body:     {\"pointer\":\"/status\",\"equals\":\"ok\"}\n",
                "degraded above:  1000 ms\n",
                "created at:      2026-01-01T00:00:00Z\n",
                "updated at:      2026-01-01T00:00:01.500Z\n",
            )
        );
        assert!(crate::cli::common::put_body(Some("[1]"), []).is_err());
        assert!(crate::cli::common::put_body(Some("{"), []).is_err());
    }
}
