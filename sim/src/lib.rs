//! gantry-sim: deterministic simulation of a gantry cluster from a scenario file.

pub mod scenario;
pub mod sim;
pub mod trace;
