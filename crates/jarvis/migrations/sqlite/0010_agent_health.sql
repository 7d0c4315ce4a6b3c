-- Jarvis embedded (SQLite) schema, part 10: an agent can declare a health URL, checked as the
-- monitored service named after its domain (so through the domain's own circuit breaker).
-- Mirrors migrations/postgres/0010_agent_health.sql.

ALTER TABLE agents ADD COLUMN health_url TEXT;
ALTER TABLE agents ADD COLUMN health_interval_ms INTEGER;
