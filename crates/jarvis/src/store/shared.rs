//! What the SQL written once for both engines needs from a backend.
//!
//! Most of the store is the same SQL on SQLite and PostgreSQL (sqlx's SQLite driver binds
//! `$N` placeholders too), so its bodies are written once, as macros next to their traits
//! (`impl_service_store!` in `store/services.rs`, `impl_schedule_store!` in
//! `store/schedules.rs`, …), and expanded once per backend by one `impl_sql_store!`. A macro
//! rather than a generic function: each expansion is plain code over one concrete driver,
//! with none of the higher-ranked bounds a function generic over `sqlx::Database` needs. The
//! same macro implements [`SqlBackend`] (pools, migrations, how an error is classified) from
//! the backend's arguments; a backend writes only its [`BackendHooks`]. The values that are
//! stored or bound differently ([`DbUuid`], [`DbTexts`], [`DbList`]) encode and decode the same
//! way on both.
//!
//! What really differs by dialect stays in `store/sqlite/` and `store/postgres/`, as the SQL
//! text or the steps a domain's dialect trait asks for (`QueueDialect`, `HistoryDialect`,
//! `BreakerDialect`): the queue's claim and settlement, compare-and-swap writes, time
//! arithmetic, `SKIP LOCKED`, `UNNEST`, `NOTIFY` and plan pinning.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::pool::StorePool;
use super::{Backend, StoreError};

/// Where a backend reads and writes, and how it turns a driver error into a [`StoreError`].
/// Implemented by [`impl_sql_store!`] from the backend's arguments (driver, engine, migrations
/// folder) and its `pools` field; what a backend decides itself is its [`BackendHooks`].
pub(crate) trait SqlBackend: BackendHooks {
    /// The driver.
    type Db: sqlx::Database;

    /// Which engine this is.
    const BACKEND: Backend;

    /// The embedded migrations (`migrations/<backend>/`).
    const MIGRATOR: sqlx::migrate::Migrator;

    /// The backend's connection pools.
    fn pools(&self) -> &Pools<Self::Db>;

    /// The pool reads go to.
    fn reader(&self) -> &StorePool<Self::Db> {
        &self.pools().reader
    }

    /// The pool writes go to (on SQLite, the single writer connection).
    fn writer(&self) -> &StorePool<Self::Db> {
        &self.pools().writer
    }

    /// The pool the queue's own statements run on (claim, settle, leases, marks, reclaim).
    fn queue(&self) -> &StorePool<Self::Db> {
        &self.pools().queue
    }

    /// Classifies a driver error ([`StoreError::from_sqlx`]) with its message scrubbed
    /// ([`BackendHooks::scrub`]), and lets the backend [`notice`](BackendHooks::notice) it.
    fn classify(&self, e: sqlx::Error) -> StoreError {
        let e = match StoreError::from_sqlx(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(self.scrub(m)),
            StoreError::Full(m) => StoreError::Full(self.scrub(m)),
            StoreError::Other(m) => StoreError::Other(self.scrub(m)),
            other => other,
        };
        self.notice(&e);
        e
    }
}

/// What a backend decides itself about its errors and its health; each hook does nothing by
/// default.
pub(crate) trait BackendHooks {
    /// Removes what an operator must not see from an error message (PostgreSQL: the
    /// password of the URL).
    fn scrub(&self, message: String) -> String {
        message
    }

    /// Remembers what a classified error says about the backend (SQLite: that it is out of
    /// space).
    fn notice(&self, e: &StoreError) {
        let _ = e;
    }

    /// Applies the embedded migrations ([`SqlBackend::MIGRATOR`]).
    async fn run_migrations(&self) -> Result<(), sqlx::migrate::MigrateError>;

    /// After a successful read in `ping`: whether writes work (SQLite, after running out of
    /// space).
    async fn probe_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The database server's clock, for a store several instances share (PostgreSQL);
    /// `None` for an embedded one.
    async fn database_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(None)
    }
}

/// Where a backend reads, writes and runs its queue. Two fields may hold the same pool (a
/// pool is a handle): SQLite's writer and queue are its one writer connection, PostgreSQL's
/// reader and writer its main pool.
pub(crate) struct Pools<DB: sqlx::Database> {
    /// Where reads go.
    pub reader: StorePool<DB>,
    /// Where writes go.
    pub writer: StorePool<DB>,
    /// Where the queue's own statements go.
    pub queue: StorePool<DB>,
}

/// Implements [`Store`](super::Store) and every domain trait for a backend from the bodies
/// written once, given the few statements a backend writes its own way:
/// `impl_sql_store!(SqliteStore, db = sqlx::Sqlite, engine = Sqlite, migrations =
/// "./migrations/sqlite", health_chunk = …, retry = …)`, which also implements [`SqlBackend`]
/// over the backend's `pools` field
/// (see `impl_health_store!`, `impl_learning_store!` and `impl_task_retry_store!`). The
/// queue, history and breaker bodies take their dialect from the backend's `QueueDialect`,
/// `HistoryDialect` and `BreakerDialect`.
macro_rules! impl_sql_store {
    (
        $backend:ty,
        db = $db:ty,
        engine = $engine:ident,
        migrations = $migrations:literal,
        health_chunk = $health_chunk:expr,
        retry = $retry:expr $(,)?
    ) => {
        impl $crate::store::shared::SqlBackend for $backend {
            type Db = $db;
            const BACKEND: $crate::store::Backend = $crate::store::Backend::$engine;
            const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!($migrations);

            fn pools(&self) -> &$crate::store::shared::Pools<$db> {
                &self.pools
            }
        }

        $crate::store::services::impl_service_store!($backend);
        $crate::store::agents::impl_agent_store!($backend);
        $crate::store::health::impl_health_store!($backend, $health_chunk);
        $crate::store::schedules::impl_schedule_store!($backend);
        $crate::store::task_rows::impl_task_row_store!($backend);
        $crate::store::retry::impl_task_retry_store!($backend, $retry);
        $crate::store::tasks::impl_task_store!($backend);
        $crate::store::history::impl_history_store!($backend);
        $crate::store::history::impl_history_read_store!($backend);
        $crate::store::learning::impl_learning_store!($backend);
        $crate::store::breaker_state::impl_breaker_state_store!($backend);
        $crate::store::ai_usage::impl_ai_usage_store!($backend);
        $crate::store::ai_models::impl_ai_model_store!($backend);
        $crate::store::analytics::impl_analytics_store!($backend);
        $crate::store::traces::impl_trace_store!($backend);
        $crate::store::alerts::impl_alert_store!($backend);

        #[async_trait::async_trait]
        impl $crate::store::Store for $backend {
            fn backend(&self) -> $crate::store::Backend {
                <$backend as $crate::store::shared::SqlBackend>::BACKEND
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query("SELECT 1")
                    .execute(self.reader())
                    .await
                    .map_err(|e| self.classify(e))?;
                $crate::store::shared::BackendHooks::probe_writes(self).await
            }

            async fn database_time(
                &self,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::store::StoreError> {
                $crate::store::shared::BackendHooks::database_time(self).await
            }

            async fn migrate(&self) -> Result<(), $crate::store::StoreError> {
                <$backend as $crate::store::shared::BackendHooks>::run_migrations(self)
                    .await
                    .map_err(|e| {
                        $crate::store::StoreError::Migration(
                            $crate::store::shared::BackendHooks::scrub(self, e.to_string()),
                        )
                    })
            }

            async fn close(&self) {
                // The queue's and the writer's first (closing a pool twice is harmless).
                let pools = $crate::store::shared::SqlBackend::pools(self);
                for pool in [&pools.queue, &pools.writer, &pools.reader] {
                    pool.close().await;
                }
            }
        }
    };
}
pub(crate) use impl_sql_store;

/// Runs a retention statement (`$sql` binds the cut-off time and [`PRUNE_BATCH`](super::PRUNE_BATCH)
/// and deletes at most that many rows) on the writer until a batch deletes fewer, so that no
/// statement holds its locks for long; evaluates to the rows deleted. Used inside the store
/// macro bodies (`impl_health_store!`, `impl_trace_store!`).
macro_rules! prune_in_batches {
    ($self:ident, $sql:expr, $before:expr) => {{
        let mut total = 0;
        loop {
            let done = sqlx::query($sql)
                .bind($before)
                .bind($crate::store::PRUNE_BATCH)
                .execute($crate::store::shared::SqlBackend::writer($self))
                .await
                .map_err(|e| $crate::store::shared::SqlBackend::classify($self, e))?;
            total += done.rows_affected();
            if done.rows_affected() < $crate::store::PRUNE_BATCH as u64 {
                break Ok(total);
            }
        }
    }};
}
pub(crate) use prune_in_batches;

/// A list of texts as one parameter: a `text[]` on PostgreSQL (`= ANY($1)`), a JSON array on
/// SQLite, which has no arrays (`IN (SELECT value FROM json_each($1))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbTexts(pub Vec<String>);

impl Type<Postgres> for DbTexts {
    fn type_info() -> PgTypeInfo {
        <[String] as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <[String] as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for DbTexts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&[String] as Encode<'q, Postgres>>::encode_by_ref(&self.0.as_slice(), buf)
    }
}

impl Type<Sqlite> for DbTexts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbTexts {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(serde_json::to_string(&self.0)?, args)
    }
}

/// A list as one parameter: an array on PostgreSQL (`UNNEST($1::uuid[])`, `= ANY($1)`), a JSON
/// array on SQLite, which has no arrays (`json_each($1)`, `$1 ->> n`). UUIDs are hyphenated text
/// in the JSON, as SQLite stores them ([`DbUuid`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbList<'a, T>(pub &'a [T]);

impl<T> Type<Postgres> for DbList<'_, T>
where
    [T]: Type<Postgres>,
{
    fn type_info() -> PgTypeInfo {
        <[T] as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <[T] as Type<Postgres>>::compatible(ty)
    }
}

impl<'q, T> Encode<'q, Postgres> for DbList<'_, T>
where
    for<'a> &'a [T]: Encode<'q, Postgres>,
{
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&[T] as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<T> Type<Sqlite> for DbList<'_, T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q, T: serde::Serialize> Encode<'q, Sqlite> for DbList<'_, T> {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(serde_json::to_string(self.0)?, args)
    }
}

/// A UUID as a column or a parameter: native `uuid` on PostgreSQL, hyphenated text on SQLite
/// (sqlx's SQLite driver would write a blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DbUuid(pub Uuid);

impl From<Uuid> for DbUuid {
    fn from(id: Uuid) -> Self {
        DbUuid(id)
    }
}

impl Type<Postgres> for DbUuid {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for DbUuid {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbUuid {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<'r, Postgres>>::decode(value).map(DbUuid)
    }
}

impl Type<Sqlite> for DbUuid {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbUuid {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <uuid::fmt::Hyphenated as Encode<'q, Sqlite>>::encode_by_ref(&self.0.hyphenated(), args)
    }
}

impl<'r> Decode<'r, Sqlite> for DbUuid {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(DbUuid(Uuid::parse_str(text)?))
    }
}
