//! Outside services Jarvis may use: Redis and the model providers.

use secrecy::SecretString;

use super::setting::{settings, Default, Kind, Mask, Reader, Setting};
use super::ConfigError;

settings! {
    /// `JARVIS_OUTBOUND_ALLOW`.
    OUTBOUND_ALLOW = Setting {
        var: "JARVIS_OUTBOUND_ALLOW",
        kind: Kind::Text { check: allow_list, accepted: "addresses, CIDR ranges or host names, comma-separated" },
        view: "outbound.allow",
        help: "link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, \
               fd00:ec2::254, 100.100.100.200, `metadata.google.internal`) that agent, service, \
               webhook and model URLs may name after all (refused by default)",
        ..Setting::PLAIN
    };
    /// `REDIS_HOST`.
    REDIS_HOST = Setting {
        var: "REDIS_HOST",
        kind: Kind::Any("a host name or address"),
        view: "redis.host",
        help: "optional Redis: with it, the AI gateway's response cache is kept there, shared by \
               every instance (else in each instance's memory)",
        ..Setting::PLAIN
    };
    /// `REDIS_PORT`.
    REDIS_PORT = Setting {
        var: "REDIS_PORT",
        kind: Kind::Int { min: 1, max: 65_535 },
        default: Default::Value("6379"),
        view: "redis.port",
        help: "Redis port (only with `REDIS_HOST`)",
        ..Setting::PLAIN
    };
    /// `REDIS_PASSWORD`.
    REDIS_PASSWORD = Setting {
        var: "REDIS_PASSWORD",
        mask: Mask::Secret,
        view: "redis.password",
        help: "Redis password (secret; only with `REDIS_HOST`)",
        ..Setting::PLAIN
    };
    /// `OPENAI_API_KEY`.
    OPENAI_API_KEY = Setting {
        var: "OPENAI_API_KEY",
        mask: Mask::Secret,
        view: "providers.openai",
        help: "OpenAI key (secret): turns on `openai/<model>` and bare model names on `/v1/*` \
               (the AI gateway)",
        ..Setting::PLAIN
    };
    /// `OPENAI_BASE_URL`.
    OPENAI_BASE_URL = Setting {
        var: "OPENAI_BASE_URL",
        kind: Kind::Text { check: http_url, accepted: "an http(s) URL" },
        default: Default::Value("https://api.openai.com/v1"),
        view: "providers.openaiBaseUrl",
        help: "OpenAI endpoint (as OpenAI's SDKs read it); also how a local OpenAI-compatible \
               server is used",
        ..Setting::PLAIN
    };
    /// `ANTHROPIC_API_KEY`.
    ANTHROPIC_API_KEY = Setting {
        var: "ANTHROPIC_API_KEY",
        mask: Mask::Secret,
        view: "providers.anthropic",
        help: "Anthropic key (secret): turns on `anthropic/<model>` on `/v1/*` (translated to \
               Anthropic's Messages API)",
        ..Setting::PLAIN
    };
    /// `ANTHROPIC_BASE_URL`.
    ANTHROPIC_BASE_URL = Setting {
        var: "ANTHROPIC_BASE_URL",
        kind: Kind::Text { check: http_url, accepted: "an http(s) URL" },
        default: Default::Value("https://api.anthropic.com"),
        view: "providers.anthropicBaseUrl",
        help: "Anthropic endpoint, without `/v1` (as Anthropic's SDKs read it): calls go to \
               `<it>/v1/messages`",
        ..Setting::PLAIN
    };
    /// `GEMINI_API_KEY`.
    GEMINI_API_KEY = Setting {
        var: "GEMINI_API_KEY",
        mask: Mask::Secret,
        view: "providers.gemini",
        help: "Gemini key (secret): turns on `gemini/<model>` on `/v1/*` (translated to \
               Gemini's `generateContent`; sent in `x-goog-api-key`, never in a URL)",
        ..Setting::PLAIN
    };
    /// `GEMINI_BASE_URL`.
    GEMINI_BASE_URL = Setting {
        var: "GEMINI_BASE_URL",
        kind: Kind::Text { check: http_url, accepted: "an http(s) URL" },
        default: Default::Value("https://generativelanguage.googleapis.com"),
        view: "providers.geminiBaseUrl",
        help: "Gemini endpoint, without a version (as Google's SDKs read it): calls go to \
               `<it>/v1beta/models/<model>:generateContent`",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CONNECT_TIMEOUT_MS`.
    AI_CONNECT_TIMEOUT_MS = Setting {
        var: "JARVIS_AI_CONNECT_TIMEOUT_MS",
        kind: Kind::Int { min: 100, max: 600_000 },
        default: Default::Value("10000"),
        view: "ai.connectTimeout",
        help: "AI gateway (`/v1/*`): longest wait for a connection to a model provider",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_TIMEOUT_MS`.
    AI_TIMEOUT_MS = Setting {
        var: "JARVIS_AI_TIMEOUT_MS",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        default: Default::Value("600000"),
        view: "ai.timeout",
        help: "AI gateway: longest a whole non-streamed provider call may take (answer read \
               included)",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_FIRST_BYTE_TIMEOUT_MS`.
    AI_FIRST_BYTE_TIMEOUT_MS = Setting {
        var: "JARVIS_AI_FIRST_BYTE_TIMEOUT_MS",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        default: Default::Value("60000"),
        view: "ai.firstByteTimeout",
        help: "AI gateway: longest a streamed call may wait for the first byte of the answer's \
               body; once it arrived the stream has no total limit",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CACHE`.
    AI_CACHE = Setting {
        var: "JARVIS_AI_CACHE",
        kind: Kind::Bool,
        default: Default::Value("true"),
        view: "ai.cache.enabled",
        help: "AI gateway response cache: answers requests that ask for it (`temperature` 0, \
               `x-jarvis-cache: true`) from earlier identical ones; `false` turns it off",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CACHE_TTL_MS`.
    AI_CACHE_TTL_MS = Setting {
        var: "JARVIS_AI_CACHE_TTL_MS",
        kind: Kind::Int { min: 1, max: 2_592_000_000 },
        default: Default::Value("3600000"),
        view: "ai.cache.ttl",
        help: "AI response cache: how long a stored answer is served (in memory and in Redis)",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CACHE_MAX_ENTRIES`.
    AI_CACHE_MAX_ENTRIES = Setting {
        var: "JARVIS_AI_CACHE_MAX_ENTRIES",
        kind: Kind::Int { min: 1, max: 10_000_000 },
        default: Default::Value("10000"),
        view: "ai.cache.maxEntries",
        help: "AI response cache in memory: most answers kept (the least recently used go first)",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CACHE_MAX_BYTES`.
    AI_CACHE_MAX_BYTES = Setting {
        var: "JARVIS_AI_CACHE_MAX_BYTES",
        kind: Kind::Int { min: 1_024, max: 68_719_476_736 },
        default: Default::Value("67108864"),
        view: "ai.cache.maxBytes",
        help: "AI response cache in memory: most bytes of answers kept (least recently used go \
               first); also the largest single answer stored, in memory or Redis",
        ..Setting::PLAIN
    };
    /// `JARVIS_AI_CACHE_REDIS_TIMEOUT_MS`.
    AI_CACHE_REDIS_TIMEOUT_MS = Setting {
        var: "JARVIS_AI_CACHE_REDIS_TIMEOUT_MS",
        kind: Kind::Int { min: 1, max: 10_000 },
        default: Default::Value("50"),
        view: "ai.cache.redisTimeout",
        help: "AI response cache in Redis: longest wait for Redis (connecting included); a \
               slower or failing Redis is a miss, and the provider is called",
        ..Setting::PLAIN
    };
}

/// The AI gateway's response cache (`crate::ai::cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiCacheSettings {
    /// `JARVIS_AI_CACHE`.
    pub enabled: bool,
    /// `JARVIS_AI_CACHE_TTL_MS`.
    pub ttl: std::time::Duration,
    /// `JARVIS_AI_CACHE_MAX_ENTRIES`.
    pub max_entries: usize,
    /// `JARVIS_AI_CACHE_MAX_BYTES`.
    pub max_bytes: u64,
    /// `JARVIS_AI_CACHE_REDIS_TIMEOUT_MS`.
    pub redis_timeout: std::time::Duration,
}

/// Optional Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Password, if any.
    pub password: Option<SecretString>,
}

/// The model providers: API keys and endpoints.
#[derive(Debug, Clone)]
pub struct ProviderKeys {
    /// `OPENAI_API_KEY`.
    pub openai: Option<SecretString>,
    /// `OPENAI_BASE_URL`.
    pub openai_base_url: String,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic: Option<SecretString>,
    /// `ANTHROPIC_BASE_URL`.
    pub anthropic_base_url: String,
    /// `GEMINI_API_KEY`.
    pub gemini: Option<SecretString>,
    /// `GEMINI_BASE_URL`.
    pub gemini_base_url: String,
    /// The keys model groups name with `keyEnv`, by variable (only those set).
    pub named: std::collections::BTreeMap<String, SecretString>,
}

/// Timeouts of the AI gateway's calls to model providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiTimeouts {
    /// `JARVIS_AI_CONNECT_TIMEOUT_MS`: connecting to the provider.
    pub connect: std::time::Duration,
    /// `JARVIS_AI_TIMEOUT_MS`: a whole non-streamed call.
    pub total: std::time::Duration,
    /// `JARVIS_AI_FIRST_BYTE_TIMEOUT_MS`: a streamed call, until its first body byte.
    pub first_byte: std::time::Duration,
}

/// Redis and the model providers.
#[derive(Debug, Clone)]
pub struct Integrations {
    /// Redis, when configured.
    pub redis: Option<RedisConfig>,
    /// Model provider keys.
    pub providers: ProviderKeys,
    /// Timeouts of the calls to the providers.
    pub ai_timeouts: AiTimeouts,
    /// The response cache.
    pub ai_cache: AiCacheSettings,
}

impl Integrations {
    /// Reads the group; a Redis port or password without a host is refused.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Integrations, ConfigError> {
        let redis = match r.opt::<String>(&REDIS_HOST)? {
            None => {
                if r.is_set(&REDIS_PORT) || r.is_set(&REDIS_PASSWORD) {
                    return Err(ConfigError::Missing {
                        var: REDIS_HOST.var.into(),
                        why: "REDIS_PORT or REDIS_PASSWORD is set without a host".into(),
                    });
                }
                None
            }
            Some(host) => Some(RedisConfig {
                host,
                port: r.get(&REDIS_PORT)?,
                password: r.opt(&REDIS_PASSWORD)?,
            }),
        };
        Ok(Integrations {
            redis,
            providers: ProviderKeys {
                openai: r.opt(&OPENAI_API_KEY)?,
                openai_base_url: r.get(&OPENAI_BASE_URL)?,
                anthropic: r.opt(&ANTHROPIC_API_KEY)?,
                anthropic_base_url: r.get(&ANTHROPIC_BASE_URL)?,
                gemini: r.opt(&GEMINI_API_KEY)?,
                gemini_base_url: r.get(&GEMINI_BASE_URL)?,
                named: std::collections::BTreeMap::new(),
            },
            ai_timeouts: AiTimeouts {
                connect: r.get(&AI_CONNECT_TIMEOUT_MS)?,
                total: r.get(&AI_TIMEOUT_MS)?,
                first_byte: r.get(&AI_FIRST_BYTE_TIMEOUT_MS)?,
            },
            ai_cache: AiCacheSettings {
                enabled: r.get(&AI_CACHE)?,
                ttl: r.get(&AI_CACHE_TTL_MS)?,
                max_entries: r.get(&AI_CACHE_MAX_ENTRIES)?,
                max_bytes: r.get(&AI_CACHE_MAX_BYTES)?,
                redis_timeout: r.get(&AI_CACHE_REDIS_TIMEOUT_MS)?,
            },
        })
    }
}

fn allow_list(raw: &str) -> Result<(), String> {
    crate::model::outbound::Allowed::parse(raw).map(|_| ())
}

fn http_url(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err("an http:// or https:// URL with a host".into()),
    }
}
