-- AI model groups (issue 14, routing): `PUT /api/v1/ai/models/{group}` and the config file's
-- `[ai.models.<group>]` (written at every start). The group is its config table as JSON text
-- (camelCase; text rather than JSONB so that one SQL text serves both engines), read back
-- through the same validation. Idempotent: also runs with psql.
CREATE TABLE IF NOT EXISTS ai_models (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    -- Unix milliseconds.
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
