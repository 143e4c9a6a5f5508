//! Shared helpers for the bench binaries: percentiles and a description of the machine.

#![allow(dead_code)]

pub mod server;

use std::time::Duration;

/// The q-quantile (0..=1) of `samples` (modifies their order).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((samples.len() - 1) as f64 * q).round() as usize;
    *samples.select_nth_unstable(idx).1
}

pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

#[path = "machine.rs"]
mod machine_info;
pub use machine_info::machine;

/// Seconds to run each measurement: `GANTRY_BENCH_SECONDS`, else `default`.
pub fn seconds(default: u64) -> Duration {
    Duration::from_secs(
        std::env::var("GANTRY_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// The runtime the benches drive the stores from: 2 workers, as many as the machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime")
}
