//! Integration tests: one binary (fast to link), one module per capability.

mod agent;
mod agent_health;
mod agents;
mod helpers;

mod ai;
mod ai_agents;
mod ai_anthropic;
mod ai_cache;
mod ai_gemini;
mod ai_mock;
mod ai_routing;
mod ai_spend;
mod alerts;
mod analytics;
mod breakers;
mod cli;
mod cluster;
mod config_file;
mod dashboard;
mod disk_full;
mod docs;
mod foundation;
mod health;
mod learning;
mod markdown_tables;
mod process;
mod registry;
mod schedules;
mod shared_breakers;
mod store_tasks;
mod submission;
mod tasks;
mod tasks_faults;
mod tasks_process;
mod traces;
