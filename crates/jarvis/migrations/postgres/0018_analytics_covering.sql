-- Jarvis schema, part 18: nothing on PostgreSQL.
--
-- Applied automatically at start, and also runnable by hand before instances start.
-- Every statement is idempotent, so running the file twice does no harm.
--
-- The SQLite file of the same number replaces the analytics' time indexes with covering ones;
-- PostgreSQL meets the target with the 0014 indexes (bench/analytics/README.md), and every
-- index on a rollup is one more write per upserted row. This file keeps the numbers of both
-- directories in step.
SELECT 1;
