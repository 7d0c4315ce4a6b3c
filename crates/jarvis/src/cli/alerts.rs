//! `jarvis alerts [list|silence|silences|unsilence]`: the alert history and silences of a
//! running Jarvis, read into the API's own views (`api::types::{AlertsView, SilencesView}`).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::api::types::{AlertsView, SilenceView, SilencesView};
use crate::client::{json_text, Connection};

/// `jarvis alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alert episodes, newest first (the default).
    List {
        /// Only `firing` or only `resolved` ones.
        #[arg(long, value_parser = ["firing", "resolved"])]
        state: Option<String>,
        /// Only episodes going on at or after this time (RFC 3339, or a date: that UTC day).
        #[arg(long, value_parser = crate::cli::common::when)]
        since: Option<String>,
    },
    /// Hold back the notifications of the alerts matching every label given.
    Silence {
        /// The rule (`circuit-open`, `predicted-trip`, `failure-rate`, `slo-burn-page`,
        /// `slo-burn-ticket`).
        #[arg(long)]
        rule: Option<String>,
        /// The `service` label.
        #[arg(long)]
        service: Option<String>,
        /// The `breaker` label.
        #[arg(long)]
        breaker: Option<String>,
        /// The `domain` label.
        #[arg(long)]
        domain: Option<String>,
        /// The `action` label.
        #[arg(long)]
        action: Option<String>,
        /// How long: `90s`, `30m`, `2h`, `1d` (or milliseconds).
        #[arg(long, value_parser = duration_ms, default_value = "1h")]
        duration: u64,
        /// Why (shown with the silence).
        #[arg(long)]
        comment: Option<String>,
    },
    /// The silences that have not ended.
    Silences,
    /// Remove a silence.
    Unsilence {
        /// Its ID.
        id: String,
    },
}

/// `90s`, `30m`, `2h`, `1d` or a number of milliseconds, as milliseconds.
pub fn duration_ms(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "ms"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30m, 2h or 1d, got {raw:?}"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "expected a duration like 30m, 2h or 1d, got {raw:?}"
            ))
        }
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("expected a positive duration, got {raw:?}"))
}

/// The table of `jarvis alerts`.
pub fn table(view: &AlertsView) -> String {
    let mut rows = vec![[
        "STATE".to_string(),
        "SEVERITY".into(),
        "RULE".into(),
        "LABELS".into(),
        "STARTED".into(),
        "ENDED".into(),
        "SUMMARY".into(),
    ]];
    for a in &view.alerts {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let state = match &a.silenced_by {
            Some(_) => format!("{} (silenced)", a.state.as_str()),
            None => a.state.as_str().to_string(),
        };
        rows.push([
            state,
            a.severity.as_str().to_string(),
            a.rule.clone(),
            labels.join(","),
            a.starts_at.clone(),
            a.ends_at.clone().unwrap_or_else(|| "-".into()),
            a.summary.clone(),
        ]);
    }
    crate::client::columns(&rows, "(no alerts)")
}

/// The table of `jarvis alerts silences`.
pub fn silences_table(view: &SilencesView) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "MATCHERS".into(),
        "ENDS".into(),
        "COMMENT".into(),
    ]];
    for s in &view.silences {
        let m: Vec<String> = s
            .matchers
            .pairs()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push([
            s.id.clone(),
            m.join(","),
            s.ends_at.clone(),
            s.comment.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    crate::client::columns(&rows, "(no silences)")
}

/// Runs one `jarvis alerts` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<AlertsCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    match command.unwrap_or(AlertsCommand::List {
        state: None,
        since: None,
    }) {
        AlertsCommand::List { state, since } => {
            let mut query = Vec::new();
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            if let Some(s) = since {
                query.push(format!("since={}", urlencode(&s)));
            }
            let path = if query.is_empty() {
                "/api/v1/alerts".to_string()
            } else {
                format!("/api/v1/alerts?{}", query.join("&"))
            };
            let view: AlertsView = client.get(&path).await?;
            if json {
                crate::cli::common::outln(&json_text(&view)?);
            } else {
                crate::cli::common::out(&table(&view));
            }
        }
        AlertsCommand::Silence {
            rule,
            service,
            breaker,
            domain,
            action,
            duration,
            comment,
        } => {
            let mut matchers = serde_json::Map::new();
            for (k, v) in [
                ("rule", rule),
                ("service", service),
                ("breaker", breaker),
                ("domain", domain),
                ("action", action),
            ] {
                if let Some(v) = v {
                    matchers.insert(k.into(), Value::String(v));
                }
            }
            let mut body = json!({"matchers": matchers, "durationMs": duration});
            if let Some(c) = comment {
                body["comment"] = Value::String(c);
            }
            let view: SilenceView = client.post("/api/v1/alerts/silences", &body).await?;
            if json {
                crate::cli::common::outln(&json_text(&view)?);
            } else {
                crate::cli::common::outln(&format!("silence {} until {}", view.id, view.ends_at));
            }
        }
        AlertsCommand::Silences => {
            let view: SilencesView = client.get("/api/v1/alerts/silences").await?;
            if json {
                crate::cli::common::outln(&json_text(&view)?);
            } else {
                crate::cli::common::out(&silences_table(&view));
            }
        }
        AlertsCommand::Unsilence { id } => {
            client
                .delete::<()>(&format!("/api/v1/alerts/silences/{}", urlencode(&id)))
                .await?;
            crate::cli::common::outln(&format!("silence {id} removed"));
        }
    }
    Ok(())
}

/// Percent-encodes what is not unreserved (a `+01:00` offset in `--since`).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration_ms("90s"), Ok(90_000));
        assert_eq!(duration_ms("30m"), Ok(1_800_000));
        assert_eq!(duration_ms("2h"), Ok(7_200_000));
        assert_eq!(duration_ms("1d"), Ok(86_400_000));
        assert_eq!(duration_ms("1500"), Ok(1500));
        assert!(duration_ms("0m").is_err());
        assert!(duration_ms("2 weeks").is_err());
        assert_eq!(
            urlencode("2026-12-06T09:00:00+01:00"),
            "2026-12-06T09%3A00%3A00%2B01%3A00"
        );
    }

    #[test]
    fn the_table_has_a_row_per_alert() {
        let view: AlertsView = serde_json::from_value(json!({"alerts": [{
            "id": 1, "fingerprint": "f", "rule": "circuit-open", "severity": "page",
            "state": "firing", "labels": {"breaker": "db"}, "summary": "circuit db is OPEN",
            "startsAt": "2026-12-06T10:00:00.000Z", "endsAt": null,
            "lastSeenAt": "2026-12-06T10:01:00.000Z", "silencedBy": "s1", "openedBy": "a",
            "resolvedBy": null}]}))
        .unwrap();
        let t = table(&view);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("STATE"));
        assert!(lines[1].starts_with("firing (silenced)  page"), "{t}");
        assert!(lines[1].ends_with("circuit db is OPEN"));
        assert!(table(&AlertsView { alerts: vec![] }).contains("no alerts"));
    }
}
