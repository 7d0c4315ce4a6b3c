//! Shared breaker state on SQLite: the time arithmetic of the shared statements
//! (`store::breaker_state`) in SQLite's terms (times are RFC 3339 text, durations come from
//! `julianday`), and nothing to announce or hear: one instance owns the file.

use std::sync::LazyLock;

use super::SqliteStore;
use crate::store::breaker_state::{BreakerDialect, BreakerSql, TimeSql};

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

/// Nothing to announce or hear (the trait's defaults): one instance owns the file.
impl BreakerDialect for SqliteStore {
    fn breaker_sql() -> &'static LazyLock<BreakerSql> {
        &SQL
    }
}
