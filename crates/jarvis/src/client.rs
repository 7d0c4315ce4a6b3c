//! A small client of a running Jarvis's API, for the CLI subcommands (`jarvis tasks …`).
//!
//! It adds the bearer token, unwraps the response envelope, reads its `data` into the same
//! typed view the handler serialized (`crate::api::types`), and turns an error envelope into an
//! error that says what the server said.

use std::time::Duration;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Default URL of a local Jarvis.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4000";

/// Where the server is and how to authenticate: the `--url` and `--token` of every operator
/// subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The Jarvis to talk to.
    #[arg(long, global = true, default_value = DEFAULT_URL)]
    pub url: String,
    /// The bearer token (default: $JARVIS_AUTH_TOKEN).
    #[arg(long, global = true, env = "JARVIS_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    /// A client for this connection; refuses to go on without a token.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let token = self.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            anyhow::anyhow!("no token: set JARVIS_AUTH_TOKEN or pass --token (in development see data/dev-token)")
        })?;
        ApiClient::new(&self.url, token, Duration::from_secs(30))
    }
}

/// A client of one Jarvis.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the Jarvis at `base` (e.g. `http://127.0.0.1:4000`) with `token`.
    pub fn new(base: &str, token: &str, timeout: Duration) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// `GET path` (with its query); returns the envelope's `data` as a `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        read(path, self.send(self.http.get(self.url(path))).await?)
    }

    /// `POST path` with a JSON body; returns the envelope's `data` as a `T`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        read(
            path,
            self.send(self.http.post(self.url(path)).json(body)).await?,
        )
    }

    /// `DELETE path`; returns the envelope's `data` as a `T` (a 204 has none: `()`).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        read(path, self.send(self.http.delete(self.url(path))).await?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach Jarvis at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        if text.is_empty() {
            if status.is_success() {
                return Ok(Value::Null);
            }
            anyhow::bail!("Jarvis answered {status}");
        }
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("Jarvis answered {status} with a body that is not JSON"))?;
        if body["success"] == true {
            return Ok(body["data"].clone());
        }
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("(no message)");
        anyhow::bail!("{status} {code}: {message}")
    }
}

/// The `data` of an answer as the view the route serializes; an answer that does not fit says
/// which route and which view.
fn read<T: DeserializeOwned>(path: &str, data: Value) -> anyhow::Result<T> {
    serde_json::from_value(data).with_context(|| {
        format!(
            "the answer of {path} does not fit {}",
            std::any::type_name::<T>()
        )
    })
}

/// A view as pretty JSON, the `--json` output of the CLI subcommands: written through a
/// `serde_json::Value` so that, as when the CLI printed the answer it received, object keys
/// come in alphabetical order.
pub fn json_text<T: Serialize>(view: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::to_value(view)?)?)
}

/// A table for the terminal: left-aligned columns two spaces apart, trailing blanks trimmed;
/// the first row is the header, and `empty` follows it when there is no other row.
pub fn columns<const N: usize>(rows: &[[String; N]], empty: &str) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str(empty);
        out.push('\n');
    }
    out
}
