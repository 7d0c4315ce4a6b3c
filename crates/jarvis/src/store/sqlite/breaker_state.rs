//! Shared breaker state on SQLite: the time arithmetic of the shared statements
//! (`store::breaker_state`) in SQLite's terms (times are RFC 3339 text, durations come from
//! `julianday`), and nothing to announce or hear: one instance owns the file.

use super::SqliteStore;
use crate::store::breaker_state::{BreakerDialect, TimeSql};

/// Nothing to announce or hear (the trait's defaults): one instance owns the file.
impl BreakerDialect for SqliteStore {
    const TIME: TimeSql = TimeSql {
        // The current time as SQLite text, like the values it stores.
        now: "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        plus_ms: |ms| {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({ms} / 1000.0) || ' seconds')")
        },
        ms_until: |at| {
            format!("CAST(round((julianday({at}) - julianday('now')) * 86400000.0) AS INTEGER)")
        },
        contains: |text, part| format!("instr({text}, {part}) > 0"),
    };
}
