//! kube-proxy end to end (issue 7): `gantry server` with its own node runs a ReplicaSet of
//! three tiny HTTP servers as process pods behind a Service with an explicit clusterIP and
//! nodePort; requests through the ClusterIP and the NodePort reach all of them, a pod that
//! turns unready or is deleted leaves the rotation, and a connection made before the change
//! keeps working.
#![cfg(feature = "server")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{wait_for, GantryServer};
use serde_json::Value;

const CLUSTER_IP: &str = "10.96.100.10";
const NODE_PORT: u16 = 30080;

/// Each pod answers `GET /` with its name (HTTP/1.1, keep-alive); `GET /fail` makes its
/// readiness endpoint `/ready` answer 503 from then on.
const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: echo}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: http
        image: busybox
        command:
        - python3
        - -c
        - |
          import http.server, os
          state = {"ready": True}
          class H(http.server.BaseHTTPRequestHandler):
              protocol_version = "HTTP/1.1"
              def do_GET(self):
                  code, body = 200, os.environ["NAME"]
                  if self.path == "/fail":
                      state["ready"] = False
                  elif self.path == "/ready" and not state["ready"]:
                      code = 503
                  b = body.encode()
                  self.send_response(code)
                  self.send_header("Content-Length", str(len(b)))
                  self.end_headers()
                  self.wfile.write(b)
              def log_message(self, *a):
                  pass
          http.server.ThreadingHTTPServer((os.environ["IP"], 8080), H).serve_forever()
        env:
        - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {port: http, path: /ready}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  clusterIP: 10.96.100.10
  selector: {app: echo}
  ports: [{name: web, port: 80, targetPort: http, nodePort: 30080}]
"#;

/// One `GET path` on an open connection; the body.
fn get_on(conn: &mut TcpStream, path: &str) -> Result<String, String> {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: echo\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf))),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    Ok(String::from_utf8_lossy(&body).to_string())
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    let conn = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Ok(conn)
}

/// A request on a new connection to `addr`: the pod that answered.
fn get(addr: &str) -> Result<String, String> {
    get_on(&mut connect(addr)?, "/")
}

/// `n` requests, each on a new connection: answers by pod, and the failures.
fn spread(addr: &str, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut by_pod = BTreeMap::new();
    let mut failed = Vec::new();
    for _ in 0..n {
        match get(addr) {
            Ok(pod) => *by_pod.entry(pod).or_default() += 1,
            Err(e) => failed.push(e),
        }
    }
    (by_pod, failed)
}

fn json(s: &GantryServer, args: &[&str]) -> Value {
    serde_json::from_str(&s.kubectl_ok(args)).expect("json")
}

/// The ready endpoints of the Service, by pod name.
fn ready_endpoints(s: &GantryServer) -> BTreeSet<String> {
    let slices = json(
        s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=echo",
            "-o",
            "json",
        ],
    );
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .filter_map(|e| e["targetRef"]["name"].as_str().map(String::from))
        .collect()
}

fn lo_addresses() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "addr", "show", "dev", "lo"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_service_balances_over_ready_pods_on_its_cluster_ip_and_node_port() {
    // A previous run killed midway may have left the address behind.
    let _ = std::process::Command::new("ip")
        .args([
            "-4",
            "addr",
            "del",
            &format!("{CLUSTER_IP}/32"),
            "dev",
            "lo",
        ])
        .output();
    let mut s = GantryServer::start_with_node("n1", &[]);
    let path = s.dir.path().join("echo.yaml");
    std::fs::write(&path, MANIFEST).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let svc = json(&s, &["get", "service", "echo", "-o", "json"]);
    assert_eq!(svc["spec"]["clusterIP"], CLUSTER_IP, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], NODE_PORT, "{svc}");

    let pods = wait_for(Duration::from_secs(60), "3 ready endpoints", || {
        let ready = ready_endpoints(&s);
        (ready.len() == 3).then_some(ready)
    });
    assert!(
        lo_addresses().contains(&format!("inet {CLUSTER_IP}/32")),
        "{}",
        lo_addresses()
    );
    let vip = format!("{CLUSTER_IP}:80");
    let node_port = format!("127.0.0.1:{NODE_PORT}");
    // The proxy follows the slices within moments.
    wait_for(Duration::from_secs(10), "the proxy to reach all 3", || {
        let (by_pod, _) = spread(&vip, 30);
        (by_pod.len() == 3).then_some(())
    });

    // 300 requests, a new connection each, spread evenly (expected 100 each; sd ≈ 8).
    let (by_pod, failed) = spread(&vip, 300);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(by_pod.keys().cloned().collect::<BTreeSet<_>>(), pods);
    for (pod, n) in &by_pod {
        assert!(
            (60..=140).contains(n),
            "{pod} served {n} of 300: {by_pod:?}"
        );
    }
    // The NodePort reaches the same backends.
    let (by_pod, failed) = spread(&node_port, 60);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(by_pod.keys().cloned().collect::<BTreeSet<_>>(), pods);

    // A connection made now, and the pod it landed on.
    let mut held = connect(&vip).unwrap();
    let held_pod = get_on(&mut held, "/").unwrap();
    // That pod turns unready: it leaves the rotation, its open connection still works.
    let ip_of = |name: &str| -> String {
        json(&s, &["get", "pod", name, "-o", "json"])["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let unready = held_pod.clone();
    get(&format!("{}:8080", ip_of(&unready))).unwrap();
    let _ = get_on(
        &mut connect(&format!("{}:8080", ip_of(&unready))).unwrap(),
        "/fail",
    );
    wait_for(Duration::from_secs(20), "the pod to be unready", || {
        (!ready_endpoints(&s).contains(&unready)).then_some(())
    });
    // k8s: kube-proxy applies endpoint changes within its minSyncPeriod (1 s).
    std::thread::sleep(Duration::from_secs(1));
    let (by_pod, failed) = spread(&vip, 150);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!by_pod.contains_key(&unready), "{by_pod:?}");
    assert_eq!(by_pod.len(), 2, "{by_pod:?}");
    assert_eq!(get_on(&mut held, "/").unwrap(), held_pod);

    // A pod deleted: out of rotation once not ready, its replacement joins.
    let killed = pods.iter().find(|p| **p != unready).unwrap().clone();
    s.kubectl_ok(&["delete", "pod", &killed, "--wait=false"]);
    wait_for(Duration::from_secs(20), "the deleted pod to leave", || {
        (!ready_endpoints(&s).contains(&killed)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let (by_pod, failed) = spread(&vip, 100);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!by_pod.contains_key(&killed), "{by_pod:?}");
    assert!(!by_pod.contains_key(&unready), "{by_pod:?}");
    let replaced = wait_for(Duration::from_secs(30), "a replacement", || {
        let ready = ready_endpoints(&s);
        (ready.len() == 2 && !ready.contains(&killed)).then_some(ready)
    });
    wait_for(
        Duration::from_secs(10),
        "the replacement in rotation",
        || {
            let (by_pod, failed) = spread(&vip, 40);
            (failed.is_empty() && by_pod.keys().cloned().collect::<BTreeSet<_>>() == replaced)
                .then_some(())
        },
    );
    assert_eq!(get_on(&mut held, "/").unwrap(), held_pod);

    // The Service gone: its ClusterIP leaves lo and its ports refuse.
    s.kubectl_ok(&["delete", "service", "echo"]);
    wait_for(Duration::from_secs(10), "the ClusterIP to leave lo", || {
        (!lo_addresses().contains(&format!("inet {CLUSTER_IP}/32"))).then_some(())
    });
    wait_for(Duration::from_secs(10), "the NodePort to close", || {
        get(&node_port).is_err().then_some(())
    });
    // Ctrl-C: the server stops cleanly.
    let status = s.interrupt(Duration::from_secs(15));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
}

#[test]
fn a_service_without_endpoints_refuses_a_taken_node_port_is_retried_and_ctrl_c_removes_cluster_ips()
{
    const IP: &str = "10.96.100.11";
    let _ = std::process::Command::new("ip")
        .args(["-4", "addr", "del", &format!("{IP}/32"), "dev", "lo"])
        .output();
    let mut s = GantryServer::start_with_node("n1", &[]);
    // Someone else holds the NodePort's address at first.
    let squatter = std::net::TcpListener::bind("127.0.0.1:30081").unwrap();
    let path = s.dir.path().join("svc.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: empty}}\nspec:\n  type: NodePort\n  clusterIP: {IP}\n  selector: {{app: none}}\n  ports: [{{port: 81, targetPort: 8080, nodePort: 30081}}]\n"
        ),
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_for(Duration::from_secs(10), "the ClusterIP on lo", || {
        lo_addresses()
            .contains(&format!("inet {IP}/32"))
            .then_some(())
    });
    let addr = format!("{IP}:81");
    wait_for(Duration::from_secs(10), "the listener", || {
        connect(&addr).is_ok().then_some(())
    });
    // No endpoints: the connection is refused (reset), not left hanging.
    let err = get(&addr).unwrap_err();
    assert!(
        !err.contains("timed out") && !err.contains("WouldBlock"),
        "{err}"
    );
    // The NodePort is taken; once it is free the proxy binds it (it retries every 5 s).
    wait_for(Duration::from_secs(5), "the cannot-listen warning", || {
        s.log()
            .contains("cannot listen on 127.0.0.1:30081")
            .then_some(())
    });
    drop(squatter);
    wait_for(Duration::from_secs(15), "the NodePort listener", || {
        connect("127.0.0.1:30081").is_ok().then_some(())
    });
    assert!(get("127.0.0.1:30081").is_err());
    let status = s.interrupt(Duration::from_secs(15));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    assert!(
        !lo_addresses().contains(&format!("inet {IP}/32")),
        "{}",
        lo_addresses()
    );
}
