//! Secrets from AWS Secrets Manager, read at start when `JARVIS_SECRETS_PREFIX` is set; the API
//! tokens of `<prefix>/app` are read again at each token reload ([`AppSecret`]).
//!
//! With `JARVIS_SECRETS_PREFIX=jarvis/production`, Jarvis reads the secrets
//! `jarvis/production/{database,redis,ai-keys,app}` (JSON objects whose keys are environment
//! variable names, as `scripts/create-aws-secrets.sh` writes them) and uses their values for
//! every variable the environment does not set itself: **the environment wins**.
//!
//! The client is hand-written (one `GetSecretValue` call, signed with AWS Signature Version 4 on
//! top of `reqwest`, `hmac` and `sha2`) instead of the AWS SDK for Rust, whose dependency tree
//! (smithy runtime, its own HTTP and TLS stacks) would more than double this crate's build on our
//! 2-core machines for one API call. Signing is tested against AWS's published example.
//! Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else
//! from the ECS container credentials endpoint; the endpoint from `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! `AWS_ENDPOINT_URL`, else `https://secretsmanager.<region>.amazonaws.com`.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The secrets read under a prefix, by suffix.
pub const SECRET_NAMES: &[&str] = &["database", "redis", "ai-keys", "app"];

/// AWS credentials. `Debug` never shows the secret parts.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.access_key)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The headers of a SigV4-signed POST of `body` to `host` (`amz_date` is `YYYYMMDDTHHMMSSZ`).
/// Returns `(authorization, x-amz-content-sha256)`.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    host: &str,
    path: &str,
    amz_date: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let date = &amz_date[..8];
    let payload_hash = hex(&Sha256::digest(body));
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    all.push(("host".into(), host.to_string()));
    all.push(("x-amz-date".into(), amz_date.to_string()));
    if let Some(t) = &creds.session_token {
        all.push(("x-amz-security-token".into(), t.clone()));
    }
    all.sort();
    let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = all
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request =
        format!("POST\n{path}\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key
    )
}

/// Why secrets could not be loaded. Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A setting needed to reach Secrets Manager is missing.
    #[error("JARVIS_SECRETS_PREFIX is set but {0}")]
    Setup(String),
    /// Secrets Manager answered with an error.
    #[error("Secrets Manager: {secret}: {message}")]
    Api {
        /// The secret's name.
        secret: String,
        /// What AWS said (its error type and message).
        message: String,
    },
    /// A secret is not a JSON object of strings.
    #[error("secret {0} is not a JSON object of string values")]
    Shape(String),
}

async fn credentials(
    vars: &HashMap<String, String>,
    client: &reqwest::Client,
) -> Result<Credentials, SecretsError> {
    if let (Some(a), Some(s)) = (
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            access_key: a.clone(),
            secret_key: s.clone(),
            session_token: vars.get("AWS_SESSION_TOKEN").cloned(),
        });
    }
    // ECS tasks get temporary credentials from the container credentials endpoint.
    let url = match (
        vars.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        vars.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(rel), _) => format!("http://169.254.170.2{rel}"),
        (None, Some(full)) => full.clone(),
        (None, None) => {
            return Err(SecretsError::Setup(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run \
                 with an ECS task role"
                    .into(),
            ))
        }
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Container {
        access_key_id: String,
        secret_access_key: String,
        token: Option<String>,
    }
    let mut req = client.get(&url);
    if let Some(auth) = vars.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
        req = req.header("authorization", auth);
    }
    let c: Container = req
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            SecretsError::Setup(format!("the container credentials endpoint failed: {e}"))
        })?
        .json()
        .await
        .map_err(|e| SecretsError::Setup(format!("bad container credentials: {e}")))?;
    Ok(Credentials {
        access_key: c.access_key_id,
        secret_key: c.secret_access_key,
        session_token: c.token,
    })
}

/// A Secrets Manager endpoint, region and credentials, for `GetSecretValue` calls.
struct SecretsClient {
    region: String,
    url: url::Url,
    host: String,
    path: String,
    http: reqwest::Client,
    creds: Credentials,
}

impl SecretsClient {
    /// The client `vars` (`AWS_REGION`, the endpoint, the credentials) describe.
    async fn new(vars: &HashMap<String, String>) -> Result<SecretsClient, SecretsError> {
        let region = vars
            .get("AWS_REGION")
            .or_else(|| vars.get("AWS_DEFAULT_REGION"))
            .cloned()
            .ok_or_else(|| SecretsError::Setup("AWS_REGION is not set".into()))?;
        let endpoint = vars
            .get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
            .or_else(|| vars.get("AWS_ENDPOINT_URL"))
            .cloned()
            .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        let url = url::Url::parse(&endpoint).map_err(|e| {
            SecretsError::Setup(format!("the endpoint {endpoint:?} is not a URL: {e}"))
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(SecretsError::Setup(format!(
                    "the endpoint {endpoint:?} has no host"
                )))
            }
        };
        let path = if url.path().is_empty() {
            "/"
        } else {
            url.path()
        }
        .to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SecretsError::Setup(e.to_string()))?;
        let creds = credentials(vars, &http).await?;
        Ok(SecretsClient {
            region,
            url,
            host,
            path,
            http,
            creds,
        })
    }

    /// The secret `name`'s variables (a JSON object of strings; numbers are taken as their
    /// text, nulls and empty strings left out); `None` when it does not exist.
    async fn get(&self, name: &str) -> Result<Option<HashMap<String, String>>, SecretsError> {
        let body = serde_json::to_vec(&serde_json::json!({ "SecretId": name }))
            .expect("serialising a map of strings");
        // The machine's clock, not the process's (`clock`): AWS checks the signature's time
        // against real time, and the machine's clock is what an operator sets right.
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let auth = sign(
            &self.creds,
            &self.region,
            "secretsmanager",
            &self.host,
            &self.path,
            &amz_date,
            &headers,
            &body,
        );
        let mut req = self
            .http
            .post(self.url.clone())
            .header("content-type", headers[0].1)
            .header("x-amz-target", headers[1].1)
            .header("x-amz-date", &amz_date)
            .header("authorization", auth)
            .body(body);
        if let Some(t) = &self.creds.session_token {
            req = req.header("x-amz-security-token", t);
        }
        let response = req.send().await.map_err(|e| SecretsError::Api {
            secret: name.to_string(),
            message: e.to_string(),
        })?;
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let kind = value["__type"]
                .as_str()
                .unwrap_or("")
                .rsplit('#')
                .next()
                .unwrap_or("");
            if kind == "ResourceNotFoundException" {
                return Ok(None);
            }
            let message = value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or("");
            return Err(SecretsError::Api {
                secret: name.to_string(),
                message: format!("HTTP {status} {kind} {message}").trim().to_string(),
            });
        }
        let text = value["SecretString"]
            .as_str()
            .ok_or_else(|| SecretsError::Shape(name.to_string()))?;
        let object: HashMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| SecretsError::Shape(name.to_string()))?;
        let mut vars = HashMap::new();
        for (key, v) in object {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => continue,
                _ => return Err(SecretsError::Shape(name.to_string())),
            };
            if !v.is_empty() {
                vars.insert(key, v);
            }
        }
        Ok(Some(vars))
    }
}

/// The name of the secret `suffix` under `prefix`.
fn secret_name(prefix: &str, suffix: &str) -> String {
    format!("{}/{suffix}", prefix.trim_end_matches('/'))
}

/// Whether the environment `vars` sets `key` itself (then it wins over any secret).
fn set_by_env(vars: &HashMap<String, String>, key: &str) -> bool {
    vars.get(key).is_some_and(|e| !e.trim().is_empty())
}

/// Reads every secret under `prefix` and returns the variables they hold that `vars` does not
/// already set. A secret that does not exist is skipped (with a note on stderr); any other
/// failure stops start-up.
pub async fn load(
    prefix: &str,
    vars: &HashMap<String, String>,
) -> Result<HashMap<String, String>, SecretsError> {
    let client = SecretsClient::new(vars).await?;
    let mut found = HashMap::new();
    for suffix in SECRET_NAMES {
        let secret = secret_name(prefix, suffix);
        let Some(object) = client.get(&secret).await? else {
            crate::say!("jarvis: secret {secret} does not exist; skipped");
            continue;
        };
        for (key, v) in object {
            if !set_by_env(vars, &key) {
                found.insert(key, v);
            }
        }
    }
    Ok(found)
}

/// The variables of the secret `<prefix>/app` that are read again at each token reload, so
/// that tokens kept in Secrets Manager are rotated without a restart (`auth::Keyring`).
pub const RELOADED: &[&str] = &["JARVIS_AUTH_TOKEN", "JARVIS_AUTH_TOKENS"];

/// Where the API tokens kept in Secrets Manager are read again: the secret `<prefix>/app`, the
/// AWS settings to reach it, and which of [`RELOADED`] the environment leaves to it.
/// `Debug` shows neither credentials nor values.
#[derive(Clone)]
pub struct AppSecret {
    prefix: String,
    /// The `AWS_*` variables of the environment (region, endpoint, credentials).
    aws: HashMap<String, String>,
    /// The variables of [`RELOADED`] the environment does not set.
    keys: Vec<&'static str>,
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppSecret({}/app, {:?})", self.prefix, self.keys)
    }
}

impl AppSecret {
    /// The source for `prefix` given the environment `vars` (before secrets were merged into
    /// it); `None` when the environment sets every token variable itself.
    pub fn new(prefix: &str, vars: &HashMap<String, String>) -> Option<AppSecret> {
        let keys: Vec<&'static str> = RELOADED
            .iter()
            .copied()
            .filter(|k| !set_by_env(vars, k))
            .collect();
        (!keys.is_empty()).then(|| AppSecret {
            prefix: prefix.to_string(),
            aws: vars
                .iter()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            keys,
        })
    }

    /// The variables of [`RELOADED`] this source provides.
    pub fn keys(&self) -> &[&'static str] {
        &self.keys
    }

    /// Reads the secret again: the values of [`keys`](Self::keys) it holds now (none when the
    /// secret does not exist).
    pub async fn read(&self) -> Result<HashMap<String, String>, SecretsError> {
        let client = SecretsClient::new(&self.aws).await?;
        let object = client
            .get(&secret_name(&self.prefix, "app"))
            .await?
            .unwrap_or_default();
        Ok(object
            .into_iter()
            .filter(|(k, _)| self.keys.contains(&k.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 test suite, case `post-vanilla`: checks canonicalisation and key
    /// derivation.
    #[test]
    fn signs_like_the_aws_test_suite() {
        let creds = Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let auth = sign(
            &creds,
            "us-east-1",
            "service",
            "example.amazonaws.com",
            "/",
            "20150830T123600Z",
            &[],
            b"",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let creds = Credentials {
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
            session_token: Some("tok".into()),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("tok"));
    }
}
