//! The learner's compare-and-swap writes on SQLite: the row's JSON is text, and `updated_at`
//! is SQLite's clock in the format of the other SQL-stamped times (`strftime`).

/// Creates the row at version 1 unless it exists (`impl_learning_store!`).
pub(super) const INSERT: &str = "\
INSERT INTO learning_state (domain, action, state, runs, version, updated_at, updated_by)
VALUES ($1, $2, $3, $4, 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), $5)
ON CONFLICT (domain, action) DO NOTHING";

/// Writes the row if its version is still `$6`.
pub(super) const UPDATE: &str = "\
UPDATE learning_state SET state = $3, runs = $4, version = version + 1,
       updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), updated_by = $5
WHERE domain = $1 AND action = $2 AND version = $6";
