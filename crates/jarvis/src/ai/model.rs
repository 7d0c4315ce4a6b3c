//! Model names as callers give them on `/v1/*`: `openai/<model>`, a bare OpenAI name
//! (`gpt-4o-mini`), and the providers that are named but not served yet.

use std::fmt;

/// The providers the gateway can call today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI, or any OpenAI-compatible server at `OPENAI_BASE_URL`.
    OpenAi,
}

impl Provider {
    /// The prefix of its model names (`openai/…`).
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
        }
    }
}

/// Providers a model name may name that this version does not call yet (issue 14). They are
/// refused with their own message rather than as unknown: the caller's name is right.
const COMING: [&str; 2] = ["anthropic", "gemini"];

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
    /// A provider Jarvis knows of but does not call yet (`anthropic`, `gemini`).
    NotYetAvailable(&'static str),
    /// A prefix that names no provider.
    UnknownProvider(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Empty => f.write_str(
                "the model name is empty: give openai/<model> or a bare OpenAI model name",
            ),
            ResolveError::NotYetAvailable(p) => write!(
                f,
                "the {p} provider is not available yet in this Jarvis: only openai/<model> and \
                 bare OpenAI model names are served for now"
            ),
            ResolveError::UnknownProvider(p) => write!(
                f,
                "the model name names provider '{p}', which Jarvis does not know: use \
                 openai/<model> or a bare OpenAI model name (a model whose own name has a '/' \
                 is written openai/<its name>)"
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
            if prefix.eq_ignore_ascii_case(Provider::OpenAi.prefix()) {
                (Provider::OpenAi, rest)
            } else if let Some(p) = COMING.iter().find(|p| prefix.eq_ignore_ascii_case(p)) {
                return Err(ResolveError::NotYetAvailable(p));
            } else {
                return Err(ResolveError::UnknownProvider(prefix.to_string()));
            }
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

    fn openai(upstream: &str) -> Result<Resolved, ResolveError> {
        Ok(Resolved {
            provider: Provider::OpenAi,
            upstream: upstream.into(),
        })
    }

    #[test]
    fn bare_names_and_the_openai_prefix_go_to_openai() {
        assert_eq!(resolve("gpt-4o-mini"), openai("gpt-4o-mini"));
        assert_eq!(resolve("openai/gpt-4o"), openai("gpt-4o"));
        assert_eq!(resolve("OpenAI/gpt-4o"), openai("gpt-4o"));
        // Only the first '/' separates the provider.
        assert_eq!(
            resolve("openai/meta-llama/Llama-3-8B"),
            openai("meta-llama/Llama-3-8B")
        );
    }

    #[test]
    fn other_providers_are_refused_with_what_is_served() {
        assert_eq!(
            resolve("anthropic/claude-3-5-sonnet"),
            Err(ResolveError::NotYetAvailable("anthropic"))
        );
        assert_eq!(
            resolve("gemini/gemini-2.0-flash"),
            Err(ResolveError::NotYetAvailable("gemini"))
        );
        assert_eq!(
            resolve("mistral/large"),
            Err(ResolveError::UnknownProvider("mistral".into()))
        );
        assert!(resolve("mistral/large")
            .unwrap_err()
            .to_string()
            .contains("openai/<model>"));
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(resolve(""), Err(ResolveError::Empty));
        assert_eq!(resolve("openai/"), Err(ResolveError::Empty));
    }
}
