//! One Service port's rule: where clients connect (its frontends: ClusterIP:port and the
//! node's address at its NodePort) and the backends a new connection may go to.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// k8s: sessionAffinityConfig.clientIP.timeoutSeconds defaults to 10800 (3 h).
pub const DEFAULT_AFFINITY_SECONDS: u64 = 10800;

/// A Service port: `namespace/name:port-name` (k8s: proxy.ServicePortName; the name is empty
/// for a Service's single unnamed port).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortKey {
    pub namespace: String,
    pub name: String,
    pub port: String,
}

impl fmt::Display for ServicePortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// An address clients connect to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    pub ip: String,
    pub port: u16,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// An endpoint a connection is forwarded to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub ip: String,
    pub port: u16,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// What the proxy does for one Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub cluster_ip: String,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `Some(timeout)` for `sessionAffinity: ClientIP`.
    pub affinity_seconds: Option<u64>,
    /// In address order; empty means connections are refused (k8s: the REJECT rule of a
    /// service without endpoints).
    pub backends: Vec<Backend>,
    /// The backends are the serving+terminating fallback (no endpoint is ready).
    pub fallback: bool,
}

/// The Service's ports the proxy serves, without backends yet. k8s (pkg/proxy/servicechangetracker):
/// headless (clusterIP None) and ExternalName services are skipped, as are ports of other
/// protocols than TCP here (UDP and SCTP are not proxied, docs/decisions.md).
pub fn service_rules(svc: &Service) -> Vec<(ServicePortKey, Rule)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let cluster_ip = match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_ok() => {
            ip
        }
        _ => return Vec::new(),
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    // k8s: sessionAffinity defaults to None; ClientIP keeps a client on one endpoint.
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    spec.ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok().filter(|p| *p > 0)?;
            let key = ServicePortKey {
                namespace: namespace.clone(),
                name: name.clone(),
                port: p.name.clone().unwrap_or_default(),
            };
            let node_port = p
                .node_port
                .filter(|_| with_node_ports)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            Some((
                key,
                Rule {
                    cluster_ip: cluster_ip.to_string(),
                    port,
                    node_port,
                    affinity_seconds,
                    backends: Vec::new(),
                    fallback: false,
                },
            ))
        })
        .collect()
}

/// The backends of Service port `port_name` among a Service's slices, and whether they are the
/// fallback. k8s (pkg/proxy/topology.go CategorizeEndpoints): the ready endpoints; if there are
/// none, the ones that are serving and terminating. Absent conditions read as the API says:
/// ready and serving unknown → true, terminating unknown → false. An address listed in two
/// slices counts once.
pub fn backends<'a>(
    port_name: &str,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> (Vec<Backend>, bool) {
    let mut ready = BTreeSet::new();
    let mut fallback = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
        }) else {
            continue;
        };
        let Some(port) = port
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let c = ep.conditions.clone().unwrap_or_default();
            let is_ready = c.ready.unwrap_or(true);
            let serving = c.serving.unwrap_or(is_ready);
            let terminating = c.terminating.unwrap_or(false);
            // k8s: kube-proxy uses the first address of an endpoint.
            let Some(ip) = ep.addresses.first() else {
                continue;
            };
            let b = Backend {
                ip: ip.clone(),
                port,
            };
            if is_ready {
                ready.insert(b);
            } else if serving && terminating {
                fallback.insert(b);
            }
        }
    }
    if ready.is_empty() && !fallback.is_empty() {
        (fallback.into_iter().collect(), true)
    } else {
        (ready.into_iter().collect(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(ports: Value, endpoints: Value) -> EndpointSlice {
        serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "ns"},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints}))
        .unwrap()
    }

    fn ep(ip: &str, conditions: Value) -> Value {
        json!({"addresses": [ip], "conditions": conditions})
    }

    fn b(ip: &str, port: u16) -> Backend {
        Backend {
            ip: ip.into(),
            port,
        }
    }

    #[test]
    fn which_services_and_ports_are_proxied() {
        let port = json!([{"name": "http", "port": 80, "nodePort": 30080}]);
        // (spec, expected (key port name, node port, affinity) per rule)
        type Want = Vec<(&'static str, Option<u16>, Option<u64>)>;
        let cases: Vec<(Value, Want)> = vec![
            (
                json!({"clusterIP": "10.96.0.5", "ports": port}),
                vec![("http", None, None)],
            ),
            (
                json!({"clusterIP": "10.96.0.5", "type": "NodePort", "ports": port}),
                vec![("http", Some(30080), None)],
            ),
            (json!({"clusterIP": "None", "ports": port}), vec![]),
            (json!({"ports": port}), vec![]),
            (
                json!({"clusterIP": "10.96.0.5", "type": "ExternalName", "ports": port}),
                vec![],
            ),
            (
                json!({"clusterIP": "10.96.0.5", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}]}),
                vec![("", None, None)],
            ),
            (
                json!({"clusterIP": "10.96.0.5", "ports": port, "sessionAffinity": "ClientIP"}),
                vec![("http", None, Some(10800))],
            ),
            (
                json!({"clusterIP": "10.96.0.5", "ports": port, "sessionAffinity": "ClientIP",
                       "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
                vec![("http", None, Some(60))],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<_> = service_rules(&svc(spec.clone()))
                .into_iter()
                .map(|(k, r)| {
                    assert_eq!(r.cluster_ip, "10.96.0.5");
                    (k.port, r.node_port, r.affinity_seconds)
                })
                .collect();
            let want: Vec<_> = want
                .into_iter()
                .map(|(n, p, a)| (n.to_string(), p, a))
                .collect();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn ready_endpoints_else_serving_terminating_ones() {
        let ports = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
        let ready = json!({"ready": true, "serving": true, "terminating": false});
        let not_ready = json!({"ready": false, "serving": false, "terminating": false});
        let draining = json!({"ready": false, "serving": true, "terminating": true});
        let gone = json!({"ready": false, "serving": false, "terminating": true});
        // (endpoints, expected backends, fallback)
        let cases: Vec<(Value, Vec<Backend>, bool)> = vec![
            (json!([]), vec![], false),
            (
                json!([ep("10.0.0.2", ready.clone()), ep("10.0.0.1", ready.clone())]),
                vec![b("10.0.0.1", 8080), b("10.0.0.2", 8080)],
                false,
            ),
            (
                json!([
                    ep("10.0.0.1", ready.clone()),
                    ep("10.0.0.2", draining.clone())
                ]),
                vec![b("10.0.0.1", 8080)],
                false,
            ),
            (
                json!([
                    ep("10.0.0.1", not_ready.clone()),
                    ep("10.0.0.2", draining.clone()),
                    ep("10.0.0.3", gone.clone())
                ]),
                vec![b("10.0.0.2", 8080)],
                true,
            ),
            (
                json!([ep("10.0.0.1", not_ready), ep("10.0.0.3", gone)]),
                vec![],
                false,
            ),
            // Absent conditions: ready.
            (
                json!([{"addresses": ["10.0.0.9"]}]),
                vec![b("10.0.0.9", 8080)],
                false,
            ),
        ];
        for (endpoints, want, fallback) in cases {
            let s = slice(ports.clone(), endpoints.clone());
            assert_eq!(backends("http", [&s]), (want, fallback), "{endpoints}");
        }
    }

    #[test]
    fn ports_match_by_name_and_slices_merge() {
        let ready = json!({"ready": true});
        let a = slice(
            json!([{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]),
            json!([ep("10.0.0.1", ready.clone())]),
        );
        let b2 = slice(
            json!([{"name": "http", "port": 8081}]),
            json!([ep("10.0.0.2", ready.clone()), ep("10.0.0.1", ready.clone())]),
        );
        let mut fqdn = a.clone();
        fqdn.address_type = "FQDN".into();
        assert_eq!(
            backends("http", [&a, &b2, &fqdn]).0,
            vec![
                b("10.0.0.1", 8080),
                b("10.0.0.1", 8081),
                b("10.0.0.2", 8081)
            ]
        );
        assert_eq!(backends("metrics", [&a, &b2]).0, vec![b("10.0.0.1", 9090)]);
        assert_eq!(backends("grpc", [&a, &b2]).0, vec![]);
    }
}
