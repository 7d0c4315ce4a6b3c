//! Tasks: the durable shared queue, its workers and the agents they call.
//!
//! - [`model`]: [`Task`], [`TaskStatus`], [`NewTask`].
//! - [`input`]: what callers submit, validated field by field.
//! - [`queue`]: [`TaskQueue`]: submitting, claiming, running attempts through the agent's
//!   circuit breaker, retries with backoff and jitter, leases, reclaiming, shutdown.
//! - [`agents`]: built-in agents ([`BuiltinAgent`], `noop`) and HTTP agents (the agent
//!   protocol: docs/api.md, Agent protocol).
//! - [`metrics`]: completions, failure rate, durations, queue depth.
//! - [`cli`]: `jarvis tasks …` against a running server.

pub mod agents;
pub mod called;
pub use crate::model::task_input as input;
pub mod metrics;
pub use crate::model::task as model;
pub mod queue;

pub use agents::{AgentAnswer, AgentCall, BuiltinAgent, BuiltinAgents};
pub use model::{NewTask, Task, TaskStatus};
pub use queue::TaskQueue;
