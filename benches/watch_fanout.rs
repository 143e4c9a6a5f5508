//! Watch fan-out: 1,000 watchers on one prefix while writes arrive at a paced 5,000/s, for
//! MemStore and EmbeddedStore. Reports the delay from a write's commit to its delivery at each
//! watcher (5 million deliveries a second).
//!
//! The commit happens inside the write call, so the bench brackets it. Each value is stamped
//! with the time its write call started (upper bound: "write -> delivery", which for
//! EmbeddedStore includes waiting for the group commit's fsync). For a sample of watchers the
//! bench also keeps each delivery and compares it with the earlier of the write's
//! acknowledgement and its first delivery anywhere, both after the commit (lower bound:
//! "commit -> delivery").
//!
//! cargo bench --bench watch_fanout           (GANTRY_BENCH_SECONDS=N per backend, default 5)

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gantry::store::embedded::{EmbeddedConfig, EmbeddedStore};
use gantry::store::mem::MemStore;
use gantry::store::{HistoryConfig, Store};
use support::{machine, ms, quantile, runtime, seconds};

const WATCHERS: usize = 1000;
const RATE: u64 = 5000;
/// Watchers that keep every delivery for the lower bound.
const SAMPLED: usize = 20;
/// Histogram resolution for the upper bound.
const BUCKET: Duration = Duration::from_micros(20);
const BUCKETS: usize = 50_000; // one second; later deliveries land in the last bucket

struct Histogram(Vec<u64>);

impl Histogram {
    fn new() -> Self {
        Histogram(vec![0; BUCKETS])
    }
    fn add(&mut self, d: Duration) {
        let i = (d.as_nanos() / BUCKET.as_nanos()) as usize;
        self.0[i.min(BUCKETS - 1)] += 1;
    }
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }
    fn count(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Upper edge of the bucket holding the q-quantile.
    fn quantile(&self, q: f64) -> Duration {
        let target = (self.count() as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return BUCKET * (i as u32 + 1);
            }
        }
        BUCKET * BUCKETS as u32
    }
}

struct WatcherReport {
    write_to_delivery: Histogram,
    /// (revision, delivered at), for sampled watchers.
    deliveries: Vec<(u64, Duration)>,
    closed: bool,
}

struct Outcome {
    writes: usize,
    write_to_delivery: Histogram,
    commit_to_delivery: Vec<Duration>,
    closed: usize,
}

/// `writer_tasks` share the paced rate: one suffices for MemStore (its writes never wait);
/// EmbeddedStore needs several in flight to group-commit 5,000 durable writes/s.
async fn run<S: Store>(store: Arc<S>, duration: Duration, writer_tasks: u64) -> Outcome {
    let epoch = Instant::now();
    let start_rev = store.current_revision().await.unwrap();
    let acks: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::default();

    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        let mut w = store.watch("/fan/", start_rev).await.unwrap();
        let sampled = i < SAMPLED;
        watchers.push(tokio::spawn(async move {
            let mut report = WatcherReport {
                write_to_delivery: Histogram::new(),
                deliveries: Vec::new(),
                closed: false,
            };
            'outer: while let Some(first) = w.next().await {
                // Everything ready now was delivered now: one clock read per wake-up.
                let now = epoch.elapsed();
                let mut item = Some(first);
                while let Some(it) = item.take() {
                    match it {
                        Ok(ev) => {
                            let stamp = u64::from_le_bytes(ev.kv.value[..8].try_into().unwrap());
                            report
                                .write_to_delivery
                                .add(now.saturating_sub(Duration::from_nanos(stamp)));
                            if sampled {
                                report.deliveries.push((ev.revision(), now));
                            }
                            if &ev.kv.value[8..] == b"stop" {
                                break 'outer;
                            }
                        }
                        Err(_) => {
                            report.closed = true;
                            break 'outer;
                        }
                    }
                    item = w.try_next();
                }
            }
            report
        }));
    }

    let per_task_interval = Duration::from_nanos(1_000_000_000 * writer_tasks / RATE);
    let deadline = epoch + duration;
    let mut writers = Vec::new();
    for t in 0..writer_tasks {
        let store = store.clone();
        let acks = acks.clone();
        writers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + per_task_interval * t as u32 / writer_tasks as u32,
                per_task_interval,
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            let mut local = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let mut value = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
                value.extend_from_slice(b"data");
                let rev = store
                    .create(&format!("/fan/{t}/{n}"), Bytes::from(value))
                    .await
                    .unwrap();
                local.push((rev, epoch.elapsed()));
                n += 1;
            }
            acks.lock().unwrap().extend(local);
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut stop = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
    stop.extend_from_slice(b"stop");
    store.create("/fan/stop", Bytes::from(stop)).await.unwrap();

    let mut reports = Vec::new();
    for w in watchers {
        reports.push(w.await.unwrap());
    }
    // The commit lies before both the acknowledgement and the first delivery anywhere.
    let mut committed_by: HashMap<u64, Duration> = acks.lock().unwrap().iter().copied().collect();
    for r in &reports {
        for (rev, at) in &r.deliveries {
            if let Some(c) = committed_by.get_mut(rev) {
                *c = (*c).min(*at);
            }
        }
    }
    let mut out = Outcome {
        writes: acks.lock().unwrap().len(),
        write_to_delivery: Histogram::new(),
        commit_to_delivery: Vec::new(),
        closed: 0,
    };
    for r in reports {
        out.closed += r.closed as usize;
        out.write_to_delivery.merge(&r.write_to_delivery);
        for (rev, at) in r.deliveries {
            if let Some(c) = committed_by.get(&rev) {
                out.commit_to_delivery.push(at.saturating_sub(*c));
            }
        }
    }
    out
}

fn report(name: &str, mut o: Outcome, duration: Duration) {
    println!(
        "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
        o.writes,
        o.writes as f64 / duration.as_secs_f64(),
        o.write_to_delivery.count(),
        ms(quantile(&mut o.commit_to_delivery, 0.50)),
        ms(quantile(&mut o.commit_to_delivery, 0.99)),
        ms(o.write_to_delivery.quantile(0.50)),
        ms(o.write_to_delivery.quantile(0.99)),
        o.closed,
    );
}

fn main() {
    let duration = seconds(5);
    let rt = runtime();
    println!(
        "watch_fanout: {WATCHERS} watchers on one prefix, {RATE} writes/s paced, {} s per backend",
        duration.as_secs()
    );
    println!("machine: {}", machine());
    println!();
    println!("| backend | writes | writes/s | deliveries | commit->delivery p50 ms (lower bound) | p99 ms | write->delivery p50 ms (upper bound) | p99 ms | watchers closed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Buffers large enough that no watcher is closed for lagging during the run.
    let history = HistoryConfig {
        history_limit: 100_000,
        watch_capacity: 100_000,
    };
    rt.block_on(async {
        let mem = run(Arc::new(MemStore::new(history)), duration, 1).await;
        report("MemStore", mem, duration);
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedConfig {
            history,
            ..EmbeddedConfig::default()
        };
        let embedded =
            Arc::new(EmbeddedStore::open(dir.path().join("store.redb"), config).unwrap());
        let emb = run(embedded, duration, 50).await;
        report("EmbeddedStore", emb, duration);
    });
}
