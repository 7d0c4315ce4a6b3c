-- Jarvis SQLite schema, part 7: one record per attempt, and attempts that never reached their
-- agent (see the PostgreSQL file of the same number for the reasons).

ALTER TABLE tasks ADD COLUMN called_at TEXT;
ALTER TABLE tasks ADD COLUMN notify_done INTEGER NOT NULL DEFAULT 0;

ALTER TABLE task_history ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0;

DELETE FROM task_history
WHERE id IN (SELECT h.id FROM task_history h JOIN task_history d
             ON h.task_id = d.task_id AND h.attempt = d.attempt AND h.id > d.id);
CREATE UNIQUE INDEX IF NOT EXISTS task_history_task_attempt_idx
    ON task_history (task_id, attempt);
DROP INDEX IF EXISTS task_history_task_idx;
