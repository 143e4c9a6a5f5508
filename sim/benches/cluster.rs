//! The simulator benchmark (BENCHMARKS.md): runs scenarios/bench/100-nodes.yaml (100 nodes,
//! 3,000 pods, an hour of churn and two node failures) and prints wall time, events per second,
//! the speed-up over real time and the peak resident memory.
//!
//! `cargo bench -p gantry-sim --bench cluster [-- SCENARIO]`

#[path = "../../benches/support/machine.rs"]
mod machine;

use std::path::PathBuf;
use std::time::Instant;

use gantry_sim::scenario;
use gantry_sim::sim::Sim;

// The allocator the gantry-sim binary uses (sim/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak resident set size in MiB (Linux: VmHWM).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() {
    gantry_sim::memory::no_huge_pages();
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bench/100-nodes.yaml")
        });
    let loaded = match scenario::load(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cluster bench: {e}");
            std::process::exit(2);
        }
    };
    let seed = loaded.scenario.seed.unwrap_or(1);
    let nodes = loaded.nodes.len();
    let started = Instant::now();
    let report = Sim::new(loaded, seed).keep_trace(false).exit_after().run();
    let wall = started.elapsed().as_secs_f64();
    let simulated = report.simulated.as_secs_f64();
    println!("cluster: {} (seed {seed}, {nodes} nodes)", path.display());
    println!("machine: {}", machine::machine());
    println!("| simulated | wall | events | events/s | speed-up | peak RSS |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {simulated:.0} s | {wall:.2} s | {} | {:.0} | {:.0}x | {} |",
        report.events,
        report.events as f64 / wall,
        simulated / wall,
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
    if !report.passed() {
        eprintln!(
            "cluster bench: the scenario's expectations or invariants failed: {:?} {:?}",
            report
                .verdicts
                .iter()
                .filter(|v| !v.passed)
                .collect::<Vec<_>>(),
            report.violations
        );
        std::process::exit(1);
    }
}
