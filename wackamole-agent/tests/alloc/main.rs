//! The allocation state machine through its public interface: scenarios,
//! the engine-loss regression and the randomized EVS simulator.

#[path = "../support/mod.rs"]
mod support;

mod engine_loss;
mod scenarios;
mod sim;
