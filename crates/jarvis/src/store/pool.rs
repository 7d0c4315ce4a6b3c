//! The store's connection pools as sqlx executors that also work behind a transaction-mode
//! connection pooler (PgBouncer with `pool_mode = transaction`, RDS Proxy).
//!
//! Such a pooler hands the server connection behind a client connection to another client
//! whenever no transaction is open, which breaks two things sqlx does on its own:
//!
//! - It names and caches prepared statements per connection (`sqlx_s_1`, …): the next statement
//!   may reach a server connection where that name does not exist, or where another client's
//!   statement holds it. PgBouncer learned to track them in 1.21; Debian 12 ships 1.18.
//! - Even an unnamed statement is sent in two steps, each ended by a `Sync`: `Parse` and
//!   `Describe`, then `Bind` and `Execute` (sqlx-postgres 0.8, `connection/executor.rs`). After
//!   the first `Sync` the pooler may switch server connections, and the `Bind` would find
//!   another client's unnamed statement or none.
//!
//! So with a pooler ([`StorePool::behind_pooler`]) every statement run on a pool gets a
//! transaction of its own (which keeps one server connection from `BEGIN` to `COMMIT`) and is
//! sent unnamed; statements inside a [`Tx`] are sent unnamed too. The transaction's first
//! round trip can carry `SET LOCAL` settings (the queue's planner settings), which replaces the
//! session-level `options` a direct connection is opened with. Without a pooler both types only
//! forward to sqlx.
//!
//! One thing stays named whatever the statement says: when a result column has a type sqlx
//! does not know (`xid8`, an extension's type), sqlx looks it up in `pg_type` with a named
//! statement of its own. Statements of the store therefore return only built-in types (cast,
//! as `pg_current_xact_id()::text`); the PgBouncer test (`tests/api/pooler.rs`) catches one that
//! does not ("prepared statement \"sqlx_s_1\" already exists").

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::error::BoxDynError;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool};

/// A connection pool, used as an executor (`.execute(store.writer())`).
pub(crate) struct StorePool<DB: Database> {
    pool: Pool<DB>,
    /// Behind a pooler: the statement that opens each statement's own transaction.
    own_transaction: Option<Cow<'static, str>>,
}

impl<DB: Database> Clone for StorePool<DB> {
    fn clone(&self) -> Self {
        StorePool {
            pool: self.pool.clone(),
            own_transaction: self.own_transaction.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for StorePool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePool")
            .field("pool", &self.pool)
            .field("own_transaction", &self.own_transaction)
            .finish()
    }
}

impl<DB: Database> StorePool<DB> {
    /// Statements go to `pool` as they are.
    pub fn direct(pool: Pool<DB>) -> Self {
        StorePool {
            pool,
            own_transaction: None,
        }
    }

    /// Every statement runs unnamed in a transaction of its own, opened by `begin` (`BEGIN`,
    /// or `BEGIN; SET LOCAL …`).
    pub fn behind_pooler(pool: Pool<DB>, begin: impl Into<Cow<'static, str>>) -> Self {
        StorePool {
            pool,
            own_transaction: Some(begin.into()),
        }
    }

    /// The sqlx pool underneath.
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Opens a transaction; statements run in it through `&mut tx`.
    pub async fn begin(&self) -> Result<Tx<'static, DB>, Error> {
        Ok(Tx {
            inner: self.pool.begin().await?,
            unnamed: self.own_transaction.is_some(),
        })
    }

    /// Closes the pool (see [`Pool::close`]).
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// A transaction of a [`StorePool`]: `.execute(&mut tx)`, then [`commit`](Tx::commit) (dropped
/// uncommitted, it rolls back).
pub(crate) struct Tx<'c, DB: Database> {
    inner: sqlx::Transaction<'c, DB>,
    /// Behind a pooler: statements are sent unnamed.
    unnamed: bool,
}

impl<DB: Database> std::fmt::Debug for Tx<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("unnamed", &self.unnamed)
            .finish()
    }
}

impl<DB: Database> Tx<'_, DB> {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }

    /// The connection the transaction runs on, for what is not a statement (PostgreSQL's
    /// `COPY … FROM STDIN`).
    pub fn connection(&mut self) -> &mut DB::Connection {
        &mut self.inner
    }
}

/// A statement sent as the unnamed prepared statement (never cached on the connection).
struct Unnamed<E>(E);

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Unnamed<E> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }

    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

impl<'p, DB: Database> Executor<'p> for &'p StorePool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let Some(begin) = self.own_transaction.clone() else {
            return self.pool.fetch_many(query);
        };
        let pool = self.pool.clone();
        // The results are collected before they are handed on: the transaction commits
        // first, and no caller of the store streams rows.
        let all = async move {
            let mut tx = pool.begin_with(begin).await?;
            let items: Vec<_> = (&mut *tx).fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, Error>(items)
        };
        Box::pin(
            stream::once(all)
                .map(|all| match all {
                    Ok(items) => stream::iter(items.into_iter().map(Ok)).left_stream(),
                    Err(e) => stream::once(async move { Err(e) }).right_stream(),
                })
                .flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let Some(begin) = self.own_transaction.clone() else {
            return self.pool.fetch_optional(query);
        };
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin_with(begin).await?;
            let row = (&mut *tx).fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

impl<'t, DB: Database> Executor<'t> for &'t mut Tx<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let conn: &'t mut DB::Connection = &mut self.inner;
        if self.unnamed {
            conn.fetch_many(Unnamed(query))
        } else {
            conn.fetch_many(query)
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let conn: &'t mut DB::Connection = &mut self.inner;
        if self.unnamed {
            conn.fetch_optional(Unnamed(query))
        } else {
            conn.fetch_optional(query)
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        't: 'e,
    {
        let conn: &'t mut DB::Connection = &mut self.inner;
        conn.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        't: 'e,
    {
        let conn: &'t mut DB::Connection = &mut self.inner;
        conn.describe(sql)
    }
}
