//! Model groups: a caller's `model` that names a group (`[ai.models.<group>]`) is served by
//! the group's deployments, in order (or weighted at random), then by its fallback groups.
//!
//! A deployment is passed over without a call when its key is not set, when its breaker is
//! OPEN, or while it cools down after a 429 (for its `Retry-After`, [`DEFAULT_COOLDOWN`] when
//! it gives none, at most [`MAX_COOLDOWN`]). A call that fails (5xx, timeout, connection
//! refused or reset, a stream that fails before its first byte, an answer Jarvis cannot read)
//! or answers 429 falls back to the next deployment; any other answer, a 4xx included, is the
//! answer. A stream that has started is never retried: it is the answer.
//!
//! Every call after a request's first is a retry and is bounded by the group's
//! [`RetryBudget`] (as in Envoy and Finagle): retries may be at most a share of the group's
//! requests over the last [`WINDOW_SECS`] s, plus a floor per second, so that an outage of
//! the first deployment does not double the load on the others. Skipping a deployment costs
//! no call and so no budget.
//!
//! Cooldowns and retry budgets are per instance (they are about the load this instance
//! sends); breakers are shared through the registry like every breaker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use secrecy::SecretString;

use super::Deployment;
use crate::config::{AiTimeouts, Integrations};
use crate::model::ai::ModelGroup;

use super::Provider;

/// How long a deployment that answered 429 without `Retry-After` cools down.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

/// The longest cooldown a `Retry-After` can ask for.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// The retry budget's window, seconds.
pub const WINDOW_SECS: usize = 10;

/// The retry budget's share of requests when the group gives none, percent.
pub const DEFAULT_RETRY_PERCENT: f64 = 20.0;

/// The retry budget's floor when the group gives none, retries per second.
pub const DEFAULT_RETRY_MIN_PER_SECOND: f64 = 1.0;

/// A model group, built.
pub struct Group {
    /// What it was built from (a group whose spec did not change is kept as it is, with its
    /// clients, cooldowns and retry budget).
    pub spec: ModelGroup,
    /// Its name.
    pub name: Arc<str>,
    /// Its deployments, in the configured order.
    pub members: Vec<Member>,
    /// Its fallback groups, in order.
    pub fallbacks: Vec<String>,
    /// Whether the order is drawn by weight for every request.
    pub weighted: bool,
    /// How many retries its requests may make.
    pub budget: RetryBudget,
}

/// One deployment of a group.
pub struct Member {
    /// `None` when its key variable is not set: it is passed over.
    pub deployment: Option<Deployment>,
    /// Its name (`x-jarvis-deployment`).
    pub name: Arc<str>,
    /// Its provider.
    pub provider: Provider,
    /// The variable its key should be in (for the message when it is not).
    pub key_var: String,
    /// The model, as the provider names it.
    pub upstream: String,
    /// Its weight (1 in an ordered group).
    pub weight: u32,
    /// Until when it cools down after a 429.
    cooling_until: Mutex<Option<Instant>>,
}

impl Member {
    /// How long it still cools down, if it does.
    pub fn cooling_left(&self) -> Option<Duration> {
        let until = (*self.cooling_until.lock().expect("not poisoned"))?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Cools it down for `for_` (capped at [`MAX_COOLDOWN`]).
    pub fn cool(&self, for_: Duration) {
        let until = Instant::now() + for_.min(MAX_COOLDOWN);
        let mut slot = self.cooling_until.lock().expect("not poisoned");
        if slot.is_none_or(|u| u < until) {
            *slot = Some(until);
        }
    }
}

/// How long a 429 answer asks to wait: `retry-after-ms`, else `Retry-After` in seconds, else
/// [`DEFAULT_COOLDOWN`].
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
    };
    // Capped before the conversion: `from_secs_f64` panics on values a `Duration` cannot hold
    // (`retry-after-ms: 1e300`).
    if let Some(ms) = read("retry-after-ms") {
        return Duration::from_secs_f64((ms / 1000.0).min(MAX_COOLDOWN.as_secs_f64()));
    }
    if let Some(s) = read("retry-after") {
        return Duration::from_secs_f64(s.min(MAX_COOLDOWN.as_secs_f64()));
    }
    DEFAULT_COOLDOWN
}

/// Builds the groups of the config file: one deployment (pooled client, breaker
/// `ai-<name>`) per entry, with the group's timeouts over the `JARVIS_AI_*` defaults.
pub fn build_groups(
    groups: &BTreeMap<String, ModelGroup>,
    integrations: &Integrations,
) -> anyhow::Result<HashMap<String, Arc<Group>>> {
    let mut out = HashMap::with_capacity(groups.len());
    for (name, g) in groups {
        out.insert(name.clone(), Arc::new(build_group(name, g, integrations)?));
    }
    Ok(out)
}

/// Builds group `name` from `g`.
pub fn build_group(
    name: &str,
    g: &ModelGroup,
    integrations: &Integrations,
) -> anyhow::Result<Group> {
    let defaults = integrations.ai_timeouts;
    let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
    let timeouts = AiTimeouts {
        connect: ms(g.connect_timeout_ms, defaults.connect),
        total: ms(g.timeout_ms, defaults.total),
        first_byte: ms(g.first_byte_timeout_ms, defaults.first_byte),
    };
    let p = &integrations.providers;
    let mut members = Vec::with_capacity(g.deployments.len());
    for (i, d) in g.deployments.iter().enumerate() {
        let provider = match d.provider.as_str() {
            "openai" => Provider::OpenAi,
            "anthropic" => Provider::Anthropic,
            "gemini" => Provider::Gemini,
            other => anyhow::bail!("ai.models.{name}: unknown provider {other:?}"),
        };
        let (default_key, default_url) = match provider {
            Provider::OpenAi => (&p.openai, &p.openai_base_url),
            Provider::Anthropic => (&p.anthropic, &p.anthropic_base_url),
            Provider::Gemini => (&p.gemini, &p.gemini_base_url),
        };
        let key_var = d
            .key_env
            .clone()
            .unwrap_or_else(|| provider.key_var().to_string());
        let key: Option<&SecretString> = match &d.key_env {
            Some(var) => p.named.get(var),
            None => default_key.as_ref(),
        };
        let member_name: Arc<str> = d.name_in(name, i).into();
        let deployment = match key {
            None => {
                tracing::warn!(
                    group = name,
                    deployment = &*member_name,
                    key_var,
                    "a model group's deployment has no key: it is passed over"
                );
                None
            }
            Some(k) => Some(Deployment::new(
                member_name.clone(),
                provider,
                format!("ai-{member_name}").into(),
                d.base_url.as_deref().unwrap_or(default_url),
                k,
                timeouts,
            )?),
        };
        members.push(Member {
            deployment,
            name: member_name,
            provider,
            key_var,
            upstream: d.model.trim().to_string(),
            weight: d.weight.unwrap_or(1),
            cooling_until: Mutex::new(None),
        });
    }
    Ok(Group {
        spec: g.clone(),
        name: name.into(),
        members,
        fallbacks: g.fallbacks.clone(),
        weighted: g.deployments.iter().any(|d| d.weight.is_some()),
        budget: RetryBudget::new(
            g.retry_budget_percent.unwrap_or(DEFAULT_RETRY_PERCENT),
            g.retry_budget_min_per_second
                .unwrap_or(DEFAULT_RETRY_MIN_PER_SECOND),
        ),
    })
}

/// The deployments a request for `group` may try, in order: the group's (drawn by weight
/// when it is weighted), then each fallback group's, breadth first, each group once.
pub fn plan<'a>(groups: &'a HashMap<String, Arc<Group>>, group: &'a Group) -> Vec<&'a Member> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = std::collections::VecDeque::from([group]);
    seen.insert(&*group.name);
    while let Some(g) = queue.pop_front() {
        if g.weighted {
            out.extend(weighted_order(&g.members, &mut rand::rng()));
        } else {
            out.extend(g.members.iter());
        }
        for f in &g.fallbacks {
            if let Some(next) = groups.get(f).map(|g| &**g) {
                if seen.insert(&*next.name) {
                    queue.push_back(next);
                }
            }
        }
    }
    out
}

/// `members` in a weighted random order (drawn without replacement): the first that is not
/// passed over is chosen in proportion to its weight among those that are not.
fn weighted_order<'a>(members: &'a [Member], rng: &mut impl Rng) -> Vec<&'a Member> {
    let mut left: Vec<&Member> = members.iter().collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|m| u64::from(m.weight)).sum();
        let mut pick = rng.random_range(0..total.max(1));
        let mut index = 0;
        for (i, m) in left.iter().enumerate() {
            if pick < u64::from(m.weight) {
                index = i;
                break;
            }
            pick -= u64::from(m.weight);
        }
        out.push(left.remove(index));
    }
    out
}

/// A retry budget: retries allowed while they stay under `percent` % of the requests of the
/// last [`WINDOW_SECS`] s, plus `min_per_second` × the window.
pub struct RetryBudget {
    percent: f64,
    min_per_second: f64,
    window: Mutex<Window>,
}

/// Requests and retries per second, in a ring of [`WINDOW_SECS`] buckets.
struct Window {
    started: Instant,
    /// The second the newest bucket counts (since `started`).
    second: u64,
    buckets: [(u32, u32); WINDOW_SECS],
}

impl Window {
    /// Moves the ring to now, emptying the seconds that passed.
    fn advance(&mut self) -> &mut (u32, u32) {
        let now = self.started.elapsed().as_secs();
        let passed = now.saturating_sub(self.second);
        for i in 1..=passed.min(WINDOW_SECS as u64) {
            self.buckets[((self.second + i) % WINDOW_SECS as u64) as usize] = (0, 0);
        }
        self.second = self.second.max(now);
        &mut self.buckets[(self.second % WINDOW_SECS as u64) as usize]
    }

    fn totals(&self) -> (u64, u64) {
        self.buckets.iter().fold((0, 0), |(r, t), (a, b)| {
            (r + u64::from(*a), t + u64::from(*b))
        })
    }
}

impl RetryBudget {
    /// A budget of `percent` % of requests plus `min_per_second`.
    pub fn new(percent: f64, min_per_second: f64) -> RetryBudget {
        RetryBudget {
            percent,
            min_per_second,
            window: Mutex::new(Window {
                started: Instant::now(),
                second: 0,
                buckets: [(0, 0); WINDOW_SECS],
            }),
        }
    }

    /// Counts a request.
    pub fn request(&self) {
        let mut w = self.window.lock().expect("not poisoned");
        w.advance().0 += 1;
    }

    /// Takes a retry if the budget allows one.
    pub fn try_retry(&self) -> bool {
        let mut w = self.window.lock().expect("not poisoned");
        w.advance();
        let (requests, retries) = w.totals();
        let allowed =
            requests as f64 * self.percent / 100.0 + self.min_per_second * WINDOW_SECS as f64;
        if (retries as f64) + 1.0 > allowed {
            return false;
        }
        w.advance().1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_retry_after_ms_is_capped_not_a_panic() {
        // Found by `props::retry_after_headers_never_panic`: `Duration::from_secs_f64(1e297)`.
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after-ms", "1e300".parse().unwrap());
        assert_eq!(retry_after(&h), MAX_COOLDOWN);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "1e300".parse().unwrap());
        assert_eq!(retry_after(&h), MAX_COOLDOWN);
    }

    #[test]
    fn the_retry_budget_allows_its_share_of_requests_and_its_floor() {
        // 20 % of 50 requests, no floor: 10 retries, not 11.
        let b = RetryBudget::new(20.0, 0.0);
        for _ in 0..50 {
            b.request();
        }
        assert!((0..10).all(|_| b.try_retry()));
        assert!(!b.try_retry());
        // A floor of 0.5/s over the 10 s window: 5 retries without any request.
        let b = RetryBudget::new(20.0, 0.5);
        assert!((0..5).all(|_| b.try_retry()));
        assert!(!b.try_retry());
        // Nothing at all: no retry.
        assert!(!RetryBudget::new(0.0, 0.0).try_retry());
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds_and_caps_them() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), DEFAULT_COOLDOWN);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(7));
        h.insert("retry-after", "100000".parse().unwrap());
        assert_eq!(retry_after(&h), MAX_COOLDOWN);
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_millis(250));
    }

    fn member(name: &str, weight: u32) -> Member {
        Member {
            deployment: None,
            name: name.into(),
            provider: Provider::OpenAi,
            key_var: "K".into(),
            upstream: "m".into(),
            weight,
            cooling_until: Mutex::new(None),
        }
    }

    #[test]
    fn weighted_order_follows_the_weights() {
        let members = [member("a", 3), member("b", 1)];
        let mut rng = rand::rng();
        let firsts = (0..4000)
            .filter(|_| &*weighted_order(&members, &mut rng)[0].name == "a")
            .count();
        // 3/4 of 4000 = 3000; the bounds are ~8 standard deviations wide.
        assert!((2780..=3220).contains(&firsts), "{firsts}");
        assert_eq!(weighted_order(&members, &mut rng).len(), 2);
    }

    #[test]
    fn a_cooldown_runs_out() {
        let m = member("a", 1);
        assert_eq!(m.cooling_left(), None);
        m.cool(Duration::from_secs(5));
        assert!(m.cooling_left().unwrap() > Duration::from_secs(4));
        m.cool(Duration::from_millis(1));
        // A shorter cooldown does not shorten a longer one.
        assert!(m.cooling_left().unwrap() > Duration::from_secs(4));
    }
}
