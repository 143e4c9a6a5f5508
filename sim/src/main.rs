//! gantry-sim: run a scenario in virtual time and report what happened.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gantry_sim::scenario;
use gantry_sim::sim::Sim;

// The simulator allocates and frees JSON trees at a high rate; glibc's
// allocator spent about a third of the run in malloc/free (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic simulation of a gantry cluster.
#[derive(Parser, Debug)]
#[command(name = "gantry-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario file.
    Run {
        scenario: PathBuf,
        /// The RNG seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Write every event as JSON lines to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Run twice and fail unless both traces hash the same.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Check a scenario file without running it.
    Check { scenario: PathBuf },
}

fn main() -> ExitCode {
    gantry_sim::memory::no_huge_pages();
    match Cli::parse().command {
        Command::Check { scenario } => match scenario::load(&scenario) {
            Ok(l) => {
                println!(
                    "{}: ok ({} nodes, {} manifests, {} timeline steps)",
                    scenario.display(),
                    l.nodes.len(),
                    l.manifests.len(),
                    l.scenario.timeline.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gantry-sim: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            scenario,
            seed,
            trace,
            check_determinism,
        } => {
            let load = || scenario::load(&scenario);
            let loaded = match load() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("gantry-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let seed = seed.or(loaded.scenario.seed).unwrap_or(1);
            let name = loaded
                .scenario
                .name
                .clone()
                .unwrap_or_else(|| scenario.display().to_string());
            let started = std::time::Instant::now();
            let mut sim = Sim::new(loaded, seed).keep_trace(trace.is_some());
            if !check_determinism {
                sim = sim.exit_after();
            }
            let report = sim.run();
            let wall = started.elapsed();
            println!("scenario {name}, seed {seed}");
            println!("timeline:");
            for line in &report.notable {
                println!("  {line}");
            }
            println!("expectations:");
            let mut failed = 0;
            for v in &report.verdicts {
                println!(
                    "  [{}] {} ({})",
                    if v.passed { "ok" } else { "FAILED" },
                    v.description,
                    v.detail
                );
                failed += usize::from(!v.passed);
            }
            if !report.violations.is_empty() {
                println!("invariants violated:");
                for v in &report.violations {
                    println!("  {v}");
                }
            }
            let simulated = report.simulated.as_secs_f64();
            println!(
                "{} events, {:.0}s simulated in {:.2}s wall time ({:.0}x real time)",
                report.events,
                simulated,
                wall.as_secs_f64(),
                simulated / wall.as_secs_f64().max(1e-9)
            );
            println!("trace hash {}", report.trace.hash());
            if let Some(path) = trace {
                let written = std::fs::File::create(&path).and_then(|mut f| {
                    for l in &report.trace.lines {
                        writeln!(f, "{l}")?;
                    }
                    Ok(())
                });
                if let Err(e) = written {
                    eprintln!(
                        "gantry-sim: cannot write the trace to {}: {e}",
                        path.display()
                    );
                    return ExitCode::from(2);
                }
            }
            if check_determinism {
                let again = Sim::new(load().expect("loaded once already"), seed)
                    .keep_trace(false)
                    .exit_after()
                    .run();
                if again.trace.hash() != report.trace.hash() {
                    eprintln!(
                        "gantry-sim: NOT deterministic: second run hashed {}",
                        again.trace.hash()
                    );
                    return ExitCode::FAILURE;
                }
                println!("deterministic: the second run hashed the same");
            }
            if failed > 0 || !report.violations.is_empty() {
                eprintln!(
                    "gantry-sim: {failed} expectation(s) failed, {} invariant violation(s) (seed {seed})",
                    report.violations.len()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}
