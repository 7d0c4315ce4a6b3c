-- Jarvis embedded (SQLite) schema, part 4: the learner's state.
-- Mirrors migrations/postgres/0004_learning.sql; times are RFC 3339 UTC text, JSON is text.

CREATE TABLE IF NOT EXISTS learning_state (
    domain     TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 64),
    action     TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    state      TEXT NOT NULL,
    runs       INTEGER NOT NULL DEFAULT 0 CHECK (runs >= 0),
    version    INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (domain, action)
);
