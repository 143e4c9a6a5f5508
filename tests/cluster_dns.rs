//! Cluster DNS served by `gantry server` (issue 7): A records for Services (the ClusterIP, or a
//! headless Service's ready pod IPs), SRV for named ports, NXDOMAIN for unknown names, REFUSED
//! outside the cluster domain, and the kube-system/kube-dns Service `kubectl cluster-info`
//! lists. Queries go over UDP (and one over TCP) from a tiny client built on the server's own
//! codec.
#![cfg(feature = "server")]

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::{wait_for, GantryServer};
use gantry::dns::{encode_query, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A, TYPE_SRV};
use serde_json::Value;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.77
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: sql, port: 5432, targetPort: 5432}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: db}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        ports: [{name: sql, containerPort: 5432}]
"#;

/// An answer: its rcode, A records' addresses and SRV records (port, target).
#[derive(Debug, Default)]
struct Answer {
    rcode: u8,
    a: Vec<Ipv4Addr>,
    srv: Vec<(u16, String)>,
}

fn read_name(msg: &[u8], mut i: usize) -> (String, usize) {
    let mut labels = vec![];
    let mut end = None;
    loop {
        let len = msg[i] as usize;
        if len & 0xC0 == 0xC0 {
            end.get_or_insert(i + 2);
            i = ((len & 0x3F) << 8) | msg[i + 1] as usize;
            continue;
        }
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(&msg[i..i + len]).to_string());
        i += len;
    }
    (labels.join("."), end.unwrap_or(i))
}

fn parse(msg: &[u8]) -> Answer {
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    let mut out = Answer {
        rcode: msg[3] & 0x0F,
        ..Default::default()
    };
    let (_, mut i) = read_name(msg, 12);
    i += 4;
    // Answers only (not the additional section).
    for _ in 0..count(6) {
        let (_, j) = read_name(msg, i);
        let rtype = count(j);
        let rdlen = count(j + 8);
        let rdata = j + 10;
        match rtype {
            1 => out.a.push(Ipv4Addr::new(
                msg[rdata],
                msg[rdata + 1],
                msg[rdata + 2],
                msg[rdata + 3],
            )),
            33 => out
                .srv
                .push((count(rdata + 4) as u16, read_name(msg, rdata + 6).0)),
            _ => {}
        }
        i = rdata + rdlen;
    }
    out.a.sort();
    out.srv.sort();
    out
}

fn query(dns: &str, name: &str, qtype: u16) -> Answer {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let q = encode_query(0x4242, name, qtype);
    // Queries before the server's first list go unanswered: retry.
    for _ in 0..40 {
        socket.send_to(&q, dns).unwrap();
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            assert_eq!(
                &buf[..2],
                &[0x42, 0x42],
                "the answer carries the query's id"
            );
            return parse(&buf[..n]);
        }
    }
    panic!("no DNS answer from {dns} for {name}");
}

/// The same over TCP (each message prefixed with its length).
fn query_tcp(dns: &str, name: &str, qtype: u16) -> Answer {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(dns).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = encode_query(0x4243, name, qtype);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    conn.write_all(&msg).unwrap();
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(
        &buf[..2],
        &[0x42, 0x43],
        "the answer carries the query's id"
    );
    parse(&buf)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn cluster_dns_answers_for_services_and_headless_pods() {
    let dns = format!("127.0.0.1:{}", free_udp_port());
    let s = GantryServer::start_with_node("node-a", &["--cluster-dns", &dns]);
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("dns.yaml");
    std::fs::write(&path, MANIFESTS).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);

    // A for a ClusterIP Service: its ClusterIP.
    let web = wait_for(Duration::from_secs(20), "web's A record", || {
        let a = query(&dns, "web.default.svc.cluster.local", TYPE_A);
        (!a.a.is_empty()).then_some(a)
    });
    assert_eq!(web.rcode, RCODE_NOERROR);
    assert_eq!(web.a, vec![Ipv4Addr::new(10, 96, 0, 77)]);
    // The same over TCP, on the same address.
    let tcp = query_tcp(&dns, "web.default.svc.cluster.local", TYPE_A);
    assert_eq!(
        (tcp.rcode, tcp.a),
        (RCODE_NOERROR, vec![Ipv4Addr::new(10, 96, 0, 77)])
    );

    // SRV for its named port: the port and the Service's name.
    let srv = query(&dns, "_http._tcp.web.default.svc.cluster.local", TYPE_SRV);
    assert_eq!(srv.rcode, RCODE_NOERROR);
    assert_eq!(
        srv.srv,
        vec![(80, "web.default.svc.cluster.local".to_string())]
    );

    // A for the headless Service: the ready pods' IPs.
    let pods: Vec<Value> = wait_for(Duration::from_secs(60), "2 ready db pods", || {
        let v: Value =
            serde_json::from_str(&s.kubectl_ok(&["get", "pods", "-l", "app=db", "-o", "json"]))
                .unwrap();
        let pods = v["items"].as_array().cloned().unwrap_or_default();
        let ready = pods
            .iter()
            .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
            .count();
        (pods.len() == 2 && ready == 2).then_some(pods)
    });
    let mut pod_ips: Vec<Ipv4Addr> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().parse().unwrap())
        .collect();
    pod_ips.sort();
    pod_ips.dedup();
    let db = wait_for(Duration::from_secs(20), "db's A records", || {
        let a = query(&dns, "db.default.svc.cluster.local", TYPE_A);
        (a.a == pod_ips).then_some(a)
    });
    assert_eq!(db.rcode, RCODE_NOERROR);
    // Headless SRV: one per pod, on the endpoints' port.
    let srv = query(&dns, "_sql._tcp.db.default.svc.cluster.local", TYPE_SRV);
    assert_eq!(srv.srv.len(), pod_ips.len(), "{srv:?}");
    assert!(srv
        .srv
        .iter()
        .all(|(port, t)| *port == 5432 && t.ends_with(".db.default.svc.cluster.local")));

    // Unknown names: NXDOMAIN in the cluster domain, REFUSED outside it.
    let missing = query(&dns, "missing.default.svc.cluster.local", TYPE_A);
    assert_eq!((missing.rcode, missing.a.len()), (RCODE_NXDOMAIN, 0));
    let missing_port = query(&dns, "_grpc._tcp.web.default.svc.cluster.local", TYPE_SRV);
    assert_eq!(missing_port.rcode, RCODE_NXDOMAIN);
    assert_eq!(query(&dns, "example.com", TYPE_A).rcode, RCODE_REFUSED);

    // The kube-dns Service (the service range's tenth address), which cluster-info lists.
    let kube_dns: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "service",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(kube_dns["spec"]["clusterIP"], "10.96.0.10");
    let a = query(&dns, "kube-dns.kube-system.svc.cluster.local", TYPE_A);
    assert_eq!(a.a, vec![Ipv4Addr::new(10, 96, 0, 10)]);
    let info = s.kubectl_ok(&["cluster-info"]);
    assert!(info.contains("CoreDNS is running at"), "{info}");
    assert!(info.contains("kube-dns:dns/proxy"), "{info}");
}
