//! Schedules on PostgreSQL: the shared body of `store::schedules`, reads and writes on the pool.

use super::PostgresStore;

crate::store::schedules::impl_schedule_store!(PostgresStore, pool, pool, error);
