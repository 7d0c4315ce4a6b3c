//! Tokens and rate limits: more tokens with roles (`JARVIS_AUTH_TOKENS`, the tokens file, the
//! config file's `[[auth.tokens]]`), how often they are read again, and the request rates
//! allowed per token and per client address (docs/api.md, Authentication and Rate limits).
//! `JARVIS_AUTH_TOKEN` itself is a [`server`](super::server) setting.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::setting::{settings, Default, Kind, Mask, Reader, Setting};
use super::ConfigError;
use crate::auth::Token;

settings! {
    /// `JARVIS_AUTH_TOKENS`.
    TOKENS = Setting {
        var: "JARVIS_AUTH_TOKENS",
        kind: Kind::Text {
            check: token_list,
            accepted: "comma-separated `name:role:token` (role `read`, `operate` or `admin`; \
                       the token part may be `sha256:<64 hex digits>`)",
        },
        default: Default::Unset("none"),
        mask: Mask::Secret,
        view: "auth.tokens",
        help: "more API tokens with their roles (secret); fixed for the life of the process \
               (may come from the AWS secret `<prefix>/app`)",
        ..Setting::PLAIN
    };
    /// `JARVIS_AUTH_TOKENS_FILE`.
    TOKENS_FILE = Setting {
        var: "JARVIS_AUTH_TOKENS_FILE",
        kind: Kind::Path,
        default: Default::Unset("none"),
        view: "auth.tokensFile",
        help: "a TOML file of `[[tokens]]` entries (`name`, `role`, `token` or `sha256`), read \
               at start and again on SIGHUP and every `JARVIS_AUTH_RELOAD_MS`",
        ..Setting::PLAIN
    };
    /// `JARVIS_AUTH_RELOAD_MS`.
    RELOAD_MS = Setting {
        var: "JARVIS_AUTH_RELOAD_MS",
        kind: Kind::Int { min: 0, max: 86_400_000 },
        default: Default::Value("30000"),
        view: "auth.reloadMs",
        help: "how often the tokens file and the config file's `[auth]` table are read again \
               (0: only on SIGHUP)",
        ..Setting::PLAIN
    };
    /// `JARVIS_RATE_LIMIT_TOKEN_RPS`.
    TOKEN_RPS = Setting {
        var: "JARVIS_RATE_LIMIT_TOKEN_RPS",
        kind: Kind::Int { min: 0, max: 1_000_000 },
        default: Default::Value("0"),
        view: "rateLimit.tokenRps",
        help: "requests per second each token may make on this instance (0: no limit); over it, \
               429 `rate_limited` with `Retry-After`",
        ..Setting::PLAIN
    };
    /// `JARVIS_RATE_LIMIT_TOKEN_BURST`.
    TOKEN_BURST = Setting {
        var: "JARVIS_RATE_LIMIT_TOKEN_BURST",
        kind: Kind::Int { min: 1, max: 1_000_000 },
        default: Default::Unset("twice the rate"),
        view: "rateLimit.tokenBurst",
        help: "requests a token may make at once above its rate",
        ..Setting::PLAIN
    };
    /// `JARVIS_RATE_LIMIT_ADDRESS_RPS`.
    ADDRESS_RPS = Setting {
        var: "JARVIS_RATE_LIMIT_ADDRESS_RPS",
        kind: Kind::Int { min: 0, max: 1_000_000 },
        default: Default::Value("50"),
        view: "rateLimit.addressRps",
        help: "requests per second per client address without a valid token (`/health`, \
               public `/metrics`, the dashboard's files and sign-in, refused tokens) on this \
               instance (0: no limit)",
        ..Setting::PLAIN
    };
    /// `JARVIS_RATE_LIMIT_ADDRESS_BURST`.
    ADDRESS_BURST = Setting {
        var: "JARVIS_RATE_LIMIT_ADDRESS_BURST",
        kind: Kind::Int { min: 1, max: 1_000_000 },
        default: Default::Value("200"),
        view: "rateLimit.addressBurst",
        help: "requests a client address may make at once above its rate",
        ..Setting::PLAIN
    };
    /// `JARVIS_TRUST_FORWARDED_FOR`.
    TRUST_FORWARDED_FOR = Setting {
        var: "JARVIS_TRUST_FORWARDED_FOR",
        kind: Kind::Bool,
        default: Default::Value("false"),
        view: "rateLimit.trustForwardedFor",
        help: "`true` behind a load balancer that appends the client's address to \
               `X-Forwarded-For`: the last address there is the client's for the per-address \
               limit (else the TCP peer's)",
        ..Setting::PLAIN
    };
}

/// A rate: requests per second and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second (sustained).
    pub per_second: u32,
    /// Requests at once.
    pub burst: u32,
}

/// The settings of this group.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `JARVIS_AUTH_TOKENS`, checked, hashed: only the hashes are kept.
    pub env_tokens: Vec<Token>,
    /// The tokens file.
    pub tokens_file: Option<PathBuf>,
    /// How often the files are read again (zero: only on SIGHUP).
    pub reload: Duration,
    /// Per token; `None`: no limit.
    pub token_rate: Option<Rate>,
    /// Per client address, for requests without a valid token; `None`: no limit.
    pub address_rate: Option<Rate>,
    /// Whether the last `X-Forwarded-For` address is the client's.
    pub trust_forwarded_for: bool,
    /// Where the tokens that came from Secrets Manager are read again (set by `main` when
    /// `JARVIS_SECRETS_PREFIX` is; no variable of its own).
    pub app_secret: Option<crate::secrets::AppSecret>,
}

impl AuthSettings {
    /// Reads the group. The tokens file is read (and refused when wrong) at start by `app`.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<AuthSettings, ConfigError> {
        let env_tokens = match r.opt::<SecretString>(&TOKENS)? {
            Some(raw) => {
                crate::auth::parse_env_list(raw.expose_secret()).expect("checked by token_list")
            }
            None => Vec::new(),
        };
        let token_rps: u32 = r.get(&TOKEN_RPS)?;
        let token_burst: Option<u32> = r.opt(&TOKEN_BURST)?;
        let address_rps: u32 = r.get(&ADDRESS_RPS)?;
        let address_burst: u32 = r.get(&ADDRESS_BURST)?;
        Ok(AuthSettings {
            env_tokens,
            tokens_file: r.opt(&TOKENS_FILE)?,
            reload: r.get(&RELOAD_MS)?,
            token_rate: (token_rps > 0).then(|| Rate {
                per_second: token_rps,
                burst: token_burst.unwrap_or(token_rps.saturating_mul(2)),
            }),
            address_rate: (address_rps > 0).then_some(Rate {
                per_second: address_rps,
                burst: address_burst,
            }),
            trust_forwarded_for: r.get(&TRUST_FORWARDED_FOR)?,
            app_secret: None,
        })
    }
}

fn token_list(raw: &str) -> Result<(), String> {
    let tokens = crate::auth::parse_env_list(raw)?;
    crate::auth::TokenSet::new(tokens).map(drop)
}
