//! The AI gateway's response cache: an exact-match cache (normalised request → answer) for
//! the requests that ask for it.
//!
//! - **Which requests.** Non-streamed chat completions with `temperature` 0, and any
//!   non-streamed chat completion or embeddings request with `x-jarvis-cache: true`;
//!   `x-jarvis-cache: false` bypasses the cache even at temperature 0. Streams are never
//!   cached (an answer would have to be buffered whole before it could be stored, and replayed
//!   as events). Embeddings are deterministic, but a caller may not want a vector of a text it
//!   sends once kept for an hour, so they are cached only when asked.
//! - **The key** ([`key`]): SHA-256 of the endpoint and a canonical JSON of the body (object
//!   keys sorted, numbers written one way: `0` and `0.0` are the same), without the fields that
//!   do not change the answer ([`IGNORED`]). The model is the one the caller named. Neither the
//!   caller's domain nor its token is part of it: the same question gets the same answer,
//!   whoever holds a Jarvis token asks.
//! - **Where.** In memory by default ([`Memory`]: bounded in entries and bytes, least recently
//!   used first out, with a time to live); with `REDIS_HOST` set, in Redis ([`Redis`]) under
//!   `jarvis:ai:cache:<hex key>` with `PX` the time to live, shared by every instance. Redis is
//!   asked within `JARVIS_AI_CACHE_REDIS_TIMEOUT_MS`; a Redis that fails or is slow is a miss
//!   (logged at warn, without the password): a cache never fails a request.
//! - **What a hit is.** The stored status, `Content-Type` and body, with `x-jarvis-cache: hit`;
//!   no provider call, no breaker admission, no budget check. It is counted in usage as a
//!   request of deployment `cache` with no tokens and $0, and its `ai call` line says
//!   `cache_hit = true`. Only 2xx non-streamed answers are stored; a request that was looked
//!   up and answered by the provider carries `x-jarvis-cache: miss`.
//!
//! Prometheus: `jarvis_ai_cache_total{result="hit|miss|store_error|lookup_error"}`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use metrics::Counter;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::{resolve, AiError, Caller, Endpoint, Gateway, Reply, ReplyBody};
use crate::config::{AiCacheSettings, RedisConfig};
use crate::correlation::CorrelationId;
use crate::metrics::Metrics;

/// The request and answer header: `true`/`false` on a request, `hit`/`miss` on an answer.
pub const HEADER: &str = "x-jarvis-cache";

/// The prefix of the cache's keys in Redis.
pub const REDIS_PREFIX: &str = "jarvis:ai:cache:";

/// The deployment hits are counted under in usage and metrics.
pub const CACHE_DEPLOYMENT: &str = "cache";

/// The Prometheus counter of lookups and stores, labelled `result`.
pub const METRIC: &str = "jarvis_ai_cache_total";

/// Top-level request fields that do not change the answer, left out of the key: who the
/// caller says it is (`user`, `metadata`), whether OpenAI keeps the completion (`store`) and
/// the stream settings (only non-streamed requests are cached).
pub const IGNORED: &[&str] = &["user", "metadata", "store", "stream", "stream_options"];

/// The most idle Redis connections kept for reuse.
const MAX_IDLE: usize = 16;

/// The largest Redis reply read (a stored answer is at most `JARVIS_AI_CACHE_MAX_BYTES`).
const MAX_REPLY: usize = 1 << 30;

/// How often a failing Redis is logged, at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the caller asked of the cache with `x-jarvis-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ask {
    /// No header: cache a chat completion at temperature 0.
    #[default]
    Default,
    /// `true`: cache any non-streamed request.
    Use,
    /// `false`: do not look up or store.
    Bypass,
}

impl Ask {
    /// The header's value (`true` or `false`, any case); anything else is refused.
    pub fn parse(value: Option<&str>) -> Result<Ask, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(Ask::Default),
            Some(v) if v == "true" => Ok(Ask::Use),
            Some(v) if v == "false" => Ok(Ask::Bypass),
            Some(_) => Err(format!("the {HEADER} header must be true or false")),
        }
    }
}

/// Whether a request of `endpoint` with `body` is looked up and stored.
pub fn wanted(endpoint: Endpoint, body: &Value, ask: Ask) -> bool {
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    match ask {
        Ask::Bypass => false,
        Ask::Use => true,
        Ask::Default => {
            endpoint == Endpoint::ChatCompletions
                && body.get("temperature").and_then(Value::as_f64) == Some(0.0)
        }
    }
}

/// The cache key of a request: SHA-256 of the endpoint's path and the body's canonical JSON,
/// without [`IGNORED`] fields.
pub fn key(endpoint: Endpoint, body: &Value) -> [u8; 32] {
    let mut text = String::with_capacity(256);
    text.push_str(endpoint.path());
    text.push('\n');
    match body {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            write_object(&mut text, fields);
        }
        other => canonical(&mut text, other),
    }
    Sha256::digest(text.as_bytes()).into()
}

fn write_object(out: &mut String, fields: Vec<(&String, &Value)>) {
    out.push('{');
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        canonical(out, v);
    }
    out.push('}');
}

/// `value` as JSON with object keys sorted and whole numbers written without a fraction, so
/// that equal requests written differently have one text.
fn canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            write_object(out, fields);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(out, v);
            }
            out.push(']');
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (_, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            // 2^53: every whole f64 below it is exact as an integer.
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                let _ = write!(out, "{}", f as i64);
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The provider's status (2xx).
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// The deployment that answered (`x-jarvis-deployment` on a hit).
    pub deployment: String,
    /// The body.
    pub body: Bytes,
}

/// The first line of a stored answer in Redis (the format's version).
const FORMAT: &[u8] = b"jarvis-ai-cache-1\n";

impl Stored {
    /// Its size in memory, roughly (what `JARVIS_AI_CACHE_MAX_BYTES` counts).
    fn size(&self) -> u64 {
        (self.body.len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self.deployment.len()
            + 96) as u64
    }

    /// The bytes kept in Redis: the format line, the status, the content type and the
    /// deployment on a line each (none can hold a line break), then the body.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 96);
        out.extend_from_slice(FORMAT);
        out.extend_from_slice(
            format!(
                "{}\n{}\n{}\n",
                self.status,
                self.content_type.as_deref().unwrap_or(""),
                self.deployment
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Stored> {
        let rest = bytes.strip_prefix(FORMAT)?;
        let mut parts = rest.splitn(4, |b| *b == b'\n');
        let status = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let content_type = std::str::from_utf8(parts.next()?).ok()?;
        let deployment = std::str::from_utf8(parts.next()?).ok()?.to_string();
        let body = Bytes::copy_from_slice(parts.next()?);
        Some(Stored {
            status,
            content_type: (!content_type.is_empty()).then(|| content_type.to_string()),
            deployment,
            body,
        })
    }
}

/// The in-memory store: at most `max_entries` answers and `max_bytes` bytes, the least
/// recently used evicted first; an entry past its time to live is dropped when it is read (or
/// evicted in its turn). A hash map and a use-ordered map in one mutex: a dozen lines that no
/// maintained crate in the tree offers, and the lock is held only for map operations.
pub struct Memory {
    inner: Mutex<MemoryInner>,
    max_entries: usize,
    max_bytes: u64,
}

#[derive(Default)]
struct MemoryInner {
    entries: HashMap<[u8; 32], MemoryEntry>,
    /// Use order: the smallest tick is the least recently used.
    order: BTreeMap<u64, [u8; 32]>,
    tick: u64,
    bytes: u64,
}

struct MemoryEntry {
    stored: Arc<Stored>,
    expires: Instant,
    tick: u64,
    size: u64,
}

impl MemoryInner {
    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= e.size;
        }
    }
}

impl Memory {
    /// An empty store with these bounds.
    pub fn new(max_entries: usize, max_bytes: u64) -> Memory {
        Memory {
            inner: Mutex::default(),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer under `key` if it is there and alive at `now` (it becomes the most recently
    /// used).
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<Stored>> {
        let mut inner = self.lock();
        let tick = inner.tick + 1;
        let entry = inner.entries.get_mut(key)?;
        if entry.expires <= now {
            inner.remove(key);
            return None;
        }
        let old = std::mem::replace(&mut entry.tick, tick);
        let stored = entry.stored.clone();
        inner.tick = tick;
        inner.order.remove(&old);
        inner.order.insert(tick, *key);
        Some(stored)
    }

    /// Keeps `stored` under `key` until `expires`, evicting the least recently used as the
    /// bounds require; an answer larger than the byte bound is not kept.
    pub fn put(&self, key: [u8; 32], stored: Stored, expires: Instant) {
        let size = stored.size();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.remove(&key);
        while inner.entries.len() >= self.max_entries || inner.bytes + size > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.size;
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.order.insert(tick, key);
        inner.bytes += size;
        inner.entries.insert(
            key,
            MemoryEntry {
                stored: Arc::new(stored),
                expires,
                tick,
                size,
            },
        );
    }

    /// Entries and bytes held.
    pub fn len(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

/// Why Redis did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No answer within `JARVIS_AI_CACHE_REDIS_TIMEOUT_MS`.
    #[error("no answer within {} ms (JARVIS_AI_CACHE_REDIS_TIMEOUT_MS)", .0.as_millis())]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Redis answered with an error (`-ERR …`; never the password: it is not echoed).
    #[error("Redis answered: {0}")]
    Refused(String),
    /// Redis answered something this client does not read.
    #[error("unexpected answer from Redis")]
    Protocol,
}

/// A Redis reply, as far as `AUTH`, `GET` and `SET` need.
#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Simple(String),
    Bulk(Option<Vec<u8>>),
    Integer(i64),
}

/// A minimal Redis client for the three commands the cache sends (`AUTH`, `GET`, `SET … PX`),
/// over a small pool of idle connections. Why not the `redis` crate: it would add a dozen
/// crates to a lean tree for three commands; what the cache needs beyond them — a deadline
/// on every command, a connection dropped (not reused) when a command fails or times out
/// half-way — is a few lines here. A command uses one connection at a time (no pipelining).
pub struct Redis {
    addr: String,
    password: Option<SecretString>,
    timeout: Duration,
    idle: Mutex<Vec<TcpStream>>,
}

impl Redis {
    /// A client of `config`'s Redis whose every command ends within `timeout`.
    pub fn new(config: &RedisConfig, timeout: Duration) -> Redis {
        Redis {
            addr: format!("{}:{}", config.host, config.port),
            password: config.password.clone(),
            timeout,
            idle: Mutex::default(),
        }
    }

    /// `host:port` (for log lines; the password is never in them).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        match self.command(&[b"GET", key.as_bytes()]).await? {
            Resp::Bulk(v) => Ok(v),
            _ => Err(RedisError::Protocol),
        }
    }

    /// `SET key value PX ttl`.
    pub async fn set_px(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let ms = ttl.as_millis().max(1).to_string();
        match self
            .command(&[b"SET", key.as_bytes(), value, b"PX", ms.as_bytes()])
            .await?
        {
            Resp::Simple(s) if s == "OK" => Ok(()),
            _ => Err(RedisError::Protocol),
        }
    }

    /// One command on a pooled connection (or a new one, authenticated), within the timeout.
    /// The connection goes back to the pool only when the command completed: one abandoned
    /// half-way (timeout, error) may still have a reply coming.
    async fn command(&self, args: &[&[u8]]) -> Result<Resp, RedisError> {
        let work = async {
            let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let (conn, reply) = match pooled {
                Some(mut c) => match roundtrip(&mut c, args).await {
                    // An idle connection Redis (or a proxy) closed meanwhile: once more on a
                    // new one, within the same deadline.
                    Err(RedisError::Io(_)) => {
                        let mut fresh = self.connect().await?;
                        let reply = roundtrip(&mut fresh, args).await;
                        (fresh, reply)
                    }
                    reply => (c, reply),
                },
                None => {
                    let mut fresh = self.connect().await?;
                    let reply = roundtrip(&mut fresh, args).await;
                    (fresh, reply)
                }
            };
            let reply = reply?;
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            Ok(reply)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(RedisError::Timeout(self.timeout)))
    }

    async fn connect(&self) -> Result<TcpStream, RedisError> {
        let mut conn = TcpStream::connect(&self.addr).await?;
        conn.set_nodelay(true)?;
        if let Some(password) = &self.password {
            match roundtrip(&mut conn, &[b"AUTH", password.expose_secret().as_bytes()]).await? {
                Resp::Simple(s) if s == "OK" => {}
                _ => return Err(RedisError::Protocol),
            }
        }
        Ok(conn)
    }
}

/// Writes one command (a RESP array of bulk strings) and reads its reply.
async fn roundtrip(conn: &mut TcpStream, args: &[&[u8]]) -> Result<Resp, RedisError> {
    let mut out = Vec::with_capacity(64 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.write_all(&out).await?;
    let mut buf = Vec::with_capacity(512);
    loop {
        if let Some(reply) = parse_reply(&buf)? {
            return reply;
        }
        if conn.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
}

/// One whole reply at the start of `buf` (`None`: more bytes are needed). A `-` error reply
/// is `Some(Err(Refused))`.
fn parse_reply(buf: &[u8]) -> Result<Option<Result<Resp, RedisError>>, RedisError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    // A reply starts with its type byte; a line without one (`\r\n` first) is not RESP.
    if end == 0 {
        return Err(RedisError::Protocol);
    }
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| RedisError::Protocol)?;
    match buf.first() {
        Some(b'+') => Ok(Some(Ok(Resp::Simple(line.to_string())))),
        Some(b'-') => Ok(Some(Err(RedisError::Refused(line.to_string())))),
        Some(b':') => line
            .parse()
            .map(|i| Some(Ok(Resp::Integer(i))))
            .map_err(|_| RedisError::Protocol),
        Some(b'$') => {
            let len: i64 = line.parse().map_err(|_| RedisError::Protocol)?;
            if len < 0 {
                return Ok(Some(Ok(Resp::Bulk(None))));
            }
            let len = usize::try_from(len).map_err(|_| RedisError::Protocol)?;
            if len > MAX_REPLY {
                return Err(RedisError::Protocol);
            }
            let start = end + 2;
            if buf.len() < start + len + 2 {
                return Ok(None);
            }
            Ok(Some(Ok(Resp::Bulk(Some(buf[start..start + len].to_vec())))))
        }
        _ => Err(RedisError::Protocol),
    }
}

/// Where answers are kept.
enum Backend {
    Memory(Memory),
    Redis(Redis),
}

/// The response cache: its store, time to live and counters.
pub struct ResponseCache {
    backend: Backend,
    ttl: Duration,
    max_bytes: u64,
    hits: Counter,
    misses: Counter,
    store_errors: Counter,
    lookup_errors: Counter,
    /// When Redis was last logged as failing (ms since `started`), to log it at most every
    /// [`WARN_EVERY`].
    warned_at: AtomicU64,
    started: Instant,
}

impl ResponseCache {
    /// The cache `settings` describe (`None` when turned off), in Redis when `redis` is set,
    /// else in memory.
    pub fn new(
        settings: &AiCacheSettings,
        redis: Option<&RedisConfig>,
        metrics: &Metrics,
    ) -> Option<Arc<ResponseCache>> {
        if !settings.enabled {
            return None;
        }
        metrics.describe(
            METRIC,
            None,
            "AI response cache lookups and stores, by result (hit, miss, store_error, \
             lookup_error).",
        );
        let counter = |result| metrics.counter(METRIC, &[("result", result)]);
        let backend = match redis {
            Some(r) => Backend::Redis(Redis::new(r, settings.redis_timeout)),
            None => Backend::Memory(Memory::new(settings.max_entries, settings.max_bytes)),
        };
        Some(Arc::new(ResponseCache {
            backend,
            ttl: settings.ttl,
            max_bytes: settings.max_bytes,
            hits: counter("hit"),
            misses: counter("miss"),
            store_errors: counter("store_error"),
            lookup_errors: counter("lookup_error"),
            warned_at: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    /// Where answers are kept (`memory` or `redis`).
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    fn warn(&self, redis: &Redis, what: &str, e: &RedisError) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .warned_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                redis = redis.addr(),
                error = %e,
                "AI response cache: Redis {what} failed; the provider is called instead \
                 (logged at most every 10 s)"
            );
        }
    }

    /// The stored answer under `key`, if any (a failing Redis is a miss).
    pub async fn lookup(&self, key: &[u8; 32]) -> Option<Stored> {
        let found = match &self.backend {
            Backend::Memory(m) => m.get(key, Instant::now()).map(|s| (*s).clone()),
            Backend::Redis(r) => match r.get(&redis_key(key)).await {
                Ok(v) => v.and_then(|bytes| Stored::decode(&bytes)),
                Err(e) => {
                    self.lookup_errors.increment(1);
                    self.warn(r, "lookup", &e);
                    return None;
                }
            },
        };
        match &found {
            Some(_) => self.hits.increment(1),
            None => self.misses.increment(1),
        }
        found
    }

    /// Keeps `stored` under `key` for the time to live (not when larger than
    /// `JARVIS_AI_CACHE_MAX_BYTES`).
    pub async fn store(&self, key: &[u8; 32], stored: Stored) {
        if stored.size() > self.max_bytes {
            return;
        }
        match &self.backend {
            Backend::Memory(m) => m.put(*key, stored, Instant::now() + self.ttl),
            Backend::Redis(r) => {
                if let Err(e) = r.set_px(&redis_key(key), &stored.encode(), self.ttl).await {
                    self.store_errors.increment(1);
                    self.warn(r, "store", &e);
                }
            }
        }
    }
}

/// `jarvis:ai:cache:<hex>`.
fn redis_key(key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(REDIS_PREFIX.len() + 64);
    out.push_str(REDIS_PREFIX);
    for b in key {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Gateway {
    /// Gives the gateway a response cache (`None`: none).
    pub fn with_cache(mut self, cache: Option<Arc<ResponseCache>>) -> Gateway {
        self.cache = cache;
        self
    }

    /// [`Gateway::call`] through the response cache: a request the cache takes ([`wanted`]) is
    /// answered from it when an identical one was answered before, else by the provider and
    /// its 2xx non-streamed answer stored. `x-jarvis-cache: hit|miss` is added to the answers
    /// of looked-up requests.
    pub async fn cached_call(
        &self,
        endpoint: Endpoint,
        body: Value,
        correlation: &CorrelationId,
        caller: &Caller,
        ask: Ask,
    ) -> Result<Reply, AiError> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (Some(cache), Some(model)) = (&self.cache, model) else {
            return self.call(endpoint, body, correlation, caller).await;
        };
        if !wanted(endpoint, &body, ask) {
            return self.call(endpoint, body, correlation, caller).await;
        }
        let started = Instant::now();
        let key = key(endpoint, &body);
        if let Some(stored) = cache.lookup(&key).await {
            return Ok(self.hit(&model, stored, caller, started));
        }
        let mut reply = self.call(endpoint, body, correlation, caller).await?;
        reply
            .headers
            .insert(HEADER, "miss".parse().expect("a header value"));
        if let (200..=299, ReplyBody::Full(bytes)) = (reply.status, &reply.body) {
            let stored = Stored {
                status: reply.status,
                content_type: reply.content_type.clone(),
                deployment: reply.deployment.to_string(),
                body: bytes.clone(),
            };
            match cache.backend {
                Backend::Memory(_) => cache.store(&key, stored).await,
                // Off the answer's path: the caller does not wait for Redis.
                Backend::Redis(_) => {
                    let cache = cache.clone();
                    tokio::spawn(
                        async move { cache.store(&key, stored).await }
                            .instrument(tracing::Span::current()),
                    );
                }
            }
        }
        Ok(reply)
    }

    /// A hit as the caller's answer: logged and counted (deployment `cache`, no tokens, $0).
    fn hit(&self, model: &str, stored: Stored, caller: &Caller, started: Instant) -> Reply {
        // The deployment that gave the stored answer (names are shared: a group's deployment
        // is the same on every instance).
        let deployment: Arc<str> = if stored.deployment.is_empty() {
            Arc::from(CACHE_DEPLOYMENT)
        } else {
            Arc::from(stored.deployment.as_str())
        };
        let (provider, upstream) = resolve(model)
            .map(|r| (r.provider.prefix(), r.upstream))
            .unwrap_or(("", model.to_string()));
        let latency = started.elapsed();
        self.spend.record(&super::spend::CallUsage {
            model,
            deployment: CACHE_DEPLOYMENT,
            provider,
            upstream_model: &upstream,
            domain: &caller.domain,
            token: &caller.token,
            failed: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            latency,
        });
        tracing::info!(
            model,
            deployment = &*deployment,
            domain = caller.domain.as_str(),
            status = stored.status,
            outcome = "answered",
            cache_hit = true,
            latency_ms = latency.as_millis() as u64,
            cost_usd = 0.0,
            "ai call"
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(HEADER, "hit".parse().expect("a header value"));
        Reply {
            status: stored.status,
            content_type: stored.content_type,
            headers,
            deployment,
            fallbacks: None,
            body: ReplyBody::Full(stored.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::props::config(512))]

        /// Whatever Redis (or anything listening on its port) answers, the reply reader
        /// answers: a reply, "more bytes", or a protocol error.
        #[test]
        fn redis_replies_never_panic(
            buf in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                "[-+:$*]?[ -~]{0,12}(\r\n)?[ -~]{0,12}(\r\n)?"
                    .prop_map(String::into_bytes),
                "\\$-?[0-9]{1,20}\r\n[a-z]{0,8}(\r\n)?".prop_map(String::into_bytes),
            ],
        ) {
            let _ = parse_reply(&buf);
        }
    }

    #[test]
    fn a_reply_without_a_type_byte_is_a_protocol_error() {
        // Found by `redis_replies_never_panic`: `&buf[1..0]` panicked.
        assert!(matches!(parse_reply(b"\r\n"), Err(RedisError::Protocol)));
        assert!(matches!(parse_reply(b"\r\nx"), Err(RedisError::Protocol)));
    }

    fn k(body: Value) -> [u8; 32] {
        key(Endpoint::ChatCompletions, &body)
    }

    #[test]
    fn key_ignores_key_order_number_spelling_and_fields_that_do_not_change_the_answer() {
        let base = k(json!({"model": "gpt-4o", "temperature": 0,
                            "messages": [{"role": "user", "content": "hi"}]}));
        // Key order, at every depth.
        assert_eq!(
            base,
            k(json!({"messages": [{"content": "hi", "role": "user"}],
                     "temperature": 0, "model": "gpt-4o"}))
        );
        // 0 and 0.0 are one number.
        let zero_float: Value = serde_json::from_str(
            r#"{"model":"gpt-4o","temperature":0.0,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(base, k(zero_float));
        // Who asks and the stream settings do not change the answer.
        assert_eq!(
            base,
            k(json!({"model": "gpt-4o", "temperature": 0, "user": "alice",
                     "metadata": {"a": "b"}, "store": true, "stream": false,
                     "messages": [{"role": "user", "content": "hi"}]}))
        );
    }

    #[test]
    fn key_changes_with_anything_that_changes_the_answer() {
        let base = json!({"model": "gpt-4o", "temperature": 0,
                          "messages": [{"role": "user", "content": "hi"}]});
        let b = k(base.clone());
        let variants = [
            json!({"model": "gpt-4o-mini", "temperature": 0,
                   "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "gpt-4o", "temperature": 0,
                   "messages": [{"role": "user", "content": "hi!"}]}),
            json!({"model": "gpt-4o", "temperature": 0, "max_tokens": 5,
                   "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "gpt-4o", "temperature": 0, "seed": 1,
                   "messages": [{"role": "user", "content": "hi"}]}),
            // A nested `user` is content, not the caller's name.
            json!({"model": "gpt-4o", "temperature": 0,
                   "messages": [{"role": "user", "content": "hi", "user": "x"}]}),
        ];
        for v in variants {
            assert_ne!(b, k(v.clone()), "{v}");
        }
        // The endpoint is part of the key.
        assert_ne!(b, key(Endpoint::Embeddings, &base));
        // Fractions stay distinct.
        assert_ne!(
            k(json!({"model": "m", "top_p": 0.5})),
            k(json!({"model": "m", "top_p": 0.25}))
        );
    }

    #[test]
    fn which_requests_are_cached() {
        let chat = Endpoint::ChatCompletions;
        let emb = Endpoint::Embeddings;
        assert!(wanted(chat, &json!({"temperature": 0}), Ask::Default));
        assert!(wanted(chat, &json!({"temperature": 0.0}), Ask::Default));
        assert!(!wanted(chat, &json!({"temperature": 0.7}), Ask::Default));
        assert!(!wanted(chat, &json!({}), Ask::Default));
        assert!(wanted(chat, &json!({"temperature": 0.7}), Ask::Use));
        assert!(!wanted(chat, &json!({"temperature": 0}), Ask::Bypass));
        assert!(!wanted(
            chat,
            &json!({"temperature": 0, "stream": true}),
            Ask::Default
        ));
        assert!(!wanted(chat, &json!({"stream": true}), Ask::Use));
        assert!(!wanted(emb, &json!({"input": "x"}), Ask::Default));
        assert!(wanted(emb, &json!({"input": "x"}), Ask::Use));
        assert_eq!(Ask::parse(None), Ok(Ask::Default));
        assert_eq!(Ask::parse(Some("TRUE")), Ok(Ask::Use));
        assert_eq!(Ask::parse(Some("false")), Ok(Ask::Bypass));
        assert!(Ask::parse(Some("yes")).is_err());
    }

    fn stored(body: &str) -> Stored {
        Stored {
            status: 200,
            content_type: Some("application/json".into()),
            deployment: "openai".into(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn stored_answers_round_trip_through_their_redis_form() {
        let s = stored("{\"a\":\"line\\nbreak\"}\n");
        assert_eq!(Stored::decode(&s.encode()), Some(s));
        let none = Stored {
            content_type: None,
            ..stored("")
        };
        assert_eq!(Stored::decode(&none.encode()), Some(none));
        assert_eq!(Stored::decode(b"something else"), None);
    }

    #[test]
    fn memory_expires_entries_and_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let m = Memory::new(2, 1 << 20);
        let ttl = Duration::from_secs(60);
        m.put([1; 32], stored("one"), t0 + ttl);
        m.put([2; 32], stored("two"), t0 + ttl);
        // Reading 1 makes 2 the least recently used: a third entry evicts 2.
        assert!(m.get(&[1; 32], t0).is_some());
        m.put([3; 32], stored("three"), t0 + ttl);
        assert!(m.get(&[2; 32], t0).is_none());
        assert_eq!(m.get(&[1; 32], t0).unwrap().body, "one");
        assert_eq!(m.get(&[3; 32], t0).unwrap().body, "three");
        assert_eq!(m.len().0, 2);
        // Past its time to live an entry is gone (and its bytes freed).
        assert!(m.get(&[1; 32], t0 + ttl).is_none());
        assert_eq!(m.len().0, 1);
    }

    #[test]
    fn memory_holds_to_its_byte_bound() {
        let t0 = Instant::now();
        let one = stored(&"x".repeat(400));
        let size = one.size();
        let m = Memory::new(100, size * 2);
        let later = t0 + Duration::from_secs(60);
        m.put([1; 32], one.clone(), later);
        m.put([2; 32], one.clone(), later);
        m.put([3; 32], one.clone(), later);
        assert_eq!(m.len(), (2, size * 2));
        assert!(m.get(&[1; 32], t0).is_none());
        // Replacing an entry does not count it twice.
        m.put([3; 32], one.clone(), later);
        assert_eq!(m.len(), (2, size * 2));
        // An answer larger than the whole bound is not kept.
        m.put([4; 32], stored(&"y".repeat(10_000)), later);
        assert!(m.get(&[4; 32], t0).is_none());
    }

    /// A fake Redis that reads one command per connection, answers it with a nil bulk string
    /// and closes the connection (as Redis does to idle clients with `timeout` set); it
    /// returns the commands it read.
    async fn closing_redis() -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                // The client writes each command whole: one read is one command.
                loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    log.lock().unwrap().push(text.clone());
                    if text.contains("AUTH") {
                        conn.write_all(b"+OK\r\n").await.unwrap();
                        continue;
                    }
                    conn.write_all(b"$-1\r\n").await.unwrap();
                    break;
                }
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn redis_retries_once_on_a_pooled_connection_that_was_closed_and_authenticates() {
        let (port, seen) = closing_redis().await;
        let redis = Redis::new(
            &RedisConfig {
                host: "127.0.0.1".into(),
                port,
                password: Some(SecretString::from("s3cret")),
            },
            Duration::from_secs(5),
        );
        assert_eq!(redis.get("k1").await.unwrap(), None);
        // The pooled connection is closed by now: the command goes again on a new one.
        assert_eq!(redis.get("k2").await.unwrap(), None);
        let seen = seen.lock().unwrap().clone();
        let auths = seen.iter().filter(|c| c.contains("AUTH")).count();
        assert_eq!(auths, 2, "{seen:?}");
        assert!(seen.iter().any(|c| c.contains("s3cret")));
        assert!(seen.iter().any(|c| c.contains("k2")), "{seen:?}");
    }

    #[tokio::test]
    async fn redis_that_does_not_answer_times_out() {
        // Accepts, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap().0);
            }
        });
        let redis = Redis::new(
            &RedisConfig {
                host: "127.0.0.1".into(),
                port,
                password: None,
            },
            Duration::from_millis(50),
        );
        let started = Instant::now();
        assert!(matches!(redis.get("k").await, Err(RedisError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn redis_replies_are_read_whole() {
        assert!(matches!(parse_reply(b"+O"), Ok(None)));
        assert!(matches!(parse_reply(b"+OK\r\n"), Ok(Some(Ok(Resp::Simple(s)))) if s == "OK"));
        assert!(matches!(
            parse_reply(b"$-1\r\n"),
            Ok(Some(Ok(Resp::Bulk(None))))
        ));
        assert!(matches!(parse_reply(b"$5\r\nhel"), Ok(None)));
        assert!(
            matches!(parse_reply(b"$5\r\nhe\r\no\r\n"), Ok(Some(Ok(Resp::Bulk(Some(v))))) if v == b"he\r\no")
        );
        assert!(matches!(
            parse_reply(b":3\r\n"),
            Ok(Some(Ok(Resp::Integer(3))))
        ));
        assert!(matches!(
            parse_reply(b"-WRONGPASS invalid\r\n"),
            Ok(Some(Err(RedisError::Refused(_))))
        ));
        assert!(parse_reply(b"?x\r\n").is_err());
    }
}
