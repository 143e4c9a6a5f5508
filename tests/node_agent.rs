//! End to end with real kubectl: `gantry server` runs pods as real processes on its own node
//! (the process runtime), and `gantry agent`s join it as further nodes.
#![cfg(feature = "server")]

mod common;

use std::time::Duration;

use common::{container_pids, wait_for, GantryAgent, GantryServer};
use serde_json::Value;

fn pods(s: &GantryServer, selector: &str) -> Vec<Value> {
    let out = s.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("json");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn apply(s: &GantryServer, dir: &std::path::Path, file: &str, yaml: &str) {
    let path = dir.join(file);
    std::fs::write(&path, yaml).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

const REPLICASET: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c"]
        args: ["echo started $(POD_NAME) at $POD_IP on $NODE; trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
"#;

#[test]
fn a_replicaset_of_processes_runs_logs_is_replaced_and_scales_to_nothing() {
    let s = GantryServer::start_with_node("node-a", &[]);
    let node = s.kubectl_ok(&["get", "node", "node-a", "-o", "json"]);
    let node: Value = serde_json::from_str(&node).unwrap();
    // The node reports the machine: real CPUs and memory, its kernel and runtime.
    assert_ne!(node["status"]["capacity"]["cpu"], "4", "{node}");
    assert!(node["status"]["nodeInfo"]["kernelVersion"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != "gantry"));
    assert_eq!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        "process://0.1.0"
    );
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");

    apply(&s, s.dir.path(), "rs.yaml", REPLICASET);
    let ready = wait_for(Duration::from_secs(30), "3 running pods", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running)).then_some(ps)
    });
    let ips: std::collections::BTreeSet<&str> = ready
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str())
        .collect();
    assert_eq!(ips.len(), 3, "each pod has its own IP: {ips:?}");
    assert!(ips.iter().all(|ip| ip.starts_with("127.1.")), "{ips:?}");
    assert_eq!(container_pids(s.dir.path()).len(), 3);

    // kubectl logs: the output, with the downward API and $(VAR) expansion in args.
    let victim = name(&ready[0]);
    let ip = ready[0]["status"]["podIP"].as_str().unwrap();
    let logs = wait_for(Duration::from_secs(10), "the pod's log", || {
        let out = s.kubectl_ok(&["logs", &victim]);
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(logs, format!("started {victim} at {ip} on node-a\n"));
    let stamped = s.kubectl_ok(&["logs", &victim, "--timestamps", "--tail=1"]);
    assert!(
        stamped.ends_with(&format!("Z started {victim} at {ip} on node-a\n")),
        "{stamped}"
    );
    // --follow streams from the node: the first line arrives while the container runs on.
    let mut follow = s
        .kubectl_command(&["logs", "-f", &victim])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(follow.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, logs);
    assert!(follow.try_wait().unwrap().is_none(), "still following");
    let _ = follow.kill();
    let _ = follow.wait();
    let (code, _, err) = s.kubectl(&["logs", &victim, "--previous"]);
    assert_ne!(code, 0);
    assert!(err.contains("previous terminated container"), "{err}");

    // kubectl delete pod: SIGTERM, the container says goodbye and exits within the grace
    // period; the ReplicaSet replaces the pod.
    let t = std::time::Instant::now();
    s.kubectl_ok(&["delete", "pod", &victim]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let after = wait_for(Duration::from_secs(30), "a replacement", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running) && ps.iter().all(|p| name(p) != victim))
            .then_some(ps)
    });
    assert_eq!(after.len(), 3);

    // Scaling to 0 leaves no process behind.
    s.kubectl_ok(&["scale", "rs", "web", "--replicas=0"]);
    wait_for(Duration::from_secs(30), "no pods", || {
        pods(&s, "app=web").is_empty().then_some(())
    });
    wait_for(Duration::from_secs(10), "no processes", || {
        container_pids(s.dir.path()).is_empty().then_some(())
    });
}

#[test]
fn a_crashing_container_backs_off_longer_each_time() {
    let s = GantryServer::start_with_node("node-a", &[]);
    apply(
        &s,
        s.dir.path(),
        "crash.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo run; exit 3"]
"#,
    );
    // k8s: back-off 10 s after the first crash, then 20 s (doubling to 5 min).
    let mut seen: Vec<String> = Vec::new();
    wait_for(Duration::from_secs(60), "back-off 10s then 20s", || {
        let out = s.kubectl_ok(&["get", "pod", "crash", "-o", "json"]);
        let pod: Value = serde_json::from_str(&out).unwrap();
        let cs = &pod["status"]["containerStatuses"][0];
        if let Some(m) = cs["state"]["waiting"]["message"].as_str() {
            let m = m.split(" restarting").next().unwrap_or("").to_string();
            if seen.last() != Some(&m) {
                seen.push(m);
            }
        }
        seen.iter().any(|m| m == "back-off 20s").then_some(())
    });
    let first = seen
        .iter()
        .position(|m| m == "back-off 10s")
        .expect("10s first");
    let second = seen.iter().position(|m| m == "back-off 20s").unwrap();
    assert!(first < second, "{seen:?}");
    let out = s.kubectl_ok(&["get", "pod", "crash", "-o", "json"]);
    let pod: Value = serde_json::from_str(&out).unwrap();
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
    assert!(cs["restartCount"].as_i64().unwrap() >= 2, "{cs}");
    assert_eq!(s.kubectl_ok(&["logs", "crash", "--previous"]), "run\n");
    let table = s.kubectl_ok(&["get", "pod", "crash"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
}

#[test]
fn probes_restart_and_gate_readiness_and_bad_config_has_reasons() {
    let s = GantryServer::start_with_node("node-a", &[]);
    apply(
        &s,
        s.dir.path(),
        "probes.yaml",
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, file.txt: from-a-volume}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "touch /tmp/healthy-$HOSTNAME; sleep 2; rm -f /tmp/healthy-$HOSTNAME; sleep 1000"]
    livenessProbe:
      exec: {command: ["sh", "-c", "test -f /tmp/healthy-liveness"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: served}
spec:
  containers:
  - name: c
    image: busybox
    command: ["python3", "-c", "import http.server,os; s=http.server.HTTPServer((os.environ['IP'], 8080), http.server.SimpleHTTPRequestHandler); print('serving', flush=True); s.serve_forever()"]
    workingDir: /data
    env:
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {port: http, path: /file.txt}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
    volumeMounts:
    - {name: settings, mountPath: /data, readOnly: true}
    - {name: creds, mountPath: /run/gantry-test-creds}
  volumes:
  - {name: settings, configMap: {name: settings}}
  - {name: creds, secret: {secretName: creds, items: [{key: password, path: db/pass}]}}
---
apiVersion: v1
kind: Pod
metadata: {name: misconfigured}
spec:
  containers:
  - name: c
    image: busybox
    command: ["true"]
    env: [{name: X, valueFrom: {configMapKeyRef: {name: missing, key: k}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-command}
spec:
  containers: [{name: c, image: nginx}]
"#,
    );
    let get = |n: &str| -> Value {
        serde_json::from_str(&s.kubectl_ok(&["get", "pod", n, "-o", "json"])).unwrap()
    };
    // A failing liveness probe kills the container; the kubelet starts it again.
    let pod = wait_for(Duration::from_secs(40), "a liveness restart", || {
        let p = get("liveness");
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)).then_some(p)
    });
    let last = &pod["status"]["containerStatuses"][0]["lastState"]["terminated"];
    // SIGTERM ends `sh` (143), or SIGKILL after the 2 s grace (137).
    assert!(
        [137, 143].contains(&last["exitCode"].as_i64().unwrap()),
        "{last}"
    );

    // httpGet readiness on a named port against the pod IP, a configMap volume at
    // /data, env from a ConfigMap and a Secret, tcpSocket liveness.
    wait_for(Duration::from_secs(30), "the server to be ready", || {
        (get("served")["status"]["containerStatuses"][0]["ready"] == true).then_some(())
    });
    let served = get("served");
    let ip = served["status"]["podIP"].as_str().unwrap().to_string();
    let body = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import urllib.request;print(urllib.request.urlopen('http://{ip}:8080/file.txt').read().decode())"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body.stdout).trim(),
        "from-a-volume"
    );
    assert_eq!(served["status"]["containerStatuses"][0]["restartCount"], 0);
    // The secret volume as the container sees it (its own mount namespace).
    let pid = container_pid(&s, "served");
    let pass = std::fs::read_to_string(format!("/proc/{pid}/root/run/gantry-test-creds/db/pass"))
        .expect("the secret, mounted");
    assert_eq!(pass, "s3cret");
    let env_of = container_env(&s, "served");
    assert!(env_of.contains(&"GREETING=hello".to_string()), "{env_of:?}");
    assert!(
        env_of.contains(&"PASSWORD=s3cret".to_string()),
        "{env_of:?}"
    );

    // A missing ConfigMap and a container without a command wait with Kubernetes' reasons.
    for (pod, reason, says) in [
        (
            "misconfigured",
            "CreateContainerConfigError",
            "configmap \"missing\" not found",
        ),
        ("no-command", "CreateContainerError", "has no command"),
    ] {
        let state = wait_for(Duration::from_secs(20), reason, || {
            let p = get(pod);
            let st = &p["status"]["containerStatuses"][0];
            let w = if st["state"]["waiting"]["reason"] == reason {
                st["state"]["waiting"].clone()
            } else {
                Value::Null
            };
            (!w.is_null()).then_some(w)
        });
        assert!(
            state["message"].as_str().unwrap_or("").contains(says),
            "{pod}: {state}"
        );
    }
}

/// The pid of the pod's running process.
fn container_pid(s: &GantryServer, pod: &str) -> String {
    let p: Value = serde_json::from_str(&s.kubectl_ok(&["get", "pod", pod, "-o", "json"])).unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let base = s.dir.path().join("nodes/node-a/process/containers");
    for c in std::fs::read_dir(base).unwrap().flatten() {
        let state = std::fs::read_to_string(c.path().join("state")).unwrap_or_default();
        if state.contains(&uid) && !c.path().join("exit").exists() {
            return std::fs::read_to_string(c.path().join("pid"))
                .unwrap()
                .trim()
                .to_string();
        }
    }
    panic!("no running container of {pod}");
}

/// The environment of the pod's running process (from /proc).
fn container_env(s: &GantryServer, pod: &str) -> Vec<String> {
    let env = std::fs::read(format!("/proc/{}/environ", container_pid(s, pod))).unwrap();
    env.split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

#[test]
fn a_restarted_server_adopts_its_running_containers_and_ctrl_c_is_clean() {
    let mut s = GantryServer::start_with_node("node-a", &[]);
    apply(&s, s.dir.path(), "rs.yaml", REPLICASET);
    let before = wait_for(Duration::from_secs(30), "3 running pods", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running)).then_some(ps)
    });
    let mut pids = container_pids(s.dir.path());
    pids.sort();
    // Ctrl-C: the server stops promptly (open watches do not hold it), containers stay.
    let status = s
        .interrupt(Duration::from_secs(10))
        .expect("the server stops within 10 s of Ctrl-C");
    assert!(status.success(), "{status:?}");
    let mut still = container_pids(s.dir.path());
    still.sort();
    assert_eq!(still, pids, "containers outlive the agent");

    let s = GantryServer::start_in_with_node(s.stop_keeping_data(), "node-a", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let after = pods(&s, "app=web");
    assert_eq!(after.len(), 3);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(name(a), name(b), "{}", s.log());
        assert!(running(b), "{b}");
        assert_eq!(
            b["status"]["containerStatuses"][0]["restartCount"], 0,
            "{b}"
        );
    }
    let mut now = container_pids(s.dir.path());
    now.sort();
    assert_eq!(now, pids, "adopted, not started again");
}

#[test]
fn pods_of_a_killed_agent_are_replaced_on_the_other_node() {
    // Shortened for the test: leases renewed every second, a node Unknown after 4 s without
    // one, its pods evicted 2 s later.
    let s = GantryServer::start_with(&[
        "--node-monitor-grace-seconds",
        "4",
        "--default-not-ready-toleration-seconds",
        "2",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let lease = ["--node-lease-duration-seconds", "4"];
    let mut a = GantryAgent::start(
        &s,
        "agent-a",
        &[&lease[..], &["--pod-cidr", "127.21.0.0/16"]].concat(),
    );
    let mut b = GantryAgent::start(
        &s,
        "agent-b",
        &[&lease[..], &["--pod-cidr", "127.22.0.0/16"]].concat(),
    );
    wait_for(Duration::from_secs(30), "two Ready nodes", || {
        let out = s.kubectl_ok(&["get", "nodes", "--no-headers"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 2).then_some(())
    });
    apply(&s, s.dir.path(), "rs.yaml", REPLICASET);
    let placed = wait_for(Duration::from_secs(30), "3 running pods", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running)).then_some(ps)
    });
    let on_a: Vec<String> = placed
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "agent-a")
        .map(name)
        .collect();
    assert!(
        !on_a.is_empty(),
        "the scheduler spreads pods over both nodes: {placed:?}"
    );
    // Logs come from the remote agent's endpoint.
    let first = name(&placed[0]);
    wait_for(Duration::from_secs(10), "logs from an agent", || {
        s.kubectl_ok(&["logs", &first])
            .starts_with("started")
            .then_some(())
    });

    a.kill_9();
    wait_for(Duration::from_secs(30), "agent-a Unknown", || {
        let n: Value =
            serde_json::from_str(&s.kubectl_ok(&["get", "node", "agent-a", "-o", "json"])).unwrap();
        let ready = n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
        (ready.is_some_and(|c| c["status"] == "Unknown")).then_some(())
    });
    wait_for(Duration::from_secs(60), "3 running pods on agent-b", || {
        let ps = pods(&s, "app=web");
        let live: Vec<&Value> = ps.iter().filter(|p| running(p)).collect();
        (live.len() >= 3
            && live
                .iter()
                .filter(|p| p["spec"]["nodeName"] == "agent-b")
                .count()
                == 3)
            .then_some(())
    });
    assert!(b.log().contains("node agent-b: "), "{}", b.log());
    let status = b
        .interrupt(Duration::from_secs(10))
        .expect("the agent stops within 10 s of Ctrl-C");
    assert!(status.success(), "{status:?}: {}", b.log());
}

#[test]
fn an_agent_follows_its_server_through_a_restart() {
    let port = common::free_port();
    let s = GantryServer::start_at(tempfile::tempdir().unwrap(), port);
    let _agent = GantryAgent::start(&s, "agent-r", &["--pod-cidr", "127.23.0.0/16"]);
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: r}}}}\nspec:\n  containers:\n  - {{name: c, image: busybox, command: [sleep, '1000']}}\n"
        )
    };
    apply(&s, s.dir.path(), "one.yaml", &pod("one"));
    wait_for(Duration::from_secs(30), "one running", || {
        pods(&s, "app=r").iter().any(running).then_some(())
    });
    // The server goes away and comes back on the same address: the agent's watches end, it
    // relists when the server answers again, and carries on.
    let s = GantryServer::start_at(s.stop_keeping_data(), port);
    apply(&s, s.dir.path(), "two.yaml", &pod("two"));
    wait_for(
        Duration::from_secs(30),
        "two running after the restart",
        || {
            let ps = pods(&s, "app=r");
            (ps.len() == 2 && ps.iter().all(running)).then_some(())
        },
    );
    s.kubectl_ok(&["delete", "pod", "one", "--grace-period=1"]);
    wait_for(Duration::from_secs(30), "one gone", || {
        (pods(&s, "app=r").len() == 1).then_some(())
    });
}

#[test]
fn a_replicaset_of_docker_containers_runs_logs_is_replaced_and_scales_to_nothing() {
    // No registry here: the test imports its own busybox image (tests/common/docker_image.rs).
    let image = common::docker_image::busybox_image();
    let node = format!("docker-{}", std::process::id());
    let cleanup = common::docker_image::DockerNode(node.clone());
    let s = GantryServer::start_with_node(&node, &["--runtime", "docker"]);
    let info: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "node", &node, "-o", "json"])).unwrap();
    assert!(
        info["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("docker://")),
        "{info}"
    );
    apply(
        &s,
        s.dir.path(),
        "rs.yaml",
        &REPLICASET
            .replace("image: busybox", &format!("image: {image}"))
            .replace("sleep 0.2", "sleep 1"),
    );
    let ready = wait_for(Duration::from_secs(60), "3 running containers", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running)).then_some(ps)
    });
    let ips: std::collections::BTreeSet<&str> = ready
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str())
        .collect();
    assert_eq!(
        ips.len(),
        3,
        "each pod has its container network's IP: {ips:?}"
    );
    let victim = name(&ready[0]);
    let ip = ready[0]["status"]["podIP"].as_str().unwrap();
    let logs = wait_for(Duration::from_secs(10), "the container's log", || {
        let out = s.kubectl_ok(&["logs", &victim]);
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(logs, format!("started {victim} at {ip} on {node}\n"));
    // kubectl exec into a Docker container: its env, stdin to EOF, the exit code.
    let mut exec = s
        .kubectl_command(&[
            "exec",
            "-i",
            &victim,
            "--",
            "sh",
            "-c",
            "cat; echo $NODE; exit 5",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut exec.stdin.take().unwrap(), b"piped\n").unwrap();
    let out = exec.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout)),
        (Some(5), format!("piped\n{node}\n").into()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With a terminal (kubectl's own under script(1)): Docker's, sized as kubectl's.
    let kubectl = format!(
        "stty rows 33 cols 77; kubectl exec -it {victim} -- sh -c 'sleep 0.5; stty size; exit 6'"
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &kubectl, "/dev/null"])
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.dir.path())
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(text.contains("33 77"), "{text}");
    assert_eq!(tty.status.code(), Some(6), "{text}");
    let count = |filter: &str| {
        let (_, out, _) = common::docker_image::docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=io.gantry.node={node}"),
            "--filter",
            filter,
        ]);
        out.split_whitespace().count()
    };
    assert_eq!(count("label=io.kubernetes.docker.type=container"), 3);

    // Graceful delete: the trap answers SIGTERM, the ReplicaSet replaces the pod.
    s.kubectl_ok(&["delete", "pod", &victim]);
    wait_for(Duration::from_secs(60), "a replacement", || {
        let ps = pods(&s, "app=web");
        (ps.len() == 3 && ps.iter().all(running) && ps.iter().all(|p| name(p) != victim))
            .then_some(())
    });
    s.kubectl_ok(&["scale", "rs", "web", "--replicas=0"]);
    wait_for(Duration::from_secs(60), "no pods", || {
        pods(&s, "app=web").is_empty().then_some(())
    });
    wait_for(Duration::from_secs(30), "no containers", || {
        (count("status=running") == 0).then_some(())
    });
    drop(s);
    drop(cleanup);
}

#[test]
fn a_replication_controller_keeps_its_pods() {
    // k8s: the replication manager is the ReplicaSet controller over a conversion: selector map,
    // ownerReferences to the ReplicationController, the same status.
    let s = GantryServer::start_with_node("node-a", &[]);
    apply(
        &s,
        s.dir.path(),
        "rc.yaml",
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: [sleep, "1000"]}]
"#,
    );
    let ready = wait_for(Duration::from_secs(30), "2 running pods", || {
        let ps = pods(&s, "app=legacy");
        (ps.len() == 2 && ps.iter().all(running)).then_some(ps)
    });
    let owner = &ready[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicationController", "{owner}");
    assert_eq!(owner["apiVersion"], "v1");
    s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=3"]);
    let victim = name(&ready[0]);
    s.kubectl_ok(&["delete", "pod", &victim]);
    wait_for(
        Duration::from_secs(30),
        "3 running pods, the deleted one replaced",
        || {
            let ps = pods(&s, "app=legacy");
            (ps.len() == 3 && ps.iter().all(running) && ps.iter().all(|p| name(p) != victim))
                .then_some(())
        },
    );
    let rc: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "rc", "legacy", "-o", "json"])).unwrap();
    wait_for(Duration::from_secs(10), "the status", || {
        let rc: Value =
            serde_json::from_str(&s.kubectl_ok(&["get", "rc", "legacy", "-o", "json"])).unwrap();
        (rc["status"]["readyReplicas"] == 3 && rc["status"]["replicas"] == 3).then_some(())
    });
    // The selector stays a map (the conversion is the controller's business only).
    assert_eq!(rc["spec"]["selector"], serde_json::json!({"app": "legacy"}));
    let table = s.kubectl_ok(&["get", "rc", "legacy"]);
    assert!(table.contains("legacy   3         3"), "{table}");
    s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=0"]);
    wait_for(Duration::from_secs(30), "no pods", || {
        pods(&s, "app=legacy").is_empty().then_some(())
    });
}

#[test]
fn deleting_a_namespace_deletes_everything_in_it_then_the_namespace() {
    let s = GantryServer::start_with_node("node-a", &[]);
    apply(
        &s,
        s.dir.path(),
        "ns.yaml",
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: doomed}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: doomed}
data: {a: "1"}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: doomed, labels: {app: doomed}}
spec:
  terminationGracePeriodSeconds: 5
  containers: [{name: c, image: busybox, command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}]
"#,
    );
    wait_for(Duration::from_secs(30), "the pod running", || {
        let out = s.kubectl_ok(&["get", "pod", "worker", "-n", "doomed", "-o", "json"]);
        running(&serde_json::from_str(&out).unwrap()).then_some(())
    });
    // kubectl waits until the namespace is gone.
    s.kubectl_ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let (code, _, err) = s.kubectl(&["get", "namespace", "doomed"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    for kind in ["pods", "configmaps", "serviceaccounts"] {
        let out = s.kubectl_ok(&["get", kind, "-n", "doomed", "-o", "name"]);
        assert!(out.trim().is_empty(), "{kind} left: {out}");
    }
    wait_for(Duration::from_secs(10), "no processes", || {
        container_pids(s.dir.path()).is_empty().then_some(())
    });
}
