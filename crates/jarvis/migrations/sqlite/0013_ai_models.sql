-- AI model groups (issue 14, routing): `PUT /api/v1/ai/models/{group}` and the config file's
-- `[ai.models.<group>]` (written at every start). The group is its config table as JSON
-- (camelCase), read back through the same validation. Mirrors
-- migrations/postgres/0013_ai_models.sql.
CREATE TABLE IF NOT EXISTS ai_models (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    -- Unix milliseconds.
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
