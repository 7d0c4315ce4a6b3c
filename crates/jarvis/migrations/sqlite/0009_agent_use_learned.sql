-- Jarvis embedded (SQLite) schema, part 9: an agent can make learned parameters its domain's
-- default. Mirrors migrations/postgres/0009_agent_use_learned.sql.

ALTER TABLE agents ADD COLUMN use_learned INTEGER NOT NULL DEFAULT 0;
