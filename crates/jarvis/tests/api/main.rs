//! Integration tests: one binary (fast to link), one module per capability.

mod agent;
mod helpers;

mod foundation;
mod process;
mod registry;
mod store_tasks;
mod tasks;
mod tasks_process;
