//! The HTTP agents' part of the storage trait: one definition per domain.
//!
//! The SQL is written once: both engines accept it as is, and [`AgentRow`] decodes from
//! either. `impl_agent_store!` expands it for a backend.
//!
//! [`AgentRow`]: super::rows::AgentRow

use async_trait::async_trait;

use super::StoreError;
use crate::model::agent::AgentSpec;

/// Creates or replaces an agent, keeping its `created_at`.
pub(crate) const PUT: &str = "\
INSERT INTO agents (domain, url, timeout_ms, use_learned, health_url, health_interval_ms,
                    created_at, updated_at, kind, model, prompt)
VALUES ($1, $2, $3, $5, $6, $7, $4, $4, $8, $9, $10)
ON CONFLICT (domain) DO UPDATE SET url = excluded.url, timeout_ms = excluded.timeout_ms,
    use_learned = excluded.use_learned, health_url = excluded.health_url,
    health_interval_ms = excluded.health_interval_ms, updated_at = excluded.updated_at,
    kind = excluded.kind, model = excluded.model, prompt = excluded.prompt
RETURNING *";

pub(crate) const GET: &str = "SELECT * FROM agents WHERE domain = $1";
pub(crate) const LIST: &str = "SELECT * FROM agents ORDER BY domain";
pub(crate) const DELETE: &str = "DELETE FROM agents WHERE domain = $1";

/// Agent definitions in the store.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates or replaces an agent (keeping its `created_at`). Returns what is stored and
    /// whether it was new.
    async fn put_agent(&self, spec: &AgentSpec) -> Result<(AgentSpec, bool), StoreError>;

    /// The agent of a domain.
    async fn get_agent(&self, domain: &str) -> Result<Option<AgentSpec>, StoreError>;

    /// Every agent, by domain.
    async fn list_agents(&self) -> Result<Vec<AgentSpec>, StoreError>;

    /// Removes an agent; false when there was none.
    async fn delete_agent(&self, domain: &str) -> Result<bool, StoreError>;
}

/// The one body of [`AgentStore`] for both backends (`impl_agent_store!(SqliteStore)`):
/// reads on the backend's reader, writes on its writer (see `store::shared::SqlBackend`).
macro_rules! impl_agent_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::agents::AgentStore for $backend {
            async fn put_agent(
                &self,
                spec: &$crate::model::agent::AgentSpec,
            ) -> Result<($crate::model::agent::AgentSpec, bool), $crate::store::StoreError> {
                let row: $crate::store::rows::AgentRow = sqlx::query_as($crate::store::agents::PUT)
                    .bind(spec.domain.as_str())
                    .bind(&spec.url)
                    .bind(spec.timeout_ms as i64)
                    .bind(spec.created_at)
                    .bind(spec.use_learned)
                    .bind(spec.health_url.as_deref())
                    .bind(spec.health_interval_ms.map(|ms| ms as i64))
                    .bind(spec.kind.as_str())
                    .bind(spec.model.as_deref())
                    .bind(spec.prompt.as_deref())
                    .fetch_one($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                let stored = $crate::model::agent::AgentSpec::try_from(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                let created = stored.created_at == spec.created_at;
                Ok((stored, created))
            }

            async fn get_agent(
                &self,
                domain: &str,
            ) -> Result<Option<$crate::model::agent::AgentSpec>, $crate::store::StoreError> {
                let row: Option<$crate::store::rows::AgentRow> =
                    sqlx::query_as($crate::store::agents::GET)
                        .bind(domain)
                        .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::one(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn list_agents(
                &self,
            ) -> Result<Vec<$crate::model::agent::AgentSpec>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::rows::AgentRow> =
                    sqlx::query_as($crate::store::agents::LIST)
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::all(rows)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn delete_agent(&self, domain: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::agents::DELETE)
                    .bind(domain)
                    .execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_agent_store;
