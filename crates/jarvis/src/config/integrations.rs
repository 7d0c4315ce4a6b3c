//! Outside services Jarvis may use: Redis and the model providers.

use secrecy::SecretString;

use super::setting::{settings, Default, Kind, Mask, Reader, Setting};
use super::ConfigError;

settings! {
    /// `REDIS_HOST`.
    REDIS_HOST = Setting {
        var: "REDIS_HOST",
        kind: Kind::Any("a host name or address"),
        view: "redis.host",
        help: "optional Redis (validated and shown by `config check`; nothing uses it yet)",
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
        help: "OpenAI key (secret; nothing uses it yet)",
        ..Setting::PLAIN
    };
    /// `ANTHROPIC_API_KEY`.
    ANTHROPIC_API_KEY = Setting {
        var: "ANTHROPIC_API_KEY",
        mask: Mask::Secret,
        view: "providers.anthropic",
        help: "Anthropic key (secret; nothing uses it yet)",
        ..Setting::PLAIN
    };
    /// `GEMINI_API_KEY`.
    GEMINI_API_KEY = Setting {
        var: "GEMINI_API_KEY",
        mask: Mask::Secret,
        view: "providers.gemini",
        help: "Gemini key (secret; nothing uses it yet)",
        ..Setting::PLAIN
    };
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

/// API keys of the model providers.
#[derive(Debug, Clone, std::default::Default)]
pub struct ProviderKeys {
    /// `OPENAI_API_KEY`.
    pub openai: Option<SecretString>,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic: Option<SecretString>,
    /// `GEMINI_API_KEY`.
    pub gemini: Option<SecretString>,
}

/// Redis and the model providers.
#[derive(Debug, Clone)]
pub struct Integrations {
    /// Redis, when configured.
    pub redis: Option<RedisConfig>,
    /// Model provider keys.
    pub providers: ProviderKeys,
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
                anthropic: r.opt(&ANTHROPIC_API_KEY)?,
                gemini: r.opt(&GEMINI_API_KEY)?,
            },
        })
    }
}
