//! The learner's compare-and-swap writes on PostgreSQL: the row's JSON is `jsonb`, and
//! `updated_at` is the server's `now()`.

/// Creates the row at version 1 unless it exists (`impl_learning_store!`).
pub(super) const INSERT: &str = "\
INSERT INTO learning_state (domain, action, state, runs, version, updated_by)
VALUES ($1, $2, $3, $4, 1, $5)
ON CONFLICT (domain, action) DO NOTHING";

/// Writes the row if its version is still `$6`.
pub(super) const UPDATE: &str = "\
UPDATE learning_state SET state = $3, runs = $4, version = version + 1, updated_at = now(),
       updated_by = $5
WHERE domain = $1 AND action = $2 AND version = $6";
