-- The AI gateway's usage and spend, one row per hour, model, deployment, domain and token
-- (issue 14): what budgets are checked against, and what `GET /api/v1/ai/usage` charts.
-- `domain` and `token` are '' when a call named none.
CREATE TABLE IF NOT EXISTS ai_usage_hourly (
    hour              TEXT NOT NULL,
    model             TEXT NOT NULL,
    deployment        TEXT NOT NULL,
    domain            TEXT NOT NULL,
    token             TEXT NOT NULL,
    requests          INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, model, deployment, domain, token)
);
