//! Schedules on SQLite: the shared body of `store::schedules`; writes on the single writer
//! connection, reads on the pool.

use super::SqliteStore;

crate::store::schedules::impl_schedule_store!(SqliteStore, pool, writer, err);
