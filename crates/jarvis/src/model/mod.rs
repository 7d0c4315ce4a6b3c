//! The domain's plain types: what the store keeps and the API and engines pass around —
//! services and check results, agents, tasks (and what a caller submits), schedules, execution
//! records and their rollups. They depend
//! on nothing above them (names, correlation IDs and time at most), so the store can read and
//! write them without depending on the engines that produce them.

pub mod agent;
pub mod check;
pub mod record;
pub mod rollup;
pub mod schedule;
pub mod service;
pub mod task;
pub mod task_input;
