-- Jarvis schema, part 19: nothing on SQLite.
--
-- The PostgreSQL file of the same number drops the unique index on `task_history.record_id`
-- (the unique (task_id, attempt) index refuses a replayed record on its own). On SQLite the
-- constraint is part of the table's definition and dropping it means copying the table; the
-- embedded store keeps it. This file keeps the numbers of both directories in step.
SELECT 1;
