//! The domain's plain types: what the store keeps and the API and engines pass around —
//! services and check results, agents, AI prices and budgets, tasks (and what a caller submits), schedules (their
//! cron and period arithmetic included), execution records and their rollups. They depend on
//! nothing above them (names, correlation IDs, time and a few parsing crates at most), so the
//! store reads and writes them without depending on the engines that produce them.

pub mod agent;
pub mod ai;
pub mod alert;
pub mod check;
pub mod outbound;
pub mod record;
pub mod rollup;
pub mod schedule;
pub mod service;
pub mod task;
pub mod task_input;
pub mod trace;
