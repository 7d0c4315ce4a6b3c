-- Jarvis schema, part 19: nothing on SQLite.
--
-- The PostgreSQL file of the same number drops the unique index on `task_history.record_id`
-- (the attempt's unique key already skips a replayed record). SQLite cannot drop a column
-- constraint without rebuilding the table, and its single writer is not bound by that index;
-- this file keeps the numbers of both directories in step.
SELECT 1;
