//! End to end with real kubectl: Deployments on `gantry server` running real processes, and
//! the rollout commands (k8s-semantics.md §2; kubectl's rollout status/history/undo/restart/
//! pause/resume, set image, scale).
#![cfg(feature = "server")]

mod common;

use std::time::Duration;

use common::{wait_for, GantryServer};
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;

fn json(s: &GantryServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all)).expect("json")
}

/// The images of the pods that are not terminating, sorted.
fn pod_images(s: &GantryServer) -> Vec<String> {
    let pods = json(s, &["get", "pods", "-l", "app=web"]);
    let mut v: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// (revision, image, spec.replicas) of each ReplicaSet, by revision.
fn replica_sets(s: &GantryServer) -> Vec<(i64, String, i64)> {
    let list = json(s, &["get", "rs", "-l", "app=web"]);
    let mut v: Vec<(i64, String, i64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn rollout_status(s: &GantryServer) -> String {
    let out = s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    out
}

#[test]
fn the_rollout_commands_work_against_gantry_server() {
    let s = GantryServer::start_with_node("node-a", &[]);
    let path = s.dir.path().join("web.yaml");
    std::fs::write(&path, DEPLOYMENT).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    rollout_status(&s);
    assert_eq!(pod_images(&s), vec!["busybox"; 3]);
    let table = s.kubectl_ok(&["get", "deployment", "web"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], &["web", "3/3", "3", "3"], "{table}");

    // set image: a new ReplicaSet (revision 2) takes over; the old one is kept at 0.
    let out = s.kubectl_ok(&["set", "image", "deployment/web", "main=busybox:2"]);
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    // (Processes start in milliseconds: the rollout may be over before kubectl looks.)
    rollout_status(&s);
    assert_eq!(pod_images(&s), vec!["busybox:2"; 3]);
    assert_eq!(
        replica_sets(&s),
        vec![(1, "busybox".into(), 0), (2, "busybox:2".into(), 3)]
    );

    // history lists both revisions; --revision shows a template.
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, vec!["1", "2"], "{history}");
    let rev1 = s.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    let image_line = rev1.lines().find(|l| l.trim_start().starts_with("Image:"));
    assert_eq!(
        image_line.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["Image:", "busybox"]),
        "{rev1}"
    );

    // undo: back to revision 1's template, which becomes revision 3.
    let out = s.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rollout_status(&s);
    assert_eq!(pod_images(&s), vec!["busybox"; 3]);
    assert_eq!(
        replica_sets(&s),
        vec![(2, "busybox:2".into(), 0), (3, "busybox".into(), 3)]
    );
    let (code, _, err) = s.kubectl(&["rollout", "undo", "deployment/web", "--to-revision=9"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("unable to find specified revision 9 in history"),
        "{err}"
    );

    // restart: a template annotation, so a new ReplicaSet with fresh pods.
    let before: Vec<String> = json(&s, &["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let out = s.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    rollout_status(&s);
    let after = json(&s, &["get", "pods", "-l", "app=web"]);
    let live: Vec<&Value> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(live.len(), 3);
    for p in &live {
        assert!(!before.contains(&p["metadata"]["name"].as_str().unwrap().to_string()));
        assert!(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    }
    assert_eq!(replica_sets(&s).last().unwrap().0, 4);

    // pause: a template change waits; scale still works; resume rolls it out.
    let out = s.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web paused");
    s.kubectl_ok(&["set", "image", "deployment/web", "main=busybox:3"]);
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=4"]);
    wait_for(Duration::from_secs(30), "4 pods while paused", || {
        (pod_images(&s) == vec!["busybox"; 4]).then_some(())
    });
    let d = json(&s, &["get", "deployment", "web"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["reason"], "DeploymentPaused", "{progressing}");
    assert_eq!(replica_sets(&s).len(), 3, "no new ReplicaSet while paused");
    let out = s.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web resumed");
    rollout_status(&s);
    assert_eq!(pod_images(&s), vec!["busybox:3"; 4]);

    // describe tells the story from the Deployment's side.
    let describe = s.kubectl_ok(&["describe", "deployment", "web"]);
    let new_rs = json(&s, &["get", "rs", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rs| rs["spec"]["replicas"] == 4)
        .map(|rs| rs["metadata"]["name"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        describe.contains(&format!("NewReplicaSet:   {new_rs} (4/4 replicas created)")),
        "{describe}"
    );
    assert!(
        describe.contains("Available      True    MinimumReplicasAvailable"),
        "{describe}"
    );
    assert!(
        describe.contains("Progressing    True    NewReplicaSetAvailable"),
        "{describe}"
    );

    s.kubectl_ok(&["delete", "deployment", "web"]);
    let (code, _, err) = s.kubectl(&["get", "deployment", "web"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn rollout_status_reports_an_exceeded_progress_deadline() {
    // k8s-semantics.md §2.6–2.7: no progress for progressDeadlineSeconds → Progressing False
    // (ProgressDeadlineExceeded), and `kubectl rollout status` fails with it.
    let s = GantryServer::start_with_node("node-a", &[]);
    let stuck = DEPLOYMENT
        .replace("replicas: 3", "replicas: 2\n  progressDeadlineSeconds: 3")
        .replace(
            "        command:",
            "        readinessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1}\n        command:",
        );
    let path = s.dir.path().join("stuck.yaml");
    std::fs::write(&path, stuck).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let (code, out, err) = s.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("deployment \"web\" exceeded its progress deadline"),
        "{out}\n{err}"
    );
    let d = json(&s, &["get", "deployment", "web"]);
    let available = d["status"]["availableReplicas"].as_i64().unwrap_or(0);
    assert_eq!(available, 0, "{d}");
}
