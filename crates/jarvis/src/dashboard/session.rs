//! Dashboard sign-in sessions: a person signs in once with the API token and gets an opaque,
//! random session ID (in an HttpOnly cookie, set by `api::dashboard`) that the API accepts
//! instead of the bearer header. The ID is not derived from the token, so the token cannot be
//! recovered from it; the server keeps only the ID's SHA-256, with the session's CSRF token.
//!
//! A session remembers the SHA-256 of the token it was signed in with (never the token): it
//! acts with that token's role as the token set in force says, and ends when a reload removes
//! the token (`crate::auth`), so rotating a token away signs out its browsers too.
//!
//! Sessions live in this instance's memory: signing out ends one at once, and a restart ends
//! them all. Behind a load balancer with several instances, a session is known only to the
//! instance that created it (use sticky sessions for the dashboard, or one instance).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after sign-in, however busy.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many sessions are kept; signing in beyond it ends the least recently used.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token a state-changing request made with the session's cookie must carry in
    /// `X-Jarvis-CSRF` (64 hex digits).
    pub csrf: String,
    /// The SHA-256 of the token the session was signed in with.
    pub token: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant-time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    fn alive(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE && now.duration_since(self.created) < LIFETIME
    }
}

/// The sessions of this instance, by the SHA-256 of their ID.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// No sessions.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Starts a session for the token whose hash is `token`: its ID (for the cookie; 64 hex
    /// digits) and the session itself.
    pub fn create(&self, token: [u8; 32]) -> (String, Session) {
        let id = random_hex();
        let now = Instant::now();
        let session = Session {
            csrf: random_hex(),
            token,
            created: now,
            last_seen: now,
        };
        let mut all = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.alive(now));
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                all.remove(&oldest);
            }
        }
        all.insert(hash(&id), session.clone());
        (id, session)
    }

    /// The live session of `id` (a cookie's value), marked as used now; `None` for an unknown,
    /// ended or expired one.
    pub fn find(&self, id: &str) -> Option<Session> {
        if id.len() != 64 {
            return None;
        }
        let key = hash(id);
        let now = Instant::now();
        let mut all = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        match all.get_mut(&key) {
            Some(s) if s.alive(now) => {
                s.last_seen = now;
                Some(s.clone())
            }
            Some(_) => {
                all.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Whether `id` names a live session (without marking it used: an open event stream does
    /// not keep a session alive by itself).
    pub fn is_live(&self, id: &str) -> bool {
        let now = Instant::now();
        self.by_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash(id))
            .is_some_and(|s| s.alive(now))
    }

    /// Ends the session of `id`; whether there was one.
    pub fn end(&self, id: &str) -> bool {
        self.by_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash(id))
            .is_some()
    }

    /// Ends every session whose token `keep` refuses (a token rotated away); how many ended.
    pub fn end_unless(&self, keep: impl Fn(&[u8; 32]) -> bool) -> usize {
        let mut all = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        let before = all.len();
        all.retain(|_, s| keep(&s.token));
        before - all.len()
    }

    /// Live and expired-but-not-yet-swept sessions.
    pub fn len(&self) -> usize {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::new();
        let (id, s) = sessions.create([1; 32]);
        assert_eq!(id.len(), 64);
        assert_ne!(id, s.csrf);
        let found = sessions.find(&id).expect("found");
        assert!(found.csrf_matches(&s.csrf));
        assert!(!found.csrf_matches("nope"));
        assert!(
            sessions.find(&s.csrf).is_none(),
            "the CSRF token is no session ID"
        );
        assert!(sessions.is_live(&id));
        assert!(sessions.end(&id));
        assert!(!sessions.is_live(&id));
        assert!(sessions.find(&id).is_none());
        assert!(!sessions.end(&id));
    }

    #[test]
    fn two_sessions_differ() {
        let sessions = Sessions::new();
        let (a, sa) = sessions.create([1; 32]);
        let (b, sb) = sessions.create([2; 32]);
        assert_ne!(a, b);
        assert_ne!(sa.csrf, sb.csrf);
        assert_eq!(sessions.len(), 2);
        // Rotating token 1 away ends its session only.
        assert_eq!(sessions.end_unless(|t| *t != [1; 32]), 1);
        assert!(sessions.find(&a).is_none());
        assert!(sessions.find(&b).is_some());
    }
}
