//! Pods on a real node (issue 5): `gantry server` (the release binary) with its own node agent
//! on the process runtime.
//!   1. resident memory of the server idle with one node;
//!   2. a burst of 100 pods created at once (8 clients): time from each pod's create request
//!      to a watcher seeing it Running (k8s' pod startup SLI), p50/p99/max, and to its
//!      binding and its kubelet's first status on the way; three rounds;
//!   3. resident memory of the server with the 100 pods running, and of their shims.
//!
//! cargo bench --bench node_startup

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::server::{start_server, Conn};
use support::{machine, ms, quantile, runtime};
use tokio::io::AsyncBufReadExt;

const PODS: usize = 100;
const CLIENTS: usize = 8;
const ROUNDS: usize = 3;
const PATH: &str = "/api/v1/namespaces/default/pods";

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The shims of the containers running under `dir` (each the parent of its command).
fn shim_pids(dir: &std::path::Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("nodes/bench/process/containers")) else {
        return out;
    };
    for e in entries.flatten() {
        if e.path().join("exit").exists() {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(e.path().join("pid")).ok() else {
            continue;
        };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        // pid (comm) state ppid ...
        if let Some(ppid) = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        {
            out.push(ppid);
        }
    }
    out
}

fn pod(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"spec":{{"terminationGracePeriodSeconds":1,"containers":[{{"name":"c","image":"busybox","command":["sleep","3600"]}}]}}}}"#
    )
    .into_bytes()
}

/// Watches pods; records when each is first seen bound (`bound:<name>`), with a status from
/// its kubelet (`creating:<name>`) and Running (`<name>`).
async fn watch_running(address: String, seen: Arc<Mutex<HashMap<String, Instant>>>) {
    let mut conn = Conn::open(&address).await;
    conn.send("GET", &format!("{PATH}?watch=true&resourceVersion=0"), b"")
        .await;
    let (code, _) = conn.head().await;
    assert_eq!(code, 200);
    let mut line = String::new();
    loop {
        line.clear();
        if conn.stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            continue; // a chunk-size line
        };
        let o = &event["object"];
        if let Some(name) = o["metadata"]["name"].as_str() {
            let mut g = seen.lock().unwrap();
            if o["spec"]["nodeName"].is_string() {
                g.entry(format!("bound:{name}"))
                    .or_insert_with(Instant::now);
            }
            if o["status"]["containerStatuses"].is_array() {
                g.entry(format!("creating:{name}"))
                    .or_insert_with(Instant::now);
            }
        }
        let running = o["status"]["phase"] == "Running"
            && o["status"]["containerStatuses"][0]["state"]["running"].is_object();
        if running {
            if let Some(name) = o["metadata"]["name"].as_str() {
                seen.lock()
                    .unwrap()
                    .entry(name.to_string())
                    .or_insert_with(Instant::now);
            }
        }
    }
}

async fn round(address: &str, r: usize) -> Vec<Duration> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let watcher = tokio::spawn(watch_running(address.to_string(), seen.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created = Arc::new(Mutex::new(HashMap::new()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (address, created) = (address.to_string(), created.clone());
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(&address).await;
            for i in (c..PODS).step_by(CLIENTS) {
                let name = format!("p{r}-{i}");
                let t = Instant::now();
                let (code, body) = conn.call("POST", PATH, &pod(&name)).await;
                assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
                created.lock().unwrap().insert(name, t);
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen
        .lock()
        .unwrap()
        .keys()
        .filter(|k| !k.contains(':'))
        .count()
        < PODS
    {
        assert!(
            Instant::now() < deadline,
            "only {} of {PODS} pods running after 60 s",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    let seen = seen.lock().unwrap();
    let created = created.lock().unwrap();
    // Where the time goes: bound by the scheduler, first status from the kubelet.
    for stage in ["bound", "creating"] {
        let mut l: Vec<Duration> = created
            .iter()
            .map(|(name, t)| seen[&format!("{stage}:{name}")].saturating_duration_since(*t))
            .collect();
        println!(
            "|  | round {} | create -> {stage} | p50 {} ms | p99 {} ms |",
            r + 1,
            ms(quantile(&mut l, 0.5)),
            ms(quantile(&mut l, 0.99))
        );
    }
    created
        .iter()
        .map(|(name, t)| seen[name].saturating_duration_since(*t))
        .collect()
}

async fn delete_all(address: &str) {
    let mut conn = Conn::open(address).await;
    let (code, _) = conn.call("DELETE", PATH, b"").await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = conn.call("GET", PATH, b"").await;
        let list: serde_json::Value = serde_json::from_slice(&body).expect("list");
        if list["items"].as_array().is_some_and(|i| i.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "pods were not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() {
    println!("machine: {}", machine());
    let server = start_server(&["--node-name", "bench", "--kubelet-port", "0"]);
    let pid = server.child.id();
    let rt = runtime();
    rt.block_on(async {
        // The node registers and settles.
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "| memory | server idle, one node | RSS {:.1} MiB |",
            rss_mib(pid)
        );
        for r in 0..ROUNDS {
            let mut lat = round(&server.address, r).await;
            let (p50, p99) = (quantile(&mut lat, 0.5), quantile(&mut lat, 0.99));
            let max = lat.iter().max().copied().unwrap_or_default();
            println!(
                "| startup | round {} | {PODS} pods | create -> Running p50 {} ms | p99 {} ms | max {} ms |",
                r + 1,
                ms(p50),
                ms(p99),
                ms(max)
            );
            if r + 1 == ROUNDS {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let shims = shim_pids(server.dir.path());
                let total: f64 = shims.iter().map(|p| rss_mib(*p)).sum();
                println!(
                    "| memory | server with {PODS} running pods | RSS {:.1} MiB | {} shims, {:.1} MiB each |",
                    rss_mib(pid),
                    shims.len(),
                    total / shims.len().max(1) as f64
                );
            }
            delete_all(&server.address).await;
        }
    });
}
