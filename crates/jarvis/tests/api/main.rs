//! Integration tests: one binary (fast to link), one module per capability.

mod helpers;

mod foundation;
mod health;
mod process;
mod registry;
