//! The AI gateway's provider side: which deployment serves a model name, and the call to it
//! through the deployment's circuit breaker.
//!
//! A deployment ([`Deployment`]) is one provider at one endpoint with one key, its own pooled
//! HTTP client and its own breaker. Zero config gives one per provider whose key is set:
//! `openai` (`OPENAI_API_KEY`; OpenAI, or any OpenAI-compatible server at `OPENAI_BASE_URL`),
//! `anthropic` (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`) and `gemini` (`GEMINI_API_KEY`,
//! `GEMINI_BASE_URL`), serving `openai/<model>` (and bare names), `anthropic/<model>` and
//! `gemini/<model>` ([`model::resolve`]).
//!
//! - `openai` is the fast path ([`openai`]): a request body is forwarded as the caller wrote it
//!   (tools, JSON mode and any other field pass through) with only `model` rewritten to the
//!   provider's name; the answer comes back as the provider gave it, a stream without being
//!   buffered.
//! - `anthropic` ([`anthropic`]) and `gemini` ([`gemini`]) are translated: the chat body is
//!   parsed into [`chat::ChatRequest`], written in the provider's wire format, and the answer
//!   (a stream event by event, [`sse::TranslatedStream`]) and its errors are written back in
//!   OpenAI's shapes.
//!
//! The HTTP side of Jarvis (routes, OpenAI's error shape) is `api::ai`.
//!
//! Every call asks the deployment's breaker (`ai-openai`, `ai-anthropic`, `ai-gemini`, from
//! the shared registry, so its state is the same on every instance) first: an OPEN breaker
//! refuses without a call. 5xx answers, timeouts and connection errors count as failures;
//! other answers count as successes, except a 429, which counts as neither (the provider is
//! up, the caller is over its rate limit). A stream that the caller abandons counts as
//! neither; one the provider cuts (or, translated, reports an error in) counts as a failure.
//!
//! One log line per call (`ai call`): model, deployment, domain, status, `latency_ms`, token
//! usage and `cost_usd` when the answer has `usage` (a stream: when its last event carries it,
//! as with `stream_options.include_usage`); never the prompt, never the key. Every chat and
//! embeddings call is counted and priced by [`spend::Spend`], whose budgets are checked before
//! the call goes out.
//!
//! [`Gateway::cached_call`] ([`cache`]) puts the response cache in front of [`Gateway::call`].

pub mod anthropic;
pub mod cache;
pub mod chat;
pub mod gemini;
pub mod model;
pub mod openai;
pub mod price;
pub mod route;
pub mod spend;
pub mod sse;
pub mod task;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::breakers::{Admission, BreakerRegistry, Outcome};
use crate::config::{AiTimeouts, Integrations};
use crate::correlation::{CorrelationId, HEADER as CORRELATION_HEADER};
use crate::names::Name;

pub use model::{resolve, Provider, ResolveError, Resolved};

/// The breaker every call to the `openai` deployment goes through.
pub const OPENAI_BREAKER: &str = "ai-openai";

/// The deployment name of OpenAI (the `x-jarvis-deployment` header, the log's `deployment`).
pub const OPENAI_DEPLOYMENT: &str = "openai";

/// The breaker of the `anthropic` deployment.
pub const ANTHROPIC_BREAKER: &str = "ai-anthropic";

/// The breaker of the `gemini` deployment.
pub const GEMINI_BREAKER: &str = "ai-gemini";

/// How often every instance reads the stored model groups.
pub const GROUP_SYNC_EVERY: Duration = Duration::from_secs(2);

/// The most of a provider's error message quoted in a Jarvis error.
const MAX_QUOTED: usize = 300;

/// The routes that take a model and a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /chat/completions`.
    ChatCompletions,
    /// `POST /embeddings`.
    Embeddings,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// Why a call was not answered by the provider.
#[derive(Debug)]
pub enum AiError {
    /// The request itself is wrong (not an object, no `model`); `param` names the field.
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The field, when one is at fault.
        param: Option<&'static str>,
    },
    /// The model name cannot be served.
    Model(ResolveError),
    /// The provider is not configured: its key variable is not set.
    NotConfigured(Provider),
    /// No provider is configured at all (`GET /models`).
    NoProvider,
    /// The provider has no counterpart for what was asked (embeddings from Anthropic).
    Unsupported {
        /// The provider.
        provider: Provider,
        /// What it cannot do, and what to use instead.
        what: &'static str,
    },
    /// The deployment's breaker is OPEN (or its half-open trial is taken): nothing was called.
    BreakerOpen {
        /// The deployment.
        deployment: Arc<str>,
        /// The breaker's name.
        breaker: Arc<str>,
        /// How long until the breaker lets a trial through, when known.
        retry_after: Option<Duration>,
    },
    /// The provider did not answer in time.
    Timeout {
        /// The deployment.
        deployment: Arc<str>,
        /// Which limit ran out (`JARVIS_AI_TIMEOUT_MS` …).
        limit: &'static str,
        /// Its value.
        after: Duration,
    },
    /// The provider could not be reached, or the connection failed while reading.
    Unreachable {
        /// The deployment.
        deployment: Arc<str>,
        /// What failed (no URL, no key).
        detail: String,
    },
    /// The provider answered 5xx.
    UpstreamFailed {
        /// The deployment.
        deployment: Arc<str>,
        /// Its status.
        status: u16,
        /// Its error message, when it gave one (cut, key removed).
        message: Option<String>,
    },
    /// The provider answered 2xx with something that is not what the route expects.
    BadAnswer {
        /// The deployment.
        deployment: Arc<str>,
        /// What is wrong with it.
        detail: String,
    },
    /// A budget that holds the call is spent: nothing was called.
    Budget(spend::BudgetExceeded),
    /// Every deployment of a model group (and of its fallbacks) that could serve the call is
    /// cooling down after a 429 or OPEN, at least one cooling: nothing was called.
    Cooling {
        /// The group asked for.
        group: Arc<str>,
        /// The shortest cooldown left.
        retry_after: Duration,
    },
    /// No deployment of a model group (or of its fallbacks) can serve the call at all.
    GroupUnavailable {
        /// The group asked for.
        group: Arc<str>,
        /// Why (which keys are missing).
        detail: String,
    },
}

impl AiError {
    /// Whether a model group tries its next deployment after this failure: the deployment
    /// failed (5xx, timeout, unreachable, unreadable answer, OPEN, not configured), as opposed
    /// to the request being wrong or over budget.
    fn falls_back(&self) -> bool {
        matches!(
            self,
            AiError::Timeout { .. }
                | AiError::Unreachable { .. }
                | AiError::UpstreamFailed { .. }
                | AiError::BadAnswer { .. }
                | AiError::BreakerOpen { .. }
                | AiError::NotConfigured(_)
        )
    }
}

impl fmt::Display for AiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AiError::InvalidRequest { message, .. } => f.write_str(message),
            AiError::Budget(b) => write!(
                f,
                "the {} AI budget of {} is spent (${:.4} of ${:.4}); calls are taken again \
                 from {}",
                b.period,
                b.scope,
                b.spent_usd,
                b.limit_usd,
                b.resets_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            AiError::Model(e) => e.fmt(f),
            AiError::Cooling { group, retry_after } => write!(
                f,
                "every deployment of model group {group} is rate limited (cooling down after a \
                 429) or failing (circuit OPEN), so Jarvis did not call any; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            AiError::GroupUnavailable { group, detail } => write!(
                f,
                "model group {group} has no deployment that can serve this call: {detail}"
            ),
            AiError::NotConfigured(provider) => {
                write!(
                    f,
                    "the {} provider is not configured on this Jarvis: set {} in its \
                     environment",
                    provider.prefix(),
                    provider.key_var()
                )?;
                if *provider == Provider::OpenAi {
                    f.write_str(" (and OPENAI_BASE_URL for an OpenAI-compatible server)")?;
                }
                f.write_str(" and restart it")
            }
            AiError::NoProvider => f.write_str(
                "no model provider is configured on this Jarvis: set OPENAI_API_KEY, \
                 ANTHROPIC_API_KEY or GEMINI_API_KEY in its environment and restart it",
            ),
            AiError::Unsupported { provider, what } => {
                write!(f, "the {} provider {what}", provider.prefix())
            }
            AiError::BreakerOpen {
                deployment,
                breaker,
                retry_after,
            } => {
                write!(
                    f,
                    "the {deployment} deployment is failing: its circuit breaker '{breaker}' is \
                     OPEN, so Jarvis did not call it"
                )?;
                if let Some(d) = retry_after {
                    write!(f, "; try again in {} s", d.as_secs().max(1))?;
                }
                Ok(())
            }
            AiError::Timeout {
                deployment,
                limit,
                after,
            } => write!(
                f,
                "the {deployment} deployment did not answer within {} ms ({limit})",
                after.as_millis()
            ),
            AiError::Unreachable { deployment, detail } => {
                write!(
                    f,
                    "the {deployment} deployment could not be reached: {detail}"
                )
            }
            AiError::UpstreamFailed {
                deployment,
                status,
                message,
            } => {
                write!(f, "the {deployment} deployment failed with HTTP {status}")?;
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            AiError::BadAnswer { deployment, detail } => {
                write!(
                    f,
                    "the {deployment} deployment gave an answer Jarvis cannot read: {detail}"
                )
            }
        }
    }
}

/// A provider's answer, passed on to the caller as it came.
pub struct Reply {
    /// The provider's status (2xx, or a 4xx passed through).
    pub status: u16,
    /// The provider's `Content-Type`.
    pub content_type: Option<String>,
    /// The provider's headers a caller's client acts on (`Retry-After`, `x-ratelimit-*`,
    /// `openai-*`, `x-request-id`), passed on.
    pub headers: reqwest::header::HeaderMap,
    /// The deployment that answered.
    pub deployment: Arc<str>,
    /// How many of a model group's deployments were passed over (skipped or failed) before
    /// this one answered (`x-jarvis-fallbacks`); `None` when no group was asked.
    pub fallbacks: Option<u32>,
    /// The body.
    pub body: ReplyBody,
}

/// A reply's body.
pub enum ReplyBody {
    /// Read whole (non-streamed answers, and every error answer).
    Full(Bytes),
    /// Passed through chunk by chunk as the provider sends it.
    Stream(UpstreamStream),
    /// A translating provider's stream, as OpenAI's chunks, event by event (boxed: it is
    /// the largest body and the least common).
    Translated(Box<sse::TranslatedStream>),
}

/// One model a provider offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name to use on `/v1/*` (`openai/<provider's id>`).
    pub id: String,
    /// When the provider created it (Unix seconds), if it says.
    pub created: Option<i64>,
    /// Who owns it, as the provider says.
    pub owned_by: Option<String>,
}

/// What `GET /models` got.
pub enum Models {
    /// The models, in the order of the providers (openai, anthropic, gemini) and within each
    /// in the provider's order, then the model groups by name.
    List {
        /// The models.
        models: Vec<ModelEntry>,
        /// The deployments that listed their models.
        listed: Vec<Arc<str>>,
        /// The deployments whose list call failed (refused, 5xx, OPEN breaker…): their
        /// models are missing, the others are still listed.
        unlisted: Vec<Arc<str>>,
    },
    /// The only deployment, or every one, refused (4xx, e.g. a wrong key): the first's answer,
    /// in OpenAI's shape.
    Refused(Box<Reply>),
}

/// One deployment: a provider at one endpoint with one key, called through its own pooled
/// HTTP client and its own breaker. Zero config makes one per provider whose key is set,
/// named after the provider; a model group (later) lists several.
pub struct Deployment {
    /// Its name (`x-jarvis-deployment`, the log's `deployment`).
    name: Arc<str>,
    provider: Provider,
    breaker: Name,
    breaker_name: Arc<str>,
    /// Without a trailing `/`.
    base_url: String,
    key: SecretString,
    /// The header that carries the key, made once (marked sensitive: never in a debug print).
    auth: (reqwest::header::HeaderName, reqwest::header::HeaderValue),
    client: reqwest::Client,
    /// Its connect, first-byte and total limits (a group's, else the `JARVIS_AI_*` ones).
    timeouts: AiTimeouts,
}

impl Deployment {
    /// A deployment of `provider` at `base_url`, with a client of its own.
    fn new(
        name: Arc<str>,
        provider: Provider,
        breaker_name: Arc<str>,
        base_url: &str,
        key: &SecretString,
        timeouts: AiTimeouts,
    ) -> anyhow::Result<Deployment> {
        let client = reqwest::Client::builder()
            // Link-local and cloud metadata addresses are not called (crate::resolver).
            .dns_resolver(crate::resolver::refusing())
            .connect_timeout(timeouts.connect)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            // A provider that redirects is answered as it answered; following would resend the
            // key to wherever the redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jarvis-ai/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let secret = key.expose_secret();
        let (header, value) = match provider {
            Provider::OpenAi => (
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {secret}")),
            ),
            Provider::Anthropic => (
                reqwest::header::HeaderName::from_static("x-api-key"),
                reqwest::header::HeaderValue::from_str(secret),
            ),
            Provider::Gemini => (
                reqwest::header::HeaderName::from_static("x-goog-api-key"),
                reqwest::header::HeaderValue::from_str(secret),
            ),
        };
        // Written here rather than passed on, so that the message can never quote the key.
        let mut value = value.map_err(|_| {
            anyhow::anyhow!(
                "{} holds characters an HTTP header cannot carry",
                provider.key_var()
            )
        })?;
        value.set_sensitive(true);
        Ok(Deployment {
            name,
            provider,
            breaker: Name::parse(&breaker_name).expect("a valid breaker name"),
            breaker_name,
            base_url: base_url.trim_end_matches('/').to_string(),
            key: key.clone(),
            auth: (header, value),
            client,
            timeouts,
        })
    }

    /// A request to `path` (after the base URL) with the provider's auth headers and the
    /// caller's correlation ID.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        correlation: &CorrelationId,
    ) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{}", self.base_url, path))
            .header(self.auth.0.clone(), self.auth.1.clone())
            .header(CORRELATION_HEADER, correlation.as_str())
            .header(
                crate::trace::context::TRACEPARENT,
                crate::trace::context::outgoing_current(correlation.as_str()),
            );
        match self.provider {
            Provider::Anthropic => request.header("anthropic-version", anthropic::API_VERSION),
            Provider::OpenAi | Provider::Gemini => request,
        }
    }

    /// A provider's refusal (a 4xx, key already scrubbed) as the caller's answer: OpenAI's
    /// passed on as it came, a translating provider's rewritten in OpenAI's error shape.
    fn refusal(&self, answer: Answer) -> Reply {
        if self.provider == Provider::OpenAi {
            return answer.reply(self.name.clone());
        }
        let body = match self.provider {
            Provider::Anthropic => anthropic::error(answer.status, &answer.bytes),
            _ => gemini::error(answer.status, &answer.bytes),
        };
        Reply {
            status: answer.status,
            content_type: Some("application/json".into()),
            headers: answer.headers,
            deployment: self.name.clone(),
            fallbacks: None,
            body: ReplyBody::Full(Bytes::from(body)),
        }
    }
}

/// The gateway: the configured deployments (each with its pooled HTTP client) and the
/// breaker registry.
pub struct Gateway {
    breakers: Arc<BreakerRegistry>,
    spend: Arc<spend::Spend>,
    /// Indexed by [`Provider`] (`Provider::OpenAi as usize` …).
    deployments: [Option<Deployment>; 3],
    /// The model groups, by name ([`route`]): replaced whole when the stored groups change,
    /// read (one `Arc` clone) by every call.
    groups: std::sync::RwLock<Arc<GroupMap>>,
    /// Keys, endpoints and default timeouts, for groups built later.
    integrations: Integrations,
    /// The response cache ([`cache`]; `None`: off), used by [`Gateway::cached_call`].
    cache: Option<Arc<cache::ResponseCache>>,
}

type GroupMap = std::collections::HashMap<String, Arc<route::Group>>;

impl Gateway {
    /// A gateway over the providers of `integrations` whose calls go through `breakers` and
    /// are counted (and held to budgets) by `spend`.
    pub fn new(
        integrations: &Integrations,
        groups: &std::collections::BTreeMap<String, crate::model::ai::ModelGroup>,
        breakers: Arc<BreakerRegistry>,
        spend: Arc<spend::Spend>,
    ) -> anyhow::Result<Gateway> {
        let timeouts = integrations.ai_timeouts;
        let p = &integrations.providers;
        let make = |provider,
                    name: &'static str,
                    breaker: &'static str,
                    base_url: &str,
                    key: &Option<SecretString>| {
            key.as_ref()
                .map(|k| {
                    Deployment::new(name.into(), provider, breaker.into(), base_url, k, timeouts)
                })
                .transpose()
        };
        Ok(Gateway {
            breakers,
            spend,
            deployments: [
                make(
                    Provider::OpenAi,
                    OPENAI_DEPLOYMENT,
                    OPENAI_BREAKER,
                    &p.openai_base_url,
                    &p.openai,
                )?,
                make(
                    Provider::Anthropic,
                    "anthropic",
                    ANTHROPIC_BREAKER,
                    &p.anthropic_base_url,
                    &p.anthropic,
                )?,
                make(
                    Provider::Gemini,
                    "gemini",
                    GEMINI_BREAKER,
                    &p.gemini_base_url,
                    &p.gemini,
                )?,
            ],
            groups: std::sync::RwLock::new(Arc::new(route::build_groups(groups, integrations)?)),
            integrations: integrations.clone(),
            cache: None,
        })
    }

    /// The log line and meter of a counted call of `model` (`upstream` at `deployment`).
    fn call_log(
        &self,
        model: String,
        deployment: &Deployment,
        upstream: &str,
        caller: &Caller,
    ) -> CallLog {
        CallLog {
            model,
            deployment: deployment.name.clone(),
            started: Instant::now(),
            meter: Some(Box::new(Meter {
                spend: self.spend.clone(),
                provider: deployment.provider.prefix(),
                upstream: upstream.to_string(),
                domain: caller.domain.clone(),
                token: caller.token.clone(),
            })),
        }
    }

    fn groups(&self) -> Arc<GroupMap> {
        self.groups.read().expect("not poisoned").clone()
    }

    /// The model groups being served, as their config tables.
    pub fn group_specs(&self) -> std::collections::BTreeMap<String, crate::model::ai::ModelGroup> {
        self.groups()
            .iter()
            .map(|(name, g)| (name.clone(), g.spec.clone()))
            .collect()
    }

    /// Serves `specs` from now on: a group whose spec did not change is kept (clients,
    /// cooldowns, retry budget); one that cannot be built is left out and logged.
    pub fn set_groups(
        &self,
        specs: &std::collections::BTreeMap<String, crate::model::ai::ModelGroup>,
    ) {
        let old = self.groups();
        let mut new = GroupMap::with_capacity(specs.len());
        for (name, spec) in specs {
            if let Some(kept) = old.get(name).filter(|g| g.spec == *spec) {
                new.insert(name.clone(), kept.clone());
                continue;
            }
            match route::build_group(name, spec, &self.integrations) {
                Ok(g) => {
                    new.insert(name.clone(), Arc::new(g));
                }
                Err(e) => tracing::warn!(group = %name, error = %e, "model group left out"),
            }
        }
        *self.groups.write().expect("not poisoned") = Arc::new(new);
    }

    /// Reads the stored model groups and serves them (a row that does not read as a valid
    /// group is logged and left out). Returns false when the store could not be read (the
    /// groups being served are kept).
    pub async fn sync_groups(&self, store: &dyn crate::store::Store) -> bool {
        let rows = match store.list_ai_models().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "model groups not read from the store");
                return false;
            }
        };
        let mut specs = std::collections::BTreeMap::new();
        for (name, json) in rows {
            match serde_json::from_str::<crate::model::ai::ModelGroup>(&json) {
                Ok(spec) => {
                    specs.insert(name, spec);
                }
                Err(e) => {
                    tracing::warn!(group = %name, error = %e, "stored model group unreadable")
                }
            }
        }
        // Fallbacks to a group that is not there are passed over when a request is planned.
        if specs != self.group_specs() {
            self.set_groups(&specs);
            tracing::info!(groups = specs.len(), "model groups updated");
        }
        true
    }

    /// Reads the stored model groups every [`GROUP_SYNC_EVERY`] until `stop`, so that a group
    /// put on one instance is served by all.
    pub async fn run_group_sync(
        self: Arc<Self>,
        store: Arc<dyn crate::store::Store>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(GROUP_SYNC_EVERY) => {
                    self.sync_groups(&*store).await;
                }
                _ = stop.changed() => break,
            }
        }
    }

    /// The usage counter and budget keeper.
    pub fn spend(&self) -> &Arc<spend::Spend> {
        &self.spend
    }

    fn deployment(&self, provider: Provider) -> Result<&Deployment, AiError> {
        let found = self.deployments[provider as usize].as_ref();
        debug_assert!(
            found.is_none_or(|d| d.provider == provider),
            "in Provider order"
        );
        found.ok_or(AiError::NotConfigured(provider))
    }

    /// Sends `body` to `endpoint` of the deployment its `model` names, with `model` rewritten
    /// to the provider's name. A chat body with `"stream": true` is answered as a stream (after
    /// its first byte arrived, within `JARVIS_AI_FIRST_BYTE_TIMEOUT_MS`); anything else is read
    /// whole within `JARVIS_AI_TIMEOUT_MS`. A 4xx answer is a [`Reply`] (passed on); a 5xx, a
    /// timeout, a connection error or an OPEN breaker is an [`AiError`].
    pub async fn call(
        &self,
        endpoint: Endpoint,
        mut body: Value,
        correlation: &CorrelationId,
        caller: &Caller,
    ) -> Result<Reply, AiError> {
        let Some(object) = body.as_object_mut() else {
            return Err(AiError::InvalidRequest {
                message: "the body must be a JSON object".into(),
                param: None,
            });
        };
        let model = match object.get("model") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => {
                return Err(AiError::InvalidRequest {
                    message: "model must be a string (openai/<model> or a bare OpenAI model \
                              name, anthropic/<model>, gemini/<model>)"
                        .into(),
                    param: Some("model"),
                })
            }
            None => {
                return Err(AiError::InvalidRequest {
                    message: "you must provide a model parameter (openai/<model> or a bare \
                              OpenAI model name, anthropic/<model>, gemini/<model>)"
                        .into(),
                    param: Some("model"),
                })
            }
        };
        let groups = self.groups();
        if let Some(group) = groups.get(model.as_str()) {
            return self
                .call_group(&groups, group, endpoint, body, model, correlation, caller)
                .await;
        }
        let resolved = resolve(&model).map_err(AiError::Model)?;
        if resolved.provider == Provider::Anthropic && endpoint == Endpoint::Embeddings {
            return Err(AiError::Unsupported {
                provider: Provider::Anthropic,
                what: "has no embeddings API: use an openai/ or gemini/ embedding model",
            });
        }
        let deployment = self.deployment(resolved.provider)?;
        self.spend
            .check(&caller.domain, &caller.token)
            .map_err(AiError::Budget)?;
        let admission = self.admit(deployment)?;
        self.call_deployment(
            deployment,
            admission,
            endpoint,
            body,
            &resolved.upstream,
            model,
            correlation,
            caller,
        )
        .await
    }

    /// Serves `model`, the name of `group`, along [`route::plan`]: each deployment in turn
    /// until one answers (see [`route`] for what is passed over and what falls back).
    #[allow(clippy::too_many_arguments)]
    async fn call_group(
        &self,
        groups: &GroupMap,
        group: &route::Group,
        endpoint: Endpoint,
        body: Value,
        model: String,
        correlation: &CorrelationId,
        caller: &Caller,
    ) -> Result<Reply, AiError> {
        self.spend
            .check(&caller.domain, &caller.token)
            .map_err(AiError::Budget)?;
        group.budget.request();
        let mut passed = 0u32;
        let mut calls = 0u32;
        // The last call's outcome (a 429 answer, or a failure), and what passing over said.
        let mut last_call: Option<Result<Reply, AiError>> = None;
        let mut last_open: Option<AiError> = None;
        let mut cooling: Option<Duration> = None;
        let mut without_key: Vec<String> = Vec::new();
        for member in route::plan(groups, group) {
            let Some(deployment) = &member.deployment else {
                without_key.push(format!("{} ({} is not set)", member.name, member.key_var));
                passed += 1;
                continue;
            };
            if member.provider == Provider::Anthropic && endpoint == Endpoint::Embeddings {
                passed += 1;
                continue;
            }
            if let Some(left) = member.cooling_left() {
                cooling = Some(cooling.map_or(left, |c| c.min(left)));
                passed += 1;
                continue;
            }
            let admission = match self.admit(deployment) {
                Ok(a) => a,
                Err(e) => {
                    last_open = Some(e);
                    passed += 1;
                    continue;
                }
            };
            if calls > 0 && !group.budget.try_retry() {
                drop(admission);
                tracing::warn!(
                    model = %model,
                    group = &*group.name,
                    deployment = &*member.name,
                    calls,
                    "retry budget exhausted"
                );
                break;
            }
            calls += 1;
            let result = self
                .call_deployment(
                    deployment,
                    admission,
                    endpoint,
                    body.clone(),
                    &member.upstream,
                    model.clone(),
                    correlation,
                    caller,
                )
                .await;
            match result {
                Ok(reply) if reply.status == 429 => {
                    let wait = route::retry_after(&reply.headers);
                    member.cool(wait);
                    tracing::info!(
                        group = &*group.name,
                        deployment = &*member.name,
                        cooldown_ms = wait.as_millis() as u64,
                        "deployment cooling down after a 429"
                    );
                    last_call = Some(Ok(reply));
                    passed += 1;
                }
                Ok(mut reply) => {
                    if passed > 0 {
                        tracing::info!(
                            model = %model,
                            group = &*group.name,
                            deployment = &*member.name,
                            fallbacks = passed,
                            calls,
                            "ai fallback"
                        );
                    }
                    reply.fallbacks = Some(passed);
                    return Ok(reply);
                }
                Err(e) if e.falls_back() => {
                    last_call = Some(Err(e));
                    passed += 1;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            model = %model,
            group = &*group.name,
            passed_over = passed,
            calls,
            "ai group exhausted"
        );
        match last_call {
            Some(Ok(mut reply)) => {
                reply.fallbacks = Some(passed);
                Ok(reply)
            }
            Some(Err(e)) => Err(e),
            None => Err(match (cooling, last_open) {
                (Some(retry_after), _) => AiError::Cooling {
                    group: group.name.clone(),
                    retry_after,
                },
                (None, Some(open)) => open,
                (None, None) => AiError::GroupUnavailable {
                    group: group.name.clone(),
                    detail: if without_key.is_empty() {
                        "none of its deployments serves this route".to_string()
                    } else {
                        format!("no key for {}", without_key.join(", "))
                    },
                },
            }),
        }
    }

    /// One call of `deployment` (its breaker already admitted it) for `upstream`, the model
    /// as the provider names it; `model` is the caller's name, for the log line.
    #[allow(clippy::too_many_arguments)]
    async fn call_deployment(
        &self,
        deployment: &Deployment,
        admission: Admission,
        endpoint: Endpoint,
        mut body: Value,
        upstream: &str,
        model: String,
        correlation: &CorrelationId,
        caller: &Caller,
    ) -> Result<Reply, AiError> {
        if deployment.provider != Provider::OpenAi {
            return self
                .translated(
                    deployment,
                    admission,
                    endpoint,
                    &body,
                    upstream,
                    correlation,
                    self.call_log(model, deployment, upstream, caller),
                )
                .await;
        }
        let Some(object) = body.as_object_mut() else {
            return Err(AiError::InvalidRequest {
                message: "the body must be a JSON object".into(),
                param: None,
            });
        };
        object.insert("model".into(), Value::String(upstream.to_string()));
        let stream = endpoint == Endpoint::ChatCompletions
            && object.get("stream").and_then(Value::as_bool) == Some(true);
        let payload = serde_json::to_vec(&body).expect("a JSON value serializes");

        let mut request = deployment
            .request(reqwest::Method::POST, endpoint.path(), correlation)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload);
        if stream {
            request = request.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let call = self.call_log(model, deployment, upstream, caller);
        if stream {
            self.stream(deployment, admission, request, call).await
        } else {
            let answer = self.whole(deployment, admission, request, &call).await?;
            let usage = (200..300)
                .contains(&answer.status)
                .then(|| serde_json::from_slice::<WithUsage>(&answer.bytes).ok())
                .flatten()
                .and_then(|u| u.usage);
            call.log(answer.status, "answered", usage.as_ref());
            Ok(answer.reply(deployment.name.clone()))
        }
    }

    /// A call to a translating deployment (Anthropic, Gemini): the body is translated to
    /// the provider's wire format and the answer back to OpenAI's.
    #[allow(clippy::too_many_arguments)]
    async fn translated(
        &self,
        deployment: &Deployment,
        admission: Admission,
        endpoint: Endpoint,
        body: &Value,
        upstream: &str,
        correlation: &CorrelationId,
        call: CallLog,
    ) -> Result<Reply, AiError> {
        match endpoint {
            Endpoint::ChatCompletions => {
                self.translated_chat(deployment, admission, body, upstream, correlation, call)
                    .await
            }
            Endpoint::Embeddings => {
                self.gemini_embeddings(deployment, admission, body, upstream, correlation, call)
                    .await
            }
        }
    }

    async fn translated_chat(
        &self,
        deployment: &Deployment,
        admission: Admission,
        body: &Value,
        upstream: &str,
        correlation: &CorrelationId,
        call: CallLog,
    ) -> Result<Reply, AiError> {
        let chat = chat::ChatRequest::parse(body)?;
        let (path, wire) = match deployment.provider {
            Provider::Anthropic => (
                "/v1/messages".to_string(),
                anthropic::messages_request(&chat, upstream)?,
            ),
            _ => {
                let model = gemini::model_path(upstream)?;
                let method = if chat.stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                };
                (
                    format!("/v1beta/models/{model}:{method}"),
                    gemini::generate_request(&chat)?,
                )
            }
        };
        let payload = serde_json::to_vec(&wire).expect("a JSON value serializes");
        let request = deployment
            .request(reqwest::Method::POST, &path, correlation)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload);
        if chat.stream {
            let request = request.header(reqwest::header::ACCEPT, "text/event-stream");
            let reply = self.stream(deployment, admission, request, call).await?;
            let inner = match reply.body {
                ReplyBody::Stream(inner) => inner,
                ReplyBody::Full(bytes) => {
                    // A refusal (4xx), read whole and already scrubbed.
                    return Ok(deployment.refusal(Answer {
                        status: reply.status,
                        content_type: reply.content_type,
                        headers: reply.headers,
                        bytes,
                    }));
                }
                ReplyBody::Translated(_) => unreachable!("stream() passes streams through"),
            };
            let writer = chat::ChunkWriter::new(
                chat::new_id("chatcmpl-"),
                upstream.to_string(),
                chat.include_usage,
            );
            let translator: Box<dyn sse::StreamTranslator> = match deployment.provider {
                Provider::Anthropic => Box::<anthropic::Translator>::default(),
                _ => Box::<gemini::Translator>::default(),
            };
            return Ok(Reply {
                status: reply.status,
                content_type: Some("text/event-stream".into()),
                headers: reply.headers,
                deployment: deployment.name.clone(),
                fallbacks: None,
                body: ReplyBody::Translated(Box::new(sse::TranslatedStream::new(
                    inner,
                    writer,
                    translator,
                    deployment.key.expose_secret().to_string(),
                ))),
            });
        }
        let answer = self.whole(deployment, admission, request, &call).await?;
        if !(200..300).contains(&answer.status) {
            call.log(answer.status, "answered", None);
            return Ok(deployment.refusal(answer));
        }
        let completion = serde_json::from_slice::<Value>(&answer.bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| match deployment.provider {
                Provider::Anthropic => anthropic::completion(&v, upstream),
                _ => gemini::completion(&v, upstream),
            })
            .map_err(|detail| {
                call.log_failure(Some(answer.status), "bad answer");
                AiError::BadAnswer {
                    deployment: deployment.name.clone(),
                    detail,
                }
            })?;
        let usage = Usage::from(completion.usage);
        call.log(answer.status, "answered", Some(&usage));
        let bytes = serde_json::to_vec(&completion.to_openai(chat::now_unix()))
            .expect("a JSON value serializes");
        Ok(Reply {
            status: answer.status,
            content_type: Some("application/json".into()),
            headers: answer.headers,
            deployment: deployment.name.clone(),
            fallbacks: None,
            body: ReplyBody::Full(Bytes::from(bytes)),
        })
    }

    /// Embeddings from Gemini: one input through `embedContent`, several through
    /// `batchEmbedContents`; the vectors in OpenAI's shape (`encoding_format` `float`, or
    /// `base64` of little-endian `f32`s, which OpenAI's SDKs ask for by default).
    async fn gemini_embeddings(
        &self,
        deployment: &Deployment,
        admission: Admission,
        body: &Value,
        upstream: &str,
        correlation: &CorrelationId,
        call: CallLog,
    ) -> Result<Reply, AiError> {
        let model = gemini::model_path(upstream)?;
        let (input, dimensions) = gemini::embedding_input(body)?;
        let base64 = match body.get("encoding_format").and_then(Value::as_str) {
            None | Some("float") => false,
            Some("base64") => true,
            Some(_) => {
                return Err(AiError::InvalidRequest {
                    message: "encoding_format must be float or base64".into(),
                    param: Some("encoding_format"),
                })
            }
        };
        let method = match input {
            gemini::EmbeddingInput::One(_) => "embedContent",
            gemini::EmbeddingInput::Many(_) => "batchEmbedContents",
        };
        let wire = gemini::embedding_request(&input, model, dimensions);
        let request = deployment
            .request(
                reqwest::Method::POST,
                &format!("/v1beta/models/{model}:{method}"),
                correlation,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&wire).expect("a JSON value serializes"));
        let answer = self.whole(deployment, admission, request, &call).await?;
        if !(200..300).contains(&answer.status) {
            call.log(answer.status, "answered", None);
            return Ok(deployment.refusal(answer));
        }
        let vectors = serde_json::from_slice::<Value>(&answer.bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| gemini::embedding_vectors(&v))
            .map_err(|detail| {
                call.log_failure(Some(answer.status), "bad answer");
                AiError::BadAnswer {
                    deployment: deployment.name.clone(),
                    detail,
                }
            })?;
        call.log(answer.status, "answered", None);
        let data: Vec<Value> = vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                    Value::String(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        bytes,
                    ))
                } else {
                    serde_json::json!(v)
                };
                serde_json::json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        // Gemini's embedding answers carry no token counts.
        let answer_body = serde_json::json!({
            "object": "list",
            "data": data,
            "model": upstream,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        });
        Ok(Reply {
            status: answer.status,
            content_type: Some("application/json".into()),
            headers: answer.headers,
            deployment: deployment.name.clone(),
            fallbacks: None,
            body: ReplyBody::Full(Bytes::from(
                serde_json::to_vec(&answer_body).expect("a JSON value serializes"),
            )),
        })
    }

    /// The models of every configured deployment, asked all at once. A deployment whose list
    /// call fails is left out (named in `unlisted`) rather than failing the listing; only
    /// when every one fails is the first one's failure the answer.
    pub async fn models(&self, correlation: &CorrelationId) -> Result<Models, AiError> {
        let configured: Vec<&Deployment> = self.deployments.iter().flatten().collect();
        let groups = self.group_entries();
        if configured.is_empty() {
            if groups.is_empty() {
                return Err(AiError::NoProvider);
            }
            return Ok(Models::List {
                models: groups,
                listed: Vec::new(),
                unlisted: Vec::new(),
            });
        }
        let results = futures_util::future::join_all(
            configured.iter().map(|d| self.list_models(d, correlation)),
        )
        .await;
        if results.iter().all(|r| r.is_err()) {
            return Err(results
                .into_iter()
                .find_map(Result::err)
                .expect("at least one deployment"));
        }
        let mut models = Vec::new();
        let mut listed = Vec::new();
        let mut unlisted = Vec::new();
        let mut first_refusal = None;
        for (d, result) in configured.iter().zip(results) {
            match result {
                Ok(Ok(list)) => {
                    listed.push(d.name.clone());
                    models.extend(list);
                }
                Ok(Err(refusal)) => {
                    unlisted.push(d.name.clone());
                    first_refusal.get_or_insert(refusal);
                }
                Err(e) => {
                    tracing::warn!(deployment = &*d.name, error = %e, "model list left out");
                    unlisted.push(d.name.clone());
                }
            }
        }
        if listed.is_empty() {
            return Ok(Models::Refused(Box::new(
                first_refusal.expect("a deployment that did not fail refused"),
            )));
        }
        models.extend(groups);
        Ok(Models::List {
            models,
            listed,
            unlisted,
        })
    }

    /// The model groups as entries of `GET /models` (owned by `jarvis`), by name.
    fn group_entries(&self) -> Vec<ModelEntry> {
        let mut names: Vec<String> = self.groups().keys().cloned().collect();
        names.sort();
        names
            .into_iter()
            .map(|id| ModelEntry {
                id,
                created: None,
                owned_by: Some("jarvis".into()),
            })
            .collect()
    }

    /// One deployment's models, or its refusal (a 4xx, in OpenAI's shape).
    async fn list_models(
        &self,
        deployment: &Deployment,
        correlation: &CorrelationId,
    ) -> Result<Result<Vec<ModelEntry>, Reply>, AiError> {
        let path = match deployment.provider {
            Provider::OpenAi => "/models",
            // The providers' largest pages, so that one call lists everything.
            Provider::Anthropic => "/v1/models?limit=1000",
            Provider::Gemini => "/v1beta/models?pageSize=1000",
        };
        let admission = self.admit(deployment)?;
        let request = deployment.request(reqwest::Method::GET, path, correlation);
        let call = CallLog {
            model: "(models)".into(),
            deployment: deployment.name.clone(),
            started: Instant::now(),
            meter: None,
        };
        let answer = self.whole(deployment, admission, request, &call).await?;
        call.log(answer.status, "answered", None);
        if !(200..300).contains(&answer.status) {
            return Ok(Err(deployment.refusal(answer)));
        }
        let parsed = match deployment.provider {
            Provider::OpenAi => openai::models(&answer.bytes),
            provider => serde_json::from_slice::<Value>(&answer.bytes)
                .map_err(|e| format!("the model list is not JSON ({e})"))
                .and_then(|v| match provider {
                    Provider::Anthropic => anthropic::models(&v),
                    _ => gemini::models(&v),
                }),
        };
        parsed.map(Ok).map_err(|detail| AiError::BadAnswer {
            deployment: deployment.name.clone(),
            detail,
        })
    }

    fn admit(&self, deployment: &Deployment) -> Result<Admission, AiError> {
        self.breakers
            .acquire(&deployment.breaker)
            .map_err(|rejected| AiError::BreakerOpen {
                deployment: deployment.name.clone(),
                breaker: deployment.breaker_name.clone(),
                retry_after: rejected.retry_after(),
            })
    }

    /// Sends `request` and reads the whole answer within the total timeout; tells the breaker.
    /// A 5xx is an error (its message quoted); other statuses are returned with their body
    /// (the key removed from an error body, should a provider echo it).
    async fn whole(
        &self,
        deployment: &Deployment,
        admission: Admission,
        request: reqwest::RequestBuilder,
        call: &CallLog,
    ) -> Result<Answer, AiError> {
        let total = deployment.timeouts.total;
        let answer = tokio::time::timeout(total, async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let content_type = content_type(&response);
            let headers = passed_headers(response.headers());
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>(Answer {
                status,
                content_type,
                headers,
                bytes,
            })
        })
        .await;
        match answer {
            Err(_) => {
                admission.record(Outcome::Timeout, "no answer within JARVIS_AI_TIMEOUT_MS");
                call.log_failure(None, "timeout");
                Err(AiError::Timeout {
                    deployment: deployment.name.clone(),
                    limit: "JARVIS_AI_TIMEOUT_MS",
                    after: total,
                })
            }
            Ok(Err(e)) => Err(self.transport_failure(deployment, admission, e, call)),
            Ok(Ok(mut answer)) => {
                let status = answer.status;
                settle(admission, status);
                if (200..300).contains(&status) {
                    return Ok(answer);
                }
                answer.bytes = scrub(answer.bytes, deployment.key.expose_secret());
                if status >= 500 {
                    call.log_failure(Some(status), "upstream error");
                    return Err(AiError::UpstreamFailed {
                        deployment: deployment.name.clone(),
                        status,
                        message: error_message(&answer.bytes),
                    });
                }
                Ok(answer)
            }
        }
    }

    /// Sends a streamed request: waits for the headers and the first body chunk within the
    /// first-byte timeout, then hands the rest over as a stream with no total limit.
    async fn stream(
        &self,
        deployment: &Deployment,
        admission: Admission,
        request: reqwest::RequestBuilder,
        call: CallLog,
    ) -> Result<Reply, AiError> {
        let limit = deployment.timeouts.first_byte;
        let deadline = tokio::time::Instant::now() + limit;
        let timed_out = |admission: Admission, call: &CallLog| {
            admission.record(
                Outcome::Timeout,
                "no first byte within JARVIS_AI_FIRST_BYTE_TIMEOUT_MS",
            );
            call.log_failure(None, "timeout");
            AiError::Timeout {
                deployment: deployment.name.clone(),
                limit: "JARVIS_AI_FIRST_BYTE_TIMEOUT_MS",
                after: limit,
            }
        };
        let response = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => return Err(timed_out(admission, &call)),
            Ok(Err(e)) => return Err(self.transport_failure(deployment, admission, e, &call)),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        let headers = passed_headers(response.headers());
        if !(200..300).contains(&status) {
            // An error answer is small and not a stream: read it whole, as without streaming.
            let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
                Err(_) => return Err(timed_out(admission, &call)),
                Ok(Err(e)) => return Err(self.transport_failure(deployment, admission, e, &call)),
                Ok(Ok(b)) => scrub(b, deployment.key.expose_secret()),
            };
            settle(admission, status);
            if status >= 500 {
                call.log_failure(Some(status), "upstream error");
                return Err(AiError::UpstreamFailed {
                    deployment: deployment.name.clone(),
                    status,
                    message: error_message(&bytes),
                });
            }
            call.log(status, "answered", None);
            return Ok(Reply {
                status,
                content_type,
                headers,
                deployment: deployment.name.clone(),
                fallbacks: None,
                body: ReplyBody::Full(bytes),
            });
        }
        let mut inner: ChunkStream = Box::pin(response.bytes_stream());
        let first = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| inner.as_mut().poll_next(cx)),
        )
        .await;
        let first = match first {
            Err(_) => return Err(timed_out(admission, &call)),
            Ok(Some(Err(e))) => return Err(self.transport_failure(deployment, admission, e, &call)),
            Ok(Some(Ok(chunk))) => Some(chunk),
            Ok(None) => None,
        };
        let first_byte_ms = call.started.elapsed().as_millis() as u64;
        Ok(Reply {
            status,
            content_type,
            headers,
            deployment: deployment.name.clone(),
            fallbacks: None,
            body: ReplyBody::Stream(UpstreamStream {
                usage: first.as_deref().and_then(stream_usage).map(Box::new),
                done: first.is_none(),
                first,
                inner,
                admission: Some(admission),
                call,
                status,
                first_byte_ms,
                span: tracing::Span::current(),
                logged: false,
            }),
        })
    }

    /// Tells the breaker about a failed send or read and says what failed (without the URL).
    fn transport_failure(
        &self,
        deployment: &Deployment,
        admission: Admission,
        e: reqwest::Error,
        call: &CallLog,
    ) -> AiError {
        let outcome = classify(&e);
        let detail = describe(&e, deployment.key.expose_secret());
        admission.record(outcome, &detail);
        // The client has no total timeout of its own (the total and first-byte limits are
        // tokio timeouts around the call), so its only timeout is the connect timeout.
        if outcome == Outcome::Timeout {
            call.log_failure(None, "timeout");
            return AiError::Timeout {
                deployment: deployment.name.clone(),
                limit: "JARVIS_AI_CONNECT_TIMEOUT_MS",
                after: deployment.timeouts.connect,
            };
        }
        call.log_failure(None, "unreachable");
        AiError::Unreachable {
            deployment: deployment.name.clone(),
            detail,
        }
    }
}

/// A whole answer of the provider.
struct Answer {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    bytes: Bytes,
}

impl Answer {
    fn reply(self, deployment: Arc<str>) -> Reply {
        Reply {
            status: self.status,
            content_type: self.content_type,
            headers: self.headers,
            deployment,
            fallbacks: None,
            body: ReplyBody::Full(self.bytes),
        }
    }
}

/// The provider's headers that a caller's client acts on: when to retry (`Retry-After`,
/// which OpenAI's SDKs honour on a 429), its rate-limit figures, its own request ID.
fn passed_headers(from: &reqwest::header::HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if matches!(n, "retry-after" | "retry-after-ms" | "x-request-id")
            || n.starts_with("x-ratelimit-")
            || n.starts_with("openai-")
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

type ChunkStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A provider's streamed answer, passed on chunk by chunk. It tells the breaker how the stream
/// ended (a clean end: success; the provider cut it: failure; the caller went away: neither)
/// and writes the call's log line then, in the request's span.
pub struct UpstreamStream {
    /// Token usage, when an event carried it (the last one, with `include_usage`); boxed, as
    /// it is rare and the stream is moved around.
    usage: Option<Box<Usage>>,
    first: Option<Bytes>,
    inner: ChunkStream,
    done: bool,
    admission: Option<Admission>,
    call: CallLog,
    status: u16,
    first_byte_ms: u64,
    span: tracing::Span,
    logged: bool,
}

impl UpstreamStream {
    /// Hands the breaker's verdict and the log line over to a stream that reads this one
    /// (a translated stream, which alone knows whether the provider's events ended well and
    /// what they counted): this stream no longer settles or logs.
    fn take_over(&mut self) -> Option<Admission> {
        self.logged = true;
        self.admission.take()
    }

    fn finish(&mut self, outcome: &'static str) {
        if self.logged {
            return;
        }
        self.logged = true;
        self.log(outcome, None);
    }

    /// The stream's `ai call` line, in the request's span, and the call counted: with `usage`
    /// (a translated stream's count), else what an event of this stream carried.
    fn log(&self, outcome: &str, usage: Option<&Usage>) {
        let _in_request = self.span.enter();
        let usage = usage.or(self.usage.as_deref());
        let failed = matches!(outcome, "stream cut" | "stream error");
        let cost = self.call.meter(failed, usage);
        tracing::info!(
            model = %self.call.model,
            deployment = &*self.call.deployment,
            domain = self.call.domain(),
            status = self.status,
            outcome,
            stream = true,
            first_byte_ms = self.first_byte_ms,
            latency_ms = self.call.started.elapsed().as_millis() as u64,
            prompt_tokens = usage.and_then(|u| u.prompt_tokens),
            completion_tokens = usage.and_then(|u| u.completion_tokens),
            total_tokens = usage.and_then(|u| u.total_tokens),
            cost_usd = cost,
            "ai call"
        );
    }
}

impl Stream for UpstreamStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(chunk) = this.first.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if this.done {
            if let Some(a) = this.admission.take() {
                a.success();
                this.finish("answered");
            }
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(u) = stream_usage(&chunk) {
                    this.usage = Some(Box::new(u));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                let detail = describe(&e, "");
                if let Some(a) = this.admission.take() {
                    a.record(classify(&e), format!("stream cut: {detail}"));
                }
                this.finish("stream cut");
                Poll::Ready(Some(Err(std::io::Error::other(format!(
                    "the {} deployment cut the stream: {detail}",
                    this.call.deployment
                )))))
            }
            Poll::Ready(None) => {
                this.done = true;
                if let Some(a) = this.admission.take() {
                    a.success();
                }
                this.finish("answered");
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for UpstreamStream {
    fn drop(&mut self) {
        // The caller went away mid-stream: the admission is dropped (neither success nor
        // failure) and the call is still logged once.
        self.finish("cancelled by caller");
    }
}

/// Who is calling, for usage and budgets.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The domain the call is made for (`X-Jarvis-Domain`, or an `ai` agent's domain); empty
    /// for none.
    pub domain: String,
    /// The fingerprint of the caller's token ([`spend::token_id`]); empty for none.
    pub token: String,
}

/// How a call is counted: by whom, and at which price.
struct Meter {
    spend: Arc<spend::Spend>,
    provider: &'static str,
    upstream: String,
    domain: String,
    token: String,
}

/// What the log line of a call knows before the answer.
struct CallLog {
    model: String,
    deployment: Arc<str>,
    started: Instant,
    /// `None` for calls that are not counted (`GET /models`); boxed, so that a stream moved
    /// around stays small.
    meter: Option<Box<Meter>>,
}

impl CallLog {
    fn domain(&self) -> &str {
        self.meter.as_ref().map_or("", |m| m.domain.as_str())
    }

    /// Counts the call (once); its cost when the tokens are known and the model has a price.
    fn meter(&self, failed: bool, usage: Option<&Usage>) -> Option<f64> {
        let m = self.meter.as_ref()?;
        let cost = m.spend.record(&spend::CallUsage {
            model: &self.model,
            deployment: &self.deployment,
            provider: m.provider,
            upstream_model: &m.upstream,
            domain: &m.domain,
            token: &m.token,
            failed,
            prompt_tokens: usage.and_then(|u| u.prompt_tokens).unwrap_or(0),
            completion_tokens: usage.and_then(|u| u.completion_tokens).unwrap_or(0),
            latency: self.started.elapsed(),
        });
        usage.and(cost)
    }

    fn log(&self, status: u16, outcome: &str, usage: Option<&Usage>) {
        let cost = self.meter(false, usage);
        tracing::info!(
            model = %self.model,
            deployment = &*self.deployment,
            domain = self.domain(),
            status,
            outcome,
            latency_ms = self.started.elapsed().as_millis() as u64,
            prompt_tokens = usage.and_then(|u| u.prompt_tokens),
            completion_tokens = usage.and_then(|u| u.completion_tokens),
            total_tokens = usage.and_then(|u| u.total_tokens),
            cost_usd = cost,
            "ai call"
        );
    }

    fn log_failure(&self, status: Option<u16>, outcome: &str) {
        self.meter(true, None);
        tracing::warn!(
            model = %self.model,
            deployment = &*self.deployment,
            domain = self.domain(),
            status,
            outcome,
            latency_ms = self.started.elapsed().as_millis() as u64,
            "ai call"
        );
    }
}

/// The usage an SSE chunk's `data:` events carry, if any (OpenAI sends it in the last event
/// when asked with `stream_options.include_usage`). An event split across chunks is missed.
fn stream_usage(chunk: &[u8]) -> Option<Usage> {
    const NEEDLE: &[u8] = b"\"usage\"";
    if !chunk.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return None;
    }
    chunk
        .split(|b| *b == b'\n')
        .rev()
        .filter_map(|line| line.strip_prefix(b"data:"))
        .filter_map(|data| serde_json::from_slice::<WithUsage>(data.trim_ascii()).ok())
        .find_map(|w| w.usage)
}

/// Token usage of an answer.
#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

impl From<chat::TokenUsage> for Usage {
    fn from(u: chat::TokenUsage) -> Usage {
        Usage {
            prompt_tokens: Some(u.prompt),
            completion_tokens: Some(u.completion),
            total_tokens: Some(u.prompt + u.completion),
        }
    }
}

/// Tells the breaker what a status means: 5xx a failure, 429 nothing (rate limiting is not
/// an outage), anything else a success.
fn settle(admission: Admission, status: u16) {
    match status {
        429 => drop(admission),
        s if s >= 500 => admission.record(Outcome::Status(s), format!("HTTP {s}")),
        _ => admission.success(),
    }
}

fn classify(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() || e.is_request() || e.is_body() {
        Outcome::Connection
    } else {
        Outcome::Error
    }
}

/// A transport error in words: without the URL (it may carry credentials), with its cause,
/// and with `key` removed should it appear.
fn describe(e: &reqwest::Error, key: &str) -> String {
    let mut text = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    // The innermost cause says the most (`Connection refused (os error 111)`).
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost {
        text.push_str(" (");
        text.push_str(&cause);
        text.push(')');
    }
    if key.is_empty() {
        text
    } else {
        text.replace(key, "[redacted]")
    }
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `bytes` with every occurrence of `key` replaced: a provider may echo the key it was given
/// in an error, and Jarvis passes error bodies on.
fn scrub(bytes: Bytes, key: &str) -> Bytes {
    let key = key.as_bytes();
    if key.is_empty() || !bytes.windows(key.len()).any(|w| w == key) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(key) {
            out.extend_from_slice(b"[redacted]");
            i += key.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

/// `error.message` of an OpenAI-shaped error body (else the body's start, if it is text), cut
/// to a readable length.
fn error_message(bytes: &[u8]) -> Option<String> {
    let message = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v["error"]["message"].as_str().map(str::to_string),
        Err(_) => std::str::from_utf8(bytes)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    }?;
    let mut cut = message.len().min(MAX_QUOTED);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(if cut < message.len() {
        format!("{}…", &message[..cut])
    } else {
        message
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::props::config(384))]

        /// OpenAI's stream chunks (usage) and error bodies, whatever the provider sends.
        #[test]
        fn openai_chunks_and_error_bodies_never_panic(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            value in crate::props::json(),
            prefix in prop_oneof![Just(""), Just("data:"), Just("data: "), Just("\n")],
        ) {
            let _ = stream_usage(&raw);
            let _ = error_message(&raw);
            let text = format!("{prefix}{value}\n\n");
            let _ = stream_usage(text.as_bytes());
            let _ = error_message(value.to_string().as_bytes());
            let chunk = format!("data: {{\"usage\": {value}}}\n\n");
            let _ = stream_usage(chunk.as_bytes());
        }
    }

    #[test]
    fn scrub_removes_every_occurrence_of_the_key() {
        let body = Bytes::from_static(b"{\"error\":\"bad key sk-123, sk-123\"}");
        assert_eq!(
            scrub(body, "sk-123"),
            Bytes::from_static(b"{\"error\":\"bad key [redacted], [redacted]\"}")
        );
        let clean = Bytes::from_static(b"nothing here");
        assert_eq!(scrub(clean.clone(), "sk-123"), clean);
    }

    #[test]
    fn error_message_reads_openai_errors_and_cuts_long_text() {
        assert_eq!(
            error_message(br#"{"error":{"message":"overloaded","type":"server_error"}}"#),
            Some("overloaded".into())
        );
        assert_eq!(
            error_message(b"  Bad Gateway \n"),
            Some("Bad Gateway".into())
        );
        assert_eq!(error_message(b""), None);
        let long = "x".repeat(1000);
        let cut = error_message(long.as_bytes()).unwrap();
        assert!(cut.chars().count() <= MAX_QUOTED + 1, "{cut}");
    }

    #[test]
    fn not_configured_names_the_variable() {
        let e = AiError::NotConfigured(Provider::OpenAi);
        assert!(e.to_string().contains("OPENAI_API_KEY"), "{e}");
        let e = AiError::NotConfigured(Provider::Gemini);
        assert!(e.to_string().contains("GEMINI_API_KEY"), "{e}");
        assert!(!e.to_string().contains("OPENAI_BASE_URL"), "{e}");
    }
}
