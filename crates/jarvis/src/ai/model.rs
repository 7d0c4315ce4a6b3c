//! Model names as callers give them on `/v1/*`: `openai/<model>` or a bare OpenAI name
//! (`gpt-4o-mini`), `anthropic/<model>`, `gemini/<model>`.

use std::fmt;

/// The providers the gateway calls, each through its own deployment (`crate::ai::Deployment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// OpenAI, or any OpenAI-compatible server at `OPENAI_BASE_URL`: bodies pass through.
    OpenAi,
    /// Anthropic's Messages API: requests and answers are translated (`ai::anthropic`).
    Anthropic,
    /// Google's Gemini API (`generateContent`): requests and answers are translated
    /// (`ai::gemini`).
    Gemini,
}

impl Provider {
    /// Every provider, in the order `GET /v1/models` lists them.
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

    /// The prefix of its model names (`openai/…`), which is also its deployment's name.
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// The environment variable that holds its key and so turns it on.
    pub fn key_var(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::Gemini => "GEMINI_API_KEY",
        }
    }

    /// The environment variable that moves its endpoint.
    pub fn base_url_var(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_BASE_URL",
            Provider::Anthropic => "ANTHROPIC_BASE_URL",
            Provider::Gemini => "GEMINI_BASE_URL",
        }
    }
}

/// Where a model name goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The provider that serves it.
    pub provider: Provider,
    /// The name the provider knows it by (the caller's name without the prefix).
    pub upstream: String,
}

/// Why a model name cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Empty, or a provider prefix with nothing after it.
    Empty,
    /// A prefix that names no provider.
    UnknownProvider(String),
}

/// How the accepted names are written, for error messages.
const ACCEPTED: &str = "openai/<model> (or a bare OpenAI model name), anthropic/<model> or \
                        gemini/<model>";

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Empty => write!(f, "the model name is empty: give {ACCEPTED}"),
            ResolveError::UnknownProvider(p) => write!(
                f,
                "the model name names provider '{p}', which Jarvis does not know: use \
                 {ACCEPTED} (a model whose own name has a '/' is written openai/<its name>)"
            ),
        }
    }
}

/// Resolves a caller's model name. The first `/` separates the provider, so
/// `openai/meta-llama/Llama-3` reaches an OpenAI-compatible server as `meta-llama/Llama-3`;
/// a name without `/` is OpenAI's.
pub fn resolve(model: &str) -> Result<Resolved, ResolveError> {
    let model = model.trim();
    let (provider, upstream) = match model.split_once('/') {
        None => (Provider::OpenAi, model),
        Some((prefix, rest)) => {
            let Some(p) = Provider::ALL
                .into_iter()
                .find(|p| prefix.eq_ignore_ascii_case(p.prefix()))
            else {
                return Err(ResolveError::UnknownProvider(prefix.to_string()));
            };
            (p, rest)
        }
    };
    if upstream.is_empty() {
        return Err(ResolveError::Empty);
    }
    Ok(Resolved {
        provider,
        upstream: upstream.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(provider: Provider, upstream: &str) -> Result<Resolved, ResolveError> {
        Ok(Resolved {
            provider,
            upstream: upstream.into(),
        })
    }

    #[test]
    fn bare_names_and_the_openai_prefix_go_to_openai() {
        assert_eq!(resolve("gpt-4o-mini"), to(Provider::OpenAi, "gpt-4o-mini"));
        assert_eq!(resolve("openai/gpt-4o"), to(Provider::OpenAi, "gpt-4o"));
        assert_eq!(resolve("OpenAI/gpt-4o"), to(Provider::OpenAi, "gpt-4o"));
        // Only the first '/' separates the provider.
        assert_eq!(
            resolve("openai/meta-llama/Llama-3-8B"),
            to(Provider::OpenAi, "meta-llama/Llama-3-8B")
        );
    }

    #[test]
    fn anthropic_and_gemini_prefixes_go_to_their_providers() {
        assert_eq!(
            resolve("anthropic/claude-3-5-sonnet-latest"),
            to(Provider::Anthropic, "claude-3-5-sonnet-latest")
        );
        assert_eq!(
            resolve("Gemini/gemini-2.0-flash"),
            to(Provider::Gemini, "gemini-2.0-flash")
        );
    }

    #[test]
    fn unknown_prefixes_and_empty_names_are_refused() {
        assert_eq!(
            resolve("mistral/large"),
            Err(ResolveError::UnknownProvider("mistral".into()))
        );
        let message = resolve("mistral/large").unwrap_err().to_string();
        assert!(message.contains("anthropic/<model>"), "{message}");
        assert_eq!(resolve(""), Err(ResolveError::Empty));
        assert_eq!(resolve("openai/"), Err(ResolveError::Empty));
        assert_eq!(resolve("gemini/"), Err(ResolveError::Empty));
    }
}
