//! The kube-proxy core: Services, EndpointSlices and its own Node in; a rule table out (one
//! `Rule` per Service port, with the frontends clients connect to), and the backend for each
//! new connection (`pick`). Deterministic: every table is a BTreeMap and every random choice
//! is drawn from the rng it is handed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rand::{Rng, RngCore};

use super::affinity::AffinityTable;
use super::rules::{self, Backend, Frontend, Rule, ServicePortKey};
use crate::api::registry::{self, ResourceInfo};
use crate::component::{Component, Effect, Input, WatchSpec};
use crate::controllers::cache::{Cache, Change};
use crate::controllers::endpointutil::slice_service;
use crate::time::Time;

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    /// The node this proxy runs on: its InternalIP serves the NodePorts.
    pub node_name: Option<String>,
    /// The node's address until (or unless) the Node object says.
    pub node_ip: Option<String>,
}

pub struct Proxy {
    name: String,
    config: ProxyConfig,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
    nodes: Cache<Node>,
    rules: BTreeMap<ServicePortKey, Rule>,
    frontends: BTreeMap<Frontend, ServicePortKey>,
    affinity: AffinityTable,
    /// Bumped whenever `rules` or `frontends` change.
    version: u64,
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Self {
        let name = match &config.node_name {
            Some(n) => format!("kube-proxy/{n}"),
            None => "kube-proxy".to_string(),
        };
        Proxy {
            name,
            config,
            services: Cache::new(),
            slices: Cache::with_index(slice_service),
            nodes: Cache::new(),
            rules: BTreeMap::new(),
            frontends: BTreeMap::new(),
            affinity: AffinityTable::default(),
            version: 0,
        }
    }

    /// The current rule table, by Service port.
    pub fn rules(&self) -> &BTreeMap<ServicePortKey, Rule> {
        &self.rules
    }

    /// Where clients connect: ClusterIP:port and node address:NodePort, each to its Service port.
    pub fn frontends(&self) -> &BTreeMap<Frontend, ServicePortKey> {
        &self.frontends
    }

    /// Changes whenever the rules or the frontends do (the host reconciles its listeners).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The node address the NodePorts are served on.
    pub fn node_ip(&self) -> Option<String> {
        let from_node = self
            .config
            .node_name
            .as_deref()
            .and_then(|n| self.nodes.get(n))
            .and_then(|n| n.status.as_ref()?.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        from_node.or_else(|| self.config.node_ip.clone())
    }

    /// The backend for a new connection from `client_ip` to Service port `key`; `None` when it
    /// has no backend (the connection is refused). k8s (iptables mode): endpoint i of n is
    /// taken with probability 1/(n−i), the last unconditionally — uniform per new connection
    /// — unless ClientIP affinity holds the client to the endpoint it had.
    pub fn pick(
        &mut self,
        key: &ServicePortKey,
        client_ip: &str,
        now: Time,
        rng: &mut dyn RngCore,
    ) -> Option<Backend> {
        let rule = self.rules.get(key)?;
        if rule.backends.is_empty() {
            return None;
        }
        if let Some(timeout) = rule.affinity_seconds {
            if let Some(b) = self.affinity.get(key, client_ip, now) {
                if rule.backends.contains(b) {
                    let b = b.clone();
                    self.affinity.set(key, client_ip, b.clone(), now, timeout);
                    return Some(b);
                }
            }
        }
        let n = rule.backends.len();
        let mut chosen = n - 1;
        for i in 0..n - 1 {
            // k8s: -m statistic --mode random --probability 1/(n-i)
            if rng.gen_bool(1.0 / (n - i) as f64) {
                chosen = i;
                break;
            }
        }
        let b = rule.backends[chosen].clone();
        if let Some(timeout) = rule.affinity_seconds {
            self.affinity.set(key, client_ip, b.clone(), now, timeout);
        }
        Some(b)
    }

    /// `pick` for a connection that arrived at `frontend`.
    pub fn pick_at(
        &mut self,
        frontend: &Frontend,
        client_ip: &str,
        now: Time,
        rng: &mut dyn RngCore,
    ) -> Option<(ServicePortKey, Backend)> {
        let key = self.frontends.get(frontend)?.clone();
        let b = self.pick(&key, client_ip, now, rng)?;
        Some((key, b))
    }

    /// Recomputes the rules of the Service `ns_name` (`namespace/name`).
    fn sync_service(&mut self, ns_name: &str, out: &mut Vec<Effect>) -> bool {
        let (ns, name) = ns_name.split_once('/').unwrap_or(("", ns_name));
        let mut new: BTreeMap<ServicePortKey, Rule> = match self.services.get(ns_name) {
            Some(svc) => rules::service_rules(svc).into_iter().collect(),
            None => BTreeMap::new(),
        };
        for (key, rule) in new.iter_mut() {
            let (backends, fallback) = rules::backends(
                &key.port,
                self.slices
                    .indexed_in_namespace(ns_name, ns)
                    .map(|(_, s)| s.as_ref()),
            );
            rule.backends = backends;
            rule.fallback = fallback;
        }
        let lo = ServicePortKey {
            namespace: ns.to_string(),
            name: name.to_string(),
            port: String::new(),
        };
        let old: Vec<ServicePortKey> = self
            .rules
            .range(lo..)
            .take_while(|(k, _)| k.namespace == ns && k.name == name)
            .map(|(k, _)| k.clone())
            .collect();
        let mut changed = false;
        for key in old {
            if !new.contains_key(&key) {
                self.rules.remove(&key);
                self.affinity.forget(&key);
                out.push(Effect::Log {
                    v: 2,
                    message: format!("service port {key} removed"),
                });
                changed = true;
            }
        }
        for (key, rule) in new {
            if self.rules.get(&key) == Some(&rule) {
                continue;
            }
            if rule.affinity_seconds.is_none() {
                self.affinity.forget(&key);
            } else {
                self.affinity.retain_backends(&key, &rule.backends);
            }
            let backends: Vec<String> = rule.backends.iter().map(|b| b.to_string()).collect();
            out.push(Effect::Log {
                v: 2,
                message: format!(
                    "service port {key} at {}:{}{}: {} backends{} [{}]",
                    rule.cluster_ip,
                    rule.port,
                    rule.node_port
                        .map(|p| format!(" (nodePort {p})"))
                        .unwrap_or_default(),
                    backends.len(),
                    if rule.fallback {
                        " (none ready: serving+terminating)"
                    } else {
                        ""
                    },
                    backends.join(", ")
                ),
            });
            self.rules.insert(key, rule);
            changed = true;
        }
        changed
    }

    fn rebuild_frontends(&mut self, out: &mut Vec<Effect>) -> bool {
        let node_ip = self.node_ip();
        let mut frontends = BTreeMap::new();
        for (key, rule) in &self.rules {
            for f in [
                Some(Frontend {
                    ip: rule.cluster_ip.clone(),
                    port: rule.port,
                }),
                node_ip
                    .as_ref()
                    .zip(rule.node_port)
                    .map(|(ip, p)| Frontend {
                        ip: ip.clone(),
                        port: p,
                    }),
            ]
            .into_iter()
            .flatten()
            {
                if let Some(other) = frontends.insert(f.clone(), key.clone()) {
                    // Validation keeps ClusterIPs and NodePorts unique; a clash is logged and
                    // the later Service port (in key order) wins.
                    out.push(Effect::Log {
                        v: 2,
                        message: format!("{f} is claimed by both {other} and {key}"),
                    });
                }
            }
        }
        if frontends == self.frontends {
            return false;
        }
        self.frontends = frontends;
        true
    }
}

fn touched<T>(changes: Vec<Change<T>>, service_of: impl Fn(&T) -> String) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for c in changes {
        keys.extend(c.old.as_deref().map(&service_of));
        keys.extend(c.new.as_deref().map(&service_of));
    }
    keys
}

impl Component for Proxy {
    fn name(&self) -> &str {
        &self.name
    }

    fn user(&self) -> crate::auth::UserInfo {
        // k8s: kube-proxy's user as kubeadm gives it, bound to system:node-proxier.
        crate::auth::UserInfo::new("system:kube-proxy", &[crate::auth::user::ALL_AUTHENTICATED])
    }

    fn watches(&self) -> Vec<WatchSpec> {
        let mut w = vec![
            WatchSpec::all(res("", "services")),
            WatchSpec::all(res("discovery.k8s.io", "endpointslices")),
        ];
        if let Some(node) = &self.config.node_name {
            w.push(WatchSpec {
                resource: res("", "nodes"),
                field_selector: Some(format!("metadata.name={node}")),
            });
        }
        w
    }

    fn step(&mut self, _now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        let mut dirty = BTreeSet::new();
        let mut node_changed = false;
        if let Some(changes) = self.services.feed(res("", "services"), &input) {
            dirty = touched(changes, |s: &Service| {
                format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or(""),
                    s.metadata.name.as_deref().unwrap_or("")
                )
            });
        } else if let Some(changes) = self
            .slices
            .feed(res("discovery.k8s.io", "endpointslices"), &input)
        {
            dirty = touched(changes, slice_service);
        } else if let Some(changes) = self.nodes.feed(res("", "nodes"), &input) {
            node_changed = !changes.is_empty();
        }
        // k8s: kube-proxy syncs its rules only once both informers have synced.
        if !self.services.synced() || !self.slices.synced() {
            return;
        }
        let mut changed = false;
        if self.version == 0 {
            // The first sync: every Service.
            dirty = self.services.iter().map(|(k, _)| k.clone()).collect();
            changed = true;
        }
        for key in dirty {
            changed |= self.sync_service(&key, out);
        }
        if changed || node_changed {
            changed |= self.rebuild_frontends(out);
        }
        if changed {
            self.version += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::{ApiEvent, EventType};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use serde_json::{json, Value};

    fn svc(name: &str, ip: &str, extra: Value) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
            "spec": {"clusterIP": ip, "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
        merge(&mut s, extra);
        s
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    /// A slice of `svc` with endpoints (ip, ready, serving, terminating).
    fn slice(name: &str, svc: &str, eps: &[(&str, bool, bool, bool)]) -> Value {
        let endpoints: Vec<Value> = eps
            .iter()
            .map(|(ip, r, s, t)| json!({"addresses": [ip], "conditions": {"ready": r, "serving": s, "terminating": t}}))
            .collect();
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    }

    fn node(ip: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "resourceVersion": "1"},
               "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    }

    struct Harness {
        p: Proxy,
        rng: ChaCha8Rng,
        now: Time,
        log: Vec<Effect>,
    }

    impl Harness {
        fn new(services: Vec<Value>, slices: Vec<Value>) -> Harness {
            let mut h = Harness {
                p: Proxy::new(ProxyConfig {
                    node_name: Some("n1".into()),
                    node_ip: Some("192.168.1.9".into()),
                }),
                rng: ChaCha8Rng::seed_from_u64(7),
                now: Time::from_secs(1000),
                log: Vec::new(),
            };
            h.list("services", services);
            h.list("endpointslices", slices);
            h
        }

        fn step(&mut self, input: Input) {
            self.p.step(self.now, input, &mut self.rng, &mut self.log);
        }

        fn resource(plural: &str) -> &'static ResourceInfo {
            match plural {
                "endpointslices" => res("discovery.k8s.io", plural),
                p => res("", p),
            }
        }

        fn list(&mut self, plural: &str, items: Vec<Value>) {
            self.step(Input::Listed {
                resource: Self::resource(plural),
                items,
                revision: 1,
            });
        }

        fn event(&mut self, plural: &str, type_: EventType, mut obj: Value) {
            static RV: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10);
            let rv = RV.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            self.step(Input::Watched {
                resource: Self::resource(plural),
                event: ApiEvent::new(type_, obj, rv),
            });
        }

        fn backends(&self, name: &str) -> Vec<String> {
            self.p
                .rules()
                .get(&key(name))
                .map(|r| r.backends.iter().map(|b| b.ip.clone()).collect())
                .unwrap_or_default()
        }

        fn pick(&mut self, name: &str, client: &str) -> Option<String> {
            self.p
                .pick(&key(name), client, self.now, &mut self.rng)
                .map(|b| b.ip)
        }
    }

    fn key(name: &str) -> ServicePortKey {
        ServicePortKey {
            namespace: "ns".into(),
            name: name.into(),
            port: "http".into(),
        }
    }

    fn fe(ip: &str, port: u16) -> Frontend {
        Frontend {
            ip: ip.into(),
            port,
        }
    }

    #[test]
    fn rules_wait_for_both_lists_and_follow_updates() {
        let mut h = Harness::new(vec![], vec![]);
        assert_eq!(h.p.version(), 1);
        let mut p = Proxy::new(ProxyConfig::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        p.step(
            Time::ZERO,
            Input::Listed {
                resource: res("", "services"),
                items: vec![svc("web", "10.96.0.10", json!({}))],
                revision: 1,
            },
            &mut rng,
            &mut Vec::new(),
        );
        assert!(
            p.rules().is_empty(),
            "no rules before the slices are listed"
        );

        h.event(
            "services",
            EventType::Added,
            svc("web", "10.96.0.10", json!({})),
        );
        assert_eq!(h.backends("web"), Vec::<String>::new());
        assert_eq!(
            h.p.frontends().keys().cloned().collect::<Vec<_>>(),
            vec![fe("10.96.0.10", 80), fe("192.168.1.9", 30080)]
        );
        assert_eq!(h.pick("web", "c"), None, "no backends: refused");
        h.event(
            "endpointslices",
            EventType::Added,
            slice(
                "web-a",
                "web",
                &[
                    ("10.0.0.1", true, true, false),
                    ("10.0.0.2", true, true, false),
                ],
            ),
        );
        assert_eq!(h.backends("web"), ["10.0.0.1", "10.0.0.2"]);
        // A second slice adds; an endpoint turning unready leaves.
        h.event(
            "endpointslices",
            EventType::Added,
            slice("web-b", "web", &[("10.0.0.3", true, true, false)]),
        );
        h.event(
            "endpointslices",
            EventType::Modified,
            slice(
                "web-a",
                "web",
                &[
                    ("10.0.0.1", false, false, false),
                    ("10.0.0.2", true, true, false),
                ],
            ),
        );
        assert_eq!(h.backends("web"), ["10.0.0.2", "10.0.0.3"]);
        // Only terminating-but-serving endpoints left: the fallback.
        h.event(
            "endpointslices",
            EventType::Modified,
            slice("web-a", "web", &[("10.0.0.2", false, true, true)]),
        );
        h.event(
            "endpointslices",
            EventType::Deleted,
            slice("web-b", "web", &[]),
        );
        assert_eq!(h.backends("web"), ["10.0.0.2"]);
        assert!(h.p.rules()[&key("web")].fallback);
        // The node's own address replaces the configured one.
        let v = h.p.version();
        h.event("nodes", EventType::Added, node("10.1.1.1"));
        assert!(h.p.version() > v);
        assert!(h.p.frontends().contains_key(&fe("10.1.1.1", 30080)));
        assert_eq!(
            h.p.pick_at(&fe("10.1.1.1", 30080), "c", h.now, &mut h.rng)
                .map(|(k, b)| (k.name, b.ip)),
            Some(("web".into(), "10.0.0.2".into()))
        );
        // A slice of another service changes nothing here; the service going removes its rule.
        let v = h.p.version();
        h.event(
            "endpointslices",
            EventType::Added,
            slice("db-a", "db", &[("10.0.0.9", true, true, false)]),
        );
        assert_eq!(h.p.version(), v);
        h.event(
            "services",
            EventType::Deleted,
            svc("web", "10.96.0.10", json!({})),
        );
        assert!(h.p.rules().is_empty());
        assert!(h.p.frontends().is_empty());
        assert!(h.log.iter().any(|e| matches!(e, Effect::Log { message, .. } if message == "service port ns/web:http removed")));
    }

    #[test]
    fn picks_are_uniform_without_affinity() {
        let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
        let eps: Vec<_> = ips.iter().map(|ip| (*ip, true, true, false)).collect();
        let mut h = Harness::new(
            vec![svc("web", "10.96.0.10", json!({}))],
            vec![slice("web-a", "web", &eps)],
        );
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        const N: usize = 40_000;
        for i in 0..N {
            // Even one client gets a fresh choice per connection.
            let client = if i % 2 == 0 { "c1" } else { "c2" };
            *counts.entry(h.pick("web", client).unwrap()).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        for (ip, c) in &counts {
            let share = *c as f64 / N as f64;
            assert!((share - 0.25).abs() < 0.015, "{ip}: {share}");
        }
        assert!(h.p.affinity.is_empty());
    }

    #[test]
    fn client_ip_affinity_holds_renews_and_expires() {
        let eps: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|ip| (*ip, true, true, false))
            .collect();
        let affinity = json!({"spec": {"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}});
        let mut h = Harness::new(
            vec![
                svc("web", "10.96.0.10", affinity.clone()),
                svc(
                    "def",
                    "10.96.0.11",
                    json!({"spec": {"sessionAffinity": "ClientIP"}}),
                ),
            ],
            vec![slice("web-a", "web", &eps), slice("def-a", "def", &eps)],
        );
        assert_eq!(h.p.rules()[&key("def")].affinity_seconds, Some(10800));
        let first = h.pick("web", "1.1.1.1").unwrap();
        for _ in 0..50 {
            assert_eq!(h.pick("web", "1.1.1.1").unwrap(), first);
        }
        // Other clients spread over all backends.
        let others: BTreeSet<String> = (0..60)
            .map(|i| h.pick("web", &format!("2.2.2.{i}")).unwrap())
            .collect();
        assert_eq!(others.len(), 3);
        // (seconds later, still held): each hit renews the 30 s.
        for (later, held) in [(29, true), (29, true), (31, false)] {
            h.now = h.now + std::time::Duration::from_secs(later);
            let before = h.p.affinity.get(&key("web"), "1.1.1.1", h.now).cloned();
            assert_eq!(before.is_some(), held, "after {later}s");
            let b = h.pick("web", "1.1.1.1").unwrap();
            if held {
                assert_eq!(b, first);
            }
        }
        // The held backend leaving: the client moves on, and stays on its new backend.
        let now_on = h.pick("web", "1.1.1.1").unwrap();
        let rest: Vec<_> = eps.iter().filter(|e| e.0 != now_on).cloned().collect();
        h.event(
            "endpointslices",
            EventType::Modified,
            slice("web-a", "web", &rest),
        );
        let moved = h.pick("web", "1.1.1.1").unwrap();
        assert_ne!(moved, now_on);
        for _ in 0..20 {
            assert_eq!(h.pick("web", "1.1.1.1").unwrap(), moved);
        }
        // Affinity turned off: the table forgets the service.
        h.event(
            "services",
            EventType::Modified,
            svc("web", "10.96.0.10", json!({})),
        );
        assert!(h.p.affinity.get(&key("web"), "1.1.1.1", h.now).is_none());
    }

    #[test]
    fn same_seed_same_choices() {
        let eps: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|ip| (*ip, true, true, false))
            .collect();
        let run = || {
            let mut h = Harness::new(
                vec![svc("web", "10.96.0.10", json!({}))],
                vec![slice("web-a", "web", &eps)],
            );
            (0..100)
                .map(|_| h.pick("web", "c").unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
