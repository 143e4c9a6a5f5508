//! gantry-sim: deterministic simulation of a gantry cluster from a scenario file.

pub mod invariants;
pub mod memory;
pub mod scenario;
pub mod sim;
pub mod trace;
pub mod traffic;
