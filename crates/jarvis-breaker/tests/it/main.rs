//! Integration tests of the breaker: one test binary, one module per concern.

mod behaviour;
mod contention;
mod helpers;
mod layer;
mod model;
mod remote;
