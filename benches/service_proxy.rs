//! kube-proxy's data plane (issue 7): 64 concurrent connections doing request/response
//! round trips against an echo backend, direct and through a ClusterIP of the real proxy
//! (`gantry::host::proxy`, on its own actix thread as in a node agent) in both of its modes —
//! nftables (the kernel translates, DNAT) and userspace (the proxy copies) — side by side in
//! one run: round trips per second and per-round-trip latency (p50/p99), and the latency each
//! path adds — at a steady 6,400 round trips/s (each connection one every 10 ms), flat out,
//! and for bulk transfer (64 KiB chunks echoed back, flat out). nftables mode needs root (or
//! CAP_NET_ADMIN) and `nft`; without them that path is left out, with a warning.
//!
//! cargo bench --bench service_proxy

mod support;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use futures::{FutureExt, StreamExt};
use gantry::api::status::ApiError;
use gantry::apiserver::ApiEvent;
use gantry::component::{ApiOp, WatchSpec};
use gantry::host::proxy::{data_plane, start, DataPlane, ProxyAddresses, ProxyMode};
use gantry::host::ApiClient;
use gantry::proxy::ProxyConfig;
use gantry::store::Revision;
use serde_json::{json, Value};
use support::{machine, ms, quantile, seconds};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 64;
/// Loopback ClusterIPs (nftables mode, userspace mode): reachable without adding an address to
/// `lo`.
const CLUSTER_IPS: [&str; 2] = ["127.77.0.10", "127.77.0.11"];

/// An API that lists one Service and its slice and never changes.
struct Fixed {
    cluster_ip: &'static str,
    backend_port: u16,
    vip_port: u16,
}

impl ApiClient for Fixed {
    fn list(
        &self,
        spec: &WatchSpec,
    ) -> LocalBoxFuture<'static, Result<(Vec<Value>, Revision), ApiError>> {
        let items = match spec.resource.plural {
            "services" => vec![json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "echo", "namespace": "default", "resourceVersion": "1"},
                "spec": {"clusterIP": self.cluster_ip, "ports": [{"name": "tcp", "port": self.vip_port}]}})],
            "endpointslices" => vec![json!({"apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "echo-1", "namespace": "default", "resourceVersion": "1",
                             "labels": {"kubernetes.io/service-name": "echo"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                "ports": [{"name": "tcp", "port": self.backend_port, "protocol": "TCP"}]})],
            _ => vec![],
        };
        futures::future::ready(Ok((items, 1))).boxed_local()
    }

    fn watch(
        &self,
        _spec: &WatchSpec,
        _after: Revision,
    ) -> LocalBoxFuture<'static, Result<LocalBoxStream<'static, ApiEvent>, ApiError>> {
        futures::future::ready(Ok(futures::stream::pending().boxed_local())).boxed_local()
    }

    fn execute(&self, _op: ApiOp) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>> {
        futures::future::ready(Err(ApiError::bad_request("read-only"))).boxed_local()
    }
}

/// An echo server on its own single-threaded runtime.
fn echo_backend() -> u16 {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = std_listener.local_addr().unwrap().port();
    std_listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let (mut c, _) = listener.accept().await.unwrap();
                c.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if c.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
    });
    port
}

struct Run {
    rounds: usize,
    bytes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `CONNECTIONS` clients, each sending `size` bytes and reading them back, for `time`: back to
/// back (closed loop), or one round trip every `pace`.
async fn measure(addr: String, size: usize, time: Duration, pace: Option<Duration>) -> Run {
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = TcpStream::connect(&addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        conns.push(c);
    }
    let start = Instant::now();
    let deadline = start + time;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let out = vec![7u8; size];
                let mut back = vec![0u8; size];
                let mut lat = Vec::new();
                let mut tick = pace.map(|p| {
                    let mut i = tokio::time::interval(p);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    i
                });
                while Instant::now() < deadline {
                    if let Some(t) = &mut tick {
                        t.tick().await;
                    }
                    let t = Instant::now();
                    c.write_all(&out).await.unwrap();
                    c.read_exact(&mut back).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Run {
        rounds: latencies.len(),
        bytes: latencies.len() * size * 2,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Starts a proxy with `plane` for a Service at `cluster_ip` in front of the backend; its
/// address once it accepts connections.
fn proxy(
    rt: &tokio::runtime::Runtime,
    cluster_ip: &'static str,
    backend_port: u16,
    plane: DataPlane,
) -> String {
    let vip_port = std::net::TcpListener::bind((cluster_ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let owned = ProxyAddresses::default();
    // The proxy on an actix thread of its own, as in a node agent.
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let api = Rc::new(Fixed {
                cluster_ip,
                backend_port,
                vip_port,
            }) as Rc<dyn ApiClient>;
            start(ProxyConfig::default(), api, 1, owned, plane);
            futures::future::pending::<()>().await
        })
    });
    let vip = format!("{cluster_ip}:{vip_port}");
    rt.block_on(async {
        let t0 = Instant::now();
        while TcpStream::connect(&vip).await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the proxy never served {vip}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    vip
}

fn main() {
    let time = seconds(5);
    let backend_port = echo_backend();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let direct = format!("127.0.0.1:{backend_port}");
    let mut paths = vec![("direct", direct)];
    match data_plane(ProxyMode::Nftables) {
        Ok(plane) => paths.push(("nftables", proxy(&rt, CLUSTER_IPS[0], backend_port, plane))),
        Err(e) => eprintln!("WARNING: the nftables path is left out: {e}"),
    }
    paths.push((
        "userspace",
        proxy(&rt, CLUSTER_IPS[1], backend_port, DataPlane::Userspace),
    ));
    println!(
        "service_proxy: {CONNECTIONS} connections, {} s per measurement, echo backend on one thread, clients on one thread; userspace proxy accepting on one thread and copying on {} threads",
        time.as_secs(),
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    println!("machine: {}", machine());
    println!("| load | path | round trips/s | MiB/s | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    let paced = Duration::from_millis(10);
    let cases: [(usize, Option<Duration>, String); 3] = [
        (
            64,
            Some(paced),
            format!("64 B, {}/s", CONNECTIONS as u64 * 100),
        ),
        (64, None, "64 B, max".into()),
        (64 * 1024, None, "64 KiB, max".into()),
    ];
    for (size, pace, label) in cases {
        let mut results = Vec::new();
        // Alternating, twice, so that no path gets the quieter moment.
        for _round in 0..2 {
            for (name, addr) in &paths {
                let mut run = rt.block_on(measure(addr.clone(), size, time / 2, pace));
                let p50 = quantile(&mut run.latencies, 0.5);
                let p99 = quantile(&mut run.latencies, 0.99);
                results.push((*name, run.rounds, run.bytes, run.elapsed, p50, p99));
            }
        }
        let sum = |path: &str| {
            let rows: Vec<_> = results.iter().filter(|r| r.0 == path).collect();
            let rounds: usize = rows.iter().map(|r| r.1).sum();
            let bytes: usize = rows.iter().map(|r| r.2).sum();
            let secs: f64 = rows.iter().map(|r| r.3.as_secs_f64()).sum();
            let p50 = rows.iter().map(|r| r.4).max().unwrap();
            let p99 = rows.iter().map(|r| r.5).max().unwrap();
            let rate = rounds as f64 / secs;
            println!(
                "| {label} | {path} | {rate:.0} | {:.1} | {} | {} |",
                bytes as f64 / secs / (1024.0 * 1024.0),
                ms(p50),
                ms(p99)
            );
            (rate, p50, p99)
        };
        let (d_rate, d50, d99) = sum("direct");
        for (path, _) in paths.iter().skip(1) {
            let (p_rate, p50, p99) = sum(path);
            println!(
                "| {label} | {path} vs direct | {:.0} % | | +{} | +{} |",
                p_rate / d_rate * 100.0,
                ms(p50.saturating_sub(d50)),
                ms(p99.saturating_sub(d99))
            );
        }
    }
}
