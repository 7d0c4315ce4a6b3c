-- Jarvis PostgreSQL schema, part 9: an agent can make learned parameters its domain's default.
--
-- A task of the domain submitted without `useLearned` gets learned parameters when its agent
-- says `use_learned` (a task can still opt out with `"useLearned": false`).
--
-- Applied automatically at start, and runnable by hand (`psql "$DATABASE_URL" < 0009_agent_use_learned.sql`);
-- every statement is idempotent.

ALTER TABLE agents ADD COLUMN IF NOT EXISTS use_learned BOOLEAN NOT NULL DEFAULT false;
