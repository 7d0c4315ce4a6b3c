//! The monitored services' part of the storage trait: their definitions, and the fingerprint
//! a monitor polls to notice a change.
//!
//! The SQL is written once: both engines accept it as is, and [`ServiceRow`] decodes from
//! either. `impl_service_store!` expands it for a backend.
//!
//! [`ServiceRow`]: super::rows::ServiceRow

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::service::ServiceSpec;

/// See [`ServiceStore::services_fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicesFingerprint {
    /// Number of services.
    pub count: i64,
    /// The latest `updated_at`, as stored.
    pub latest: Option<DateTime<Utc>>,
}

/// Creates or replaces a service, keeping its `created_at`.
pub(crate) const PUT: &str = "\
INSERT INTO services (name, url, method, interval_ms, timeout_ms, critical, expected_status,
                      expect_body, degraded_latency_ms, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10, $8, $8)
ON CONFLICT (name) DO UPDATE SET url = excluded.url, method = excluded.method,
    interval_ms = excluded.interval_ms, timeout_ms = excluded.timeout_ms,
    critical = excluded.critical, expected_status = excluded.expected_status,
    expect_body = excluded.expect_body, degraded_latency_ms = excluded.degraded_latency_ms,
    updated_at = excluded.updated_at
RETURNING *";

pub(crate) const GET: &str = "SELECT * FROM services WHERE name = $1";
pub(crate) const LIST: &str = "SELECT * FROM services ORDER BY name";
pub(crate) const DELETE: &str = "DELETE FROM services WHERE name = $1";
/// A deleted service's uptime counts go with it (same transaction).
pub(crate) const DELETE_UPTIME: &str = "DELETE FROM health_uptime WHERE service = $1";
pub(crate) const FINGERPRINT: &str = "SELECT COUNT(*), MAX(updated_at) FROM services";

/// Service definitions in the store.
#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// Creates or replaces a service (keeping its `created_at`). Returns what is stored and
    /// whether it was new.
    async fn put_service(&self, spec: &ServiceSpec) -> Result<(ServiceSpec, bool), StoreError>;

    /// One service by name.
    async fn get_service(&self, name: &str) -> Result<Option<ServiceSpec>, StoreError>;

    /// Every service, by name.
    async fn list_services(&self) -> Result<Vec<ServiceSpec>, StoreError>;

    /// Removes a service and its uptime counts; false when there was none.
    async fn delete_service(&self, name: &str) -> Result<bool, StoreError>;

    /// A cheap fingerprint of the service list: how many there are and the latest `updated_at`.
    /// Any create, replace or delete changes it (a replace stamps a newer `updated_at`), so a
    /// monitor polls this instead of reading every service.
    async fn services_fingerprint(&self) -> Result<ServicesFingerprint, StoreError>;
}

/// The one body of [`ServiceStore`] for both backends (`impl_service_store!(SqliteStore)`):
/// reads on the backend's reader, writes on its writer (see `store::shared::SqlBackend`).
macro_rules! impl_service_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::services::ServiceStore for $backend {
            async fn put_service(
                &self,
                spec: &$crate::model::service::ServiceSpec,
            ) -> Result<($crate::model::service::ServiceSpec, bool), $crate::store::StoreError>
            {
                use sqlx::types::Json;
                let row: $crate::store::rows::ServiceRow =
                    sqlx::query_as($crate::store::services::PUT)
                        .bind(spec.name.as_str())
                        .bind(&spec.url)
                        .bind(&spec.method)
                        .bind(spec.interval_ms as i64)
                        .bind(spec.timeout_ms as i64)
                        .bind(spec.critical)
                        .bind(Json(&spec.expected_status))
                        .bind(spec.created_at)
                        .bind(spec.expect_body.as_ref().map(Json))
                        .bind(spec.degraded_latency_ms.map(|v| v as i64))
                        .fetch_one($crate::store::shared::SqlBackend::writer(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                let stored = $crate::model::service::ServiceSpec::try_from(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                let created = stored.created_at == spec.created_at;
                Ok((stored, created))
            }

            async fn get_service(
                &self,
                name: &str,
            ) -> Result<Option<$crate::model::service::ServiceSpec>, $crate::store::StoreError>
            {
                let row: Option<$crate::store::rows::ServiceRow> =
                    sqlx::query_as($crate::store::services::GET)
                        .bind(name)
                        .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::one(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn list_services(
                &self,
            ) -> Result<Vec<$crate::model::service::ServiceSpec>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::rows::ServiceRow> =
                    sqlx::query_as($crate::store::services::LIST)
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::all(rows)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn delete_service(&self, name: &str) -> Result<bool, $crate::store::StoreError> {
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let done = sqlx::query($crate::store::services::DELETE)
                        .bind(name)
                        .execute(&mut tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        sqlx::query($crate::store::services::DELETE_UPTIME)
                            .bind(name)
                            .execute(&mut tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(done.rows_affected() > 0)
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn services_fingerprint(
                &self,
            ) -> Result<$crate::store::services::ServicesFingerprint, $crate::store::StoreError>
            {
                let (count, latest) = sqlx::query_as($crate::store::services::FINGERPRINT)
                    .fetch_one($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok($crate::store::services::ServicesFingerprint { count, latest })
            }
        }
    };
}
pub(crate) use impl_service_store;
