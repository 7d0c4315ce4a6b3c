//! The embedded store: one SQLite file in WAL mode, for a single machine with no setup.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::pool::StorePool;
use super::shared::{BackendHooks, Pools, SqlBackend};
use super::StoreError;

mod breaker_state;
mod history;
mod tasks;

/// Health check results per insert (one transaction each). Every other write waits its turn
/// behind the insert in progress on the one writer connection; 500-row inserts made a service
/// deletion wait ~25 ms behind each under a saturated history writer, 128-row ones a quarter
/// of that, for a few percent more time per row (bench/health/README.md).
const HEALTH_INSERT_CHUNK: usize = 128;

/// Rows a reader connection's thread may hand over before the caller has taken them.
const READER_ROW_BUFFER: usize = 4_096;

/// The SQLite-backed [`Store`].
///
/// SQLite allows one writer at a time. Every write (queue, history, services, agents, breaker
/// state, health history and uptime) therefore goes through `writer`, a pool of exactly one
/// connection whose waiters are served in order, so writes queue inside the process instead
/// of contending for the file lock (the queue's statements too); reads use `reader`. Contending for the lock would leave the
/// loser in SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between attempts: a
/// `DELETE` of one service then lost, again and again, to the health history writer that
/// grabs the lock again within microseconds of releasing it (15,000 deletions at 20,000
/// services: p99 0.3–1.5 s each, see bench/health/README.md).
pub struct SqliteStore {
    pools: Pools<sqlx::Sqlite>,
    /// The last "out of space" error, until a probe write succeeds (`/health` says `fail`
    /// meanwhile).
    full: std::sync::Mutex<Option<String>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and its directory.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_dir(dir).map_err(|e| {
                anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display())
            })?;
        }
        // The database holds task parameters and results: its user's only, and so are the
        // `-wal` and `-shm` files SQLite makes with the database file's permissions.
        crate::files::create_private(path).map_err(|e| {
            anyhow::anyhow!("cannot create the SQLite database {}: {e}", path.display())
        })?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::files::restrict(std::path::Path::new(&side))
                .map_err(|e| anyhow::anyhow!("cannot restrict {}: {e}", path.display()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only an OS crash may lose the
            // last transactions, which is the usual trade for an embedded store.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // Each connection runs on its own thread and hands rows to the caller through a
            // channel of this many; at sqlx's 50, a statement of a few thousand rows (the
            // analytics' day series and overview) stopped its thread and woke the caller every
            // 50 rows: a third of such an answer's time went to thread switches
            // (bench/analytics/README.md).
            .connect_with(options.clone().row_buffer_size(READER_ROW_BUFFER))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot open the SQLite database {}: {e}", path.display())
            })?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // A connection must come back outside any transaction. When a write fails at
            // COMMIT or mid-transaction with SQLITE_FULL or an I/O error, SQLite may already
            // have rolled the transaction back, so sqlx's ROLLBACK fails and its count of open
            // transactions stays at one; the next `begin` then opens a SAVEPOINT whose
            // rollback leaves a real transaction open, and every later write joins it and is
            // never committed, though each reports success (issue: 16,300 acknowledged tasks
            // lost on a full disk). Such a connection is closed here, not reused: closing it
            // rolls back whatever it held, and the pool opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // A dropped transaction's ROLLBACK is queued on the connection's worker:
                    // let it run before judging.
                    conn.lock_handle().await?;
                    let clean = !conn.is_in_transaction();
                    if !clean {
                        tracing::warn!(
                            "closing the SQLite writer connection: a failed write left it inside a transaction"
                        );
                    }
                    Ok(clean)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot open the SQLite database {}: {e}", path.display())
            })?;
        Ok(SqliteStore {
            pools: Pools {
                reader: StorePool::direct(reader),
                queue: StorePool::direct(writer.clone()),
                writer: StorePool::direct(writer),
            },
            full: std::sync::Mutex::new(None),
        })
    }
}

impl BackendHooks for SqliteStore {
    /// On a connection of the reader pool.
    async fn run_migrations(&self) -> Result<(), sqlx::migrate::MigrateError> {
        Self::MIGRATOR.run(self.reader().inner()).await
    }

    /// Remembers an "out of space" until a probe write succeeds.
    fn notice(&self, e: &StoreError) {
        if let StoreError::Full(m) = e {
            *self.full.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
        }
    }

    /// Writes failed for lack of space: a probe write (a header field of the file, no table
    /// touched) says whether they work again.
    async fn probe_writes(&self) -> Result<(), StoreError> {
        let full = self.full.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(m) = full else {
            return Ok(());
        };
        // A value that differs from the stored one, so the header page is really written.
        static PROBE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000 + 1;
        sqlx::query(&format!("PRAGMA user_version = {n}"))
            .execute(self.writer())
            .await
            .map_err(|e| self.classify(e))
            .map_err(|e| match e {
                StoreError::Full(_) => StoreError::Full(format!("writes fail: {m}")),
                other => other,
            })?;
        *self.full.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("the SQLite store takes writes again");
        Ok(())
    }
}

// Everything else is written once, in `store::<domain>`, with this backend's dialect.
// One writer connection for writes and the queue (see [`SqliteStore`]).
crate::store::shared::impl_sql_store!(
    SqliteStore,
    db = sqlx::Sqlite,
    engine = Sqlite,
    migrations = "./migrations/sqlite",
    health_chunk = HEALTH_INSERT_CHUNK,
    retry = crate::store::retry::REQUEUE,
);
