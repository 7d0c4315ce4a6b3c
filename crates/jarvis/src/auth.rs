//! API tokens and their roles: where tokens come from, how they are checked, and how a new set
//! replaces the old one without a restart (docs/api.md, Authentication; docs/operations.md,
//! Rotating tokens). Only `api::auth` knows which route needs which role.
//!
//! A token is a name (logged), a [`Role`] and the token's SHA-256 (never the token: after start
//! only hashes are kept in memory). The set is built from, in this order:
//!
//! 1. `JARVIS_AUTH_TOKEN` (or the development token): an `admin` token named
//!    `JARVIS_AUTH_TOKEN`, so that a deployment with one token works as before;
//! 2. `JARVIS_AUTH_TOKENS` (`name:role:token,…`; also from the AWS secret `<prefix>/app`, as every
//!    variable is, see `secrets`);
//! 3. the config file's `[[auth.tokens]]` entries;
//! 4. the tokens file `JARVIS_AUTH_TOKENS_FILE` (`[[tokens]]` entries of the same shape).
//!
//! The config file's and the tokens file's tokens are read again on SIGHUP and every
//! `JARVIS_AUTH_RELOAD_MS` ([`Keyring::run`]), and so are 1 and 2 when they come from the AWS
//! secret `<prefix>/app` ([`crate::secrets::AppSecret`]); set in the environment itself, they are
//! fixed for the life of the process.
//! A reload that fails (a file that does not parse, a bad entry, a duplicate name) keeps the set
//! in force and logs why, never with a token in the message.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

/// What a token may do. Each role can do everything the roles before it can.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Views, statistics, traces, events, metrics.
    Read,
    /// Also: submit, cancel and retry tasks; register and delete services and agents;
    /// schedules; model calls on `/v1/*`; alert silences.
    Operate,
    /// Also: force breakers open, closed or reset; AI model groups; everything.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::Admin];

    /// The role's name as configured and documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    /// Parses `read`, `operate` or `admin` (any case).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// The SHA-256 of a token as given (surrounding spaces removed).
pub fn hash(token: &str) -> Digest32 {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// One token entry of the config file (`[[auth.tokens]]`) or the tokens file (`[[tokens]]`):
/// a name, a role, and the token itself or its SHA-256 (64 hex digits).
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Shown in logs and `jarvis config check` (never the token).
    pub name: String,
    /// `read`, `operate` or `admin`.
    pub role: String,
    /// The token (16–512 printable ASCII characters without spaces).
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// Or the token's SHA-256 in hex (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub sha256: Option<String>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// A table of token entries: the config file's `[auth]` and the tokens file's top level.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokensTable {
    /// The entries, in the file's order.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// A token as kept in memory: its name, role and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token's name (logged; never the token).
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The token's SHA-256.
    pub hash: Digest32,
}

/// Who made a request: the name and role of the token it presented (or of the token its
/// dashboard session was signed in with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// Its hash (a dashboard session keeps it to follow rotations).
    pub hash: Digest32,
}

/// Checks the text of a token: 16–512 printable ASCII characters, no spaces (the rule of
/// `JARVIS_AUTH_TOKEN`). The message never quotes the token.
pub fn check_token(raw: &str) -> Result<(), String> {
    if raw.len() < 16 || raw.len() > 512 || !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err("16 to 512 printable ASCII characters without spaces".into());
    }
    Ok(())
}

fn parse_hex(raw: &str) -> Option<Digest32> {
    let raw = raw.trim();
    if raw.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in raw.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Turns one entry into a [`Token`]; `at` names it in the message (`tokens[2]`).
pub fn token_of(entry: &TokenEntry, at: &str) -> Result<Token, String> {
    crate::names::Name::parse(&entry.name).map_err(|e| format!("{at}.name: {e}"))?;
    let role = Role::parse(&entry.role).ok_or_else(|| {
        format!(
            "{at}.role: {:?} is not a role: expected read, operate or admin",
            entry.role
        )
    })?;
    let hash = match (&entry.token, &entry.sha256) {
        (Some(_), Some(_)) => {
            return Err(format!("{at}: give token or sha256, not both"));
        }
        (None, None) => return Err(format!("{at}: give token or sha256")),
        (Some(t), None) => {
            check_token(t.trim()).map_err(|e| format!("{at}.token (secret, not shown): {e}"))?;
            hash(t)
        }
        (None, Some(h)) => parse_hex(h).ok_or_else(|| {
            format!("{at}.sha256: expected the 64 hex digits of the token's SHA-256")
        })?,
    };
    Ok(Token {
        name: Arc::from(entry.name.as_str()),
        role,
        hash,
    })
}

/// Checks every entry of a table; `what` names the table in messages (`auth.tokens`).
pub fn tokens_of(table: &TokensTable, what: &str) -> Result<Vec<Token>, String> {
    table
        .tokens
        .iter()
        .enumerate()
        .map(|(i, e)| token_of(e, &format!("{what}[{i}]")))
        .collect()
}

/// Parses `JARVIS_AUTH_TOKENS`: comma-separated `name:role:token` entries, where the token part
/// may be `sha256:<64 hex digits>`. Messages never quote a token.
pub fn parse_env_list(raw: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for (i, item) in raw.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut parts = item.splitn(3, ':');
        let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "entry {} is not name:role:token (secret, not shown)",
                i + 1
            ));
        };
        let entry = match secret.strip_prefix("sha256:") {
            Some(h) => TokenEntry {
                name: name.trim().into(),
                role: role.into(),
                token: None,
                sha256: Some(h.into()),
            },
            None => TokenEntry {
                name: name.trim().into(),
                role: role.into(),
                token: Some(secret.into()),
                sha256: None,
            },
        };
        out.push(token_of(
            &entry,
            &format!("entry {} ({})", i + 1, entry.name),
        )?);
    }
    Ok(out)
}

/// The accepted tokens at one moment.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    tokens: Vec<Token>,
}

impl TokenSet {
    /// A set of `tokens`; refused when two share a name or a token.
    pub fn new(tokens: Vec<Token>) -> Result<TokenSet, String> {
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for t in &tokens {
            if !names.insert(t.name.clone()) {
                return Err(format!("two tokens are named {}", t.name));
            }
            if !hashes.insert(t.hash) {
                return Err(format!(
                    "token {} is the same token as another entry (give each token once)",
                    t.name
                ));
            }
        }
        Ok(TokenSet { tokens })
    }

    /// The caller presenting `given`, if it is one of the set's tokens. Every entry is
    /// compared, in constant time, whatever matches: the time does not tell which or whether.
    pub fn authenticate(&self, given: &str) -> Option<Caller> {
        self.find_hash(&hash(given))
    }

    /// The token whose hash is `h` (constant-time comparisons, every entry).
    pub fn find_hash(&self, h: &Digest32) -> Option<Caller> {
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.hash.as_slice().ct_eq(h.as_slice())) {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                    hash: t.hash,
                });
            }
        }
        found
    }

    /// The names and roles, for the log line of a reload.
    pub fn summary(&self) -> Vec<String> {
        self.tokens
            .iter()
            .map(|t| format!("{}:{}", t.name, t.role))
            .collect()
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Where the token set comes from: the fixed part (the environment's tokens, hashed at start),
/// the files read again at each reload, and the Secrets Manager secret read again too.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Tokens from the environment (`JARVIS_AUTH_TOKEN`, `JARVIS_AUTH_TOKENS`), fixed.
    pub fixed: Vec<Token>,
    /// Where `JARVIS_AUTH_TOKEN`/`JARVIS_AUTH_TOKENS` are read again when they came from
    /// Secrets Manager (the tokens read at start are the keyring's first secret part).
    pub secret: Option<crate::secrets::AppSecret>,
    /// The config file, whose `[auth]` table is read again at each reload.
    pub config_file: Option<PathBuf>,
    /// The tokens file (`JARVIS_AUTH_TOKENS_FILE`).
    pub tokens_file: Option<PathBuf>,
}

/// Why a file's tokens could not be read: the file and what is wrong, without its text (a TOML
/// error would quote the line, which may hold a token).
fn toml_error(path: &Path, e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    match line {
        Some(n) => format!("{}: line {n}: {}", path.display(), e.message()),
        None => format!("{}: {}", path.display(), e.message()),
    }
}

/// Reads the `[auth]` table of the config file at `path` (the rest of the file is not looked at).
fn config_file_tokens(path: &Path) -> Result<Vec<Token>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, &e, &text))?;
    let Some(auth) = table.get("auth") else {
        return Ok(Vec::new());
    };
    let auth: TokensTable = auth
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("{}: [auth]: {}", path.display(), e.message()))?;
    tokens_of(&auth, "auth.tokens").map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the tokens file at `path` (`[[tokens]]` entries).
pub fn tokens_file(path: &Path) -> Result<Vec<Token>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: TokensTable = toml::from_str(&text).map_err(|e| toml_error(path, &e, &text))?;
    tokens_of(&table, "tokens").map_err(|e| format!("{}: {e}", path.display()))
}

/// The tokens of the variables [`crate::secrets::RELOADED`] read from a secret: the `admin`
/// token named `JARVIS_AUTH_TOKEN`, and the `JARVIS_AUTH_TOKENS` list. Messages never quote a
/// token.
pub fn secret_tokens(
    values: &std::collections::HashMap<String, String>,
) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    if let Some(admin) = values.get("JARVIS_AUTH_TOKEN") {
        let admin = admin.trim();
        check_token(admin).map_err(|e| format!("JARVIS_AUTH_TOKEN (secret, not shown): {e}"))?;
        tokens.push(Token {
            name: Arc::from("JARVIS_AUTH_TOKEN"),
            role: Role::Admin,
            hash: hash(admin),
        });
    }
    if let Some(list) = values.get("JARVIS_AUTH_TOKENS") {
        tokens.extend(parse_env_list(list).map_err(|e| format!("JARVIS_AUTH_TOKENS: {e}"))?);
    }
    Ok(tokens)
}

impl Sources {
    /// The whole set as the sources say now, with `secret` the tokens last read from the
    /// secret.
    pub fn load(&self, secret: &[Token]) -> Result<TokenSet, String> {
        let mut all = self.fixed.clone();
        all.extend(secret.iter().cloned());
        if let Some(p) = &self.config_file {
            all.extend(config_file_tokens(p)?);
        }
        if let Some(p) = &self.tokens_file {
            all.extend(tokens_file(p)?);
        }
        if all.is_empty() {
            return Err("no token is configured".into());
        }
        TokenSet::new(all)
    }
}

/// The token set in force, replaced whole by each successful reload.
#[derive(Debug)]
pub struct Keyring {
    sources: Sources,
    /// The tokens last read from the secret (`Sources::secret`).
    secret: RwLock<Vec<Token>>,
    current: RwLock<Arc<TokenSet>>,
    changed: watch::Sender<u64>,
    every: Duration,
}

impl Keyring {
    /// Loads the set for the first time, with `secret` the tokens read from Secrets Manager at
    /// start: a bad source stops Jarvis.
    pub fn load(sources: Sources, secret: Vec<Token>, every: Duration) -> Result<Keyring, String> {
        let set = sources.load(&secret)?;
        Ok(Keyring {
            sources,
            secret: RwLock::new(secret),
            current: RwLock::new(Arc::new(set)),
            changed: watch::channel(0).0,
            every,
        })
    }

    /// The set in force.
    pub fn current(&self) -> Arc<TokenSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The caller presenting `token` under the set in force.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        self.current().authenticate(token)
    }

    /// Told (with a count) after each reload that changed nothing or something: dashboard
    /// sessions of tokens that are gone end then.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads the sources again; on success the new set replaces the old one, else the old one
    /// stays and the reason is returned (and logged by the caller). `why` says what asked.
    pub fn reload(&self, why: &str) -> Result<usize, String> {
        let secret = self
            .secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self.sources.load(&secret) {
            Ok(set) => {
                let n = set.len();
                let before = self.current();
                let same = before.summary() == set.summary()
                    && before
                        .tokens
                        .iter()
                        .zip(&set.tokens)
                        .all(|(a, b)| a.hash == b.hash);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                if !same {
                    tracing::info!(
                        reason = why,
                        tokens = self.current().summary().join(","),
                        "auth tokens reloaded"
                    );
                }
                self.changed.send_modify(|v| *v += 1);
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(
                    reason = why,
                    error = %e,
                    "auth tokens not reloaded; the tokens in force stay"
                );
                Err(e)
            }
        }
    }

    /// Reads the secret again (when tokens come from one), then [`reload`](Self::reload)s. A
    /// secret that cannot be read or holds a bad token keeps the set in force, as a bad file
    /// does.
    pub async fn refresh(&self, why: &str) -> Result<usize, String> {
        if let Some(source) = &self.sources.secret {
            let read = source
                .read()
                .await
                .map_err(|e| e.to_string())
                .and_then(|values| secret_tokens(&values));
            match read {
                Ok(tokens) => *self.secret.write().unwrap_or_else(|e| e.into_inner()) = tokens,
                Err(e) => {
                    tracing::warn!(
                        reason = why,
                        error = %e,
                        "auth tokens not reloaded; the tokens in force stay"
                    );
                    return Err(e);
                }
            }
        }
        self.reload(why)
    }

    /// Reloads ([`refresh`](Self::refresh)) on SIGHUP and every reload period (0: only on
    /// SIGHUP) until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = (!self.every.is_zero()).then(|| {
            let mut t =
                tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let timer = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                () = hangup => { let _ = self.refresh("SIGHUP").await; }
                () = timer => { let _ = self.refresh("timer").await; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, role: &str, token: &str) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            role: role.into(),
            token: Some(token.into()),
            sha256: None,
        }
    }

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Read < Role::Operate && Role::Operate < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse(" ADMIN "), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_token_is_found_by_its_text_or_its_hash_and_messages_never_quote_it() {
        let secret = "a-very-secret-token-123";
        let by_text = token_of(&entry("ci", "operate", secret), "t").unwrap();
        let hex: String = hash(secret).iter().map(|b| format!("{b:02x}")).collect();
        let by_hash = token_of(
            &TokenEntry {
                name: "ci2".into(),
                role: "read".into(),
                token: None,
                sha256: Some(hex.to_uppercase()),
            },
            "t",
        )
        .unwrap();
        assert_eq!(by_text.hash, by_hash.hash);
        let set = TokenSet::new(vec![by_text]).unwrap();
        let c = set.authenticate(secret).unwrap();
        assert_eq!((&*c.name, c.role), ("ci", Role::Operate));
        assert!(set.authenticate("a-very-secret-token-124").is_none());

        for bad in [
            entry("ci", "operate", "short"),
            entry("ci", "boss", secret),
            entry("c i", "read", secret),
        ] {
            let e = token_of(&bad, "t").unwrap_err();
            assert!(!e.contains(secret) && !e.contains("short\""), "{e}");
        }
        let e = parse_env_list(&format!("x:read:{secret},y:admin")).unwrap_err();
        assert!(!e.contains(secret), "{e}");
    }

    #[test]
    fn the_env_list_takes_tokens_and_hashes() {
        let secret = "another-secret-token-1";
        let hex: String = hash(secret).iter().map(|b| format!("{b:02x}")).collect();
        let list = parse_env_list(&format!(" a:read:{secret} , b:admin:sha256:{hex}x ,"));
        assert!(list.is_err());
        let list = parse_env_list(&format!("a:read:{secret},b:admin:sha256:{}", &hex)).unwrap();
        assert_eq!(list.len(), 2);
        // The same token twice is refused (one role per token).
        assert!(TokenSet::new(list).is_err());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let a = token_of(&entry("x", "read", "aaaaaaaaaaaaaaaa1"), "t").unwrap();
        let b = token_of(&entry("x", "admin", "aaaaaaaaaaaaaaaa2"), "t").unwrap();
        assert!(TokenSet::new(vec![a, b]).unwrap_err().contains("named x"));
    }

    #[test]
    fn a_bad_reload_keeps_the_old_set_and_its_message_holds_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"a\"\nrole = \"read\"\ntoken = \"first-token-0123456789\"\n",
        )
        .unwrap();
        let ring = Keyring::load(
            Sources {
                tokens_file: Some(path.clone()),
                ..Sources::default()
            },
            Vec::new(),
            Duration::ZERO,
        )
        .unwrap();
        assert!(ring.authenticate("first-token-0123456789").is_some());
        // A syntax error on the token's own line.
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"a\"\nrole = \"read\"\ntoken = \"second-token-0123456789\n",
        )
        .unwrap();
        let e = ring.reload("test").unwrap_err();
        assert!(!e.contains("second-token"), "{e}");
        assert!(e.contains("line"), "{e}");
        assert!(ring.authenticate("first-token-0123456789").is_some());
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken = \"second-token-0123456789\"\n",
        )
        .unwrap();
        ring.reload("test").unwrap();
        assert!(ring.authenticate("first-token-0123456789").is_none());
        assert_eq!(
            ring.authenticate("second-token-0123456789").unwrap().role,
            Role::Admin
        );
    }

    #[test]
    fn a_secret_gives_the_admin_token_and_the_list_and_never_quotes_them() {
        let admin = "admin-token-from-the-secret";
        let values: std::collections::HashMap<String, String> = [
            ("JARVIS_AUTH_TOKEN".to_string(), format!(" {admin} ")),
            (
                "JARVIS_AUTH_TOKENS".to_string(),
                "ci:operate:ci-token-from-the-secret".to_string(),
            ),
        ]
        .into();
        let set = TokenSet::new(secret_tokens(&values).unwrap()).unwrap();
        assert_eq!(set.summary(), ["JARVIS_AUTH_TOKEN:admin", "ci:operate"]);
        assert_eq!(set.authenticate(admin).unwrap().role, Role::Admin);
        let bad: std::collections::HashMap<String, String> =
            [("JARVIS_AUTH_TOKEN".to_string(), "short token".to_string())].into();
        let e = secret_tokens(&bad).unwrap_err();
        assert!(
            e.contains("JARVIS_AUTH_TOKEN") && !e.contains("short token"),
            "{e}"
        );
        assert!(secret_tokens(&Default::default()).unwrap().is_empty());
    }
}
