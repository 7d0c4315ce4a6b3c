-- `ai` agents (issue 14): a domain's tasks run as prompts through the AI gateway. An agent's
-- kind ('http' or 'ai'); an ai agent's model and prompt template (its url is '').
ALTER TABLE agents ADD COLUMN kind TEXT NOT NULL DEFAULT 'http';
ALTER TABLE agents ADD COLUMN model TEXT;
ALTER TABLE agents ADD COLUMN prompt TEXT;

-- The model call of an ai agent's attempt (model, deployment, tokens), as JSON.
ALTER TABLE task_history ADD COLUMN model_call TEXT;
