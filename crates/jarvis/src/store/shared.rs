//! What the SQL written once for both engines needs from a backend.
//!
//! Most of the store is the same SQL on SQLite and PostgreSQL (sqlx's SQLite driver binds
//! `$N` placeholders too), so its bodies are written once, as macros next to their traits
//! (`impl_service_store!` in `store/services.rs`, `impl_schedule_store!` in
//! `store/schedules.rs`, …), and expanded once per backend. A macro rather than a generic
//! function: each expansion is plain code over one concrete driver, with none of the
//! higher-ranked bounds a function generic over `sqlx::Database` needs. A backend provides
//! [`SqlBackend`] (where reads and writes go, how an error is classified); the values that
//! are stored differently ([`DbUuid`]) encode and decode the same way on both.
//!
//! What really differs by dialect stays in `store/sqlite/` and `store/postgres/`: the queue's
//! claim and settlement, compare-and-swap writes, time arithmetic, `SKIP LOCKED`, `UNNEST`,
//! `NOTIFY` and plan pinning.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::StoreError;

/// Where a backend reads and writes, and how it turns a driver error into a [`StoreError`].
pub(crate) trait SqlBackend {
    /// The driver.
    type Db: sqlx::Database;

    /// The pool reads go to.
    fn reader(&self) -> &sqlx::Pool<Self::Db>;

    /// The pool writes go to (on SQLite, the single writer connection).
    fn writer(&self) -> &sqlx::Pool<Self::Db>;

    /// Classifies a driver error (and remembers what the backend must: SQLite's "out of
    /// space", PostgreSQL's password scrubbing).
    fn classify(&self, e: sqlx::Error) -> StoreError;
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
