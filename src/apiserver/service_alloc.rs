//! ClusterIP and NodePort allocation for Services (k8s: pkg/registry/core/service/ipallocator
//! and portallocator, the bitmap allocators, and storage/alloc.go that drives them).
//!
//! The allocated sets live in the apiserver's memory and are rebuilt from the stored Services
//! the first time a Service is written after a start (docs/decisions.md, "Services (issue 7)"),
//! so a restart never hands out an address or port that a stored Service holds. Picks are
//! random, from the request's [`RequestContext::random`](super::RequestContext), so the
//! simulator stays deterministic.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;
use crate::api::status::{ApiError, FieldError};

/// An IPv4 service CIDR (`--service-cluster-ip-range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n`. k8s: kube-apiserver refuses an IPv4 range larger than /12 and the
    /// bitmap needs room for at least one address besides the network and broadcast ones.
    pub fn parse(s: &str) -> Result<Ipv4Cidr, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address (only IPv4 is served)"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to 32"))?;
        if prefix < 12 {
            return Err(format!(
                "{s:?} is too large; for 32-bit addresses, the mask must be >= 12"
            ));
        }
        if prefix > 30 {
            return Err(format!("{s:?} is too small: it holds no service address"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Ipv4Cidr {
            network: u32::from(ip) & mask,
            prefix,
        })
    }

    /// Every address of the range, the network and broadcast ones included.
    fn cidr_size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The addresses that can be allocated: k8s leaves out the network and broadcast addresses
    /// of an IPv4 range.
    fn size(&self) -> u32 {
        (self.cidr_size() - 2) as u32
    }

    /// The first allocatable address: the `default/kubernetes` Service's.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// The cluster DNS Service's address: the range's tenth (kubeadm's convention, 10.96.0.10
    /// in the default range), if the range has one.
    pub fn dns(&self) -> Option<Ipv4Addr> {
        (self.size() >= 10).then(|| self.at(9))
    }

    fn at(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1 + index)
    }

    fn index(&self, ip: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(ip);
        (ip > self.network && ip - self.network - 1 < self.size()).then(|| ip - self.network - 1)
    }

    /// k8s: calculateRangeOffset (ipallocator): min(max(16, size/16), 256) addresses at the
    /// bottom are kept for static requests; none if the range has 16 addresses or fewer.
    fn offset(&self) -> u32 {
        let size = self.cidr_size();
        if size <= 16 {
            0
        } else {
            (size / 16).clamp(16, 256) as u32
        }
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// A NodePort range (`--service-node-port-range`), inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Parses `first-last` (k8s also takes a single port and `first+count`).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("{s:?} is not a port range (first-last)");
        let (first, last) = if let Some((a, n)) = s.split_once('+') {
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let n: u16 = n.trim().parse().map_err(|_| bad())?;
            (a, a.checked_add(n).ok_or_else(bad)?)
        } else if let Some((a, b)) = s.split_once('-') {
            (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            )
        } else {
            let a: u16 = s.trim().parse().map_err(|_| bad())?;
            (a, a)
        };
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }

    fn size(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    fn index(&self, port: i64) -> Option<u32> {
        (i64::from(self.first)..=i64::from(self.last))
            .contains(&port)
            .then(|| (port - i64::from(self.first)) as u32)
    }

    /// k8s: calculateRangeOffset (portallocator): min(max(16, size/32), 128) ports at the
    /// bottom are kept for static requests.
    fn offset(&self) -> u32 {
        let size = self.size();
        if size <= 16 {
            0
        } else {
            (size / 32).clamp(16, 128)
        }
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The service CIDR and the NodePort range of an apiserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ips: Ipv4Cidr,
    pub node_ports: PortRange,
}

/// k8s: the kube-apiserver defaults.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: Ipv4Cidr::parse(DEFAULT_SERVICE_CIDR).expect("valid"),
            node_ports: PortRange::parse(DEFAULT_NODE_PORT_RANGE).expect("valid"),
        }
    }
}

/// Why an allocation failed (k8s: ipallocator/portallocator errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    NotInRange,
    Allocated,
    Full,
}

/// The used offsets of a range of `size` values, picked at random above `offset` first (k8s:
/// randomScanStrategyWithOffset).
#[derive(Clone, Debug)]
pub struct Allocator {
    size: u32,
    offset: u32,
    used: BTreeSet<u32>,
}

/// splitmix64: spreads one random word into independent-looking draws.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Allocator {
    pub fn new(size: u32, offset: u32) -> Allocator {
        Allocator {
            size,
            offset: offset.min(size),
            used: BTreeSet::new(),
        }
    }

    pub fn allocate(&mut self, index: u32) -> Result<(), AllocError> {
        if index >= self.size {
            return Err(AllocError::NotInRange);
        }
        if !self.used.insert(index) {
            return Err(AllocError::Allocated);
        }
        Ok(())
    }

    /// A free value: a random scan of the upper part of the range, then of the lower part.
    pub fn allocate_next(&mut self, random: u64) -> Result<u32, AllocError> {
        let upper = self.size - self.offset;
        let (r1, r2) = (mix(random), mix(random ^ 0x5555_5555_5555_5555));
        let found = self
            .scan(self.offset, upper, r1)
            .or_else(|| self.scan(0, self.offset, r2))
            .ok_or(AllocError::Full)?;
        self.used.insert(found);
        Ok(found)
    }

    /// The first free value of `[base, base + len)` from a random start, wrapping around.
    fn scan(&self, base: u32, len: u32, random: u64) -> Option<u32> {
        if len == 0 {
            return None;
        }
        let start = base + (random % u64::from(len)) as u32;
        let end = base + len;
        let free_from = |from: u32, to: u32| {
            let mut want = from;
            for &u in self.used.range(from..to) {
                if u != want {
                    return Some(want);
                }
                want += 1;
            }
            (want < to).then_some(want)
        };
        free_from(start, end).or_else(|| free_from(base, start))
    }

    pub fn release(&mut self, index: u32) {
        self.used.remove(&index);
    }

    pub fn has(&self, index: u32) -> bool {
        self.used.contains(&index)
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// The ClusterIP and NodePort allocators of an apiserver.
#[derive(Clone, Debug)]
pub struct ServiceAllocators {
    pub ranges: ServiceRanges,
    ips: Allocator,
    ports: Allocator,
}

/// What one write reserved (to undo it if the write fails) and what it gives back once it is
/// stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    pub ips: Vec<u32>,
    pub ports: Vec<u32>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The spec's `type` (defaulted before allocation runs).
fn svc_type(svc: &Value) -> &str {
    match s(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// k8s: needsClusterIP — every type but ExternalName, unless headless.
fn wants_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName" && s(svc, "/spec/clusterIP") != "None"
}

/// k8s: needsNodePort — NodePort, and LoadBalancer unless allocateLoadBalancerNodePorts is false.
fn wants_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64().filter(|n| *n != 0))
        .collect()
}

fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(s(svc, "/spec/clusterIP").parse::<Ipv4Addr>().ok());
    }
    ips
}

impl ServiceAllocators {
    pub fn new(ranges: ServiceRanges) -> ServiceAllocators {
        ServiceAllocators {
            ranges,
            ips: Allocator::new(ranges.cluster_ips.size(), ranges.cluster_ips.offset()),
            ports: Allocator::new(ranges.node_ports.size(), ranges.node_ports.offset()),
        }
    }

    /// Marks what a stored Service holds (k8s: the repair controllers). Values out of the
    /// ranges (a range changed between runs) and values held twice are left alone.
    pub fn mark_stored(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            if let Some(i) = self.ranges.cluster_ips.index(ip) {
                let _ = self.ips.allocate(i);
            }
        }
        for p in node_ports(svc) {
            if let Some(i) = self.ranges.node_ports.index(p) {
                let _ = self.ports.allocate(i);
            }
        }
    }

    /// Gives back what `a` holds.
    pub fn release(&mut self, a: &Allocation) {
        for i in &a.ips {
            self.ips.release(*i);
        }
        for i in &a.ports {
            self.ports.release(*i);
        }
    }

    /// What a stored Service holds, as an [`Allocation`] to release when it goes.
    pub fn held_by(&self, svc: &Value) -> Allocation {
        let ips: BTreeSet<u32> = cluster_ips(svc)
            .into_iter()
            .filter_map(|ip| self.ranges.cluster_ips.index(ip))
            .collect();
        let ports: BTreeSet<u32> = node_ports(svc)
            .into_iter()
            .filter_map(|p| self.ranges.node_ports.index(p))
            .collect();
        Allocation {
            ips: ips.into_iter().collect(),
            ports: ports.into_iter().collect(),
        }
    }

    /// Allocates what the (defaulted, validated) Service `svc` needs that `old` (its stored
    /// version, on update) does not hold, writing the ClusterIP and NodePorts into `svc`.
    /// Returns what it reserved and what `old` held that `svc` no longer does (to release
    /// once the write is stored). On error nothing stays reserved.
    pub fn allocate(
        &mut self,
        res: &ResourceInfo,
        name: &str,
        svc: &mut Value,
        old: Option<&Value>,
        random: u64,
    ) -> Result<(Allocation, Allocation), ApiError> {
        let mut got = Allocation::default();
        match self.allocate_inner(res, name, svc, old, random, &mut got) {
            Ok(()) => {}
            Err(e) => {
                self.release(&got);
                return Err(e);
            }
        }
        let mut freed = old.map(|o| self.held_by(o)).unwrap_or_default();
        let now = self.held_by(svc);
        freed.ips.retain(|i| !now.ips.contains(i));
        freed.ports.retain(|i| !now.ports.contains(i));
        Ok((got, freed))
    }

    fn allocate_inner(
        &mut self,
        res: &ResourceInfo,
        name: &str,
        svc: &mut Value,
        old: Option<&Value>,
        random: u64,
        got: &mut Allocation,
    ) -> Result<(), ApiError> {
        let held = old.map(|o| self.held_by(o)).unwrap_or_default();
        let cidr = self.ranges.cluster_ips;
        if wants_cluster_ip(svc) {
            let asked = s(svc, "/spec/clusterIP").to_string();
            let index = if asked.is_empty() {
                // k8s: storage/alloc.go allocClusterIPs — a full range is an internal error.
                let i = self.ips.allocate_next(mix(random ^ 0x1111)).map_err(|_| {
                    ApiError::internal(format!(
                        "failed to allocate a serviceIP: range is full (the service CIDR {cidr} has no free address)"
                    ))
                })?;
                got.ips.push(i);
                i
            } else {
                let invalid = |why: String| {
                    ApiError::invalid(
                        res,
                        name,
                        vec![FieldError::invalid(
                            "spec.clusterIPs[0]",
                            format!("[]string{{{asked:?}}}"),
                            format!("failed to allocate IP {asked}: {why}"),
                        )],
                    )
                };
                let ip: Ipv4Addr = asked
                    .parse()
                    .map_err(|_| invalid("must be a valid IPv4 address".into()))?;
                let not_in_range = || {
                    invalid(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"
                    ))
                };
                let i = cidr.index(ip).ok_or_else(not_in_range)?;
                if !held.ips.contains(&i) {
                    match self.ips.allocate(i) {
                        Ok(()) => got.ips.push(i),
                        Err(AllocError::Allocated) => {
                            return Err(invalid("provided IP is already allocated".into()))
                        }
                        Err(_) => return Err(not_in_range()),
                    }
                }
                i
            };
            let ip = cidr.at(index).to_string();
            svc["spec"]["clusterIP"] = json!(ip);
            svc["spec"]["clusterIPs"] = json!([ip]);
        }
        if svc_type(svc) != "ExternalName" {
            // k8s: initIPFamilyFields on a single-stack IPv4 cluster.
            let spec = &mut svc["spec"];
            if spec["ipFamilies"].as_array().is_none_or(Vec::is_empty) {
                spec["ipFamilies"] = json!(["IPv4"]);
            }
            if spec["ipFamilyPolicy"].as_str().is_none_or(str::is_empty) {
                let headless = spec["clusterIP"] == json!("None");
                let selectorless = spec["selector"].as_object().is_none_or(|m| m.is_empty());
                spec["ipFamilyPolicy"] = json!(if headless && selectorless {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                });
            }
        }
        if wants_node_ports(svc) {
            let range = self.ranges.node_ports;
            let mut mine: BTreeSet<u32> = BTreeSet::new();
            let count = svc["spec"]["ports"].as_array().map_or(0, Vec::len);
            for i in 0..count {
                let asked = svc["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0);
                let field = format!("spec.ports[{i}].nodePort");
                if asked == 0 {
                    let r = mix(random ^ (0x2222 + i as u64));
                    let p = self.ports.allocate_next(r).map_err(|_| {
                        ApiError::internal(format!(
                            "failed to allocate a nodePort: range is full (the node port range {range} has no free port)"
                        ))
                    })?;
                    got.ports.push(p);
                    mine.insert(p);
                    svc["spec"]["ports"][i]["nodePort"] =
                        json!(i64::from(range.first) + i64::from(p));
                    continue;
                }
                let invalid = |why: String| {
                    ApiError::invalid(res, name, vec![FieldError::invalid(&field, asked, why)])
                };
                let p = range.index(asked).ok_or_else(|| {
                    invalid(format!(
                        "provided port is not in the valid range. The range of valid ports is {range}"
                    ))
                })?;
                // The same port twice in one Service (TCP and UDP) is one allocation.
                if held.ports.contains(&p) || !mine.insert(p) {
                    continue;
                }
                match self.ports.allocate(p) {
                    Ok(()) => got.ports.push(p),
                    Err(_) => return Err(invalid("provided port is already allocated".into())),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> &'static ResourceInfo {
        crate::api::registry::by_plural("", "services").expect("registered")
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn ranges_parse_and_refuse_bad_input() {
        for (input, ok) in [
            ("10.96.0.0/12", true),
            ("10.0.0.0/24", true),
            ("10.0.0.0/8", false), // k8s: mask must be >= 12
            ("10.0.0.0/31", false),
            ("10.0.0.0", false),
            ("fd00::/108", false), // IPv4 only
            ("banana/12", false),
        ] {
            assert_eq!(Ipv4Cidr::parse(input).is_ok(), ok, "{input}");
        }
        for (input, want) in [
            ("30000-32767", Some((30000, 32767))),
            ("30000+10", Some((30000, 30010))),
            ("31000", Some((31000, 31000))),
            ("32767-30000", None),
            ("0-10", None),
            ("a-b", None),
        ] {
            assert_eq!(
                PortRange::parse(input).ok().map(|r| (r.first, r.last)),
                want,
                "{input}"
            );
        }
        let c = Ipv4Cidr::parse("10.96.5.7/12").unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert_eq!(c.first().to_string(), "10.96.0.1");
        // The cluster DNS address: the tenth, when the range has ten.
        for (cidr, want) in [
            ("10.96.0.0/12", Some("10.96.0.10")),
            ("10.100.0.0/28", Some("10.100.0.10")),
            ("10.100.0.0/29", None),
        ] {
            let dns = Ipv4Cidr::parse(cidr)
                .unwrap()
                .dns()
                .map(|ip| ip.to_string());
            assert_eq!(dns.as_deref(), want, "{cidr}");
        }
    }

    #[test]
    fn offsets_follow_upstream() {
        // k8s: calculateRangeOffset — min(max(16, size/16), 256) for IPs, /32 and max 128 for ports.
        for (cidr, want) in [
            ("10.96.0.0/12", 256),
            ("10.0.0.0/24", 16),
            ("10.0.0.0/28", 0),
            ("10.0.0.0/20", 256),
            ("10.0.0.0/22", 64),
        ] {
            assert_eq!(Ipv4Cidr::parse(cidr).unwrap().offset(), want, "{cidr}");
        }
        for (range, want) in [("30000-32767", 86), ("30000-30009", 0), ("30000-30099", 16)] {
            assert_eq!(PortRange::parse(range).unwrap().offset(), want, "{range}");
        }
    }

    #[test]
    fn allocator_never_gives_a_value_twice_and_reports_full() {
        let mut a = Allocator::new(40, 8);
        let mut seen = BTreeSet::new();
        for r in 0..40u64 {
            let v = a
                .allocate_next(r.wrapping_mul(0x9e37_79b9))
                .expect("room left");
            assert!(seen.insert(v), "{v} handed out twice");
            // The upper part goes first.
            if r < 32 {
                assert!(v >= 8, "dynamic pick {v} from the static part");
            }
        }
        assert_eq!(a.allocate_next(7), Err(AllocError::Full));
        assert_eq!(a.allocate(3), Err(AllocError::Allocated));
        assert_eq!(a.allocate(40), Err(AllocError::NotInRange));
        a.release(3);
        assert_eq!(a.allocate_next(99), Ok(3), "a released value comes back");
        assert_eq!(a.used(), 40);
    }

    #[test]
    fn allocation_is_deterministic() {
        let pick = |r| Allocator::new(1000, 62).allocate_next(r).unwrap();
        assert_eq!(pick(42), pick(42));
        assert_ne!(pick(42), pick(43));
    }

    #[test]
    fn cluster_ip_and_node_port_allocation() {
        let res = services();
        let mut a = ServiceAllocators::new(ServiceRanges::default());
        a.mark_stored(&svc(
            json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]}),
        ));
        // (spec, Ok(fields) or Err(field named by the 422))
        let cases: Vec<(Value, Result<(), &str>)> = vec![
            (
                json!({"type": "ClusterIP", "ports": [{"port": 80}]}),
                Ok(()),
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}),
                Ok(()),
            ),
            (
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
                Ok(()),
            ),
            (
                json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80}]}),
                Ok(()),
            ),
            (
                json!({"type": "ExternalName", "externalName": "x.example"}),
                Ok(()),
            ),
            (
                json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
                Ok(()),
            ),
            (
                json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
                Err("spec.clusterIPs[0]"),
            ),
            (
                json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),
                Err("spec.clusterIPs[0]"),
            ),
            (
                json!({"clusterIP": "192.168.0.1", "ports": [{"port": 80}]}),
                Err("spec.clusterIPs[0]"),
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
                Ok(()),
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
                Err("spec.ports[0].nodePort"),
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
                Err("spec.ports[0].nodePort"),
            ),
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 40000}]}),
                Err("spec.ports[1].nodePort"),
            ),
            (
                json!({"type": "NodePort", "ports": [{"name": "t", "port": 53, "nodePort": 30053}, {"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
                Ok(()),
            ),
        ];
        for (spec, want) in cases {
            let before = (a.ips.used(), a.ports.used());
            let mut obj = svc(spec.clone());
            let got = a.allocate(res, "s", &mut obj, None, 7);
            match want {
                Ok(()) => {
                    let (mut got, freed) = got.unwrap_or_else(|e| panic!("{spec}: {}", e.message));
                    got.ports.sort();
                    assert_eq!(freed, Allocation::default());
                    let ip = s(&obj, "/spec/clusterIP");
                    match svc_type(&obj) {
                        "ExternalName" => assert_eq!(ip, "", "{spec}"),
                        _ if spec["clusterIP"] == "None" => assert_eq!(ip, "None"),
                        _ => {
                            let ip: Ipv4Addr = ip.parse().unwrap();
                            assert!(a.ranges.cluster_ips.index(ip).is_some(), "{ip}");
                            assert_eq!(obj["spec"]["clusterIPs"], json!([ip.to_string()]));
                            assert_eq!(obj["spec"]["ipFamilies"], json!(["IPv4"]));
                            assert_eq!(obj["spec"]["ipFamilyPolicy"], json!("SingleStack"));
                        }
                    }
                    if wants_node_ports(&obj) {
                        for p in obj["spec"]["ports"].as_array().unwrap() {
                            let n = p["nodePort"].as_i64().unwrap();
                            assert!((30000..=32767).contains(&n), "{spec}: {n}");
                        }
                    }
                    assert_eq!(got, a.held_by(&obj), "{spec}: reserved what it holds");
                }
                Err(field) => {
                    let e = got.expect_err(&spec.to_string());
                    assert_eq!(e.code, 422, "{spec}");
                    assert!(e.message.contains(field), "{spec}: {}", e.message);
                    assert_eq!(
                        (a.ips.used(), a.ports.used()),
                        before,
                        "{spec}: nothing kept"
                    );
                }
            }
        }
    }

    #[test]
    fn update_keeps_releases_and_allocates() {
        let res = services();
        let mut a = ServiceAllocators::new(ServiceRanges::default());
        let mut old = svc(
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
        );
        a.allocate(res, "s", &mut old, None, 1).unwrap();
        assert_eq!((a.ips.used(), a.ports.used()), (1, 2));
        // Same values: nothing new, nothing freed.
        let mut same = old.clone();
        let (got, freed) = a.allocate(res, "s", &mut same, Some(&old), 2).unwrap();
        assert_eq!((got, freed), Default::default());
        // NodePort → ClusterIP without the node ports: they are given back.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        for p in to_cluster_ip["spec"]["ports"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("nodePort");
        }
        let (got, freed) = a
            .allocate(res, "s", &mut to_cluster_ip, Some(&old), 3)
            .unwrap();
        assert_eq!(got, Allocation::default());
        assert_eq!((freed.ips.len(), freed.ports.len()), (0, 2));
        a.release(&freed);
        assert_eq!((a.ips.used(), a.ports.used()), (1, 0));
        // Delete: everything goes.
        let held = a.held_by(&to_cluster_ip);
        a.release(&held);
        assert_eq!((a.ips.used(), a.ports.used()), (0, 0));
    }

    #[test]
    fn exhaustion_is_a_clear_error() {
        let res = services();
        let ranges = ServiceRanges {
            cluster_ips: Ipv4Cidr::parse("10.0.0.0/30").unwrap(),
            node_ports: PortRange::parse("30000-30000").unwrap(),
        };
        let mut a = ServiceAllocators::new(ranges);
        let mut one = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let mut two = svc(json!({"ports": [{"port": 80}]}));
        let mut three = svc(json!({"ports": [{"port": 80}]}));
        a.allocate(res, "s", &mut one, None, 1).unwrap();
        a.allocate(res, "s", &mut two, None, 2).unwrap();
        assert_ne!(one["spec"]["clusterIP"], two["spec"]["clusterIP"]);
        let e = a.allocate(res, "s", &mut three, None, 3).unwrap_err();
        assert_eq!(e.code, 500);
        assert!(e.message.contains("range is full"), "{}", e.message);
        let mut four =
            svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
        let e = a.allocate(res, "s", &mut four, None, 4).unwrap_err();
        assert!(
            e.message.contains("failed to allocate a nodePort"),
            "{}",
            e.message
        );
    }
}

/// The allocators of an [`ApiServer`](super::ApiServer): built from the stored Services on
/// first use.
#[derive(Debug)]
pub(crate) struct ServiceAllocState {
    pub ranges: ServiceRanges,
    pub allocs: Option<ServiceAllocators>,
}
