-- Jarvis PostgreSQL schema, part 4: the learner's state, shared by every instance.
--
-- Applied automatically at start, and runnable by hand before instances start:
--     psql "$DATABASE_URL" < 0004_learning.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- One row per domain/action: the merged aggregates of the learning library (`Aggregates`, as
-- JSON) plus the parameters found not to be real choices. Instances fold their new execution
-- records into a local delta and merge it into this row every flush interval with optimistic
-- concurrency: read (state, version), merge in Jarvis, `UPDATE … WHERE version = <read>`,
-- retry on conflict. Merging is exact (associative, commutative), so the order of instances
-- does not matter.
CREATE TABLE IF NOT EXISTS learning_state (
    domain     TEXT NOT NULL CHECK (char_length(domain) BETWEEN 1 AND 64),
    action     TEXT NOT NULL CHECK (char_length(action) BETWEEN 1 AND 64),
    state      JSONB NOT NULL,
    -- Executions folded in so far (also inside `state`; here for operators' queries).
    runs       BIGINT NOT NULL DEFAULT 0 CHECK (runs >= 0),
    -- Incremented by every write; the optimistic-concurrency check.
    version    BIGINT NOT NULL DEFAULT 1,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by TEXT,
    PRIMARY KEY (domain, action)
);
