-- Jarvis embedded (SQLite) schema, part 5: fewer indexes on the hot tables.
-- Mirrors migrations/postgres/0005_lean_indexes.sql, except the idempotency key: SQLite cannot
-- drop a column's UNIQUE constraint without rebuilding the table, and its cost here is small.

-- Listing tasks newest first walks the primary key backwards (task ids are UUIDv7, in creation
-- order; as text, their order is the same).
DROP INDEX IF EXISTS tasks_domain_action_created_idx;

-- Retention walks the rowid from the oldest row; recent successful runs walk
-- (domain, action, id DESC).
DROP INDEX IF EXISTS task_history_finished_idx;
DROP INDEX IF EXISTS task_history_domain_action_finished_idx;
