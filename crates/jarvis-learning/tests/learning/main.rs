//! Integration tests of `jarvis-learning`: properties (proptest) and the simulation targets.
//! One test binary with a module per concern keeps link times down.

mod properties;
mod simulation;
