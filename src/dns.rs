//! Cluster DNS as a sans-IO core: a cache of Services and EndpointSlices (listed and watched
//! like any component's) and a `answer(query bytes) -> response bytes` that serves the
//! Kubernetes DNS schema (k8s: github.com/kubernetes/dns/blob/master/docs/specification.md)
//! for the cluster domain, with a small hand-written DNS message codec (RFC 1035: one
//! question, A and SRV answers, NXDOMAIN, no recursion). The host (`host::dns`) owns the UDP
//! socket. docs/networking.md describes the records.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rand::RngCore;

use crate::api::registry::{self, ResourceInfo};
use crate::component::{Component, Effect, Input, WatchSpec};
use crate::controllers::cache::Cache;
use crate::controllers::endpointutil::slice_service;
use crate::time::Time;

/// The cluster domain (k8s: kubelet --cluster-domain, `cluster.local` by convention).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// k8s: CoreDNS' kubernetes plugin answers with a 5 s TTL.
const TTL: u32 = 5;
/// RFC 1035 §2.3.4: a UDP answer without EDNS fits in 512 bytes, else it is truncated (TC).
const UDP_LIMIT: usize = 512;

pub const TYPE_A: u16 = 1;
pub const TYPE_SRV: u16 = 33;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

// ---- codec ----

/// The one question of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Recursion desired (copied into the answer).
    pub rd: bool,
    /// Lowercased, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section as it came (echoed in the answer).
    question: Vec<u8>,
}

/// Parses a query; `Err(Some(id))` is a malformed message worth a FORMERR, `Err(None)` one too
/// short to answer at all.
pub fn parse_query(msg: &[u8]) -> Result<Query, Option<u16>> {
    if msg.len() < 12 {
        return Err(None);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    // A response (QR set) is never answered; a query must have exactly one question.
    if flags & 0x8000 != 0 {
        return Err(None);
    }
    if qdcount != 1 {
        return Err(Some(id));
    }
    let mut labels: Vec<String> = Vec::new();
    let mut i = 12;
    loop {
        let len = *msg.get(i).ok_or(Some(id))? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xC0) have no place in a lone question; 0x40/0x80 are reserved.
        if len & 0xC0 != 0 {
            return Err(Some(id));
        }
        let label = msg.get(i..i + len).ok_or(Some(id))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
        if i > 12 + 255 {
            return Err(Some(id));
        }
    }
    let tail = msg.get(i..i + 4).ok_or(Some(id))?;
    Ok(Query {
        id,
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
        question: msg[12..i + 4].to_vec(),
    })
}

/// Encodes a name as labels (no compression).
pub fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

/// A query for `name` and `qtype` (the tests' and tools' client side).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD, as stub resolvers send it
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// One resource record of an answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Record {
    A {
        name: String,
        ip: Ipv4Addr,
    },
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

impl Record {
    fn encode(&self, qname: &str, out: &mut Vec<u8>) {
        let (name, rtype, rdata) = match self {
            Record::A { name, ip } => (name, TYPE_A, ip.octets().to_vec()),
            Record::Srv {
                name,
                priority,
                weight,
                port,
                target,
            } => {
                let mut d = Vec::new();
                d.extend_from_slice(&priority.to_be_bytes());
                d.extend_from_slice(&weight.to_be_bytes());
                d.extend_from_slice(&port.to_be_bytes());
                encode_name(target, &mut d);
                (name, TYPE_SRV, d)
            }
        };
        if name == qname {
            // RFC 1035 §4.1.4: a pointer to the question's name at offset 12.
            out.extend_from_slice(&[0xC0, 12]);
        } else {
            encode_name(name, out);
        }
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
}

/// The answer to `q`: its rcode, answers and additional records, encoded (truncated with TC
/// when it would not fit a UDP datagram of `limit` bytes).
pub fn encode_response(
    q: &Query,
    rcode: u8,
    answers: &[Record],
    additional: &[Record],
    limit: usize,
) -> Vec<u8> {
    let authoritative = rcode != RCODE_REFUSED && rcode != RCODE_FORMERR;
    let build = |answers: &[Record], additional: &[Record], tc: bool| {
        let mut flags: u16 = 0x8000 | u16::from(rcode);
        if authoritative {
            flags |= 0x0400;
        }
        if tc {
            flags |= 0x0200;
        }
        if q.rd {
            flags |= 0x0100;
        }
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&q.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(additional.len() as u16).to_be_bytes());
        out.extend_from_slice(&q.question);
        for r in answers.iter().chain(additional) {
            r.encode(&q.name, &mut out);
        }
        out
    };
    let full = build(answers, additional, false);
    if full.len() <= limit {
        return full;
    }
    let without_additional = build(answers, &[], false);
    if without_additional.len() <= limit {
        return without_additional;
    }
    build(&[], &[], true)
}

/// A FORMERR for a malformed query with this id.
pub fn format_error(id: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&(0x8000u16 | u16::from(RCODE_FORMERR)).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

// ---- records ----

/// What a name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub struct Lookup {
    pub rcode: u8,
    pub answers: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Lookup {
    fn rcode(rcode: u8) -> Self {
        Lookup {
            rcode,
            answers: vec![],
            additional: vec![],
        }
    }
}

/// The cluster DNS core: Services and EndpointSlices, as a component that lists and watches
/// them, and the answers they give.
pub struct ClusterDns {
    domain: String,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
}

impl Default for ClusterDns {
    fn default() -> Self {
        Self::new(CLUSTER_DOMAIN)
    }
}

/// A ready endpoint of a headless Service: its address and its name under the Service
/// (`hostname`, or the address with dashes).
struct Endpoint {
    ip: Ipv4Addr,
    name: String,
}

impl ClusterDns {
    pub fn new(domain: &str) -> Self {
        ClusterDns {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            services: Cache::new(),
            slices: Cache::with_index(slice_service),
        }
    }

    /// Whether both caches have their first list.
    pub fn synced(&self) -> bool {
        self.services.synced() && self.slices.synced()
    }

    /// The response to the datagram `msg`, if it deserves one.
    pub fn answer(&self, msg: &[u8]) -> Option<Vec<u8>> {
        self.answer_within(msg, UDP_LIMIT)
    }

    /// The response to `msg`, truncated past `limit` bytes (512 for UDP, 65535 for TCP).
    pub fn answer_within(&self, msg: &[u8], limit: usize) -> Option<Vec<u8>> {
        let q = match parse_query(msg) {
            Ok(q) => q,
            Err(Some(id)) => return Some(format_error(id)),
            Err(None) => return None,
        };
        let l = if q.qclass != CLASS_IN {
            Lookup::rcode(RCODE_NOTIMP)
        } else {
            self.lookup(&q.name, q.qtype)
        };
        Some(encode_response(
            &q,
            l.rcode,
            &l.answers,
            &l.additional,
            limit,
        ))
    }

    /// The ready IPv4 endpoints of the Service `ns/svc`, in address order.
    fn endpoints(&self, key: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for (_, slice) in self.slices.indexed(key) {
            for ep in &slice.endpoints {
                // k8s: DNS publishes ready endpoints (unless publishNotReadyAddresses).
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<Ipv4Addr>() {
                        let name = ep.hostname.clone().unwrap_or_else(|| a.replace('.', "-"));
                        out.push(Endpoint { ip, name });
                    }
                }
            }
        }
        out.sort_by_key(|e| e.ip);
        out.dedup_by_key(|e| e.ip);
        out
    }

    /// The port `port_name`/`proto` of `ns/svc` as each ready endpoint serves it (headless).
    fn endpoint_port(&self, key: &str, port_name: &str, proto: &str) -> Option<u16> {
        self.slices.indexed(key).find_map(|(_, s)| {
            s.ports.as_ref()?.iter().find_map(|p| {
                let name = p.name.as_deref().unwrap_or("");
                let pr = p.protocol.as_deref().unwrap_or("TCP");
                (name == port_name && pr.eq_ignore_ascii_case(proto)).then_some(p.port? as u16)
            })
        })
    }

    /// The records of `name` (lowercase, no trailing dot) of type `qtype`.
    pub fn lookup(&self, name: &str, qtype: u16) -> Lookup {
        let Some(rest) = name
            .strip_suffix(&self.domain)
            .and_then(|r| r.strip_suffix('.').or((r.is_empty()).then_some(r)))
        else {
            // No recursion: names outside the cluster domain are not ours to answer.
            return Lookup::rcode(RCODE_REFUSED);
        };
        let labels: Vec<&str> = if rest.is_empty() {
            vec![]
        } else {
            rest.split('.').collect()
        };
        let exists = |answers: Vec<Record>, additional: Vec<Record>, rtype: u16| {
            if qtype == rtype || qtype == TYPE_ANY {
                Lookup {
                    rcode: RCODE_NOERROR,
                    answers,
                    additional,
                }
            } else {
                // The name exists but has no records of this type (NODATA, e.g. AAAA).
                Lookup::rcode(RCODE_NOERROR)
            }
        };
        match labels.as_slice() {
            // The domain itself and its `svc`/`pod` zones exist, with no records.
            [] | ["svc"] | ["pod"] => Lookup::rcode(RCODE_NOERROR),
            [ns, "svc"] | [ns, "pod"] if self.services.in_namespace(ns).next().is_some() => {
                Lookup::rcode(RCODE_NOERROR)
            }
            // <svc>.<ns>.svc: the ClusterIP, or a headless Service's ready endpoints.
            [svc, ns, "svc"] => {
                let key = format!("{ns}/{svc}");
                let Some(s) = self.services.get(&key) else {
                    return Lookup::rcode(RCODE_NXDOMAIN);
                };
                let ips = match service_ip(s) {
                    ServiceIp::Cluster(ip) => vec![ip],
                    ServiceIp::Headless => self.endpoints(&key).iter().map(|e| e.ip).collect(),
                    // k8s: ExternalName is a CNAME; not served here (docs/decisions.md).
                    ServiceIp::None => vec![],
                };
                let answers = ips
                    .into_iter()
                    .map(|ip| Record::A {
                        name: name.to_string(),
                        ip,
                    })
                    .collect();
                exists(answers, vec![], TYPE_A)
            }
            // _<port>._<proto>.<svc>.<ns>.svc: SRV for a named port.
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                let (port, proto) = (&port[1..], &proto[1..]);
                let key = format!("{ns}/{svc}");
                let Some(s) = self.services.get(&key) else {
                    return Lookup::rcode(RCODE_NXDOMAIN);
                };
                let Some(sp) = s
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.ports.as_ref())
                    .and_then(|ps| {
                        ps.iter().find(|p| {
                            p.name.as_deref() == Some(port)
                                && p.protocol
                                    .as_deref()
                                    .unwrap_or("TCP")
                                    .eq_ignore_ascii_case(proto)
                        })
                    })
                else {
                    return Lookup::rcode(RCODE_NXDOMAIN);
                };
                let svc_name = format!("{svc}.{ns}.svc.{}", self.domain);
                match service_ip(s) {
                    ServiceIp::Cluster(ip) => exists(
                        vec![Record::Srv {
                            name: name.to_string(),
                            priority: 0,
                            weight: 100,
                            port: sp.port as u16,
                            target: svc_name.clone(),
                        }],
                        vec![Record::A { name: svc_name, ip }],
                        TYPE_SRV,
                    ),
                    ServiceIp::Headless => {
                        let Some(ep_port) = self.endpoint_port(&key, port, proto) else {
                            return exists(vec![], vec![], TYPE_SRV);
                        };
                        let eps = self.endpoints(&key);
                        let target = |e: &Endpoint| format!("{}.{svc_name}", e.name);
                        let answers = eps
                            .iter()
                            .map(|e| Record::Srv {
                                name: name.to_string(),
                                priority: 0,
                                weight: 100,
                                port: ep_port,
                                target: target(e),
                            })
                            .collect();
                        let additional = eps
                            .iter()
                            .map(|e| Record::A {
                                name: target(e),
                                ip: e.ip,
                            })
                            .collect();
                        exists(answers, additional, TYPE_SRV)
                    }
                    ServiceIp::None => exists(vec![], vec![], TYPE_SRV),
                }
            }
            // <endpoint>.<svc>.<ns>.svc: a headless Service's endpoint by hostname or dashed IP.
            [ep, svc, ns, "svc"] => {
                let key = format!("{ns}/{svc}");
                let hits: Vec<Record> = match self.services.get(&key).map(service_ip) {
                    Some(ServiceIp::Headless) => self
                        .endpoints(&key)
                        .into_iter()
                        .filter(|e| e.name == *ep)
                        .map(|e| Record::A {
                            name: name.to_string(),
                            ip: e.ip,
                        })
                        .collect(),
                    _ => vec![],
                };
                if hits.is_empty() {
                    Lookup::rcode(RCODE_NXDOMAIN)
                } else {
                    exists(hits, vec![], TYPE_A)
                }
            }
            // <a-b-c-d>.<ns>.pod: the address the name spells (k8s: CoreDNS `pods insecure`).
            [dashed, _ns, "pod"] => match dashed.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) => exists(
                    vec![Record::A {
                        name: name.to_string(),
                        ip,
                    }],
                    vec![],
                    TYPE_A,
                ),
                Err(_) => Lookup::rcode(RCODE_NXDOMAIN),
            },
            _ => Lookup::rcode(RCODE_NXDOMAIN),
        }
    }
}

enum ServiceIp {
    Cluster(Ipv4Addr),
    Headless,
    None,
}

fn service_ip(s: &Service) -> ServiceIp {
    let spec = s.spec.as_ref();
    if spec.and_then(|sp| sp.type_.as_deref()) == Some("ExternalName") {
        return ServiceIp::None;
    }
    match spec.and_then(|sp| sp.cluster_ip.as_deref()) {
        Some("None") => ServiceIp::Headless,
        Some(ip) => ip.parse().map_or(ServiceIp::None, ServiceIp::Cluster),
        None => ServiceIp::None,
    }
}

impl Component for ClusterDns {
    fn name(&self) -> &str {
        "cluster-dns"
    }

    fn user(&self) -> crate::auth::UserInfo {
        // k8s: CoreDNS as kubeadm deploys it, bound to system:kube-dns here.
        crate::auth::UserInfo::service_account("kube-system", "kube-dns")
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(res("", "services")),
            WatchSpec::all(res("discovery.k8s.io", "endpointslices")),
        ]
    }

    fn step(&mut self, _now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        let synced = self.synced();
        if self.services.feed(res("", "services"), &input).is_none() {
            self.slices
                .feed(res("discovery.k8s.io", "endpointslices"), &input);
        }
        if !synced && self.synced() {
            out.push(Effect::Log {
                v: 2,
                message: format!(
                    "cluster DNS: serving {} Services in {}",
                    self.services.len(),
                    self.domain
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::ApiEvent;
    use crate::apiserver::EventType;
    use crate::store::Revision;
    use serde_json::{json, Value};

    fn listed(resource: &'static ResourceInfo, items: Vec<Value>) -> Input {
        Input::Listed {
            resource,
            items,
            revision: Revision::default(),
        }
    }

    fn dns() -> ClusterDns {
        let mut d = ClusterDns::default();
        let svc = |ns: &str, name: &str, ip: &str| {
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "namespace": ns},
                   "spec": {"clusterIP": ip, "ports": [
                       {"name": "http", "port": 80, "protocol": "TCP"},
                       {"name": "dns", "port": 53, "protocol": "UDP"}]}})
        };
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "db-x", "namespace": "team",
                         "labels": {crate::controllers::endpointutil::LABEL_SERVICE_NAME: "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.0.7"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "hostname": "db-0"},
                {"addresses": ["10.244.0.9"], "conditions": {"ready": false}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let mut out = vec![];
        let now = Time::default();
        d.step(
            now,
            listed(
                res("", "services"),
                vec![
                    svc("team", "web", "10.96.0.20"),
                    svc("team", "db", "None"),
                    json!({"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "ext", "namespace": "team"},
                           "spec": {"type": "ExternalName", "externalName": "example.com"}}),
                ],
            ),
            &mut rng,
            &mut out,
        );
        d.step(
            now,
            listed(res("discovery.k8s.io", "endpointslices"), vec![slice]),
            &mut rng,
            &mut out,
        );
        assert!(d.synced());
        assert!(matches!(&out[..], [Effect::Log { .. }]));
        d
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::A {
            name: name.into(),
            ip: ip.parse().unwrap(),
        }
    }

    fn srv(name: &str, port: u16, target: &str) -> Record {
        Record::Srv {
            name: name.into(),
            priority: 0,
            weight: 100,
            port,
            target: target.into(),
        }
    }

    /// A name, a query type, and the rcode, answers and additional records it gets.
    type Case<'a> = (&'a str, u16, u8, Vec<Record>, Vec<Record>);

    #[test]
    fn lookups() {
        let d = dns();
        let web = "web.team.svc.cluster.local";
        let db = "db.team.svc.cluster.local";
        let srv_web = "_http._tcp.web.team.svc.cluster.local";
        let srv_db = "_http._tcp.db.team.svc.cluster.local";
        let cases: Vec<Case> = vec![
            (
                web,
                TYPE_A,
                RCODE_NOERROR,
                vec![a(web, "10.96.0.20")],
                vec![],
            ),
            // AAAA for an existing name: NODATA, not NXDOMAIN.
            (web, 28, RCODE_NOERROR, vec![], vec![]),
            // Headless: the ready endpoints, not the unready one.
            (
                db,
                TYPE_A,
                RCODE_NOERROR,
                vec![a(db, "10.244.0.5"), a(db, "10.244.0.7")],
                vec![],
            ),
            (
                srv_web,
                TYPE_SRV,
                RCODE_NOERROR,
                vec![srv(srv_web, 80, web)],
                vec![a(web, "10.96.0.20")],
            ),
            (
                "_dns._udp.web.team.svc.cluster.local",
                TYPE_SRV,
                RCODE_NOERROR,
                vec![srv("_dns._udp.web.team.svc.cluster.local", 53, web)],
                vec![a(web, "10.96.0.20")],
            ),
            // Headless SRV: each endpoint under its hostname or dashed address.
            (
                srv_db,
                TYPE_SRV,
                RCODE_NOERROR,
                vec![
                    srv(srv_db, 8080, "db-0.db.team.svc.cluster.local"),
                    srv(srv_db, 8080, "10-244-0-7.db.team.svc.cluster.local"),
                ],
                vec![
                    a("db-0.db.team.svc.cluster.local", "10.244.0.5"),
                    a("10-244-0-7.db.team.svc.cluster.local", "10.244.0.7"),
                ],
            ),
            (
                "db-0.db.team.svc.cluster.local",
                TYPE_A,
                RCODE_NOERROR,
                vec![a("db-0.db.team.svc.cluster.local", "10.244.0.5")],
                vec![],
            ),
            (
                "10-244-0-3.team.pod.cluster.local",
                TYPE_A,
                RCODE_NOERROR,
                vec![a("10-244-0-3.team.pod.cluster.local", "10.244.0.3")],
                vec![],
            ),
            (
                "_grpc._tcp.web.team.svc.cluster.local",
                TYPE_SRV,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "_http._udp.web.team.svc.cluster.local",
                TYPE_SRV,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "missing.team.svc.cluster.local",
                TYPE_A,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "web.other.svc.cluster.local",
                TYPE_A,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "x.db-1.db.team.svc.cluster.local",
                TYPE_A,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "10-244-0-9.db.team.svc.cluster.local",
                TYPE_A,
                RCODE_NXDOMAIN,
                vec![],
                vec![],
            ),
            (
                "ext.team.svc.cluster.local",
                TYPE_A,
                RCODE_NOERROR,
                vec![],
                vec![],
            ),
            (
                "team.svc.cluster.local",
                TYPE_A,
                RCODE_NOERROR,
                vec![],
                vec![],
            ),
            ("cluster.local", TYPE_A, RCODE_NOERROR, vec![], vec![]),
            // Outside the cluster domain: no recursion.
            ("example.com", TYPE_A, RCODE_REFUSED, vec![], vec![]),
            ("notcluster.local", TYPE_A, RCODE_REFUSED, vec![], vec![]),
        ];
        for (name, qtype, rcode, answers, additional) in cases {
            let l = d.lookup(name, qtype);
            assert_eq!(
                l,
                Lookup {
                    rcode,
                    answers,
                    additional
                },
                "{name} type {qtype}"
            );
        }
    }

    #[test]
    fn watch_events_update_answers() {
        let mut d = dns();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let ev = |type_: EventType, obj: Value| Input::Watched {
            resource: res("", "services"),
            event: ApiEvent::new(type_, obj, Revision::default()),
        };
        let web = json!({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "web", "namespace": "team"},
                         "spec": {"clusterIP": "10.96.0.20"}});
        d.step(
            Time::default(),
            ev(EventType::Deleted, web),
            &mut rng,
            &mut vec![],
        );
        let l = d.lookup("web.team.svc.cluster.local", TYPE_A);
        assert_eq!(l.rcode, RCODE_NXDOMAIN);
    }

    /// The wire format, both ways: a query parses; an answer carries the header, the echoed
    /// question and compressed records.
    #[test]
    fn codec_round_trip() {
        let d = dns();
        let q = encode_query(0x1234, "Web.Team.svc.cluster.local.", TYPE_A);
        let parsed = parse_query(&q).unwrap();
        assert_eq!(parsed.name, "web.team.svc.cluster.local");
        assert_eq!((parsed.id, parsed.qtype, parsed.rd), (0x1234, TYPE_A, true));
        let r = d.answer(&q).unwrap();
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        // QR, AA, RD; rcode 0; 1 question, 1 answer.
        assert_eq!(&r[2..4], &[0x85, 0x00]);
        assert_eq!(&r[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&r[12..q.len()], &q[12..]);
        let rr = &r[q.len()..];
        assert_eq!(&rr[..2], &[0xC0, 12]);
        assert_eq!(&rr[rr.len() - 4..], &[10, 96, 0, 20]);

        let r = d
            .answer(&encode_query(7, "nope.team.svc.cluster.local", TYPE_A))
            .unwrap();
        assert_eq!(r[3] & 0x0F, RCODE_NXDOMAIN);
        let r = d.answer(&encode_query(7, "example.com", TYPE_A)).unwrap();
        assert_eq!(r[3] & 0x0F, RCODE_REFUSED);
        assert_eq!(r[2] & 0x04, 0, "REFUSED is not authoritative");
    }

    #[test]
    fn malformed_queries() {
        let d = dns();
        assert_eq!(d.answer(&[1, 2, 3]), None);
        // A truncated name: FORMERR with the id.
        let mut q = encode_query(9, "web.team.svc.cluster.local", TYPE_A);
        q.truncate(20);
        let r = d.answer(&q).unwrap();
        assert_eq!((r[1], r[3] & 0x0F), (9, RCODE_FORMERR));
        // Two questions: FORMERR.
        let mut q = encode_query(9, "a", TYPE_A);
        q[5] = 2;
        assert_eq!(d.answer(&q).unwrap()[3] & 0x0F, RCODE_FORMERR);
        // A response is never answered.
        let mut q = encode_query(9, "a", TYPE_A);
        q[2] |= 0x80;
        assert_eq!(d.answer(&q), None);
        // A compression pointer in the question: FORMERR.
        let mut q = encode_query(9, "a", TYPE_A);
        q[12] = 0xC0;
        assert_eq!(d.answer(&q).unwrap()[3] & 0x0F, RCODE_FORMERR);
    }

    #[test]
    fn large_answers_truncate() {
        let q = parse_query(&encode_query(1, "x.cluster.local", TYPE_A)).unwrap();
        let many: Vec<Record> = (0..100u8)
            .map(|i| a("x.cluster.local", &format!("10.0.0.{i}")))
            .collect();
        let r = encode_response(&q, RCODE_NOERROR, &many, &[], UDP_LIMIT);
        assert!(r.len() <= UDP_LIMIT);
        assert_eq!(r[2] & 0x02, 0x02, "TC set");
        assert_eq!(&r[6..8], &[0, 0]);
        let few = &many[..5];
        let r = encode_response(&q, RCODE_NOERROR, few, &[], UDP_LIMIT);
        assert_eq!((r[2] & 0x02, r[7]), (0, 5));
    }
}
