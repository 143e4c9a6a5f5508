//! kube-proxy end to end (issue 7): `gantry server` with its own node runs a ReplicaSet of
//! three tiny HTTP servers as process pods behind a Service with an explicit clusterIP and
//! nodePort; requests through the ClusterIP and the NodePort reach all of them, a pod that
//! turns unready or is deleted leaves the rotation, and a connection made before the change
//! keeps working — in both proxy modes (nftables: the kernel translates; userspace: the agent
//! copies). The nftables tests need root (or CAP_NET_ADMIN) and `nft`, which `.ci/run` has
//! (scripts/setup installs nftables); without them they fail, saying so.
#![cfg(feature = "server")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{wait_for, GantryServer};
use serde_json::Value;

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
  clusterIP: CLUSTER_IP
  selector: {app: echo}
  ports: [{name: web, port: 80, targetPort: http, nodePort: NODE_PORT}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  clusterIP: STICKY_IP
  selector: {app: echo}
  sessionAffinity: ClientIP
  ports: [{name: web, port: 80, targetPort: http}]
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
    // Generous: the suite runs many servers on two cores, and a backend starved for a few
    // seconds is not a routing failure (a misrouted connection is refused or never answers).
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
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

/// The nftables table a server's kube-proxy logged it uses.
fn nft_table(s: &GantryServer) -> String {
    wait_for(
        Duration::from_secs(10),
        "the proxy's mode in the log",
        || {
            let log = s.log();
            log.lines().find_map(|l| {
                l.split("kube-proxy: nftables mode, table ")
                    .nth(1)
                    .map(|t| t.trim().to_string())
            })
        },
    )
}

/// `nft list table ip <table>`: the ruleset, or None when there is no such table.
fn nft_list(table: &str) -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .expect("\n\n*** the nftables tests need the `nft` tool (scripts/setup installs nftables) ***\n");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn a_service_balances_over_ready_pods_on_its_cluster_ip_and_node_port_nftables() {
    balances("nftables", "10.96.100.10", 30080, "127.31.0.0/16");
}

#[test]
fn a_service_balances_over_ready_pods_on_its_cluster_ip_and_node_port_userspace() {
    balances("userspace", "10.96.100.12", 30082, "127.32.0.0/16");
}

/// `pod_cidr`: the two tests run at once, and their pods listen on their addresses' port 8080.
fn balances(mode: &str, cluster_ip: &str, node_port_number: u16, pod_cidr: &str) {
    // A previous run killed midway may have left the address behind.
    let _ = std::process::Command::new("ip")
        .args([
            "-4",
            "addr",
            "del",
            &format!("{cluster_ip}/32"),
            "dev",
            "lo",
        ])
        .output();
    let mut s =
        GantryServer::start_with_node("n1", &["--proxy-mode", mode, "--pod-cidr", pod_cidr]);
    let table = (mode == "nftables").then(|| nft_table(&s));
    let path = s.dir.path().join("echo.yaml");
    let sticky_ip = cluster_ip.replace("10.96.100.", "10.96.101.");
    let manifest = MANIFEST
        .replace("CLUSTER_IP", cluster_ip)
        .replace("STICKY_IP", &sticky_ip)
        .replace("NODE_PORT", &node_port_number.to_string());
    std::fs::write(&path, manifest).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let svc = json(&s, &["get", "service", "echo", "-o", "json"]);
    assert_eq!(svc["spec"]["clusterIP"], cluster_ip, "{svc}");
    assert_eq!(
        svc["spec"]["ports"][0]["nodePort"], node_port_number,
        "{svc}"
    );

    let pods = wait_for(Duration::from_secs(60), "3 ready endpoints", || {
        let ready = ready_endpoints(&s);
        (ready.len() == 3).then_some(ready)
    });
    assert!(
        lo_addresses().contains(&format!("inet {cluster_ip}/32")),
        "{}",
        lo_addresses()
    );
    let vip = format!("{cluster_ip}:80");
    let node_port = format!("127.0.0.1:{node_port_number}");
    // The proxy follows the slices within moments.
    wait_for(Duration::from_secs(10), "the proxy to reach all 3", || {
        let (by_pod, _) = spread(&vip, 30);
        (by_pod.len() == 3).then_some(())
    });

    // nftables: the kernel translates, so the rules are there, and nothing of the agent's
    // listens on the ClusterIP — a listener of our own there gets no connection.
    let _squatter = table.as_ref().map(|table| {
        let rules = nft_list(table).expect("the proxy's table");
        // Three endpoints behind each of the two Services.
        assert_eq!(rules.matches("dnat to 127.31.").count(), 6, "{rules}");
        assert_eq!(rules.matches("update @affinity-").count(), 3, "{rules}");
        assert!(
            rules.contains(&format!("{cluster_ip} . 80 : goto service-")),
            "{rules}"
        );
        std::net::TcpListener::bind(&vip).expect("the ClusterIP's port is free in nftables mode")
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
    // sessionAffinity ClientIP: every connection from this host goes to one pod.
    let (by_pod, failed) = spread(&format!("{sticky_ip}:80"), 30);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(by_pod.len(), 1, "{by_pod:?}");
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
    if let Some(table) = &table {
        let rules = nft_list(table).expect("the proxy's table");
        assert_eq!(rules.matches("dnat to 127.31.").count(), 4, "{rules}");
    }

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
        (!lo_addresses().contains(&format!("inet {cluster_ip}/32"))).then_some(())
    });
    wait_for(Duration::from_secs(10), "the NodePort to close", || {
        get(&node_port).is_err().then_some(())
    });
    // Ctrl-C: the server stops cleanly, and takes its table with it.
    let status = s.interrupt(Duration::from_secs(15));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    if let Some(table) = table {
        assert_eq!(nft_list(&table), None, "{table} outlived its server");
    }
}

/// Creates the NodePort Service `empty` (port 81) at `ip`, whose selector matches no pod, and
/// waits for its ClusterIP on `lo`.
fn service_without_endpoints(s: &GantryServer, ip: &str, node_port: u16) {
    let path = s.dir.path().join("svc.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: empty}}\nspec:\n  type: NodePort\n  clusterIP: {ip}\n  selector: {{app: none}}\n  ports: [{{port: 81, targetPort: 8080, nodePort: {node_port}}}]\n"
        ),
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_for(Duration::from_secs(10), "the ClusterIP on lo", || {
        lo_addresses()
            .contains(&format!("inet {ip}/32"))
            .then_some(())
    });
}

#[test]
fn nftables_a_service_without_endpoints_refuses_and_ctrl_c_removes_the_table_and_cluster_ips() {
    const IP: &str = "10.96.100.13";
    let _ = std::process::Command::new("ip")
        .args(["-4", "addr", "del", &format!("{IP}/32"), "dev", "lo"])
        .output();
    // A table left by a gantry that is gone (a pid above any pid_max): removed at start.
    let stale = "gantry-proxy-4194999-0";
    let out = std::process::Command::new("nft")
        .args(["add", "table", "ip", stale])
        .output()
        .expect("\n\n*** this test needs the `nft` tool (scripts/setup installs nftables) ***\n");
    assert!(
        out.status.success(),
        "\n\n*** this test needs root or CAP_NET_ADMIN for nftables: {} ***\n",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = GantryServer::start_with_node("n1", &["--proxy-mode", "nftables"]);
    let table = nft_table(&s);
    wait_for(Duration::from_secs(10), "the stale table to go", || {
        nft_list(stale).is_none().then_some(())
    });
    service_without_endpoints(&s, IP, 30083);
    // No endpoints, no translation: the kernel refuses at once, on both addresses.
    for addr in [format!("{IP}:81"), "127.0.0.1:30083".to_string()] {
        let err = get(&addr).unwrap_err();
        assert!(err.contains("refused"), "{addr}: {err}");
    }
    let rules = nft_list(&table).expect("the proxy's table");
    assert!(!rules.contains(IP), "{rules}");
    let status = s.interrupt(Duration::from_secs(15));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    assert_eq!(nft_list(&table), None);
    assert!(
        !lo_addresses().contains(&format!("inet {IP}/32")),
        "{}",
        lo_addresses()
    );
}

#[test]
fn userspace_a_service_without_endpoints_refuses_a_taken_node_port_is_retried_and_ctrl_c_removes_cluster_ips(
) {
    const IP: &str = "10.96.100.11";
    let _ = std::process::Command::new("ip")
        .args(["-4", "addr", "del", &format!("{IP}/32"), "dev", "lo"])
        .output();
    let mut s = GantryServer::start_with_node("n1", &["--proxy-mode", "userspace"]);
    // Someone else holds the NodePort's address at first.
    let squatter = std::net::TcpListener::bind("127.0.0.1:30081").unwrap();
    service_without_endpoints(&s, IP, 30081);
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

/// One HTTP/1.0 `GET /` to `addr`; the last line of the answer (the body).
fn get_once(addr: &str) -> Result<String, String> {
    let mut conn = connect(addr)?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    Ok(answer.trim_end().lines().last().unwrap_or("").to_string())
}

/// Docker pods reach Services: a busybox client pod reaches two busybox web pods (on the same
/// bridge) and a process pod of another node agent (a loopback address: in nftables mode
/// through route_localnet and the source NAT to 127.0.0.1) through their ClusterIPs; a web pod
/// reaches its own Service and, through it, itself (hairpin: the sandbox's bridge port in
/// hairpin mode, and in nftables mode masqueraded so the reply comes back through the host);
/// and the host reaches the Docker pods through the ClusterIP.
#[test]
fn docker_pods_reach_services_through_cluster_ips_nftables() {
    docker_pods_reach_services(
        "nftables",
        ["10.96.100.20", "10.96.100.21"],
        "127.34.0.0/16",
    );
}

#[test]
fn docker_pods_reach_services_through_cluster_ips_userspace() {
    docker_pods_reach_services(
        "userspace",
        ["10.96.100.22", "10.96.100.23"],
        "127.35.0.0/16",
    );
}

fn docker_pods_reach_services(mode: &str, [web_ip, proc_ip]: [&str; 2], pod_cidr: &str) {
    let image = common::docker_image::busybox_image();
    let node = format!("svc-docker-{mode}-{}", std::process::id());
    let _cleanup = common::docker_image::DockerNode(node.clone());
    let agent_node = format!("svc-proc-{mode}-{}", std::process::id());
    for ip in [web_ip, proc_ip] {
        let _ = std::process::Command::new("ip")
            .args(["-4", "addr", "del", &format!("{ip}/32"), "dev", "lo"])
            .output();
    }
    let s = GantryServer::start_with_node(&node, &["--runtime", "docker", "--proxy-mode", mode]);
    let _agent = common::GantryAgent::start(
        &s,
        &agent_node,
        &["--proxy-mode", mode, "--pod-cidr", pod_cidr],
    );
    let get_request = r#"printf 'GET / HTTP/1.0\r\n\r\n'"#;
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeName: {node}
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {image}
        command: ["sh", "-c"]
        args:
        - |
          mkdir -p /www && echo "$NAME" > /www/index.html
          (while true; do echo "self: $({get_request} | nc -w 2 {web_ip} 80 | tail -n 1)"; sleep 0.3; done) &
          exec httpd -f -p 8080 -h /www
        env:
        - {{name: NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: proc, labels: {{app: proc}}}}
spec:
  nodeName: {agent_node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: http
    image: python
    command:
    - python3
    - -c
    - |
      import http.server, os
      class H(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              b = os.environ["NAME"].encode()
              self.send_response(200)
              self.send_header("Content-Length", str(len(b)))
              self.end_headers()
              self.wfile.write(b)
          def log_message(self, *a):
              pass
      http.server.ThreadingHTTPServer((os.environ["IP"], 8080), H).serve_forever()
    env:
    - {{name: NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: loop
    image: {image}
    command: ["sh", "-c"]
    args:
    - |
      while true; do
        echo "web: $({get_request} | nc -w 2 {web_ip} 80 | tail -n 1)"
        echo "proc: $({get_request} | nc -w 2 {proc_ip} 80 | tail -n 1)"
        sleep 0.2
      done
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: {web_ip}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: proc}}
spec:
  clusterIP: {proc_ip}
  selector: {{app: proc}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    );
    let path = s.dir.path().join("docker-services.yaml");
    std::fs::write(&path, manifest).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let web_pods: BTreeSet<String> =
        wait_for(Duration::from_secs(90), "2 web pods running", || {
            let pods = json(&s, &["get", "pods", "-l", "app=web", "-o", "json"]);
            let names: BTreeSet<String> = pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["status"]["phase"] == "Running")
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
                .collect();
            (names.len() == 2).then_some(names)
        });
    // The client reaches both web pods and the process pod on the other node.
    let mut wanted: BTreeSet<String> = web_pods.iter().map(|p| format!("web: {p}")).collect();
    wanted.insert("proc: proc".to_string());
    wait_for(
        Duration::from_secs(60),
        "the client to reach every backend",
        || {
            let (_, logs, _) = s.kubectl(&["logs", "client"]);
            let seen: BTreeSet<String> = logs.lines().map(String::from).collect();
            wanted.is_subset(&seen).then_some(())
        },
    );
    // Hairpin: a web pod reached itself through its own Service.
    wait_for(Duration::from_secs(30), "a web pod to reach itself", || {
        web_pods
            .iter()
            .any(|p| {
                let (_, logs, _) = s.kubectl(&["logs", p]);
                logs.lines().any(|l| l == format!("self: {p}"))
            })
            .then_some(())
    });
    // The host reaches the Docker pods through the ClusterIP (the output path).
    let answers: BTreeSet<String> = (0..30)
        .filter_map(|_| get_once(&format!("{web_ip}:80")).ok())
        .collect();
    assert_eq!(answers, web_pods);
}
