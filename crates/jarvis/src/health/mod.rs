//! Health of the services Jarvis depends on: their definitions, checks and aggregation.
//!
//! A [`ServiceSpec`] is what an operator registers (config file or `PUT /api/v1/services/{name}`);
//! it is persisted in the store so every instance sees and checks the same services.

pub mod spec;

pub use spec::{ServiceInput, ServiceSpec};
