//! kube-proxy's nftables mode, sans-IO: the core's rule table in, the `nft -f` transaction
//! that has the kernel do the same out. The kernel then rewrites each new connection's
//! destination (DNAT) to a backend and conntrack carries every later packet, so no byte of a
//! proxied connection passes through user space (k8s: pkg/proxy/nftables).
//!
//! One table of family `ip` per proxy:
//! * base chains `nat-output` (this machine's own connections), `nat-prerouting` (arriving
//!   ones: Docker pods, other machines) → `services`, where a verdict map from
//!   `ClusterIP . port` and `node address . NodePort` leads to the Service port's chain;
//! * `service-…` chains pick an endpoint: first the endpoint a client is held to
//!   (`sessionAffinity: ClientIP`, a dynamic set per endpoint whose entries time out), else
//!   `numgen random mod n` — uniform per new connection, as the core's `pick` and iptables'
//!   `statistic` probabilities;
//! * `endpoint-…` chains mark arriving connections for masquerading, record the client in the
//!   affinity set, and DNAT;
//! * `nat-postrouting` masquerades marked connections (so replies come back through this
//!   machine, e.g. a Docker pod reaching a pod on the same bridge), and `nat-input`
//!   source-NATs marked ones bound for a loopback backend (a process pod) to 127.0.0.1,
//!   since Linux routes no reply from a loopback address out of another interface;
//! * `filter-input` drops packets that arrived on another interface for 127.0.0.0/8 and were
//!   not DNATed by us (k8s: the KUBE-FIREWALL rule that comes with route_localnet,
//!   CVE-2020-8558).
//!
//! A Service port without endpoints gets no map entry: its ClusterIP is an address of the
//! machine (`lo`) where nothing listens, so the kernel refuses the connection (upstream
//! rejects with an ICMP error; the client sees a refusal either way, docs/decisions.md).
//!
//! Syncs after the first one are incremental, as upstream's: chains are flushed and refilled
//! in one transaction, and the affinity sets are kept, so clients stay on their endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::rules::{Backend, Frontend, Rule, ServicePortKey};

/// k8s: kube-proxy's masquerade mark (--masquerade-bit 14).
const MASQUERADE_MARK: &str = "0x4000";

/// The base chains: (name, type, hook, priority). k8s: dstnat is -100, srcnat 100.
const BASE_CHAINS: [(&str, &str, &str, i32); 5] = [
    ("nat-output", "nat", "output", -100),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("nat-input", "nat", "input", 100),
    ("filter-input", "filter", "input", 0),
];

const SERVICES_CHAIN: &str = "services";
const SERVICE_IPS_MAP: &str = "service-ips";

/// What the kernel holds after a sync: the per-Service and per-endpoint chains, and the
/// affinity sets with their timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftState {
    chains: BTreeSet<String>,
    sets: BTreeMap<String, u64>,
}

/// A transaction to apply, and the state the kernel holds once it has been.
#[derive(Clone, Debug)]
pub struct NftPlan {
    pub script: String,
    pub state: NftState,
}

/// The proxy's table: what was applied last, to plan the next sync against.
#[derive(Debug)]
pub struct NftTable {
    name: String,
    /// `None` until a sync is known to have been applied (and after one failed): the next
    /// plan rebuilds the table from nothing.
    applied: Option<NftState>,
}

impl NftTable {
    pub fn new(name: &str) -> Self {
        NftTable {
            name: name.to_string(),
            applied: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The transaction that makes the table serve `rules` at `frontends` (the core's tables).
    pub fn plan(
        &self,
        rules: &BTreeMap<ServicePortKey, Rule>,
        frontends: &BTreeMap<Frontend, ServicePortKey>,
    ) -> NftPlan {
        let t = &self.name;
        let mut next = NftState::default();
        // Each served Service port's chains, rules and map entry.
        let mut rule_lines = Vec::new();
        let mut elements = Vec::new();
        for (key, rule) in rules {
            if rule.backends.is_empty() {
                continue;
            }
            let svc_chain = service_chain(key);
            next.chains.insert(svc_chain.clone());
            let endpoints: Vec<(String, Option<String>)> = rule
                .backends
                .iter()
                .map(|b| {
                    let chain = endpoint_chain(key, b);
                    let set = rule.affinity_seconds.map(|_| affinity_set(key, b));
                    (chain, set)
                })
                .collect();
            for (b, (chain, set)) in rule.backends.iter().zip(&endpoints) {
                next.chains.insert(chain.clone());
                // Connections that arrived from elsewhere are masqueraded (see the module).
                rule_lines.push(format!(
                    "add rule ip {t} {chain} fib saddr type != local meta mark set meta mark | {MASQUERADE_MARK}"
                ));
                if let (Some(set), Some(timeout)) = (set, rule.affinity_seconds) {
                    next.sets.insert(set.clone(), timeout);
                    // k8s: each new connection renews the client's entry.
                    rule_lines.push(format!(
                        "add rule ip {t} {chain} update @{set} {{ ip saddr }}"
                    ));
                }
                rule_lines.push(format!(
                    "add rule ip {t} {chain} meta l4proto tcp dnat to {}:{}",
                    b.ip, b.port
                ));
            }
            for (chain, set) in &endpoints {
                if let Some(set) = set {
                    rule_lines.push(format!(
                        "add rule ip {t} {svc_chain} ip saddr @{set} goto {chain}"
                    ));
                }
            }
            let choices: Vec<String> = endpoints
                .iter()
                .enumerate()
                .map(|(i, (chain, _))| format!("{i} : goto {chain}"))
                .collect();
            // k8s: one endpoint of n, uniformly, per new connection.
            rule_lines.push(format!(
                "add rule ip {t} {svc_chain} numgen random mod {} vmap {{ {} }}",
                endpoints.len(),
                choices.join(", ")
            ));
            for (f, k) in frontends {
                if k == key {
                    elements.push(format!("{} . {} : goto {svc_chain}", f.ip, f.port));
                }
            }
        }

        let mut s = String::new();
        let w = &mut s;
        let fixed_chains = BASE_CHAINS
            .iter()
            .map(|c| c.0)
            .chain([SERVICES_CHAIN])
            .map(String::from);
        match &self.applied {
            None => {
                // From nothing: whatever a previous run or a failed sync left goes.
                line(w, format_args!("add table ip {t}"));
                line(w, format_args!("delete table ip {t}"));
                line(w, format_args!("add table ip {t}"));
                for (name, type_, hook, priority) in BASE_CHAINS {
                    line(
                        w,
                        format_args!(
                            "add chain ip {t} {name} {{ type {type_} hook {hook} priority {priority} ; policy accept ; }}"
                        ),
                    );
                }
                line(w, format_args!("add chain ip {t} {SERVICES_CHAIN}"));
                line(
                    w,
                    format_args!(
                        "add map ip {t} {SERVICE_IPS_MAP} {{ type ipv4_addr . inet_service : verdict ; }}"
                    ),
                );
                for chain in &next.chains {
                    line(w, format_args!("add chain ip {t} {chain}"));
                }
                for (set, timeout) in &next.sets {
                    line(
                        w,
                        format_args!("add set ip {t} {set} {}", set_spec(*timeout)),
                    );
                }
            }
            Some(prev) => {
                // Empty every chain and the map first, so nothing refers to what goes.
                for chain in fixed_chains.chain(prev.chains.iter().cloned()) {
                    line(w, format_args!("flush chain ip {t} {chain}"));
                }
                line(w, format_args!("flush map ip {t} {SERVICE_IPS_MAP}"));
                for chain in prev.chains.difference(&next.chains) {
                    line(w, format_args!("delete chain ip {t} {chain}"));
                }
                for (set, timeout) in &prev.sets {
                    if next.sets.get(set) != Some(timeout) {
                        line(w, format_args!("delete set ip {t} {set}"));
                    }
                }
                for chain in next.chains.difference(&prev.chains) {
                    line(w, format_args!("add chain ip {t} {chain}"));
                }
                for (set, timeout) in &next.sets {
                    if prev.sets.get(set) != Some(timeout) {
                        line(
                            w,
                            format_args!("add set ip {t} {set} {}", set_spec(*timeout)),
                        );
                    }
                }
            }
        }
        let m = MASQUERADE_MARK;
        for fixed in [
            format!("nat-output jump {SERVICES_CHAIN}"),
            format!("nat-prerouting jump {SERVICES_CHAIN}"),
            format!("nat-postrouting meta mark & {m} != 0 meta mark set meta mark xor {m} masquerade"),
            format!(
                "nat-input meta mark & {m} != 0 ip daddr 127.0.0.0/8 meta mark set meta mark xor {m} snat to 127.0.0.1"
            ),
            "filter-input iifname != \"lo\" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop".into(),
            format!("{SERVICES_CHAIN} ip daddr . tcp dport vmap @{SERVICE_IPS_MAP}"),
        ] {
            line(w, format_args!("add rule ip {t} {fixed}"));
        }
        for l in rule_lines {
            line(w, format_args!("{l}"));
        }
        if !elements.is_empty() {
            line(
                w,
                format_args!(
                    "add element ip {t} {SERVICE_IPS_MAP} {{ {} }}",
                    elements.join(", ")
                ),
            );
        }
        NftPlan {
            script: s,
            state: next,
        }
    }

    /// `plan`'s transaction was applied.
    pub fn applied(&mut self, state: NftState) {
        self.applied = Some(state);
    }

    /// A transaction failed (nft transactions are all or nothing, but the table may have been
    /// changed by someone else): the next plan starts from nothing.
    pub fn failed(&mut self) {
        self.applied = None;
    }

    /// The transaction that removes the table (established connections keep their
    /// translation: it lives in conntrack).
    pub fn teardown(&self) -> String {
        let t = &self.name;
        format!("add table ip {t}\ndelete table ip {t}\n")
    }
}

fn line(w: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = w.write_fmt(args);
    w.push('\n');
}

fn set_spec(timeout: u64) -> String {
    format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}")
}

/// k8s: servicePortChainNameBase: `<hash>-<namespace>/<name>/<protocol>/<port name>`, the
/// hash keeping names unique however they are spelled.
fn port_name(key: &ServicePortKey) -> String {
    let base = format!("{}/{}/tcp/{}", key.namespace, key.name, key.port);
    format!("{}-{base}", hash8(&base))
}

fn service_chain(key: &ServicePortKey) -> String {
    format!("service-{}", port_name(key))
}

/// k8s: servicePortEndpointChainNameBase: `<hash>-<service port>__<ip>/<port>`.
fn endpoint_base(key: &ServicePortKey, b: &Backend) -> String {
    let base = format!(
        "{}/{}/tcp/{}__{}/{}",
        key.namespace, key.name, key.port, b.ip, b.port
    );
    format!("{}-{base}", hash8(&base))
}

fn endpoint_chain(key: &ServicePortKey, b: &Backend) -> String {
    format!("endpoint-{}", endpoint_base(key, b))
}

fn affinity_set(key: &ServicePortKey, b: &Backend) -> String {
    format!("affinity-{}", endpoint_base(key, b))
}

/// Eight base32 characters of a 64-bit FNV-1a hash (upstream takes them from SHA-256; only
/// uniqueness and stability matter).
fn hash8(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..8)
        .map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServicePortKey {
        ServicePortKey {
            namespace: "ns".into(),
            name: name.into(),
            port: "http".into(),
        }
    }

    fn b(ip: &str, port: u16) -> Backend {
        Backend {
            ip: ip.into(),
            port,
        }
    }

    fn rule(ip: &str, backends: Vec<Backend>, affinity: Option<u64>) -> Rule {
        Rule {
            cluster_ip: ip.into(),
            port: 80,
            node_port: None,
            affinity_seconds: affinity,
            backends,
            fallback: false,
        }
    }

    fn tables(
        rules: Vec<(&str, Rule)>,
    ) -> (
        BTreeMap<ServicePortKey, Rule>,
        BTreeMap<Frontend, ServicePortKey>,
    ) {
        let mut r = BTreeMap::new();
        let mut f = BTreeMap::new();
        for (name, rule) in rules {
            f.insert(
                Frontend {
                    ip: rule.cluster_ip.clone(),
                    port: rule.port,
                },
                key(name),
            );
            r.insert(key(name), rule);
        }
        (r, f)
    }

    fn lines_with<'a>(script: &'a str, needle: &str) -> Vec<&'a str> {
        script.lines().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn first_sync_builds_the_table_from_nothing() {
        let (r, f) = tables(vec![
            (
                "web",
                rule(
                    "10.96.0.5",
                    vec![b("127.1.0.1", 8080), b("127.1.0.2", 8080)],
                    None,
                ),
            ),
            ("empty", rule("10.96.0.6", vec![], None)),
        ]);
        let t = NftTable::new("gantry-test");
        let plan = t.plan(&r, &f);
        let s = &plan.script;
        let first: Vec<&str> = s.lines().take(3).collect();
        assert_eq!(
            first,
            [
                "add table ip gantry-test",
                "delete table ip gantry-test",
                "add table ip gantry-test"
            ]
        );
        for (name, _, hook, _) in BASE_CHAINS {
            assert_eq!(
                lines_with(s, &format!("add chain ip gantry-test {name} {{")).len(),
                1
            );
            assert!(s.contains(&format!("hook {hook}")));
        }
        let svc = service_chain(&key("web"));
        assert!(
            svc.starts_with("service-") && svc.ends_with("-ns/web/tcp/http"),
            "{svc}"
        );
        // Both endpoints DNAT; the service chain draws one of two.
        assert_eq!(lines_with(s, "dnat to 127.1.0.").len(), 2);
        assert_eq!(
            lines_with(
                s,
                &format!("add rule ip gantry-test {svc} numgen random mod 2 vmap")
            )
            .len(),
            1
        );
        // Only the Service port with endpoints is in the map: the other one is refused by the
        // kernel (nothing listens on its ClusterIP).
        let elements = lines_with(s, "add element");
        assert_eq!(elements.len(), 1);
        assert!(elements[0].contains(&format!("10.96.0.5 . 80 : goto {svc}")));
        assert!(!s.contains("10.96.0.6"));
        assert_eq!(plan.state.chains.len(), 3);
        assert!(plan.state.sets.is_empty());
    }

    #[test]
    fn later_syncs_flush_delete_and_add_only_what_changed() {
        let mut t = NftTable::new("g");
        let (r1, f1) = tables(vec![(
            "web",
            rule(
                "10.96.0.5",
                vec![b("10.0.0.1", 80), b("10.0.0.2", 80)],
                Some(30),
            ),
        )]);
        let p1 = t.plan(&r1, &f1);
        assert_eq!(p1.state.sets.len(), 2);
        t.applied(p1.state.clone());
        // 10.0.0.2 leaves, 10.0.0.3 comes; the affinity of 10.0.0.1 is kept.
        let (r2, f2) = tables(vec![(
            "web",
            rule(
                "10.96.0.5",
                vec![b("10.0.0.1", 80), b("10.0.0.3", 80)],
                Some(30),
            ),
        )]);
        let p2 = t.plan(&r2, &f2);
        let s = &p2.script;
        assert!(!s.contains("delete table"), "incremental: {s}");
        let kept = affinity_set(&key("web"), &b("10.0.0.1", 80));
        let gone = endpoint_chain(&key("web"), &b("10.0.0.2", 80));
        let new = endpoint_chain(&key("web"), &b("10.0.0.3", 80));
        assert_eq!(lines_with(s, &format!("delete chain ip g {gone}")).len(), 1);
        assert_eq!(
            lines_with(
                s,
                &format!(
                    "delete set ip g {}",
                    affinity_set(&key("web"), &b("10.0.0.2", 80))
                )
            )
            .len(),
            1
        );
        assert_eq!(lines_with(s, &format!("add chain ip g {new}")).len(), 1);
        assert!(
            lines_with(s, &format!("set ip g {kept}")).is_empty(),
            "kept set untouched"
        );
        // Flushes come before the deletes, so nothing refers to a deleted chain.
        let pos = |needle: &str| s.find(needle).unwrap();
        assert!(pos("flush map") < pos("delete chain"));
        assert!(
            pos(&format!("flush chain ip g {gone}")) < pos(&format!("delete chain ip g {gone}"))
        );
        // Affinity: the service chain first sends known clients to their endpoint.
        let svc = service_chain(&key("web"));
        let sticky = lines_with(s, &format!("add rule ip g {svc} ip saddr @"));
        assert_eq!(sticky.len(), 2);
        assert!(s.contains(&format!("update @{kept} {{ ip saddr }}")));
        t.applied(p2.state.clone());
        // A new timeout recreates the sets; the service going removes its chains and sets.
        let (r3, f3) = tables(vec![(
            "web",
            rule(
                "10.96.0.5",
                vec![b("10.0.0.1", 80), b("10.0.0.3", 80)],
                Some(60),
            ),
        )]);
        let p3 = t.plan(&r3, &f3);
        assert_eq!(lines_with(&p3.script, "delete set").len(), 2);
        assert_eq!(lines_with(&p3.script, "timeout 60s").len(), 2);
        t.applied(p3.state);
        let p4 = t.plan(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(lines_with(&p4.script, "delete chain").len(), 3);
        assert_eq!(lines_with(&p4.script, "delete set").len(), 2);
        assert!(p4.state.chains.is_empty());
        // A failure: start again from nothing.
        t.failed();
        assert!(t.plan(&r3, &f3).script.contains("delete table ip g"));
    }

    #[test]
    fn node_ports_and_names_are_stable() {
        let mut r = BTreeMap::new();
        let mut f = BTreeMap::new();
        let mut np = rule("10.96.0.5", vec![b("10.0.0.1", 8080)], None);
        np.node_port = Some(30080);
        r.insert(key("web"), np);
        f.insert(
            Frontend {
                ip: "10.96.0.5".into(),
                port: 80,
            },
            key("web"),
        );
        f.insert(
            Frontend {
                ip: "192.168.1.9".into(),
                port: 30080,
            },
            key("web"),
        );
        let t = NftTable::new("g");
        let s = t.plan(&r, &f).script;
        let svc = service_chain(&key("web"));
        assert!(s.contains(&format!(
            "{{ 10.96.0.5 . 80 : goto {svc}, 192.168.1.9 . 30080 : goto {svc} }}"
        )));
        assert_eq!(s, t.plan(&r, &f).script, "deterministic");
        // Different Service ports never share a chain, and names stay nft identifiers.
        let names = [
            service_chain(&key("a")),
            service_chain(&key("b")),
            endpoint_chain(&key("a"), &b("10.0.0.1", 80)),
            endpoint_chain(&key("a"), &b("10.0.0.1", 81)),
        ];
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for n in names {
            assert!(n.len() < 256);
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c)),
                "{n}"
            );
        }
    }
}
