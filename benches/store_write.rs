//! Durable write throughput and latency, EmbeddedStore and EtcdStore side by side in one run,
//! with 1, 16 and 64 concurrent writers. Both are durable on acknowledgement: redb commits with
//! fsync (group commit), etcd fsyncs its WAL before answering. Both keep their data in the same
//! temporary directory (the same disk).
//!
//! cargo bench --bench store_write            (GANTRY_BENCH_SECONDS=N per measurement, default 5;
//!                                             GANTRY_BENCH_WRITERS=64 to run one row)

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry::store::embedded::{EmbeddedConfig, EmbeddedStore};
use gantry::store::Store;
use support::{machine, ms, quantile, runtime, seconds};

/// A typical small Kubernetes object is 1-2 KiB of JSON.
const VALUE_BYTES: usize = 1024;

struct Result {
    writes: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<S: Store>(store: Arc<S>, writers: usize, run: Duration, tag: &str) -> Result {
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let started = Instant::now();
    let deadline = started + run;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let value = value.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = format!("/bench/{tag}/w{w}/{n}");
                let t = Instant::now();
                store.create(&key, value.clone()).await.expect("write");
                latencies.push(t.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    Result {
        writes: all.len(),
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&mut all, 0.50),
        p99: quantile(&mut all, 0.99),
    }
}

fn main() {
    let run = seconds(5);
    let rt = runtime();
    println!(
        "store_write: {} s per measurement, {VALUE_BYTES}-byte values",
        run.as_secs()
    );
    println!("machine: {}", machine());
    println!("etcd: {}", common::EtcdServer::binary().display());
    println!();
    println!("| writers | backend | writes | writes/s | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    rt.block_on(async {
        let etcd_server = common::EtcdServer::start().await;
        let etcd = Arc::new(etcd_server.store().await);
        let dir = tempfile::tempdir().unwrap();
        let embedded = Arc::new(
            EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedConfig::default()).unwrap(),
        );
        let mut ratios = Vec::new();
        let rows: Vec<usize> = match std::env::var("GANTRY_BENCH_WRITERS") {
            Ok(w) => w.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
            Err(_) => vec![1, 16, 64],
        };
        for writers in rows {
            let e = measure(embedded.clone(), writers, run, &format!("e{writers}")).await;
            let d = measure(etcd.clone(), writers, run, &format!("d{writers}")).await;
            for (name, r) in [("embedded", &e), ("etcd", &d)] {
                println!(
                    "| {writers} | {name} | {} | {:.0} | {} | {} |",
                    r.writes,
                    r.per_sec,
                    ms(r.p50),
                    ms(r.p99)
                );
            }
            ratios.push((writers, e.per_sec / d.per_sec));
        }
        println!();
        for (writers, ratio) in ratios {
            println!("embedded/etcd throughput at {writers} writers: {ratio:.1}x");
        }
    });
}
