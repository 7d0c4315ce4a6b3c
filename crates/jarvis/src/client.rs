//! A small client of a running Jarvis's API, for the CLI subcommands (`jarvis tasks …`).
//!
//! It finds the server (`--url`, `JARVIS_URL`, else the configured port: [`configured_url`]),
//! refuses to start without a token, adds the bearer token, unwraps the response envelope,
//! reads its `data` into the same typed view the handler serialized (`crate::api::types`), and
//! turns an error envelope into an error that says what the server said, with the request's
//! correlation ID to look for in the server's log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::setting::Reader;
use crate::config::ConfigError;

/// The port of a Jarvis nothing configures.
pub const DEFAULT_PORT: u16 = 4000;

/// What a command without a token prints, before it sends anything: every operator subcommand
/// says the same thing.
pub const NO_TOKEN: &str = "no token: set JARVIS_AUTH_TOKEN or pass --token (a development \
     Jarvis keeps the one it generated in <data dir>/dev-token, by default data/dev-token)";

/// Where the server is and how to authenticate: the `--url` and `--token` of every operator
/// subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// The Jarvis to talk to [default: $JARVIS_URL, else http://127.0.0.1:PORT with the port
    /// of JARVIS_PORT/PORT or `[server] port` of the config file, else 4000]
    #[arg(long, global = true, env = "JARVIS_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The bearer token (default: $JARVIS_AUTH_TOKEN).
    #[arg(long, global = true, env = "JARVIS_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    /// The same connection with its URL settled: the given `--url`/`JARVIS_URL`, else the
    /// configured one ([`configured_url`]). Reads the config file when `config` names one
    /// (`--config`), whether or not the URL needs it, so that a wrong path is an error.
    pub fn resolve(
        mut self,
        config: Option<&Path>,
        vars: &HashMap<String, String>,
    ) -> Result<Connection, ConfigError> {
        // An empty `JARVIS_URL=` says nothing, as an empty variable does for `serve`.
        self.url = self.url.filter(|u| !u.trim().is_empty());
        let configured = match (&self.url, config) {
            (Some(_), None) => None,
            _ => Some(configured_url(vars, config)?),
        };
        if self.url.is_none() {
            self.url = configured;
        }
        Ok(self)
    }

    /// The base URL (`http://127.0.0.1:4000` when nothing was resolved).
    pub fn base(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{DEFAULT_PORT}"))
    }

    /// A client for this connection with a 30 s timeout; refuses to go on without a token.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        self.client_with_timeout(Duration::from_secs(30))
    }

    /// A client for this connection; refuses to go on without a token ([`NO_TOKEN`]).
    pub fn client_with_timeout(&self, timeout: Duration) -> anyhow::Result<ApiClient> {
        let token = self
            .token
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!(NO_TOKEN))?;
        ApiClient::new(&self.base(), token, timeout)
    }
}

/// The URL of the Jarvis this machine's configuration describes: `http://HOST:PORT`, the port
/// read like `jarvis serve` reads it (`JARVIS_PORT`, `PORT`, then `[server] port` of the config
/// file: `config`, else `JARVIS_CONFIG`, else `./jarvis.toml` when it exists; 4000), the host
/// `JARVIS_BIND` when it names one address, else 127.0.0.1. A config file that cannot be read
/// or is wrong is an error, as it is for `serve`.
pub fn configured_url(
    vars: &HashMap<String, String>,
    config: Option<&Path>,
) -> Result<String, ConfigError> {
    use crate::config::server::{BIND, CONFIG_FILE, PORT};
    let mut r = Reader::new(vars);
    let path = match config {
        Some(p) => Some(p.to_path_buf()),
        None => r.opt::<PathBuf>(&CONFIG_FILE)?,
    }
    .or_else(|| {
        let p = PathBuf::from("jarvis.toml");
        p.is_file().then_some(p)
    });
    let file = match &path {
        Some(p) => Some(crate::config::load_file(p)?),
        None => None,
    };
    let mut r = match (&path, &file) {
        (Some(p), Some(f)) => r.with_file(p, f)?,
        _ => r,
    };
    let port: u16 = r.get(&PORT)?;
    if port == 0 {
        return Err(ConfigError::Missing {
            var: "JARVIS_URL".into(),
            why: "the configured port is 0 (the server chooses one), which a client cannot \
                  know: pass --url or set JARVIS_URL"
                .into(),
        });
    }
    let bind: IpAddr = r
        .get::<String>(&BIND)?
        .parse()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let host = match bind {
        b if b.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Ok(format!("http://{host}:{port}"))
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

    /// `PUT path` with a JSON body; returns the envelope's `data` as a `T`.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        read(
            path,
            self.send(self.http.put(self.url(path)).json(body)).await?,
        )
    }

    /// `DELETE path`; returns the envelope's `data` as a `T` (a 204 has none: `()`).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        read(path, self.send(self.http.delete(self.url(path))).await?)
    }

    /// `GET path` of a route that answers without the envelope (`/v1/*`): the body as text;
    /// an error answer's message (OpenAI's shape) is the error.
    pub async fn get_raw(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach Jarvis at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        if status.is_success() {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or(text.as_str());
        let code = body["error"]["code"].as_str().unwrap_or("error");
        anyhow::bail!("{status} {code}: {message}")
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
        let header_id = response
            .headers()
            .get(crate::correlation::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.context("reading the answer")?;
        let with_id = |what: String, id: Option<&str>| match id {
            Some(id) => format!("{what} (correlation ID {id})"),
            None => what,
        };
        if text.is_empty() {
            if status.is_success() {
                return Ok(Value::Null);
            }
            anyhow::bail!(with_id(
                format!("Jarvis answered {status}"),
                header_id.as_deref()
            ));
        }
        let body: Value = serde_json::from_str(&text).with_context(|| {
            with_id(
                format!("Jarvis answered {status} with a body that is not JSON"),
                header_id.as_deref(),
            )
        })?;
        if body["success"] == true {
            return Ok(body["data"].clone());
        }
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("(no message)");
        let id = body["error"]["correlationId"]
            .as_str()
            .or(header_id.as_deref());
        anyhow::bail!(with_id(format!("{status} {code}: {message}"), id))
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
