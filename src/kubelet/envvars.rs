//! Service environment variables (k8s: pkg/kubelet/envvars/envvars.go FromServices and the
//! kubelet's getServiceEnvVarMap): what a container learns about the Services that exist when
//! it starts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::apiserver::EventType;

/// What the env vars need of a Service that has a ClusterIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub cluster_ip: String,
    /// (name, port, protocol) in spec order.
    pub ports: Vec<(String, i64, String)>,
}

/// The Services a kubelet knows, by (namespace, name): only those with a ClusterIP set (k8s:
/// IsServiceIPSet — not "None", not empty) and at least one port.
#[derive(Clone, Debug, Default)]
pub struct Services {
    by_key: BTreeMap<(String, String), ServiceInfo>,
    /// The first list arrived.
    pub synced: bool,
}

fn key_and_info(svc: &Value) -> Option<((String, String), Option<ServiceInfo>)> {
    let meta = svc.get("metadata")?;
    let key = (
        meta.get("namespace")?.as_str()?.to_string(),
        meta.get("name")?.as_str()?.to_string(),
    );
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ports: Vec<(String, i64, String)> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["port"].as_i64().unwrap_or(0),
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
            )
        })
        .collect();
    let info = (!ip.is_empty() && ip != "None" && !ports.is_empty()).then(|| ServiceInfo {
        cluster_ip: ip.to_string(),
        ports,
    });
    Some((key, info))
}

impl Services {
    pub fn replace(&mut self, items: &[Value]) {
        self.by_key.clear();
        for svc in items {
            if let Some((key, Some(info))) = key_and_info(svc) {
                self.by_key.insert(key, info);
            }
        }
        self.synced = true;
    }

    pub fn apply(&mut self, type_: EventType, svc: &Value) {
        let Some((key, info)) = key_and_info(svc) else {
            return;
        };
        match (type_, info) {
            (EventType::Deleted, _) | (_, None) => {
                self.by_key.remove(&key);
            }
            (_, Some(info)) => {
                self.by_key.insert(key, info);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The variables for a pod in `namespace`, sorted by name. k8s: getServiceEnvVarMap — the
    /// master service `default/kubernetes` always, the namespace's own Services when
    /// `enableServiceLinks` (default true); a Service of the pod's namespace wins over the
    /// master service of the same name.
    pub fn env_for(&self, namespace: &str, links: bool) -> Vec<(String, String)> {
        let mut chosen: BTreeMap<&str, &ServiceInfo> = BTreeMap::new();
        if let Some(k) = self
            .by_key
            .get(&("default".to_string(), "kubernetes".to_string()))
        {
            chosen.insert("kubernetes", k);
        }
        if links {
            for ((ns, name), info) in &self.by_key {
                if ns == namespace {
                    chosen.insert(name, info);
                }
            }
        }
        let mut env = BTreeMap::new();
        for (name, info) in chosen {
            for (k, v) in from_service(name, info) {
                env.insert(k, v);
            }
        }
        env.into_iter().collect()
    }
}

/// k8s: makeEnvVariableName — upper case, `-` → `_`.
pub fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// k8s: FromServices and makeLinkVariables for one Service, in upstream's order.
pub fn from_service(name: &str, info: &ServiceInfo) -> Vec<(String, String)> {
    let prefix = env_name(name);
    let ip = &info.cluster_ip;
    let mut out = Vec::new();
    let Some((_, first, _)) = info.ports.first() else {
        return out;
    };
    out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    out.push((format!("{prefix}_SERVICE_PORT"), first.to_string()));
    for (port_name, port, _) in &info.ports {
        if !port_name.is_empty() {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(port_name)),
                port.to_string(),
            ));
        }
    }
    let host_port = |port: i64| match ip.contains(':') {
        true => format!("[{ip}]:{port}"),
        false => format!("{ip}:{port}"),
    };
    for (i, (_, port, proto)) in info.ports.iter().enumerate() {
        let lower = proto.to_lowercase();
        let url = format!("{lower}://{}", host_port(*port));
        if i == 0 {
            // k8s: Docker special-cases the first port.
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let p = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
        out.push((p.clone(), url));
        out.push((format!("{p}_PROTO"), lower));
        out.push((format!("{p}_PORT"), port.to_string()));
        out.push((format!("{p}_ADDR"), ip.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name},
               "spec": {"clusterIP": ip, "ports": ports}})
    }

    #[test]
    fn names_and_values_follow_upstream() {
        // k8s: pkg/kubelet/envvars/envvars_test.go TestFromServices
        let info = ServiceInfo {
            cluster_ip: "1.2.3.4".into(),
            ports: vec![
                ("".into(), 8081, "TCP".into()),
                ("super-port".into(), 8082, "UDP".into()),
            ],
        };
        let got: BTreeMap<String, String> = from_service("foo-bar", &info).into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
            ("FOO_BAR_SERVICE_PORT", "8081"),
            ("FOO_BAR_SERVICE_PORT_SUPER_PORT", "8082"),
            ("FOO_BAR_PORT", "tcp://1.2.3.4:8081"),
            ("FOO_BAR_PORT_8081_TCP", "tcp://1.2.3.4:8081"),
            ("FOO_BAR_PORT_8081_TCP_PROTO", "tcp"),
            ("FOO_BAR_PORT_8081_TCP_PORT", "8081"),
            ("FOO_BAR_PORT_8081_TCP_ADDR", "1.2.3.4"),
            ("FOO_BAR_PORT_8082_UDP", "udp://1.2.3.4:8082"),
            ("FOO_BAR_PORT_8082_UDP_PROTO", "udp"),
            ("FOO_BAR_PORT_8082_UDP_PORT", "8082"),
            ("FOO_BAR_PORT_8082_UDP_ADDR", "1.2.3.4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn which_services_a_pod_sees() {
        let mut s = Services::default();
        s.replace(&[
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc("default", "web", "10.96.0.5", json!([{"port": 80}])),
            svc(
                "team",
                "api",
                "10.96.0.6",
                json!([{"port": 8080, "protocol": "TCP"}]),
            ),
            svc("team", "headless", "None", json!([{"port": 80}])),
            svc("team", "nothing", "", json!([{"port": 80}])),
        ]);
        assert!(s.synced);
        assert_eq!(s.len(), 3, "headless and unallocated Services are left out");
        fn names(s: &Services, ns: &str, links: bool) -> Vec<String> {
            s.env_for(ns, links)
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.ends_with("_SERVICE_HOST"))
                .collect()
        }
        // (namespace, enableServiceLinks, the *_SERVICE_HOST variables)
        for (ns, links, want) in [
            (
                "team",
                true,
                vec!["API_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"],
            ),
            ("team", false, vec!["KUBERNETES_SERVICE_HOST"]),
            (
                "default",
                true,
                vec!["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"],
            ),
            ("other", true, vec!["KUBERNETES_SERVICE_HOST"]),
        ] {
            assert_eq!(names(&s, ns, links), want, "{ns} {links}");
        }
        let env: BTreeMap<_, _> = s.env_for("team", true).into_iter().collect();
        assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(env["API_PORT_8080_TCP_ADDR"], "10.96.0.6");
        // Deleted, or turned headless: gone.
        s.apply(
            EventType::Deleted,
            &svc("team", "api", "10.96.0.6", json!([{"port": 8080}])),
        );
        s.apply(
            EventType::Modified,
            &svc("default", "web", "None", json!([{"port": 80}])),
        );
        assert_eq!(names(&s, "team", true), vec!["KUBERNETES_SERVICE_HOST"]);
        assert_eq!(names(&s, "default", true), vec!["KUBERNETES_SERVICE_HOST"]);
        s.apply(
            EventType::Added,
            &svc("team", "kubernetes", "10.96.0.9", json!([{"port": 1}])),
        );
        let env: BTreeMap<_, _> = s.env_for("team", true).into_iter().collect();
        assert_eq!(
            env["KUBERNETES_SERVICE_HOST"], "10.96.0.9",
            "the namespace's own wins"
        );
    }
}
