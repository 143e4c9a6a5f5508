//! The HTTP apiserver under load (issue 4): `gantry server` (the release binary, embedded store
//! in a temporary directory) with
//!   1. 32 clients on keep-alive connections creating pods: creates/s, p50/p99 latency;
//!   2. the same 32 clients reading pods: GET p99;
//!   3. 1,000 open watches on pods receiving every change while one client creates pods at a
//!      paced rate: delay from each create's acknowledgement to its delivery at every watcher.
//!
//! Each is measured twice in one run: over TLS with the admin's client certificate (the
//! default), and on an `--insecure-http` server, side by side.
//!
//! cargo bench --bench http_api        (GANTRY_BENCH_SECONDS=N per measurement, default 5)

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::server::{start_server, Conn};
use support::{machine, ms, quantile, runtime, seconds};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const CLIENTS: usize = 32;
const WATCHERS: usize = 1000;
/// Creates per second while the watchers listen (each is 1,000 deliveries): 50 and 200.
const WATCH_RATES: [u64; 2] = [50, 200];

fn pod(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox","resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}]}}}}"#
    )
    .into_bytes()
}

const PODS: &str = "/api/v1/namespaces/default/pods";

/// `CLIENTS` connections doing `op` for `run`: (count, latencies).
async fn load<F>(address: &str, run: Duration, op: F) -> (usize, Vec<Duration>)
where
    F: Fn(usize, usize) -> (String, String, Vec<u8>) + Send + Sync + Copy + 'static,
{
    let stop = Instant::now() + run;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let address = address.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&address).await;
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < stop {
                let (method, path, body) = op(client, i);
                let t = Instant::now();
                let (code, answer) = conn.call(&method, &path, &body).await;
                assert!(
                    code < 300,
                    "{method} {path}: {code} {}",
                    String::from_utf8_lossy(&answer)
                );
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    (all.len(), all)
}

fn report(name: &str, run: Duration, count: usize, mut latencies: Vec<Duration>) {
    let p50 = quantile(&mut latencies, 0.5);
    let p99 = quantile(&mut latencies, 0.99);
    println!(
        "| {name} | {CLIENTS} | {count} | {:.0} | {} | {} |",
        count as f64 / run.as_secs_f64(),
        ms(p50),
        ms(p99)
    );
}

async fn watch_fanout(label: &str, address: &str, run: Duration, rate: u64) {
    let ns = format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"watched-{rate}"}}}}"#
    );
    let (code, _) = Conn::open(address)
        .await
        .call("POST", "/api/v1/namespaces", ns.as_bytes())
        .await;
    assert_eq!(code, 201);
    // ConfigMaps: no controller in the server reacts to them, so every change is the bench's.
    let watched = format!("/api/v1/namespaces/watched-{rate}/configmaps");
    // Every watcher reads its stream and records when each pod arrives.
    let arrivals: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut ready = Vec::new();
    for _ in 0..WATCHERS {
        let mut conn = Conn::open(address).await;
        let head = format!(
            "GET {watched}?watch=true&resourceVersion=0&labelSelector=app%3Dwatched HTTP/1.1\r\nHost: {address}\r\n\r\n"
        );
        conn.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .expect("watch");
        let (code, _) = conn.head().await;
        assert_eq!(code, 200);
        ready.push(conn);
    }
    let mut readers = Vec::new();
    for mut conn in ready {
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                // Chunked: a size line, then the event line (one event per chunk), then CRLF.
                if conn.stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let text = line.trim();
                if !text.contains("\"type\":\"ADDED\"") {
                    continue;
                }
                if let Some(i) = text.find("\"name\":\"w-") {
                    let rest = &text[i + 10..];
                    let n: usize = rest
                        .split('"')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(usize::MAX);
                    arrivals.lock().unwrap().push((n, Instant::now()));
                }
            }
        }));
    }
    let mut writer = Conn::open(address).await;
    let mut acked = Vec::new();
    let period = Duration::from_micros(1_000_000 / rate);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < run {
        let due = start + period * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"w-{n}","labels":{{"app":"watched"}}}},"data":{{"k":"v"}}}}"#
        );
        let (code, _) = writer.call("POST", &watched, body.as_bytes()).await;
        assert_eq!(code, 201);
        acked.push(Instant::now());
        n += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in readers {
        r.abort();
    }
    let arrivals = arrivals.lock().unwrap();
    let mut delays: Vec<Duration> = arrivals
        .iter()
        .filter(|(i, _)| *i < acked.len())
        .map(|(i, at)| at.saturating_duration_since(acked[*i]))
        .collect();
    let expected = n * WATCHERS;
    let got = delays.len();
    let p50 = quantile(&mut delays, 0.5);
    let p99 = quantile(&mut delays, 0.99);
    println!(
        "| watch, {label} | {WATCHERS} watchers | {n} creates at {rate}/s | {got} of {expected} deliveries | ack -> delivery p50 {} ms | p99 {} ms |",
        ms(p50),
        ms(p99)
    );
}

fn main() {
    let run = seconds(5);
    println!(
        "http_api: gantry server (embedded store), {} s per measurement",
        run.as_secs()
    );
    println!("machine: {}", machine());
    println!("| measurement | clients | requests | per second | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    // The API alone: no node agent (its pods would be real processes).
    // (label, flags, act as a user RBAC judges instead of the system:masters admin)
    for (label, flags, rbac) in [
        ("TLS + client cert + RBAC", &["--no-node"][..], true),
        (
            "TLS + client cert, system:masters",
            &["--no-node"][..],
            false,
        ),
        (
            "--insecure-http",
            &["--no-node", "--insecure-http"][..],
            false,
        ),
    ] {
        measure(label, flags, rbac, run);
    }
}

fn measure(label: &str, flags: &[&str], rbac: bool, run: Duration) {
    let server = start_server(flags);
    let rt = runtime();
    let address = server.address.clone();
    rt.block_on(async {
        if rbac {
            support::server::act_as_rbac_user(&server).await;
        }
        // The watches first, on a server at rest: the create phase leaves tens of thousands
        // of pods that no node will take, and the scheduler inside the server keeps retrying
        // them (that is measured too: the create and get rows run with it busy).
        // The watched objects live in their own namespace (a watch lists its namespace first).
        for rate in WATCH_RATES {
            watch_fanout(label, &address, run, rate).await;
        }
        let (count, latencies) = load(&address, run, |client, i| {
            ("POST".into(), PODS.into(), pod(&format!("p-{client}-{i}")))
        })
        .await;
        report(&format!("create pod, {label}"), run, count, latencies);
        let (count, latencies) = load(&address, run, |client, i| {
            (
                "GET".into(),
                format!("{PODS}/p-{client}-{}", i % 50),
                Vec::new(),
            )
        })
        .await;
        report(&format!("get pod, {label}"), run, count, latencies);
    });
}
