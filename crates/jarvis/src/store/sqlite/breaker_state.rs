//! Shared breaker state on SQLite: the time arithmetic of the shared statements
//! (`store::breaker_state`) in SQLite's terms (times are RFC 3339 text, durations come from
//! `julianday`), and nothing to announce or hear: one instance owns the file.

use std::sync::LazyLock;

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::breaker_state::{BreakerDialect, BreakerSql, ChangeNote, TimeSql};

/// The current time as SQLite text, like the values it stores.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

static SQL: LazyLock<BreakerSql> = LazyLock::new(|| {
    BreakerSql::new(&TimeSql {
        now: NOW,
        plus_ms: |ms| {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({ms} / 1000.0) || ' seconds')")
        },
        ms_until: |at| {
            format!("CAST(round((julianday({at}) - julianday('now')) * 86400000.0) AS INTEGER)")
        },
        contains: |text, part| format!("instr({text}, {part}) > 0"),
    })
});

#[async_trait]
impl BreakerDialect for SqliteStore {
    fn breaker_sql() -> &'static LazyLock<BreakerSql> {
        &SQL
    }

    async fn announce(
        _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        _name: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn watch(
        &self,
        _notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // One instance per SQLite file: there is nobody else to hear from.
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}

crate::store::breaker_state::impl_breaker_state_store!(SqliteStore);
