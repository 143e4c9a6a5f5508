//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: what `kubectl get` asks for
//! (kubectl-compat.md §1.4). Columns and cells follow upstream's printers
//! (k8s: pkg/printers/internalversion/printers.go); columns of priority 1 show with `-o wide`.

use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;

/// Whether the Accept header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    super::accepts(accept, &["as=Table", "g=meta.k8s.io"])
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    wide: bool,
}

const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        wide: false,
    }
}

const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        wide: true,
        ..col(name, description)
    }
}

const fn int(name: &'static str, description: &'static str) -> Column {
    Column {
        kind: "integer",
        ..col(name, description)
    }
}

const NAME: Column = Column {
    format: "name",
    ..col("Name", "Name must be unique within a namespace.")
};
const AGE: Column = col(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn columns(res: &ResourceInfo) -> Vec<Column> {
    match (res.group, res.plural) {
        ("", "pods") => vec![
            NAME,
            col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "The aggregate status of the containers in this pod."),
            col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            wide("IP", "IP address allocated to the pod. Routable at least within the cluster."),
            wide("Node", "NodeName is a request to schedule this pod onto a specific node."),
            wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node."),
            wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        ("", "nodes") => vec![
            NAME,
            col("Status", "The status of the node"),
            col("Roles", "The roles of the node"),
            AGE,
            col("Version", "Kubelet Version reported by the node."),
            wide("Internal-IP", "List of internal IPs (if available)."),
            wide("External-IP", "List of external IPs (if available)."),
            wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        ("", "namespaces") => vec![NAME, col("Status", "The status of the namespace"), AGE],
        ("apps", "deployments") => vec![
            NAME,
            col("Ready", "Number of the pod with ready state"),
            int("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            int("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            wide("Containers", "Names of each container in the template."),
            wide("Images", "Images referenced by each container in the template."),
            wide("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            NAME,
            int("Desired", "Replicas is the number of desired replicas."),
            int("Current", "Replicas is the most recently observed number of replicas."),
            int("Ready", "The number of ready replicas for this replica set."),
            AGE,
            wide("Containers", "Names of each container in the template."),
            wide("Images", "Images referenced by each container in the template."),
            wide("Selector", "Selector is a label query over pods that should match the replica count."),
        ],
        ("", "services") => vec![
            NAME,
            col("Type", "The type of service."),
            col("Cluster-IP", "The cluster IP of the service."),
            col("External-IP", "The external IP of the service."),
            col("Port(s)", "The ports of the service."),
            AGE,
            wide("Selector", "The selector of the service."),
        ],
        ("", "endpoints") => vec![NAME, col("Endpoints", "Endpoints of the resource."), AGE],
        ("discovery.k8s.io", "endpointslices") => vec![
            NAME,
            col("AddressType", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type."),
            col("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
            col("Endpoints", "endpoints is a list of unique endpoints in this slice."),
            AGE,
        ],
        ("", "events") => vec![
            col("Last Seen", "The time the event was last seen."),
            col("Type", "Type of this event (Normal, Warning)."),
            col("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "The object this Event is about."),
            col("Message", "A human-readable description of the status of this operation."),
            wide("Subobject", "The field of the object this Event is about."),
            wide("Source", "The component reporting this event."),
            wide("First Seen", "The time the event was first seen."),
            Column { wide: true, ..int("Count", "The number of times this event has occurred.") },
            wide("Name", "Name of the event."),
        ],
        ("coordination.k8s.io", "leases") => vec![NAME, col("Holder", "The holder of the lease."), AGE],
        // k8s: printPriorityClass
        ("scheduling.k8s.io", "priorityclasses") => vec![
            NAME,
            int("Value", "The value of this priority class."),
            Column { kind: "boolean", ..col("Global-Default", "Whether this is the global default priority class.") },
            AGE,
            col("PreemptionPolicy", "The preemption policy of this priority class."),
        ],
        // k8s: printRole, printClusterRole
        (crate::api::registry::RBAC_GROUP, "roles" | "clusterroles") => vec![
            NAME,
            Column { kind: "date", ..col("Created At", "CreationTimestamp is a timestamp representing the server time when this object was created.") },
        ],
        // k8s: printRoleBinding, printClusterRoleBinding
        (crate::api::registry::RBAC_GROUP, "rolebindings" | "clusterrolebindings") => vec![
            NAME,
            col("Role", "Role"),
            AGE,
            wide("Users", "Users in the roleBinding"),
            wide("Groups", "Groups in the roleBinding"),
            wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
        ],
        ("", "configmaps") => vec![NAME, int("Data", "Number of data entries."), AGE],
        ("", "secrets") => vec![NAME, col("Type", "The type of the secret."), int("Data", "Number of data entries."), AGE],
        _ => vec![NAME, AGE],
    }
}

/// A Table of `objects`; `now` (seconds since the epoch) ages them. Without column
/// definitions when `definitions` is false (watch events after the first).
pub fn table(
    res: &ResourceInfo,
    objects: &[Value],
    revision: Option<u64>,
    now: i64,
    definitions: bool,
) -> Value {
    let cols = columns(res);
    let defs: Vec<Value> = if definitions {
        cols.iter()
            .map(|c| {
                json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description,
                       "priority": i32::from(c.wide)})
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": cells(res, o, now),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = revision {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": defs, "rows": rows})
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The first three items joined by commas, then ` + N more...`; `empty` for none.
/// k8s: kubectl's printers listWithMoreString
fn list_with_more(items: &[String], empty: &str) -> String {
    const MAX: usize = 3;
    let shown = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{shown} + {} more...", items.len() - MAX)
    } else if shown.is_empty() {
        empty.to_string()
    } else {
        shown
    }
}

/// k8s: net.JoinHostPort (IPv6 addresses in brackets).
fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

fn age(obj: &Value, field: &str, now: i64) -> String {
    match parse_time(&obj["metadata"][field]).or_else(|| parse_time(&obj[field])) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn parse_time(v: &Value) -> Option<i64> {
    v.as_str()?
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// k8s: apimachinery/pkg/util/duration.HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn containers_and_images(template_spec: &Value) -> (String, String) {
    let list = template_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = list.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = list.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector(sel: &Value) -> String {
    or_none(super::scale::selector_string(sel))
}

fn cells(res: &ResourceInfo, o: &Value, now: i64) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = json!(age(o, "creationTimestamp", now));
    match (res.group, res.plural) {
        ("", "pods") => {
            let (ready, status, restarts) = pod_summary(o, now);
            let ip = or_none(s(&o["status"]["podIP"]));
            let node = or_none(s(&o["spec"]["nodeName"]));
            let nominated = or_none(s(&o["status"]["nominatedNodeName"]));
            vec![
                name,
                json!(ready),
                json!(status),
                json!(restarts),
                created,
                json!(ip),
                json!(node),
                json!(nominated),
                json!("<none>"),
            ]
        }
        ("", "nodes") => {
            let conditions = o["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut status = match conditions
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| s(&c["status"]))
            {
                Some(r) if r == "True" => "Ready".to_string(),
                Some(r) if r == "False" => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if o["spec"]["unschedulable"].as_bool() == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let address = |t: &str| {
                or_none(
                    o["status"]["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|a| a["type"] == t)
                        .map(|a| s(&a["address"]))
                        .collect::<Vec<_>>()
                        .join(","),
                )
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                created,
                json!(s(&info["kubeletVersion"])),
                json!(address("InternalIP")),
                json!(address("ExternalIP")),
                json!(or_none(s(&info["osImage"]))),
                json!(or_none(s(&info["kernelVersion"]))),
                json!(or_none(s(&info["containerRuntimeVersion"]))),
            ]
        }
        ("", "namespaces") => vec![
            name,
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            created,
        ],
        ("apps", "deployments") => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&o["status"]["readyReplicas"]),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                json!(n(&o["status"]["updatedReplicas"])),
                json!(n(&o["status"]["availableReplicas"])),
                created,
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(o["spec"]["replicas"].as_i64().unwrap_or(1)),
                json!(n(&o["status"]["replicas"])),
                json!(n(&o["status"]["readyReplicas"])),
                created,
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        ("", "services") => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", n(&p["port"])),
                        None => format!("{}/{proto}", n(&p["port"])),
                    }
                })
                .collect();
            let external: Vec<String> = o["spec"]["externalIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            vec![
                name,
                json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                json!(or_none(s(&o["spec"]["clusterIP"]))),
                json!(or_none(external.join(","))),
                json!(or_none(ports.join(","))),
                created,
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        // k8s: kubectl's printers formatEndpoints — the first 3 ready `ip:port`s, then
        // `+ N more...`; `<none>` without subsets.
        ("", "endpoints") => {
            let mut eps = Vec::new();
            let subsets = o["subsets"].as_array().cloned().unwrap_or_default();
            for subset in &subsets {
                let addrs = subset["addresses"].as_array().cloned().unwrap_or_default();
                let ports = subset["ports"].as_array().cloned().unwrap_or_default();
                if ports.is_empty() {
                    eps.extend(addrs.iter().map(|a| s(&a["ip"])));
                }
                for p in &ports {
                    eps.extend(
                        addrs
                            .iter()
                            .map(|a| join_host_port(&s(&a["ip"]), n(&p["port"]))),
                    );
                }
            }
            let cell = if subsets.is_empty() {
                "<none>".to_string()
            } else {
                list_with_more(&eps, "")
            };
            vec![name, json!(cell), created]
        }
        // k8s: printEndpointSlice, formatDiscoveryPorts / formatDiscoveryEndpoints.
        ("discovery.k8s.io", "endpointslices") => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match (&p["port"], &p["name"]) {
                    (Value::Number(n), _) => n.to_string(),
                    (_, Value::String(name)) => name.clone(),
                    _ => "*".into(),
                })
                .collect();
            let addresses: Vec<String> = o["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| s(&a))
                .collect();
            vec![
                name,
                json!(s(&o["addressType"])),
                json!(list_with_more(&ports, "<unset>")),
                json!(list_with_more(&addresses, "<unset>")),
                created,
            ]
        }
        ("", "events") => {
            let io = &o["involvedObject"];
            let object = format!("{}/{}", s(&io["kind"]).to_lowercase(), s(&io["name"]));
            let last = if o["lastTimestamp"].is_string() {
                age(o, "lastTimestamp", now)
            } else {
                age(o, "eventTime", now)
            };
            vec![
                json!(last),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(object),
                json!(s(&o["message"]).trim()),
                json!(s(&io["fieldPath"])),
                json!(s(&o["source"]["component"])),
                json!(age(o, "firstTimestamp", now)),
                json!(o["count"].as_i64().unwrap_or(1)),
                name,
            ]
        }
        ("coordination.k8s.io", "leases") => {
            vec![name, json!(s(&o["spec"]["holderIdentity"])), created]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(o["value"].as_i64().unwrap_or(0)),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
            created,
            json!(s(&o["preemptionPolicy"])),
        ],
        (crate::api::registry::RBAC_GROUP, "roles" | "clusterroles") => {
            vec![name, json!(s(&o["metadata"]["creationTimestamp"]))]
        }
        (crate::api::registry::RBAC_GROUP, "rolebindings" | "clusterrolebindings") => {
            let (users, groups, sas) = subjects_strings(o);
            let role = format!("{}/{}", s(&o["roleRef"]["kind"]), s(&o["roleRef"]["name"]));
            vec![
                name,
                json!(role),
                created,
                json!(users),
                json!(groups),
                json!(sas),
            ]
        }
        ("", "configmaps") => {
            let count = |f: &str| o[f].as_object().map_or(0, |m| m.len());
            vec![name, json!(count("data") + count("binaryData")), created]
        }
        ("", "secrets") => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            created,
        ],
        _ => vec![name, created],
    }
}

/// A binding's users, groups and ServiceAccounts (`ns/name`), each joined by `, `.
/// k8s: rbac.SubjectsStrings
fn subjects_strings(o: &Value) -> (String, String, String) {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in o["subjects"].as_array().into_iter().flatten() {
        let name = s(&sub["name"]);
        match sub["kind"].as_str() {
            Some("User") => users.push(name),
            Some("Group") => groups.push(name),
            Some("ServiceAccount") => sas.push(format!("{}/{name}", s(&sub["namespace"]))),
            _ => {}
        }
    }
    (users.join(", "), groups.join(", "), sas.join(", "))
}

/// k8s: printPod's READY, STATUS and RESTARTS.
fn pod_summary(o: &Value, now: i64) -> (String, String, String) {
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let mut reason = o["status"]["reason"]
        .as_str()
        .or(o["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut running = false;
    for c in statuses.iter().rev() {
        restarts += n(&c["restartCount"]);
        if let Some(t) = parse_time(&c["lastState"]["terminated"]["finishedAt"]) {
            last_restart = Some(last_restart.map_or(t, |l| l.max(t)));
        }
        let state = &c["state"];
        if let Some(r) = state["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if state["terminated"].is_object() {
            let t = &state["terminated"];
            reason = match t["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None if n(&t["signal"]) != 0 => format!("Signal:{}", n(&t["signal"])),
                None => format!("ExitCode:{}", n(&t["exitCode"])),
            };
        } else if c["ready"].as_bool() == Some(true) && state["running"].is_object() {
            running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    if o["metadata"]["deletionTimestamp"].is_string() {
        reason = if o["status"]["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
            (3000 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn pods_read_as_kubectl_get_pods() {
        let pods = by_plural("", "pods").unwrap();
        let now = 1_000_000;
        let created = k8s_openapi::jiff::Timestamp::from_second(now - 300)
            .unwrap()
            .to_string();
        let finished = k8s_openapi::jiff::Timestamp::from_second(now - 60)
            .unwrap()
            .to_string();
        let running = json!({"metadata": {"name": "web", "namespace": "default", "creationTimestamp": created},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": finished}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let t = table(pods, std::slice::from_ref(&running), Some(42), now, true);
        assert_eq!(t["metadata"]["resourceVersion"], "42");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(
            t["columnDefinitions"][5]["priority"], 1,
            "IP is a wide column"
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "1/2",
                "CrashLoopBackOff",
                "2 (60s ago)",
                "5m",
                "10.0.0.5",
                "n1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        let mut deleting = running;
        deleting["metadata"]["deletionTimestamp"] = json!(created);
        let t = table(pods, &[deleting], None, now, false);
        assert_eq!(t["rows"][0]["cells"][2], "Terminating");
        assert_eq!(t["columnDefinitions"], json!([]));
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let cells = table(pods, &[pending], None, now, true)["rows"][0]["cells"].clone();
        assert_eq!(
            cells.as_array().unwrap()[1..4],
            [json!("0/1"), json!("Pending"), json!("0")]
        );
    }

    #[test]
    fn other_kinds_have_their_columns() {
        let now = 1_000_000;
        let cases = [
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}}),
                json!([
                    "n1",
                    "Ready,SchedulingDisabled",
                    "control-plane",
                    "<unknown>",
                    "v1.33.0"
                ]),
            ),
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                json!(["d", "2/3", 3, 2, "<unknown>"]),
            ),
            (
                "apps",
                "replicasets",
                json!({"metadata": {"name": "r"}, "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}}),
                json!(["r", 2, 2, 1, "<unknown>"]),
            ),
            (
                "",
                "services",
                json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.9",
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}),
                json!([
                    "s",
                    "NodePort",
                    "10.96.0.9",
                    "<none>",
                    "80:30080/TCP",
                    "<unknown>"
                ]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e"}, "subsets": [
                    {"addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}, {"ip": "fd00::3"}, {"ip": "10.1.0.4"}],
                     "notReadyAddresses": [{"ip": "10.1.0.9"}], "ports": [{"port": 80}]}]}),
                json!([
                    "e",
                    "10.1.0.1:80,10.1.0.2:80,[fd00::3]:80 + 1 more...",
                    "<unknown>"
                ]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e"}}),
                json!(["e", "<none>", "<unknown>"]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "e-x"}, "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8080}],
                       "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}]}),
                json!(["e-x", "IPv4", "8080", "10.1.0.1,10.1.0.2", "<unknown>"]),
            ),
            // k8s: printRoleBinding (wide: users, groups, serviceaccounts as ns/name)
            (
                "rbac.authorization.k8s.io",
                "rolebindings",
                json!({"metadata": {"name": "dev-view"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                       "subjects": [{"kind": "User", "name": "dev"}, {"kind": "User", "name": "ops"},
                                    {"kind": "Group", "name": "g"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
                json!([
                    "dev-view",
                    "ClusterRole/view",
                    "<unknown>",
                    "dev, ops",
                    "g",
                    "ns/sa"
                ]),
            ),
            (
                "rbac.authorization.k8s.io",
                "clusterroles",
                json!({"metadata": {"name": "view", "creationTimestamp": "2026-01-02T03:04:05Z"}}),
                json!(["view", "2026-01-02T03:04:05Z"]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "e-y"}, "addressType": "IPv4", "endpoints": []}),
                json!(["e-y", "IPv4", "<unset>", "<unset>", "<unknown>"]),
            ),
            (
                "",
                "namespaces",
                json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}}),
                json!(["x", "Terminating", "<unknown>"]),
            ),
            (
                "",
                "configmaps",
                json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
                json!(["c", 2, "<unknown>"]),
            ),
        ];
        for (group, plural, obj, want) in cases {
            let res = by_plural(group, plural).unwrap();
            let cells = &table(res, &[obj], None, now, true)["rows"][0]["cells"];
            let n = want.as_array().unwrap().len();
            assert_eq!(json!(cells.as_array().unwrap()[..n]), want, "{plural}");
        }
    }

    #[test]
    fn tables_are_asked_for_by_media_type() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(wanted(kubectl));
        assert!(!wanted("application/json"));
        assert!(!wanted(""));
    }
}
