-- Jarvis PostgreSQL schema, part 10: an agent can declare a health URL.
--
-- Jarvis checks it as the monitored service named after the agent's domain, so through the
-- circuit breaker the domain's tasks use: while the agent is down its tasks wait instead of
-- spending attempts. The columns say which service is the agent's (to update or remove it
-- with the agent).
--
-- Applied automatically at start, and runnable by hand (`psql "$DATABASE_URL" < 0010_agent_health.sql`);
-- every statement is idempotent.

ALTER TABLE agents ADD COLUMN IF NOT EXISTS health_url TEXT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS health_interval_ms BIGINT;
