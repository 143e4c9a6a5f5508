//! gantry-sim: the deterministic cluster simulator. The event loop, scenario files and faults
//! arrive with the simulator issue; this binary already links the sans-IO side of gantry
//! (built without the `server` feature), which keeps that side free of I/O dependencies.

use clap::Parser;

/// Deterministic simulation of a gantry cluster.
#[derive(Parser, Debug)]
#[command(name = "gantry-sim", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    let resources = gantry::api::registry::RESOURCES.len();
    println!(
        "gantry-sim {}: {resources} resource kinds registered",
        env!("CARGO_PKG_VERSION")
    );
}
