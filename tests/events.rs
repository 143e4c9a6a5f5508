//! Events: the cores record them (event_recorder), they expire after an hour (eventttl), and
//! kubectl shows them.

mod common;

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::{format_time, ListOptions, Part};
use gantry::component::ApiOp;
use gantry::controllers::eventttl::EventTtl;
use gantry::testkit::Driver;
use serde_json::{json, Value};

fn events(d: &Driver) -> Vec<String> {
    futures::FutureExt::now_or_never(d.api.list(
        by_plural("", "events").unwrap(),
        None,
        &ListOptions::default(),
    ))
    .unwrap()
    .unwrap()
    .0
    .iter()
    .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
    .collect()
}

fn event_body(name: &str, d: &Driver) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
           "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
           "reason": "Started", "message": "m", "type": "Normal", "count": 1,
           "firstTimestamp": format_time(d.now), "lastTimestamp": format_time(d.now)})
}

#[test]
fn events_expire_an_hour_after_their_last_write() {
    // k8s: --event-ttl 1h, counted from the last write.
    let mut d = Driver::new(3);
    d.add(Box::new(EventTtl::new()));
    let res = by_plural("", "events").unwrap();
    for name in ["a", "b"] {
        let body = event_body(name, &d);
        d.client(ApiOp::Create {
            resource: res,
            namespace: Some("default".into()),
            body,
        })
        .unwrap();
    }
    d.advance(Duration::from_secs(50 * 60));
    // b is written again (a repeat: count 2): its hour starts over.
    let mut b = event_body("b", &d);
    b["count"] = json!(2);
    d.client(ApiOp::Update {
        resource: res,
        namespace: Some("default".into()),
        name: "b".into(),
        body: b,
        part: Part::Main,
    })
    .unwrap();
    d.advance(Duration::from_secs(9 * 60 + 59));
    assert_eq!(events(&d), vec!["a", "b"]);
    d.advance(Duration::from_secs(2));
    assert_eq!(events(&d), vec!["b"]);
    d.advance(Duration::from_secs(50 * 60));
    assert_eq!(events(&d), Vec::<String>::new());
}

#[cfg(feature = "server")]
#[test]
fn kubectl_tells_a_crashing_pods_story_from_its_events() {
    use common::{wait_for, GantryServer};
    let s = GantryServer::start_with_node("node-a", &[]);
    let path = s.dir.path().join("crash.yaml");
    std::fs::write(
        &path,
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: crash}
spec:
  replicas: 1
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec:
      containers:
      - {name: main, image: busybox, command: ["sh", "-c", "exit 3"]}
"#,
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    // CrashLoopBackOff restarts it after 10 s: two starts, and a back-off counted twice or more.
    let pod_events = wait_for(Duration::from_secs(40), "repeated events", || {
        let out = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Pod",
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_str(&out).unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let count = |reason: &str| {
            items
                .iter()
                .filter(|e| e["reason"] == reason)
                .map(|e| e["count"].as_i64().unwrap_or(0))
                .sum::<i64>()
        };
        (count("Started") >= 2 && count("BackOff") >= 2).then_some(items)
    });
    // One object per distinct event, counted: two starts are one Started event.
    let started: Vec<&Value> = pod_events
        .iter()
        .filter(|e| e["reason"] == "Started")
        .collect();
    assert_eq!(started.len(), 1, "{pod_events:#?}");
    let e = started[0];
    assert_eq!(e["source"]["component"], "kubelet");
    assert_eq!(e["source"]["host"], "node-a");
    assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{main}");
    assert_eq!(e["message"], "Started container main");
    let backoff = pod_events
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .unwrap();
    assert_eq!(backoff["type"], "Warning");
    let pod = e["involvedObject"]["name"].as_str().unwrap();
    assert!(backoff["message"].as_str().unwrap().starts_with(&format!(
        "Back-off restarting failed container main in pod {pod}_default("
    )));

    // kubectl describe shows them, with the repeat counts.
    let describe = s.kubectl_ok(&["describe", "pod", pod]);
    let events_section = describe.split("Events:").nth(1).unwrap_or("");
    for want in [
        "Normal   Scheduled",
        "default-scheduler  Successfully assigned default/",
        "Normal   Created",
        "Normal   Started",
        "Warning  BackOff",
        "kubelet",
    ] {
        assert!(events_section.contains(want), "{want}: {describe}");
    }
    assert!(
        events_section.contains("(x2 over") || events_section.contains("(x3 over"),
        "{describe}"
    );
    let rs = s.kubectl_ok(&["describe", "rs", "crash"]);
    assert!(rs.contains("SuccessfulCreate"), "{rs}");
    assert!(rs.contains(&format!("Created pod: {pod}")), "{rs}");
    // A pod no node can hold: FailedScheduling, with the scheduler's reasons.
    s.kubectl_ok(&["run", "huge", "--image=busybox", "--overrides",
        r#"{"spec": {"containers": [{"name": "huge", "image": "busybox", "resources": {"requests": {"cpu": "1000"}}}]}}"#]);
    let failed = wait_for(Duration::from_secs(20), "FailedScheduling", || {
        let out = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=huge,reason=FailedScheduling",
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"].as_array().and_then(|i| i.first().cloned())
    });
    assert_eq!(failed["type"], "Warning");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{failed}"
    );
    let table = s.kubectl_ok(&["get", "events"]);
    assert!(
        table.contains("BackOff") && table.contains(&format!("pod/{pod}")),
        "{table}"
    );
}
