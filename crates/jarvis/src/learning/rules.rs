//! Which parameters are learned: only real choices.
//!
//! A task's parameters mix choices (a genre, a tempo, a quality) with values that identify one
//! request (a user id, a prompt, a trace token). Learning the second kind is useless and
//! harmful: every value is seen once, so it never becomes eligible, yet it grows the stored
//! state without bound and fills `choose` with candidates. The rule, applied to every execution
//! before it is counted:
//!
//! 1. **Bookkeeping names** — a name starting with `_` (`_trace`, `_sim`) is never learned.
//! 2. **Identifier names** — `id`, `ids`, `uuid`, and names ending in `Id`/`ID`/`Ids`/`_id`/
//!    `-id`/`_ids` (`userId`, `request_id`), plus `nonce`, `token`, `timestamp`, `seed`.
//! 3. **Identifier values** — strings that look like one request's value: a UUID, a hex string
//!    of 16 or more characters, 10 or more digits, a URL, an ISO 8601 time. (The library also
//!    drops strings and JSON values longer than 64 characters: free text.)
//! 4. **High cardinality** — a parameter that reaches [`MAX_DISTINCT_VALUES`] distinct values
//!    (numbers count by bucket) is dropped from the stored state and listed as ignored, so
//!    later results do not bring it back.
//!
//! Numbers are bucketed by the library (8 buckets per octave), so a numeric parameter is
//! bounded unless its values span many orders of magnitude, which rule 4 catches.

use serde_json::{Map, Value};

/// A parameter with this many distinct value keys is not a choice (rule 4).
pub const MAX_DISTINCT_VALUES: usize = 64;

/// Whether the name can be a choice (rules 1 and 2).
pub fn is_choice_name(name: &str) -> bool {
    if name.is_empty() || name.starts_with('_') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "id" | "ids" | "uuid" | "guid" | "nonce" | "token" | "timestamp" | "seed"
    ) {
        return false;
    }
    let camel_id = ["Id", "ID", "Ids", "IDs"]
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix));
    let snake_id = ["_id", "-id", "_ids", "-ids", "_uuid", "-uuid"]
        .iter()
        .any(|suffix| lower.ends_with(suffix));
    !(camel_id || snake_id)
}

/// Whether the value can be a choice (rule 3; the length limit is the library's).
pub fn is_choice_value(value: &Value) -> bool {
    let Value::String(s) = value else {
        return true;
    };
    let t = s.trim();
    let hex = t.len() >= 16 && t.chars().all(|c| c.is_ascii_hexdigit());
    let digits = t.len() >= 10 && t.chars().all(|c| c.is_ascii_digit());
    let uuid = uuid::Uuid::parse_str(t).is_ok();
    let url = t.starts_with("http://") || t.starts_with("https://");
    let time = chrono::DateTime::parse_from_rfc3339(t).is_ok();
    !(hex || digits || uuid || url || time)
}

/// The parameters of a run that are learned (rules 1–3), minus those already `ignored`.
pub fn choices(
    parameters: &Value,
    ignored: &std::collections::BTreeSet<String>,
) -> Map<String, Value> {
    parameters
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(name, value)| {
                    is_choice_name(name) && is_choice_value(value) && !ignored.contains(*name)
                })
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for ok in [
            "genre", "bpm", "quality", "key", "width", "mid", "valid", "model",
        ] {
            assert!(is_choice_name(ok), "{ok}");
        }
        for no in [
            "",
            "_sim",
            "id",
            "ID",
            "userId",
            "requestID",
            "user_id",
            "trace-id",
            "itemIds",
            "uuid",
            "seed",
            "token",
        ] {
            assert!(!is_choice_name(no), "{no}");
        }
    }

    #[test]
    fn values() {
        for ok in [
            json!("pop"),
            json!("gpt-4o-mini"),
            json!(120),
            json!(true),
            json!("C#"),
        ] {
            assert!(is_choice_value(&ok), "{ok}");
        }
        for no in [
            json!("8f14e45f-ceea-467f-a0e6-1b6c4a3c2a11"),
            json!("deadbeefdeadbeef"),
            json!("1732873600123"),
            json!("https://example.com/a"),
            json!("2026-11-29T12:00:00Z"),
        ] {
            assert!(!is_choice_value(&no), "{no}");
        }
    }

    #[test]
    fn choices_filter_names_values_and_ignored() {
        let ignored = ["prompt".to_string()].into_iter().collect();
        let c = choices(
            &json!({"genre": "pop", "userId": "u1", "_sim": 3, "prompt": "x", "job": "deadbeefdeadbeef00"}),
            &ignored,
        );
        assert_eq!(Value::Object(c), json!({"genre": "pop"}));
    }
}
