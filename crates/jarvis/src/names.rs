//! Validated names of services, agents, breakers, domains and actions.
//!
//! The grammar: 1–64 characters of `A-Z a-z 0-9 _ . -`, never `.` or `..` (which would be read
//! as path segments in a URL). Parsing once at the edge (`Name::parse`) means no handler, store query or log line ever sees an unchecked name.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A name that satisfies the API's name grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty string.
    #[error("a name must not be empty")]
    Empty,
    /// More than 64 characters.
    #[error("a name has at most 64 characters (got {0})")]
    TooLong(usize),
    /// A character outside the allowed set.
    #[error("a name may only hold A-Z a-z 0-9 _ . - (found {0:?})")]
    BadChar(char),
    /// `.` or `..`, which would name a path segment, not a thing.
    #[error("a name must not be {0:?} (it is a path segment)")]
    Dots(&'static str),
}

impl Name {
    /// The longest accepted name, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `raw` as a name.
    pub fn parse(raw: &str) -> Result<Name, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(NameError::BadChar(c));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(raw.len()));
        }
        match raw {
            "." => return Err(NameError::Dots(".")),
            ".." => return Err(NameError::Dots("..")),
            _ => {}
        }
        Ok(Name(raw.to_string()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name grammar as a regular expression (ECMA-262, as OpenAPI's `pattern` reads it): a
/// first character that is not a dot, or one dot and then a character that is not, or two dots
/// and at least one more character, so that `.` and `..` are the only strings of the
/// character set that it leaves out.
pub const NAME_PATTERN: &str = r"^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}|\.\.[A-Za-z0-9_.-]{1,62})$";

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX_LEN))
            .pattern(Some(NAME_PATTERN))
            .description(Some(
                "A name of a service, agent, breaker, domain, action, schedule or model group: \
                 1-64 characters of A-Z a-z 0-9 _ . -, never . or ..",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Name {}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let raw = String::deserialize(d)?;
        Name::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        for ok in [
            "a",
            "aiDawgBackend",
            "system-health",
            "v1.2_x",
            &"x".repeat(64),
        ] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse(&"x".repeat(65)), Err(NameError::TooLong(65)));
        assert_eq!(Name::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(Name::parse("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(Name::parse("é"), Err(NameError::BadChar('é')));
        assert_eq!(Name::parse("a\nb"), Err(NameError::BadChar('\n')));
        assert_eq!(Name::parse("."), Err(NameError::Dots(".")));
        assert_eq!(Name::parse(".."), Err(NameError::Dots("..")));
        assert_eq!(Name::parse("...").unwrap().as_str(), "...");
        assert_eq!(Name::parse(".a").unwrap().as_str(), ".a");
    }
}
