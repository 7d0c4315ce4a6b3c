-- `ai` agents (issue 14): a domain's tasks run as prompts through the AI gateway. An agent's
-- kind ('http' or 'ai'); an ai agent's model and prompt template (its url is '').
ALTER TABLE agents ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'http';
ALTER TABLE agents ADD COLUMN IF NOT EXISTS model TEXT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS prompt TEXT;

-- The model call of an ai agent's attempt (model, deployment, tokens). Adding a nullable
-- column without a default rewrites nothing, however long the history.
ALTER TABLE task_history ADD COLUMN IF NOT EXISTS model_call JSONB;
