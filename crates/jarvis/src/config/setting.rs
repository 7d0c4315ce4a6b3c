//! The declaration of a setting and the one path every value takes: environment (first name
//! that is set), then the config file, then the declared default; checked against the declared
//! [`Kind`]; recorded, masked when secret, for `jarvis config check`.
//!
//! A setting is one [`Setting`] value, declared with [`settings!`] next to the group of
//! [`Config`](super::Config) that uses it. From that declaration come the parsing, the range
//! error (`invalid VAR="value": expected …`), the masked view and the row of the settings table
//! in README.md and docs/api.md ([`super::docs`]).
//!
//! Why a table and not a crate: clap's `env` reads only the process environment (the tests give
//! each application its own map, in parallel), takes one name per argument (we have aliases:
//! `JARVIS_PORT` then `PORT`) and words its own errors; figment would add a dependency tree for
//! layering that is three `or`s here and still leave the range checks, the error wording and
//! the docs to us. The whole machinery is this file.

pub use crate::store::config::redact_url;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use super::{ConfigError, FileConfig};

/// One setting: its names, what it accepts, its default, whether it is secret, and its help.
#[derive(Debug)]
pub struct Setting {
    /// The environment variable.
    pub var: &'static str,
    /// Older names, read when `var` is not set (in this order).
    pub aliases: &'static [&'static str],
    /// What values are accepted (the range error and the docs' "accepted" column).
    pub kind: Kind,
    /// The value when neither the environment nor the config file sets it.
    pub default: Default,
    /// The config-file key this variable layers over (the environment wins).
    pub file: Option<FileKey>,
    /// Whether and how the value is hidden in error messages and `jarvis config check`.
    pub mask: Mask,
    /// Where the value appears in the `jarvis config check` JSON (dotted path).
    pub view: &'static str,
    /// One line for the docs: what the setting does.
    pub help: &'static str,
}

impl Setting {
    /// The fields most settings leave alone, for `..Setting::PLAIN`.
    pub const PLAIN: Setting = Setting {
        var: "",
        aliases: &[],
        kind: Kind::Any("any"),
        default: Default::Unset("none"),
        file: None,
        mask: Mask::Shown,
        view: "",
        help: "",
    };

    /// The variable and its aliases, in the order they are read.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.var).chain(self.aliases.iter().copied())
    }
}

/// Declares settings as constants and lists them in `SETTINGS`, in order, for the docs table
/// and the tests: one block per group of the configuration.
macro_rules! settings {
    ($( $(#[$doc:meta])* $name:ident = $value:expr; )*) => {
        $( $(#[$doc])* pub const $name: $crate::config::setting::Setting = $value; )*
        /// The settings of this group, in the order the docs list them.
        pub const SETTINGS: &[&$crate::config::setting::Setting] = &[$(&$name),*];
    };
}
pub(crate) use settings;

/// What a setting accepts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number from `min` to `max`.
    Int {
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, any case.
    Bool,
    /// A decimal from 0 to 1.
    Share,
    /// One word of these groups, any case; the first word of a group is its canonical name and
    /// the others are synonyms.
    Choice(&'static [&'static [&'static str]]),
    /// Text that `check` accepts; `accepted` describes it for the docs. `check` answers what
    /// was expected when it refuses.
    Text {
        /// Says what was expected when the value does not fit.
        check: fn(&str) -> Result<(), String>,
        /// What is accepted, for the docs.
        accepted: &'static str,
    },
    /// Any text (a key, a host); the words describe it for the docs.
    Any(&'static str),
    /// A file or directory path. A leading `~` or `~/` is the home directory (`HOME` of the
    /// environment), as a shell would expand it: a value that reaches Jarvis unexpanded
    /// (quoted in a unit file, an env file or the config file) must not become a directory
    /// literally named `~`. `~user` is refused (it would need the password database).
    Path,
}

/// A value that passed its [`Kind`]'s check.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// From [`Kind::Int`].
    Int(u64),
    /// From [`Kind::Bool`].
    Bool(bool),
    /// From [`Kind::Share`].
    Share(f64),
    /// From [`Kind::Choice`]: the canonical word.
    Choice(&'static str),
    /// From [`Kind::Text`] and [`Kind::Any`].
    Text(String),
}

impl Kind {
    /// Checks `raw` (already trimmed); on refusal, says what was expected.
    pub fn parse(&self, raw: &str) -> Result<Parsed, String> {
        match *self {
            Kind::Int { min, max } => match raw.parse::<u64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Parsed::Int(v)),
                _ => Err(format!("a whole number from {min} to {max}")),
            },
            Kind::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Parsed::Bool(true)),
                "false" | "0" | "no" | "off" => Ok(Parsed::Bool(false)),
                _ => Err("true or false".into()),
            },
            Kind::Share => match raw.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(Parsed::Share(x)),
                _ => Err("a share from 0 to 1, such as 0.05".into()),
            },
            Kind::Choice(groups) => {
                let word = raw.to_ascii_lowercase();
                groups
                    .iter()
                    .find(|g| g.contains(&word.as_str()))
                    .map(|g| Parsed::Choice(g[0]))
                    .ok_or_else(|| {
                        let names: Vec<&str> = groups.iter().map(|g| g[0]).collect();
                        match names.as_slice() {
                            [a, b] => format!("{a} or {b}"),
                            _ => format!("one of {}", names.join(", ")),
                        }
                    })
            }
            Kind::Text { check, .. } => check(raw).map(|()| Parsed::Text(raw.to_string())),
            Kind::Any(_) => Ok(Parsed::Text(raw.to_string())),
            Kind::Path => {
                if raw.starts_with('~') && !(raw == "~" || raw.starts_with("~/")) {
                    return Err("a path; `~user/…` is not expanded (give the full path, or \
                                `~/…` for your own home directory)"
                        .into());
                }
                Ok(Parsed::Text(raw.to_string()))
            }
        }
    }

    /// What is accepted, as the docs' table says it.
    pub fn accepted(&self) -> String {
        match *self {
            Kind::Int { min, max } => format!("{min}–{max}"),
            Kind::Bool => "boolean".into(),
            Kind::Share => "0–1 (a decimal)".into(),
            Kind::Choice(groups) => groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|w| format!("`{w}`"))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect::<Vec<_>>()
                .join(", "),
            Kind::Text { accepted, .. } | Kind::Any(accepted) => accepted.into(),
            Kind::Path => "a path (a leading `~/` is `$HOME/`)".into(),
        }
    }
}

/// The value of a setting nobody set.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// This value, checked like any other.
    Value(&'static str),
    /// Computed at start (the words describe it for the docs).
    Computed(fn() -> String, &'static str),
    /// No value: the setting is optional (the words say what that means, for the docs).
    Unset(&'static str),
}

impl Default {
    /// The default as the docs' table says it.
    pub fn doc(&self) -> &'static str {
        match *self {
            Default::Value(v) => v,
            Default::Computed(_, doc) | Default::Unset(doc) => doc,
        }
    }
}

/// How a value is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Not a secret: errors and `config check` show it.
    Shown,
    /// A secret: errors say `(secret, not shown)`, `config check` says `***`.
    Secret,
    /// A URL with a password: shown with the password replaced by `***` and without its query.
    UrlPassword,
}

/// A config-file key a setting layers over: `[table] key`, read by `get`.
#[derive(Debug, Clone, Copy)]
pub struct FileKey {
    /// The TOML table.
    pub table: &'static str,
    /// The key in it.
    pub key: &'static str,
    /// The value in the parsed file, if the file sets it.
    pub get: fn(&FileConfig) -> Option<toml::Value>,
}

/// Where a value came from.
enum Source {
    Env(&'static str),
    File(FileKey),
    Default,
}

/// A typed value made from a checked one. A mismatch between a setting's [`Kind`] and the type
/// its use asks for is a mistake in the declaration, which every test run reads: it panics.
pub trait FromParsed: Sized {
    /// Converts; panics on a kind that cannot give this type.
    fn from_parsed(p: Parsed) -> Self;
}

fn mismatch<T>(p: &Parsed) -> T {
    panic!(
        "a setting declared as {p:?} is read as {}",
        std::any::type_name::<T>()
    )
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromParsed for $t {
            fn from_parsed(p: Parsed) -> Self {
                match p {
                    Parsed::Int(v) => <$t>::try_from(v).expect("the declared range fits the type"),
                    other => mismatch(&other),
                }
            }
        }
    )*};
}
from_int!(u16, u32, u64, usize);

impl FromParsed for Duration {
    fn from_parsed(p: Parsed) -> Self {
        Duration::from_millis(u64::from_parsed(p))
    }
}

impl FromParsed for bool {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Bool(b) => b,
            other => mismatch(&other),
        }
    }
}

impl FromParsed for f64 {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Share(x) => x,
            other => mismatch(&other),
        }
    }
}

impl FromParsed for String {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Text(s) => s,
            Parsed::Choice(w) => w.to_string(),
            other => mismatch(&other),
        }
    }
}

impl FromParsed for PathBuf {
    fn from_parsed(p: Parsed) -> Self {
        PathBuf::from(String::from_parsed(p))
    }
}

impl FromParsed for SecretString {
    fn from_parsed(p: Parsed) -> Self {
        SecretString::from(String::from_parsed(p))
    }
}

/// Reads settings out of the environment map and the config file, and keeps what it read (as
/// `config check` shows it).
pub struct Reader<'a> {
    env: &'a HashMap<String, String>,
    file: Option<(&'a Path, &'a FileConfig)>,
    shown: BTreeMap<String, Value>,
}

impl<'a> Reader<'a> {
    /// A reader of `env` alone.
    pub fn new(env: &'a HashMap<String, String>) -> Reader<'a> {
        Reader {
            env,
            file: None,
            shown: BTreeMap::new(),
        }
    }

    /// A reader of nothing: every setting takes its default.
    pub fn defaults() -> Reader<'static> {
        static EMPTY: std::sync::LazyLock<HashMap<String, String>> =
            std::sync::LazyLock::new(HashMap::new);
        Reader::new(&EMPTY)
    }

    /// The same reader, with the config file `file` read from `path` under the environment.
    /// Every value the file gives for a setting is checked here, also where the environment
    /// wins over it: a wrong file is wrong whatever the environment says.
    pub fn with_file(
        self,
        path: &'a Path,
        file: &'a FileConfig,
    ) -> Result<Reader<'a>, ConfigError> {
        let r = Reader {
            file: Some((path, file)),
            ..self
        };
        for s in super::all_settings() {
            if let Some(key) = &s.file {
                if let Some(raw) = (key.get)(file).map(toml_raw) {
                    s.kind
                        .parse(&raw)
                        .map_err(|expected| r.file_error(key, &raw, &expected))?;
                }
            }
        }
        Ok(r)
    }

    /// What was read, by view path, masked.
    pub fn into_shown(self) -> BTreeMap<String, Value> {
        self.shown
    }

    /// Puts a value that is not a setting of its own (the store's backend) into the view.
    pub fn show(&mut self, path: &str, value: impl Into<Value>) {
        self.shown.insert(path.to_string(), value.into());
    }

    /// Whether the environment sets the variable (or one of its aliases) to a non-empty value.
    pub fn is_set(&self, s: &Setting) -> bool {
        s.names().any(|n| self.env_value(n).is_some())
    }

    /// The setting's value: environment, config file, default. For settings with a default.
    pub fn get<T: FromParsed>(&mut self, s: &'static Setting) -> Result<T, ConfigError> {
        match self.opt(s)? {
            Some(v) => Ok(v),
            None => panic!("{} has no default: read it with `opt`", s.var),
        }
    }

    /// The setting's value, or `None` when nothing sets it and it has no default.
    pub fn opt<T: FromParsed>(&mut self, s: &'static Setting) -> Result<Option<T>, ConfigError> {
        let Some((source, raw)) = self.raw(s) else {
            self.shown.insert(s.view.to_string(), Value::Null);
            return Ok(None);
        };
        let parsed = s.kind.parse(&raw).map_err(|expected| match &source {
            Source::Env(name) => ConfigError::Invalid {
                var: name.to_string(),
                value: shown_in_error(s.mask, &raw),
                expected,
            },
            Source::File(key) => self.file_error(key, &raw, &expected),
            Source::Default => ConfigError::Invalid {
                var: s.var.to_string(),
                value: format!("{raw:?} (its default)"),
                expected,
            },
        })?;
        let parsed = match (s.kind, parsed) {
            (Kind::Path, Parsed::Text(path)) => Parsed::Text(
                expand_home(&path, self.env_value("HOME")).map_err(|expected| match &source {
                    Source::File(key) => self.file_error(key, &raw, &expected),
                    Source::Env(name) => ConfigError::Invalid {
                        var: name.to_string(),
                        value: format!("{raw:?}"),
                        expected,
                    },
                    Source::Default => ConfigError::Invalid {
                        var: s.var.to_string(),
                        value: format!("{raw:?} (its default)"),
                        expected,
                    },
                })?,
            ),
            (_, parsed) => parsed,
        };
        self.shown
            .insert(s.view.to_string(), shown_in_view(s.mask, &parsed));
        Ok(Some(T::from_parsed(parsed)))
    }

    fn env_value(&self, name: &str) -> Option<&'a str> {
        // Empty values count as unset, as most tools treat them.
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn raw(&self, s: &Setting) -> Option<(Source, String)> {
        if let Some((name, v)) = s
            .names()
            .find_map(|n| self.env_value(n).map(|v| (n, v.to_string())))
        {
            return Some((Source::Env(name), v));
        }
        if let (Some(key), Some((_, file))) = (s.file, self.file) {
            if let Some(v) = (key.get)(file) {
                return Some((Source::File(key), toml_raw(v)));
            }
        }
        match s.default {
            Default::Value(v) => Some((Source::Default, v.to_string())),
            Default::Computed(f, _) => Some((Source::Default, f())),
            Default::Unset(_) => None,
        }
    }

    fn file_error(&self, key: &FileKey, raw: &str, expected: &str) -> ConfigError {
        let path = self.file.map(|(p, _)| p.display().to_string());
        ConfigError::File {
            path: path.unwrap_or_default(),
            message: invalid_message(&format!("{}.{}", key.table, key.key), raw, expected),
        }
    }
}

/// `path` with a leading `~` (alone or before `/`) replaced by `home`, as a shell does; other
/// paths as they are. Without a home directory a `~` path is refused, never used literally.
pub fn expand_home(path: &str, home: Option<&str>) -> Result<String, String> {
    let rest = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Ok(path.to_string()),
    };
    match home.filter(|h| !h.is_empty()) {
        // `HOME=/` gives `/x` for `~/x`, not `//x`.
        Some(home) => Ok(format!("{}{rest}", home.trim_end_matches('/'))),
        _ => Err(
            "a path; `~` stands for the home directory, but HOME is not set (give the \
                  full path)"
                .into(),
        ),
    }
}

/// A TOML value as the text a variable would hold.
fn toml_raw(v: toml::Value) -> String {
    match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `invalid NAME="value": expected …`: the style of every refused value, from the environment or
/// the config file.
pub fn invalid_message(name: &str, raw: &str, expected: &str) -> String {
    format!("invalid {name}={raw:?}: expected {expected}")
}

fn shown_in_error(mask: Mask, raw: &str) -> String {
    match mask {
        Mask::Shown => format!("{raw:?}"),
        Mask::Secret => format!("{:?}", "(secret, not shown)"),
        Mask::UrlPassword => {
            // Without its password even when it is not the URL that was expected.
            let shown = redact_url(raw).unwrap_or_else(|| "(unparseable, not shown)".into());
            format!("{shown:?}")
        }
    }
}

fn shown_in_view(mask: Mask, p: &Parsed) -> Value {
    match (mask, p) {
        (Mask::Secret, _) => "***".into(),
        (Mask::UrlPassword, Parsed::Text(raw)) => redact_url(raw)
            .unwrap_or_else(|| "(unparseable, not shown)".into())
            .into(),
        (_, Parsed::Int(v)) => (*v).into(),
        (_, Parsed::Bool(b)) => (*b).into(),
        (_, Parsed::Share(x)) => (*x).into(),
        (_, Parsed::Choice(w)) => (*w).into(),
        (_, Parsed::Text(s)) => s.clone().into(),
    }
}
