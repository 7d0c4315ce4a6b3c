//! The learner: exploration, how many runs before a recommendation, how often state is merged.

use std::time::Duration;

use super::file::FileLearning;
use super::setting::{settings, Default, FileKey, Kind, Reader, Setting};
use super::ConfigError;

settings! {
    /// `JARVIS_LEARNING_EXPLORATION`.
    EXPLORATION = Setting {
        var: "JARVIS_LEARNING_EXPLORATION",
        kind: Kind::Share,
        default: Default::Value("0.05"),
        file: Some(FileKey { table: "learning", key: "exploration", get: |f| f.learning.exploration.map(Into::into) }),
        view: "learning.exploration",
        help: "share of learned choices (`useLearned`) made uniformly at random instead of by \
               Thompson sampling",
        ..Setting::PLAIN
    };
    /// `JARVIS_LEARNING_MIN_RUNS`.
    MIN_RUNS = Setting {
        var: "JARVIS_LEARNING_MIN_RUNS",
        kind: Kind::Int { min: 1, max: 1_000_000 },
        default: Default::Value("20"),
        file: Some(FileKey { table: "learning", key: "minRuns", get: |f| f.learning.min_runs.map(Into::into) }),
        view: "learning.minRuns",
        help: "runs of a domain/action before anything is recommended",
        ..Setting::PLAIN
    };
    /// `JARVIS_LEARNING_FLUSH_MS`.
    FLUSH_MS = Setting {
        var: "JARVIS_LEARNING_FLUSH_MS",
        kind: Kind::Int { min: 10, max: 600_000 },
        default: Default::Value("1000"),
        file: Some(FileKey { table: "learning", key: "flushMs", get: |f| f.learning.flush_ms.map(Into::into) }),
        view: "learning.flushMs",
        help: "how often an instance merges its new results into the shared learner state, and \
               how long it caches that state",
        ..Setting::PLAIN
    };
}

/// Settings of the learner (the `JARVIS_LEARNING_*` variables over `[learning]` of the config
/// file).
#[derive(Debug, Clone, PartialEq)]
pub struct LearningSettings {
    /// Share of learned choices made uniformly at random instead of by Thompson sampling.
    pub exploration: f64,
    /// Runs of a domain/action before anything is recommended.
    pub min_runs: u64,
    /// How often an instance merges its new results into the shared state (and how old a
    /// cached state may be).
    pub flush: Duration,
    /// The rest of the `[learning]` table (impact weight, timeout bounds, search spaces).
    pub file: FileLearning,
}

impl LearningSettings {
    /// Reads the group; `file` is the `[learning]` table (already validated).
    pub(super) fn read(
        r: &mut Reader<'_>,
        file: &FileLearning,
    ) -> Result<LearningSettings, ConfigError> {
        Ok(LearningSettings {
            exploration: r.get(&EXPLORATION)?,
            min_runs: r.get(&MIN_RUNS)?,
            flush: r.get(&FLUSH_MS)?,
            file: file.clone(),
        })
    }
}

impl std::default::Default for LearningSettings {
    fn default() -> Self {
        LearningSettings::read(&mut Reader::defaults(), &FileLearning::default())
            .expect("the declared defaults are valid")
    }
}
