//! The AI gateway's model groups in the store (`ai_models`): one row per group, its config
//! table as JSON, so that a `PUT /api/v1/ai/models/{group}` on one instance is seen by all.
//!
//! The SQL is written once: both engines accept it as is. `impl_ai_model_store!` expands it
//! for a backend.

use async_trait::async_trait;

use super::StoreError;

/// Creates or replaces a group, keeping its `created_at`; returns the `created_at` stored.
pub(crate) const PUT: &str = "\
INSERT INTO ai_models (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $3)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at
RETURNING created_at";

pub(crate) const GET: &str = "SELECT name, spec FROM ai_models WHERE name = $1";
pub(crate) const LIST: &str = "SELECT name, spec FROM ai_models ORDER BY name";
pub(crate) const DELETE: &str = "DELETE FROM ai_models WHERE name = $1";

/// Model groups in the store, as JSON text (validated above the store).
#[async_trait]
pub trait AiModelStore: Send + Sync {
    /// Creates or replaces group `name` with `spec` (JSON) at `now_ms`; true when it is new.
    async fn put_ai_model(&self, name: &str, spec: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// The JSON of group `name`.
    async fn get_ai_model(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Every group, by name: (name, JSON).
    async fn list_ai_models(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Removes a group; false when there was none.
    async fn delete_ai_model(&self, name: &str) -> Result<bool, StoreError>;
}

/// The one body of [`AiModelStore`] for both backends: reads on the backend's reader, writes
/// on its writer (see `store::shared::SqlBackend`).
macro_rules! impl_ai_model_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ai_models::AiModelStore for $backend {
            async fn put_ai_model(
                &self,
                name: &str,
                spec: &str,
                now_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let (created,): (i64,) = sqlx::query_as($crate::store::ai_models::PUT)
                    .bind(name)
                    .bind(spec)
                    .bind(now_ms)
                    .fetch_one($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(created == now_ms)
            }

            async fn get_ai_model(
                &self,
                name: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let row: Option<(String, String)> = sqlx::query_as($crate::store::ai_models::GET)
                    .bind(name)
                    .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(row.map(|(_, spec)| spec))
            }

            async fn list_ai_models(
                &self,
            ) -> Result<Vec<(String, String)>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::ai_models::LIST)
                    .fetch_all($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn delete_ai_model(&self, name: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::ai_models::DELETE)
                    .bind(name)
                    .execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_ai_model_store;
