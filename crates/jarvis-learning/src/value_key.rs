//! How a JSON parameter value becomes something the learner can count.
//!
//! Every statistic is kept per *(parameter name, [`ValueKey`])*. The key is a small, total,
//! serialisable description of a value:
//!
//! | JSON value | key | string form |
//! |---|---|---|
//! | `null` | [`ValueKey::Null`] | `null` |
//! | `true` / `false` | [`ValueKey::Bool`] | `bool:true` |
//! | a string of at most [`MAX_TEXT_CHARS`] characters | [`ValueKey::Text`] | `str:pop` |
//! | a finite number | [`ValueKey::Number`], a bucket on a fixed logarithmic grid | `num:+55`, `num:0`, `num:-3` |
//! | an array or object whose canonical JSON is at most [`MAX_TEXT_CHARS`] characters | [`ValueKey::Json`], opaque categorical | `json:{"a":1}` |
//! | a longer string, array or object (prompts, payloads) | not learned | — |
//!
//! **Numbers are learned as ranges.** A number `x > 0` falls in bucket `⌊8·log₂ x⌋`, i.e. the
//! range `[2^(i/8), 2^((i+1)/8))`, eight buckets per doubling (each about 9 % wide); negative
//! numbers use the mirrored bucket and zero has its own. The grid is fixed and scale-free, so
//! every Jarvis instance buckets the same way without configuration and aggregates from
//! different instances always merge. Small integers get a bucket each (1, 2, 3 … 8 are all in
//! different buckets); larger ones share a bucket with neighbours within about 9 %. The same
//! idea underlies DDSketch (see [`crate::sketch`]).
//!
//! Nested values are canonicalised by this module itself (object keys sorted) rather than by
//! `serde_json`, because `serde_json`'s `preserve_order` feature — which another crate in the
//! workspace may switch on — would otherwise make the key depend on insertion order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Strings (and canonical JSON of nested values) longer than this many characters are free
/// text, not a choice; they are not learned.
pub const MAX_TEXT_CHARS: usize = 64;

/// Parameter names longer than this many characters are not learned.
pub const MAX_NAME_CHARS: usize = 64;

/// Number of numeric buckets per doubling of the magnitude.
pub const BUCKETS_PER_OCTAVE: u32 = 8;

/// The learner's key for one parameter value. See the [module docs](self) for the mapping.
///
/// It serialises as its string form (`str:pop`, `num:+55`, …) so that it can be a JSON object
/// key; ordering is total and stable, which keeps every map in the aggregates deterministic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ValueKey {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A short string, taken as a categorical value.
    Text(String),
    /// A finite number, by its bucket.
    Number(NumberBucket),
    /// A short array or object, by its canonical JSON text; an opaque categorical value.
    Json(String),
}

/// A bucket of the fixed logarithmic grid for numbers (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NumberBucket {
    /// Numbers `x < 0` with `−x` in positive bucket `index`.
    Negative(i32),
    /// Exactly zero.
    Zero,
    /// Numbers `x > 0` in `[2^(index/8), 2^((index+1)/8))`.
    Positive(i32),
}

impl NumberBucket {
    /// The bucket of a number, or `None` for NaN and infinities.
    pub fn of(x: f64) -> Option<Self> {
        if !x.is_finite() {
            return None;
        }
        if x == 0.0 {
            return Some(NumberBucket::Zero);
        }
        let index = (x.abs().log2() * f64::from(BUCKETS_PER_OCTAVE)).floor() as i32;
        Some(if x > 0.0 {
            NumberBucket::Positive(index)
        } else {
            NumberBucket::Negative(index)
        })
    }

    /// The half-open range `[low, high)` of the bucket (for negative buckets `(low, high]`).
    pub fn range(&self) -> (f64, f64) {
        let per_octave = f64::from(BUCKETS_PER_OCTAVE);
        match *self {
            NumberBucket::Zero => (0.0, 0.0),
            NumberBucket::Positive(i) => (
                (f64::from(i) / per_octave).exp2(),
                (f64::from(i + 1) / per_octave).exp2(),
            ),
            NumberBucket::Negative(i) => (
                -(f64::from(i + 1) / per_octave).exp2(),
                -(f64::from(i) / per_octave).exp2(),
            ),
        }
    }

    /// Whether `x` falls in this bucket.
    pub fn contains(&self, x: f64) -> bool {
        NumberBucket::of(x) == Some(*self)
    }
}

impl ValueKey {
    /// The key of a JSON value, or `None` when the value is not learned (long strings, long
    /// nested values, NaN cannot occur in JSON but infinities are refused too).
    pub fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(ValueKey::Null),
            Value::Bool(b) => Some(ValueKey::Bool(*b)),
            Value::Number(n) => n.as_f64().and_then(NumberBucket::of).map(ValueKey::Number),
            Value::String(s) => {
                (s.chars().count() <= MAX_TEXT_CHARS).then(|| ValueKey::Text(s.clone()))
            }
            Value::Array(_) | Value::Object(_) => {
                let text = canonical_json(value);
                (text.chars().count() <= MAX_TEXT_CHARS).then_some(ValueKey::Json(text))
            }
        }
    }

    /// The JSON value this key stands for, for every key but a numeric bucket (whose concrete
    /// value depends on what was observed or searched; see [`crate::aggregates::ValueStats`]).
    pub fn categorical_value(&self) -> Option<Value> {
        match self {
            ValueKey::Null => Some(Value::Null),
            ValueKey::Bool(b) => Some(Value::Bool(*b)),
            ValueKey::Text(s) => Some(Value::String(s.clone())),
            ValueKey::Json(text) => serde_json::from_str(text).ok(),
            ValueKey::Number(_) => None,
        }
    }

    /// The numeric bucket, if this is a number key.
    pub fn bucket(&self) -> Option<NumberBucket> {
        match self {
            ValueKey::Number(bucket) => Some(*bucket),
            _ => None,
        }
    }
}

impl fmt::Display for ValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueKey::Null => f.write_str("null"),
            ValueKey::Bool(b) => write!(f, "bool:{b}"),
            ValueKey::Text(s) => write!(f, "str:{s}"),
            ValueKey::Number(NumberBucket::Zero) => f.write_str("num:0"),
            ValueKey::Number(NumberBucket::Positive(i)) => write!(f, "num:+{i}"),
            ValueKey::Number(NumberBucket::Negative(i)) => write!(f, "num:-{i}"),
            ValueKey::Json(text) => write!(f, "json:{text}"),
        }
    }
}

/// The error of parsing a [`ValueKey`] from text that is not one of its string forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseValueKeyError(pub String);

impl fmt::Display for ParseValueKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a value key: {:?} (expected null, bool:…, str:…, num:…, json:…)",
            self.0
        )
    }
}

impl std::error::Error for ParseValueKeyError {}

impl FromStr for ValueKey {
    type Err = ParseValueKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseValueKeyError(text.to_owned());
        if text == "null" {
            return Ok(ValueKey::Null);
        }
        if let Some(rest) = text.strip_prefix("str:") {
            return Ok(ValueKey::Text(rest.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("json:") {
            return Ok(ValueKey::Json(rest.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("bool:") {
            return rest.parse().map(ValueKey::Bool).map_err(|_| error());
        }
        if let Some(rest) = text.strip_prefix("num:") {
            if rest == "0" {
                return Ok(ValueKey::Number(NumberBucket::Zero));
            }
            let (sign, digits) = rest.split_at(rest.len().min(1));
            let index: i32 = digits.parse().map_err(|_| error())?;
            return match sign {
                "+" => Ok(ValueKey::Number(NumberBucket::Positive(index))),
                "-" => Ok(ValueKey::Number(NumberBucket::Negative(index))),
                _ => Err(error()),
            };
        }
        Err(error())
    }
}

impl From<ValueKey> for String {
    fn from(key: ValueKey) -> String {
        key.to_string()
    }
}

impl TryFrom<String> for ValueKey {
    type Error = ParseValueKeyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Canonical JSON text: object keys sorted, no whitespace, numbers as `serde_json` prints them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Whether a parameter name is learned (non-empty, at most [`MAX_NAME_CHARS`] characters).
pub fn is_learnable_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_of_values() {
        assert_eq!(ValueKey::of(&json!(null)), Some(ValueKey::Null));
        assert_eq!(ValueKey::of(&json!(true)), Some(ValueKey::Bool(true)));
        assert_eq!(
            ValueKey::of(&json!("pop")),
            Some(ValueKey::Text("pop".into()))
        );
        assert_eq!(ValueKey::of(&json!("x".repeat(65))), None);
        assert_eq!(
            ValueKey::of(&json!({"b": 1, "a": [true, null]})),
            Some(ValueKey::Json(r#"{"a":[true,null],"b":1}"#.into()))
        );
        assert_eq!(ValueKey::of(&json!(vec![1; 40])), None);
    }

    #[test]
    fn number_buckets_known_answers() {
        assert_eq!(NumberBucket::of(0.0), Some(NumberBucket::Zero));
        assert_eq!(NumberBucket::of(-0.0), Some(NumberBucket::Zero));
        assert_eq!(NumberBucket::of(1.0), Some(NumberBucket::Positive(0)));
        assert_eq!(NumberBucket::of(2.0), Some(NumberBucket::Positive(8)));
        assert_eq!(NumberBucket::of(0.5), Some(NumberBucket::Positive(-8)));
        assert_eq!(NumberBucket::of(-2.0), Some(NumberBucket::Negative(8)));
        // log2(120) = 6.9069 → bucket 55 = [117.4, 128).
        assert_eq!(NumberBucket::of(120.0), Some(NumberBucket::Positive(55)));
        assert_eq!(NumberBucket::of(f64::NAN), None);
        assert_eq!(NumberBucket::of(f64::INFINITY), None);
        // Small integers each get their own bucket.
        let buckets: Vec<_> = (1..=8).map(|i| NumberBucket::of(f64::from(i))).collect();
        let mut unique = buckets.clone();
        unique.dedup();
        assert_eq!(buckets, unique);
        // Every value lies inside the range of its bucket.
        for x in [0.001, 0.3, 1.0, 7.0, 99.5, 120.0, 1e9, -3.5] {
            let bucket = NumberBucket::of(x).unwrap();
            let (low, high) = bucket.range();
            assert!(low <= x && x <= high, "{x} not in {low}..{high}");
            assert!(bucket.contains(x));
        }
    }

    #[test]
    fn string_forms_round_trip() {
        let keys = [
            ValueKey::Null,
            ValueKey::Bool(false),
            ValueKey::Text("a:b".into()),
            ValueKey::Text(String::new()),
            ValueKey::Number(NumberBucket::Zero),
            ValueKey::Number(NumberBucket::Positive(-3)),
            ValueKey::Number(NumberBucket::Negative(12)),
            ValueKey::Json("[1,2]".into()),
        ];
        for key in keys {
            let text = key.to_string();
            assert_eq!(text.parse::<ValueKey>(), Ok(key.clone()), "{text}");
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(serde_json::from_str::<ValueKey>(&json).unwrap(), key);
        }
        assert!("num:x".parse::<ValueKey>().is_err());
        assert!("num:*3".parse::<ValueKey>().is_err());
        assert!("nope".parse::<ValueKey>().is_err());
        assert!("bool:maybe".parse::<ValueKey>().is_err());
    }

    #[test]
    fn categorical_values_come_back() {
        for value in [json!(null), json!(false), json!("rock"), json!({"k": [1]})] {
            let key = ValueKey::of(&value).unwrap();
            assert_eq!(key.categorical_value(), Some(value));
        }
        assert_eq!(ValueKey::of(&json!(3)).unwrap().categorical_value(), None);
    }
}
