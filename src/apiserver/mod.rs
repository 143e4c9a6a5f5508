//! The apiserver core, without HTTP: the rules between a client's request and the store.
//!
//! decode → set server-managed metadata → default → admit → validate → store, for every
//! registered resource, with the optimistic-concurrency, generation, graceful-deletion,
//! finalizer and binding rules Kubernetes applies. It is generic over [`Store`]: the simulator
//! runs it on MemStore (whose futures are always ready), the real server on the embedded store or
//! etcd. It reads no clock and no RNG: each request brings its [`RequestContext`].

mod authz;
pub mod cacher;
mod escalation;
#[cfg(feature = "server")]
pub mod http;
mod node_authz;
pub mod node_graph;
mod object;
pub mod patch;
mod pb_schema;
pub mod protobuf;
mod rbac_bootstrap;
mod review;
pub mod service_alloc;
pub mod serviceaccount_admission;
mod strategy;
mod token_request;
mod token_review;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo};
use crate::api::selector::Selector;
use crate::api::status::{ApiError, FieldError};
use crate::api::{admission, names};
use crate::auth::node::admission as node_admission;
use crate::store::{KeyValue, Revision, Store, StoreError};

pub use authz::op_attributes;
pub(crate) use object::rfc3339_seconds;
pub use token_request::Issued;
pub use watch::{ApiEvent, ApiWatch, EventType};

/// A core's `Time` (nanoseconds since the Unix epoch in production, since the simulation's
/// epoch in the simulator) as an RFC 3339 metav1.Time string.
pub fn format_time(t: crate::time::Time) -> Value {
    let ts = Timestamp::from_nanosecond(i128::from(t.as_nanos())).unwrap_or(Timestamp::UNIX_EPOCH);
    object::timestamp(ts)
}

/// `obj` without its resourceVersion: an update that applies to the latest version, for
/// writers that own what they write (a kubelet's pod status, a controller's taints).
pub fn unconditional(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    obj
}

/// What a request needs from its host: the time, and fresh randomness for UIDs and names.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub now: Timestamp,
    /// The UID a created object gets: see [`RequestContext::uid`].
    uid: Uid,
    /// Picks the suffix of a `generateName`.
    pub random: u64,
    /// `dryRun=All`: every check runs, nothing is stored.
    pub dry_run: bool,
    /// Who asks: the authenticated user of an HTTP request, or the identity upstream gives the
    /// component that sends it. Defaults to the apiserver's own (`system:apiserver`).
    pub user: Arc<crate::auth::UserInfo>,
}

/// A UID as given, or as random bits formatted only when a create needs it (most requests
/// are updates; the bits are drawn for every request all the same, so that the RNG stream,
/// and with it a simulation, does not depend on which requests create).
#[derive(Clone, Debug)]
enum Uid {
    Given(String),
    Random(u64, u64),
}

impl RequestContext {
    pub fn new(now: Timestamp, uid: impl Into<String>, random: u64) -> RequestContext {
        RequestContext {
            now,
            uid: Uid::Given(uid.into()),
            random,
            dry_run: false,
            user: apiserver_user(),
        }
    }

    /// The UID a created object gets (a version 4 UUID when drawn at random).
    pub fn uid(&self) -> String {
        match &self.uid {
            Uid::Given(uid) => uid.clone(),
            Uid::Random(a, b) => {
                // `{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}`, written digit by digit (every create
                // makes one).
                fn hex(out: &mut String, v: u64, digits: u32) {
                    for i in (0..digits).rev() {
                        let d = ((v >> (4 * i)) & 0xf) as u8;
                        out.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
                    }
                }
                let mut out = String::with_capacity(36);
                hex(&mut out, a >> 32, 8);
                let parts = [
                    ((a >> 16) & 0xffff, 4, "-"),
                    (a & 0xfff, 3, "-4"),
                    (b >> 52, 3, "-8"),
                    (b & 0xffff_ffff_ffff, 12, "-"),
                ];
                for (v, digits, sep) in parts {
                    out.push_str(sep);
                    hex(&mut out, v, digits);
                }
                out
            }
        }
    }

    /// A context at `now` (nanoseconds since the Unix epoch) with a UID and randomness drawn
    /// from `rng`: how the simulator and the test host make one per request.
    pub fn from_rng(now: crate::time::Time, rng: &mut dyn rand::RngCore) -> RequestContext {
        let (a, b) = (rng.next_u64(), rng.next_u64());
        RequestContext {
            now: Timestamp::from_nanosecond(i128::from(now.as_nanos()))
                .unwrap_or(Timestamp::UNIX_EPOCH),
            uid: Uid::Random(a, b),
            random: rng.next_u64(),
            dry_run: false,
            user: apiserver_user(),
        }
    }

    /// Another context at the same time for the `n`th of a series of requests (the
    /// bootstrap policy's objects), its UID and randomness mixed from this one's: no draws
    /// from the RNG the context came from, so a simulation's stream stays as it was.
    pub fn derived(&self, n: u64) -> RequestContext {
        // splitmix64's finalizer.
        fn mix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let seed = self.random ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        RequestContext {
            uid: match &self.uid {
                Uid::Given(_) => Uid::Random(mix(seed), mix(seed ^ 1)),
                Uid::Random(a, b) => Uid::Random(mix(a ^ seed), mix(b ^ seed)),
            },
            random: mix(seed ^ 2),
            ..self.clone()
        }
    }

    /// The same context acting as `user`.
    pub fn as_user(mut self, user: Arc<crate::auth::UserInfo>) -> RequestContext {
        self.user = user;
        self
    }
}

/// The apiserver's own identity, made once.
fn apiserver_user() -> Arc<crate::auth::UserInfo> {
    static USER: std::sync::OnceLock<Arc<crate::auth::UserInfo>> = std::sync::OnceLock::new();
    USER.get_or_init(|| Arc::new(crate::auth::UserInfo::apiserver()))
        .clone()
}

/// Which part of an object an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object; its status is kept as it was.
    Main,
    /// `/status`: only the status changes.
    Status,
    /// `namespaces/finalize`: only `spec.finalizers` changes.
    Finalize,
}

impl Part {
    /// The subresource an update of this part is sent to.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::Finalize => "finalize",
        }
    }
}

/// Options of a delete (the fields of `DeleteOptions` gantry honours).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// `Foreground`, `Background` or `Orphan`.
    pub propagation_policy: Option<String>,
    /// The legacy form of the policy: true is Orphan, false Background.
    pub orphan_dependents: Option<bool>,
}

/// The garbage collector's finalizers: `orphan` makes it take the owner out of every
/// dependent's ownerReferences, `foregroundDeletion` makes it delete the dependents first.
pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// The finalizers a delete leaves on an object for the garbage collector. k8s:
/// deletionFinalizersForGarbageCollection (apiserver registry/generic/registry/store.go): the
/// request's policy (or legacy `orphanDependents`) wins, then a GC finalizer already there,
/// then the kind's default — Orphan for core/v1 ReplicationControllers
/// (pkg/registry/core/replicationcontroller/strategy.go), Background for everything else.
/// The two GC finalizers never stay together: the one chosen replaces the other.
fn gc_finalizers(
    res: &ResourceInfo,
    name: &str,
    finalizers: Vec<String>,
    opts: &DeleteOptions,
) -> Result<Vec<String>, ApiError> {
    let explicit = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
        (Some(_), Some(p)) => {
            return Err(ApiError::invalid(
                res,
                name,
                vec![crate::api::status::FieldError::invalid(
                    "propagationPolicy",
                    p,
                    "orphanDependents and deletionPropagation cannot be both set",
                )],
            ))
        }
        (Some(true), None) => Some("Orphan"),
        (Some(false), None) => Some("Background"),
        (None, Some(p @ ("Foreground" | "Background" | "Orphan"))) => Some(p),
        (None, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy {other:?} is not one of Foreground, Background, Orphan"
            )))
        }
        (None, None) => None,
    };
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let policy = explicit.unwrap_or_else(|| {
        if has(ORPHAN_FINALIZER) {
            "Orphan"
        } else if has(FOREGROUND_FINALIZER) {
            "Foreground"
        } else if res.group.is_empty() && res.plural == "replicationcontrollers" {
            "Orphan"
        } else {
            "Background"
        }
    });
    let mut out: Vec<String> = finalizers
        .into_iter()
        .filter(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        .collect();
    match policy {
        "Orphan" => out.push(ORPHAN_FINALIZER.into()),
        "Foreground" => out.push(FOREGROUND_FINALIZER.into()),
        _ => {}
    }
    Ok(out)
}

/// Filters of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
}

/// `?fieldSelector=`: equality requirements on supported fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `a=b,c!=d` for `res`; fields it does not support are an error (k8s: 400).
    pub fn parse(res: &ResourceInfo, s: &str) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {term:?}"
                )));
            };
            let field = field.trim();
            if !supported_fields(res).contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = object::field_string(obj, field).unwrap_or_default();
            (*actual == **value) == *equal
        })
    }
}

/// k8s: the field selectors each resource's registry supports (GetAttrs / AddFieldLabelConversionFunc).
fn supported_fields(res: &ResourceInfo) -> &'static [&'static str] {
    match (res.group, res.plural) {
        ("", "pods") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["metadata.name", "metadata.namespace", "type"],
        ("", "namespaces") => &["metadata.name", "status.phase"],
        ("", "nodes") => &["metadata.name", "spec.unschedulable"],
        ("", "replicationcontrollers") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        ("apps", "replicasets") => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// The namespaces every cluster starts with.
pub const BOOT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
/// The objects `bootstrap` creates: the namespaces and the two system PriorityClasses (one
/// request context each).
pub const BOOT_OBJECTS: usize = BOOT_NAMESPACES.len() + 2;

/// The `default/kubernetes` Service's clusterIP with the default service CIDR 10.96.0.0/12: its
/// first address (another `--service-cluster-ip-range` gives another first address).
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// The `default/kubernetes` Service (port 443 `https` to the apiserver's port), its Endpoints
/// and its EndpointSlice, for an apiserver reached at `address` (`host:port`;
/// kubectl-compat.md §4). The slice is the apiserver's, not the EndpointSlice controller's
/// (no managed-by label), and the Endpoints are not mirrored.
pub fn kubernetes_service_objects(address: &str) -> Vec<(&'static ResourceInfo, Value)> {
    let (host, port) = address
        .rsplit_once(':')
        .map(|(h, p)| {
            (
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().unwrap_or(6443),
            )
        })
        .unwrap_or_else(|| ("127.0.0.1".into(), 6443));
    let address_type = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "IPv4",
        Ok(std::net::IpAddr::V6(_)) => "IPv6",
        Err(_) => "FQDN",
    };
    let res = |group: &str, plural: &str| registry::by_plural(group, plural).expect("registered");
    let meta =
        |labels: Value| json!({"name": "kubernetes", "namespace": "default", "labels": labels});
    vec![
        (
            res("", "services"),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": meta(json!({"component": "apiserver", "provider": "kubernetes"})),
                   "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP,
                            "clusterIPs": [KUBERNETES_SERVICE_IP],
                            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                            "sessionAffinity": "None"}}),
        ),
        (
            res("", "endpoints"),
            json!({"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": meta(json!({"endpointslice.kubernetes.io/skip-mirror": "true"})),
                   "subsets": [{"addresses": [{"ip": host}],
                                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        ),
        (
            res("discovery.k8s.io", "endpointslices"),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": meta(json!({"kubernetes.io/service-name": "kubernetes"})),
                   "addressType": address_type,
                   "endpoints": [{"addresses": [host], "conditions": {"ready": true}}],
                   "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        ),
    ]
}

/// How often a read-modify-write retries when another writer got in between.
const RETRIES: usize = 5;

pub struct ApiServer<S> {
    store: S,
    /// The last object this apiserver wrote under each key, as it stored it, with the revision
    /// of that write. A read whose stored revision matches takes it instead of decoding the
    /// bytes again (k8s: the watch cache hands GuaranteedUpdate its cachedExistingObject), and
    /// so can a watch cache that sees the write come back ([`ApiServer::decoded`]). Entries
    /// go when this apiserver deletes the key; a revision mismatch (another writer) falls
    /// back to decoding, so a stale entry is never used.
    written: Mutex<HashMap<String, (Revision, Arc<Value>)>>,
    /// The ClusterIP and NodePort allocators (`service_alloc`).
    services: Mutex<service_alloc::ServiceAllocState>,
    /// ServiceAccount tokens (TokenRequest, TokenReview, ServiceAccount admission); `None`
    /// in the simulator, which has no signing key.
    tokens: Option<crate::auth::serviceaccount::TokenConfig>,
    /// The RBAC objects, indexed for the authorizer (`authz`).
    rbac: authz::RbacState,
    /// The Node authorizer's graph (`node_authz`).
    node_authz: node_authz::NodeState,
}

fn namespaces() -> &'static ResourceInfo {
    registry::by_plural("", "namespaces").expect("namespaces are registered")
}

fn services() -> &'static ResourceInfo {
    registry::by_plural("", "services").expect("services are registered")
}

fn is_services(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.plural == "services"
}

fn pods() -> &'static ResourceInfo {
    registry::by_plural("", "pods").expect("pods are registered")
}

/// The key of an object; namespaced resources need a namespace.
fn key(res: &ResourceInfo, namespace: Option<&str>, name: &str) -> Result<String, ApiError> {
    if res.namespaced && namespace.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: a namespace is required",
            res.plural
        )));
    }
    if name.is_empty() {
        return Err(ApiError::bad_request("resource name may not be empty"));
    }
    Ok(res.storage_key(namespace, name))
}

/// The stored form of an object. The revision is the resourceVersion: it is set on every read,
/// never stored, so it is left out (while serializing: no copy of the object). The bytes are
/// serde_json's compact form (`write_json`), written into a reused buffer and copied out at
/// their size: every write encodes its object.
fn encode(obj: &Value) -> Bytes {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut out = buf.borrow_mut();
        out.clear();
        match obj {
            Value::Object(o) => {
                out.push(b'{');
                let mut first = true;
                for (k, v) in o {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_json_str(&mut out, k);
                    out.push(b':');
                    match v {
                        Value::Object(meta) if k == "metadata" => {
                            write_json_map(&mut out, meta, Some("resourceVersion"))
                        }
                        _ => write_json(&mut out, v),
                    }
                }
                out.push(b'}');
            }
            other => write_json(&mut out, other),
        }
        let bytes = Bytes::copy_from_slice(&out);
        // A rare large object does not keep its buffer's size for the thread's lifetime.
        if out.capacity() > 1 << 20 {
            *out = Vec::new();
        }
        bytes
    })
}

/// `v` as `serde_json::to_vec` writes it (compact), appended to `out`.
pub(crate) fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("numbers serialize"),
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_json_map(out, map, None),
    }
}

/// A map as serde_json writes it, without the key `skip`.
fn write_json_map(out: &mut Vec<u8>, map: &serde_json::Map<String, Value>, skip: Option<&str>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in map {
        if skip == Some(k.as_str()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, k);
        out.push(b':');
        write_json(out, v);
    }
    out.push(b'}');
}

/// A string as serde_json writes it: as it is between quotes unless a character needs an
/// escape (`"`, `\`, control characters), and then by serde_json itself.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether a byte of `s` is a control character, `"` or `\`: eight bytes at a time (the
/// test for "some byte below n", and for "some byte zero" after an xor, on a word; exact
/// about whether there is one), as most strings need no escape and are written whole.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if w.wrapping_sub(0x20 * ONES) & !w & HIGH != 0
            || zero_byte(w ^ (u64::from(b'"') * ONES))
            || zero_byte(w ^ (u64::from(b'\\') * ONES))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

pub(crate) fn decode(bytes: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(revision.to_string()));
    Ok(obj)
}

/// k8s: the generateName suffix alphabet (no vowels, no look-alikes), 5 characters.
fn name_suffix(random: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn name_errors(res: &ResourceInfo, name: &str) -> Vec<String> {
    let mut errs = match res.plural {
        "namespaces" => names::dns1123_label(name),
        "services" => names::dns1035_label(name),
        // k8s: ValidateRBACName is path.IsValidPathSegmentName (`system:node` is a name).
        _ if res.group == registry::RBAC_GROUP => Vec::new(),
        _ => names::dns1123_subdomain(name),
    };
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        errs.push("may not be '.' or '..' and may not contain '/' or '%'".into());
    }
    errs
}

fn spec_finalizers(obj: &Value) -> Vec<Value> {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn check_type(res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    // `group/version` (or the version alone) compared in parts: every write is checked.
    let is_api_version = |got: &str| match got.split_once('/') {
        Some((g, v)) => !res.group.is_empty() && g == res.group && v == res.version,
        None => res.group.is_empty() && got == res.version,
    };
    for field in ["apiVersion", "kind"] {
        if let Some(got) = obj
            .get(field)
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
        {
            let matches = if field == "kind" {
                got == res.kind
            } else {
                is_api_version(got)
            };
            if !matches {
                let api_version = res.api_version();
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({api_version}) or kind ({}) does not match {}",
                    obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                    obj.get("kind").and_then(Value::as_str).unwrap_or(""),
                    res.kind
                )));
            }
        }
    }
    Ok(())
}

/// Whether `new`'s metadata is `old`'s, resourceVersion aside.
fn same_metadata(new: &Value, old: &Value) -> bool {
    let (Some(a), Some(b)) = (object::meta(new), object::meta(old)) else {
        return false;
    };
    let rest = |m: &serde_json::Map<String, Value>| {
        m.len() - usize::from(m.contains_key("resourceVersion"))
    };
    rest(a) == rest(b)
        && a.iter()
            .filter(|(k, _)| k.as_str() != "resourceVersion")
            .all(|(k, v)| b.get(k) == Some(v))
}

fn object_meta_errors(res: &ResourceInfo, obj: &Value) -> Result<Vec<FieldError>, ApiError> {
    use serde::Deserialize;
    let meta = match obj.get("metadata") {
        Some(m) => k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::deserialize(m)
            .map_err(|e| {
                ApiError::bad_request(format!("{} metadata cannot be decoded: {e}", res.kind))
            })?,
        None => Default::default(),
    };
    let mut errs = Vec::new();
    crate::api::validation::object_meta(&mut errs, &meta);
    Ok(errs)
}

impl<S: Store> ApiServer<S> {
    pub fn new(store: S) -> Self {
        ApiServer {
            store,
            written: Mutex::new(HashMap::new()),
            services: Mutex::new(service_alloc::ServiceAllocState {
                ranges: Default::default(),
                allocs: None,
            }),
            tokens: None,
            rbac: Default::default(),
            node_authz: Default::default(),
        }
    }

    /// The same apiserver issuing and checking ServiceAccount tokens with `tokens` (before it
    /// serves). With them come TokenRequest, TokenReview and ServiceAccount admission.
    pub fn with_tokens(mut self, tokens: crate::auth::serviceaccount::TokenConfig) -> Self {
        self.tokens = Some(tokens);
        self
    }

    pub fn tokens(&self) -> Option<&crate::auth::serviceaccount::TokenConfig> {
        self.tokens.as_ref()
    }

    /// The same apiserver with another service CIDR and NodePort range (before it serves).
    pub fn with_service_ranges(self, ranges: service_alloc::ServiceRanges) -> Self {
        self.service_state().ranges = ranges;
        self
    }

    pub fn service_ranges(&self) -> service_alloc::ServiceRanges {
        self.service_state().ranges
    }

    fn service_state(&self) -> std::sync::MutexGuard<'_, service_alloc::ServiceAllocState> {
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the allocators from the stored Services if this is the first Service write
    /// since the start (k8s keeps RangeAllocation objects and repairs them from the Services;
    /// gantry only rebuilds: docs/decisions.md).
    async fn service_allocs_ready(&self) -> Result<(), ApiError> {
        if self.service_state().allocs.is_some() {
            return Ok(());
        }
        let (items, _) = self.list(services(), None, &ListOptions::default()).await?;
        let mut state = self.service_state();
        if state.allocs.is_none() {
            let mut a = service_alloc::ServiceAllocators::new(state.ranges);
            for svc in &items {
                a.mark_stored(svc);
            }
            state.allocs = Some(a);
        }
        Ok(())
    }

    /// Reserves what a Service write needs (see `ServiceAllocators::allocate`).
    async fn allocate_service(
        &self,
        name: &str,
        obj: &mut Value,
        old: Option<&Value>,
        ctx: &RequestContext,
    ) -> Result<(service_alloc::Allocation, service_alloc::Allocation), ApiError> {
        self.service_allocs_ready().await?;
        let mut state = self.service_state();
        let allocs = state.allocs.as_mut().expect("built above");
        allocs.allocate(services(), name, obj, old, ctx.random)
    }

    /// Gives back addresses and ports (a failed write's, or a deleted Service's).
    fn release_service(&self, a: &service_alloc::Allocation) {
        if let Some(allocs) = self.service_state().allocs.as_mut() {
            allocs.release(a);
        }
    }

    /// A stored Service is gone: what it held is free again.
    fn service_deleted(&self, res: &ResourceInfo, obj: &Value) {
        if is_services(res) {
            let mut state = self.service_state();
            if let Some(allocs) = state.allocs.as_mut() {
                let held = allocs.held_by(obj);
                allocs.release(&held);
            }
        }
    }

    /// The object stored under `key` at `revision`, decoded, if this apiserver wrote it.
    pub fn decoded(&self, key: &str, revision: Revision) -> Option<Arc<Value>> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .get(key)
            .filter(|(r, _)| *r == revision)
            .map(|(_, obj)| obj.clone())
    }

    /// Records what a write stored (`obj` carries its new resourceVersion) and returns it.
    fn wrote(&self, key: &str, revision: Revision, obj: Value) -> Arc<Value> {
        self.rbac_committed(key, Some(&obj));
        self.node_graph_committed(key, Some(&obj));
        let shared = Arc::new(obj);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(key.to_string(), (revision, shared.clone()));
        shared
    }

    fn forget(&self, key: &str) {
        self.rbac_committed(key, None);
        self.node_graph_committed(key, None);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.remove(key);
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Carries out a component's API request. The request is taken by value: its body becomes
    /// the stored object without a copy.
    pub async fn execute(
        &self,
        op: crate::component::ApiOp,
        ctx: &RequestContext,
    ) -> Result<Arc<Value>, ApiError> {
        use crate::component::ApiOp;
        // Every component request is authorized as its sender (k8s: the authorization filter).
        if !ctx.user.in_group(crate::auth::user::SYSTEM_MASTERS) {
            self.check(&ctx.user, &op_attributes(&op))?;
        }
        match op {
            ApiOp::Create {
                resource,
                namespace,
                body,
            } => self.create(resource, namespace.as_deref(), body, ctx).await,
            ApiOp::Update {
                resource,
                namespace,
                name,
                body,
                part,
            } => {
                self.update(resource, namespace.as_deref(), &name, body, part, ctx)
                    .await
            }
            ApiOp::Delete {
                resource,
                namespace,
                name,
                grace_period_seconds,
                precondition_uid,
                precondition_resource_version,
                propagation_policy,
            } => {
                let opts = DeleteOptions {
                    grace_period_seconds,
                    precondition_uid,
                    precondition_resource_version,
                    propagation_policy: propagation_policy.map(String::from),
                    ..Default::default()
                };
                self.delete(resource, namespace.as_deref(), &name, &opts, ctx)
                    .await
            }
            ApiOp::Get {
                resource,
                namespace,
                name,
            } => self
                .get(resource, namespace.as_deref(), &name)
                .await
                .map(Arc::new),
            ApiOp::Bind {
                namespace,
                name,
                node,
            } => self.bind(&namespace, &name, &node, ctx).await,
            ApiOp::CreateToken {
                namespace,
                name,
                body,
            } => self
                .create_token(&namespace, &name, body, ctx)
                .await
                .map(|issued| Arc::new(issued.request)),
            ApiOp::DeleteCollection {
                resource,
                namespace,
            } => {
                let (items, _) = self
                    .list(resource, Some(&namespace), &ListOptions::default())
                    .await?;
                let mut remaining = 0;
                // Finalizer → how many of the remaining objects carry it.
                let mut finalizers: BTreeMap<String, u64> = BTreeMap::new();
                for item in items {
                    let name = object::name(&item).to_string();
                    match self
                        .delete(
                            resource,
                            Some(&namespace),
                            &name,
                            // k8s: the namespace deleter deletes in the background.
                            &DeleteOptions {
                                propagation_policy: Some("Background".into()),
                                ..Default::default()
                            },
                            ctx,
                        )
                        .await
                    {
                        // Still there: terminating, or held by finalizers.
                        Ok(after) if object::is_deleting(&after) => {
                            remaining += 1;
                            for f in object::finalizers(&after) {
                                *finalizers.entry(f).or_default() += 1;
                            }
                        }
                        Ok(_) => {}
                        Err(e) if e.reason == "NotFound" => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Arc::new(
                    json!({ "remaining": remaining, "finalizers": finalizers }),
                ))
            }
        }
    }

    /// Creates the boot namespaces that do not exist yet.
    pub async fn bootstrap(
        &self,
        mut next: impl FnMut() -> RequestContext,
    ) -> Result<(), ApiError> {
        self.load_rbac().await?;
        self.load_node_authorizer().await?;
        for ns in BOOT_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self.create(namespaces(), None, body, &next()).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        // k8s: the scheduling post-start hook creates the system PriorityClasses.
        let classes =
            registry::by_plural("scheduling.k8s.io", "priorityclasses").expect("registered");
        let mut last = None;
        for body in admission::system_priority_classes() {
            let ctx = next();
            match self.create(classes, None, body, &ctx).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
            last = Some(ctx);
        }
        // k8s: the RBAC post-start hook reconciles the bootstrap policy.
        let ctx = last.expect("system PriorityClasses");
        self.reconcile_bootstrap_policy(&ctx).await
    }

    /// Creates the `default/kubernetes` Service, Endpoints and EndpointSlice for an apiserver
    /// reached at `address` (`host:port`) if they are absent, and points the Endpoints and
    /// the slice at `address` if they point elsewhere (its address may differ from the last
    /// run's). k8s: the apiserver's controlplane reconciler (pkg/controlplane/reconcilers).
    pub async fn ensure_kubernetes_service(
        &self,
        address: &str,
        mut next: impl FnMut() -> RequestContext,
    ) -> Result<(), ApiError> {
        let first_ip = self.service_ranges().cluster_ips.first().to_string();
        for (res, mut obj) in kubernetes_service_objects(address) {
            if is_services(res) {
                // k8s: the kubernetes Service takes the first address of the service CIDR.
                obj["spec"]["clusterIP"] = json!(first_ip);
                obj["spec"]["clusterIPs"] = json!([first_ip]);
            }
            let ns = obj["metadata"]["namespace"].as_str().map(String::from);
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            match self.create(res, ns.as_deref(), obj.clone(), &next()).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" && res.plural != "services" => {
                    let mut current = self.get(res, ns.as_deref(), &name).await?;
                    let fields: &[&str] = match res.plural {
                        "endpoints" => &["subsets"],
                        _ => &["addressType", "endpoints", "ports"],
                    };
                    if fields.iter().any(|f| current[*f] != obj[*f]) {
                        for f in fields {
                            current[*f] = obj[*f].clone();
                        }
                        self.update(res, ns.as_deref(), &name, current, Part::Main, &next())
                            .await?;
                    }
                }
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn read(
        &self,
        res: &ResourceInfo,
        key: &str,
        name: &str,
    ) -> Result<(Arc<Value>, KeyValue), ApiError> {
        let kv = self
            .store
            .get(key)
            .await
            .map_err(|e| ApiError::from_store(res, name, e))?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let obj = match self.decoded(key, kv.mod_revision) {
            Some(obj) => obj,
            None => Arc::new(decode(&kv.value, kv.mod_revision)?),
        };
        Ok((obj, kv))
    }

    pub async fn get(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = key(res, namespace, name)?;
        Ok(Arc::unwrap_or_clone(self.read(res, &key, name).await?.0))
    }

    /// The objects (of one namespace, or all) that pass the filters, and the list's revision.
    pub async fn list(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(Vec<Value>, Revision), ApiError> {
        let prefix = match namespace.filter(|n| res.namespaced && !n.is_empty()) {
            Some(ns) => res.storage_namespace_prefix(ns),
            None => res.storage_prefix(),
        };
        let list = self
            .store
            .list(&prefix)
            .await
            .map_err(|e| ApiError::from_store(res, "", e))?;
        let mut items = Vec::with_capacity(list.items.len());
        for kv in &list.items {
            let obj = decode(&kv.value, kv.mod_revision)?;
            if opts.label_selector.matches(&object::labels(&obj))
                && opts.field_selector.matches(&obj)
            {
                items.push(obj);
            }
        }
        Ok((items, list.revision))
    }

    /// Changes after `after` (a list's revision), filtered like `list`, with objects entering
    /// and leaving the filter reported as ADDED and DELETED.
    pub async fn watch(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        after: Revision,
        opts: ListOptions,
    ) -> Result<ApiWatch, ApiError> {
        let prefix = match namespace.filter(|n| res.namespaced && !n.is_empty()) {
            Some(ns) => res.storage_namespace_prefix(ns),
            None => res.storage_prefix(),
        };
        let w = self
            .store
            .watch(&prefix, after)
            .await
            .map_err(|e| ApiError::from_store(res, "", e))?;
        Ok(ApiWatch::new(
            w,
            opts,
            registry::by_plural(res.group, res.plural).expect("registered"),
        ))
    }

    /// k8s: NamespaceLifecycle admission — new objects need a live namespace.
    async fn admit_namespace(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        // Read, not copied: only two fields are looked at.
        let ns = match self
            .read(
                namespaces(),
                &key(namespaces(), None, namespace)?,
                namespace,
            )
            .await
        {
            Ok((ns, _)) => ns,
            Err(e) if e.reason == "NotFound" => {
                return Err(ApiError::not_found(namespaces(), namespace))
            }
            Err(e) => return Err(e),
        };
        let terminating = object::is_deleting(&ns)
            || object::field_string(&ns, "status.phase").as_deref() == Some("Terminating");
        if terminating {
            return Err(ApiError::forbidden(
                res,
                name,
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            ));
        }
        Ok(())
    }

    /// The PriorityClasses, listed from the store (each pod create reads them: the objects
    /// this apiserver wrote are taken as decoded then, not decoded again).
    async fn priority_classes(&self) -> Result<Vec<Arc<Value>>, ApiError> {
        let res = registry::by_plural("scheduling.k8s.io", "priorityclasses").expect("registered");
        let list = self
            .store
            .list(&res.storage_prefix())
            .await
            .map_err(|e| ApiError::from_store(res, "", e))?;
        list.items
            .iter()
            .map(|kv| match self.decoded(&kv.key, kv.mod_revision) {
                Some(obj) => Ok(obj),
                None => decode(&kv.value, kv.mod_revision).map(Arc::new),
            })
            .collect()
    }

    /// k8s: Priority admission — a pod's priorityClassName (or the globalDefault class) sets
    /// spec.priority and spec.preemptionPolicy; an unknown class is forbidden.
    async fn admit_pod_priority(
        &self,
        res: &ResourceInfo,
        name: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
            return Ok(()); // validation reports it
        };
        let class = spec["priorityClassName"].as_str().unwrap_or("").to_string();
        let classes = self.priority_classes().await?;
        let found = if class.is_empty() {
            classes.iter().find(|c| c["globalDefault"] == json!(true))
        } else {
            let found = classes
                .iter()
                .find(|c| object::meta_str(c, "name") == Some(class.as_str()));
            if found.is_none() {
                return Err(ApiError::forbidden(
                    res,
                    name,
                    format!("no PriorityClass with name {class} was found"),
                ));
            }
            found
        };
        let resolved = match found {
            Some(c) => admission::ResolvedPriority {
                class: object::meta_str(c, "name").unwrap_or("").to_string(),
                value: c["value"].as_i64().unwrap_or(0) as i32,
                preemption_policy: c["preemptionPolicy"].as_str().map(String::from),
            },
            None => admission::ResolvedPriority {
                class: String::new(),
                value: admission::DEFAULT_PRIORITY,
                preemption_policy: None,
            },
        };
        admission::apply_pod_priority(spec, &resolved)
            .map_err(|why| ApiError::forbidden(res, name, why))
    }

    /// k8s: Priority admission — only one PriorityClass may be the globalDefault.
    async fn admit_priority_class(
        &self,
        res: &ResourceInfo,
        name: &str,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if obj["globalDefault"] != json!(true) {
            return Ok(());
        }
        for c in self.priority_classes().await? {
            let other = object::meta_str(&c, "name").unwrap_or("");
            if c["globalDefault"] == json!(true) && other != name {
                return Err(ApiError::forbidden(
                    res,
                    name,
                    format!("PriorityClass {other} is already marked as default. Only one default can exist"),
                ));
            }
        }
        Ok(())
    }

    pub async fn create(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        ctx: &RequestContext,
    ) -> Result<Arc<Value>, ApiError> {
        check_type(res, &obj)?;
        if res.group == "authentication.k8s.io" && res.plural == "tokenreviews" {
            return self.review_token(obj, ctx).await.map(Arc::new);
        }
        if res.group == registry::AUTHORIZATION_GROUP {
            return self.review(res, namespace, obj, &ctx.user);
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let namespace = if res.namespaced {
            let body_ns = object::meta_str(&obj, "namespace")
                .filter(|n| !n.is_empty())
                .map(String::from);
            match (namespace.filter(|n| !n.is_empty()), body_ns) {
                (Some(url), Some(body)) if url != body => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                (Some(url), _) => Some(url.to_string()),
                (None, Some(body)) => Some(body),
                (None, None) => Some("default".to_string()),
            }
        } else {
            None
        };
        let ns = namespace.as_deref();
        if object::meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let meta = object::meta_mut(&mut obj);
        let name = match (
            meta.get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty()),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", name_suffix(ctx.random))
            }
            _ => {
                return Err(ApiError::invalid(
                    res,
                    "",
                    vec![FieldError::required(
                        "metadata.name: name or generateName is required",
                    )],
                ))
            }
        };
        meta.insert("name".into(), json!(name));
        match ns {
            Some(n) => meta.insert("namespace".into(), json!(n)),
            None => meta.remove("namespace"),
        };
        // Server-managed fields.
        meta.insert("uid".into(), json!(ctx.uid()));
        meta.insert("creationTimestamp".into(), object::timestamp(ctx.now));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if strategy::tracks_generation(res) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }

        let mut errs: Vec<FieldError> = name_errors(res, &name)
            .into_iter()
            .map(|why| FieldError::invalid("metadata.name", &name, why))
            .collect();
        if let Some(n) = ns {
            errs.extend(
                names::dns1123_label(n)
                    .into_iter()
                    .map(|why| FieldError::invalid("metadata.namespace", n, why)),
            );
        }
        errs.extend(object_meta_errors(res, &obj)?);
        match (res.group, res.plural) {
            ("", "pods") => {
                self.admit_pod_priority(res, &name, &mut obj).await?;
                let ns = ns.unwrap_or("default");
                self.admit_service_account(res, ns, &name, &mut obj, ctx)
                    .await?;
            }
            ("scheduling.k8s.io", "priorityclasses") => {
                self.admit_priority_class(res, &name, &obj).await?
            }
            _ => {}
        }
        strategy::prepare_for_create(res, &mut obj);
        errs.extend(strategy::default_and_validate(res, &mut obj, None)?);
        if !errs.is_empty() {
            return Err(ApiError::invalid(res, &name, errs));
        }
        if let Some(n) = ns {
            self.admit_namespace(res, n, &name).await?;
        }
        self.confirm_rbac_write(res, ns.unwrap_or(""), &name, &obj, &ctx.user)?;
        self.admit_node_write(
            &ctx.user,
            node_admission::Operation::Create,
            res,
            "",
            ns.unwrap_or(""),
            "",
            None,
            Some(&obj),
        )
        .await?;
        let key = key(res, ns, &name)?;
        let reserved = if is_services(res) {
            // A Service that exists already is a 409, not a clash of its addresses.
            if matches!(self.store.get(&key).await, Ok(Some(_))) {
                return Err(ApiError::already_exists(res, &name));
            }
            self.allocate_service(&name, &mut obj, None, ctx).await?.0
        } else {
            Default::default()
        };
        if ctx.dry_run {
            // k8s: a dry run goes through every check, the name's uniqueness included, and
            // stores nothing.
            self.release_service(&reserved);
            return match self.store.get(&key).await {
                Ok(Some(_)) => Err(ApiError::already_exists(res, &name)),
                Ok(None) => Ok(Arc::new(obj)),
                Err(e) => Err(ApiError::from_store(res, &name, e)),
            };
        }
        let rev = match self.store.create(&key, encode(&obj)).await {
            Ok(rev) => rev,
            Err(e) => {
                self.release_service(&reserved);
                return Err(ApiError::from_store(res, &name, e));
            }
        };
        object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
        Ok(self.wrote(&key, rev, obj))
    }

    /// Replaces an object (or its status). A `resourceVersion` in the body must be current
    /// (else 409 Conflict); without one the update applies to the latest version.
    pub async fn update(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
        part: Part,
        ctx: &RequestContext,
    ) -> Result<Arc<Value>, ApiError> {
        check_type(res, &obj)?;
        if object::name(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&obj)
            )));
        }
        if let (Some(url), Some(body)) = (
            namespace,
            object::meta_str(&obj, "namespace").filter(|n| !n.is_empty()),
        ) {
            if res.namespaced && url != body {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let wanted_rv = object::meta_str(&obj, "resourceVersion")
            .filter(|r| !r.is_empty())
            .map(String::from);
        let precondition_uid = object::meta_str(&obj, "uid")
            .filter(|u| !u.is_empty())
            .map(String::from);
        let key = key(res, namespace, name)?;
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        // A retry merges what the attempt before it merged: that carries the client's part
        // unchanged, and the server's part is taken from the newer object again.
        let mut body = obj;
        for _ in 0..RETRIES {
            let (old, kv) = self.read(res, &key, name).await?;
            if wanted_rv
                .as_deref()
                .is_some_and(|rv| rv != kv.mod_revision.to_string())
            {
                return Err(ApiError::stale(res, name));
            }
            if let Some(uid) = precondition_uid.as_deref() {
                if Some(uid) != object::meta_str(&old, "uid") {
                    return Err(ApiError::conflict(
                        res,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            object::meta_str(&old, "uid").unwrap_or("")
                        ),
                    ));
                }
            }
            let mut new = self.merge_update(res, &old, body, part, ctx)?;
            self.confirm_rbac_write(res, namespace.unwrap_or(""), name, &new, &ctx.user)?;
            // k8s: NodeRestriction sees the object as it will be stored.
            self.admit_node_write(
                &ctx.user,
                node_admission::Operation::Update,
                res,
                part.subresource(),
                namespace.unwrap_or(""),
                name,
                Some(&old),
                Some(&new),
            )
            .await?;
            if (res.group, res.plural) == ("scheduling.k8s.io", "priorityclasses")
                && old["globalDefault"] != json!(true)
            {
                self.admit_priority_class(res, object::name(&old), &new)
                    .await?;
            }
            let (reserved, freed) = if is_services(res) && part == Part::Main {
                self.allocate_service(name, &mut new, Some(&old), ctx)
                    .await?
            } else {
                Default::default()
            };
            let bytes = encode(&new);
            // k8s: a no-op update writes nothing. (Stored values are `encode`d, so the stored
            // bytes stand for `old`.)
            if bytes == kv.value {
                self.release_service(&reserved);
                return Ok(old);
            }
            if ctx.dry_run {
                self.release_service(&reserved);
                object::meta_mut(&mut new)
                    .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                return Ok(Arc::new(new));
            }
            // k8s: removing the last finalizer of a deleting object deletes it.
            if object::is_deleting(&new)
                && object::finalizers(&new).is_empty()
                && self.graceful_done(res, &new)
            {
                let deleted = self.store.delete(&key, Some(kv.mod_revision)).await;
                if deleted.is_ok() {
                    self.service_deleted(res, &old);
                }
                self.release_service(&reserved);
                return match deleted {
                    Ok(d) => {
                        self.forget(&key);
                        object::meta_mut(&mut new)
                            .insert("resourceVersion".into(), json!(d.revision.to_string()));
                        Ok(Arc::new(new))
                    }
                    Err(StoreError::Conflict { .. }) if wanted_rv.is_none() => {
                        body = new;
                        continue;
                    }
                    Err(e) => Err(ApiError::from_store(res, name, e)),
                };
            }
            match self.store.update(&key, bytes, Some(kv.mod_revision)).await {
                Ok(rev) => {
                    self.release_service(&freed);
                    object::meta_mut(&mut new)
                        .insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok(self.wrote(&key, rev, new));
                }
                Err(StoreError::Conflict { .. }) if wanted_rv.is_none() => {
                    self.release_service(&reserved);
                    body = new;
                }
                Err(e) => {
                    self.release_service(&reserved);
                    return Err(ApiError::from_store(res, name, e));
                }
            }
        }
        Err(ApiError::conflict(
            res,
            name,
            "too many concurrent writers; try again",
        ))
    }

    /// What else holds a deleting object: a pod's unfinished grace period, a namespace's
    /// `spec.finalizers`.
    fn graceful_done(&self, res: &ResourceInfo, obj: &Value) -> bool {
        match (res.group, res.plural) {
            ("", "pods") => object::meta(obj)
                .and_then(|m| m.get("deletionGracePeriodSeconds"))
                .and_then(Value::as_i64)
                .is_none_or(|g| g == 0),
            ("", "namespaces") => spec_finalizers(obj).is_empty(),
            _ => true,
        }
    }

    /// The object an update stores: server-managed metadata from `old`, the part being
    /// written from `new`, defaults, validation, and the generation rule.
    fn merge_update(
        &self,
        res: &ResourceInfo,
        old: &Value,
        mut new: Value,
        part: Part,
        _ctx: &RequestContext,
    ) -> Result<Value, ApiError> {
        let name = object::name(old).to_string();
        let mut merged = match part {
            Part::Main => {
                let mut m = new;
                if strategy::has_status(res) {
                    match old.get("status") {
                        Some(s) => m["status"] = s.clone(),
                        None => {
                            if let Some(o) = m.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                m
            }
            Part::Finalize => {
                let mut m = old.clone();
                m["spec"]["finalizers"] = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                m
            }
            Part::Status => {
                // Everything but the status is old's; the old status is not copied.
                let mut m: serde_json::Map<String, Value> = old
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(s) = new.as_object_mut().and_then(|o| o.remove("status")) {
                    m.insert("status".into(), s);
                }
                let mut m = Value::Object(m);
                if strategy::status_keeps_annotations(res) {
                    match new.pointer("/metadata/annotations") {
                        Some(a) => m["metadata"]["annotations"] = a.clone(),
                        None => {
                            if let Some(meta) = m["metadata"].as_object_mut() {
                                meta.remove("annotations");
                            }
                        }
                    }
                }
                m
            }
        };
        let no_meta = serde_json::Map::new();
        let old_meta = object::meta(old).unwrap_or(&no_meta);
        let meta = object::meta_mut(&mut merged);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("resourceVersion");
        let mut errs = Vec::new();
        if old_meta.contains_key("deletionTimestamp") {
            let before = object::finalizers(old);
            let added: Vec<String> = object::finalizers(&merged)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                ));
            }
        }
        // Metadata that is the stored metadata was checked when it was stored (k8s: a status
        // update keeps it; a lease renewal or a spec change resends it as it was).
        if part != Part::Status && !same_metadata(&merged, old) {
            errs.extend(object_meta_errors(res, &merged)?);
        }
        let status_only = match part {
            Part::Status => strategy::status_update(res, &mut merged),
            _ => None,
        };
        match status_only {
            Some(status_errs) => errs.extend(status_errs?),
            None => errs.extend(strategy::default_and_validate(res, &mut merged, Some(old))?),
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(res, &name, errs));
        }
        if part == Part::Main
            && strategy::tracks_generation(res)
            && merged.get("spec") != old.get("spec")
        {
            let g = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            object::meta_mut(&mut merged).insert("generation".into(), json!(g + 1));
        }
        Ok(merged)
    }

    /// Deletes an object, or starts its deletion: graceful for pods on a node, and held by
    /// finalizers. Returns the object as it is afterwards (with `deletionTimestamp` if it stays).
    pub async fn delete(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        ctx: &RequestContext,
    ) -> Result<Arc<Value>, ApiError> {
        let key = key(res, namespace, name)?;
        for _ in 0..RETRIES {
            let (obj, kv) = self.read(res, &key, name).await?;
            self.admit_node_write(
                &ctx.user,
                node_admission::Operation::Delete,
                res,
                "",
                namespace.unwrap_or(""),
                name,
                Some(&obj),
                None,
            )
            .await?;
            let mut obj = Arc::unwrap_or_clone(obj);
            let uid = object::meta_str(&obj, "uid").unwrap_or("").to_string();
            if let Some(want) = opts.precondition_uid.as_deref().filter(|u| *u != uid) {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                ));
            }
            if let Some(want) = opts
                .precondition_resource_version
                .as_deref()
                .filter(|r| *r != kv.mod_revision.to_string())
            {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let grace = self.grace_period(res, &obj, opts);
            let finalizers = gc_finalizers(res, name, object::finalizers(&obj), opts)?;
            let is_namespace = res.group.is_empty() && res.plural == "namespaces";
            let stays = grace > 0
                || !finalizers.is_empty()
                || (is_namespace && !spec_finalizers(&obj).is_empty());
            if !stays {
                if ctx.dry_run {
                    return Ok(Arc::new(obj));
                }
                return match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(d) => {
                        self.forget(&key);
                        self.service_deleted(res, &obj);
                        object::meta_mut(&mut obj)
                            .insert("resourceVersion".into(), json!(d.revision.to_string()));
                        Ok(Arc::new(obj))
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => Err(ApiError::from_store(res, name, e)),
                };
            }
            // Start (or shorten) the graceful deletion.
            let deadline = Timestamp::from_second(ctx.now.as_second() + grace).unwrap_or(ctx.now);
            let was_deleting = object::is_deleting(&obj);
            let meta = object::meta_mut(&mut obj);
            let current_grace = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !was_deleting || current_grace.is_some_and(|g| grace < g) {
                meta.insert("deletionTimestamp".into(), object::timestamp(deadline));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if finalizers.is_empty() {
                meta.remove("finalizers");
            } else {
                meta.insert("finalizers".into(), json!(finalizers));
            }
            if is_namespace {
                // k8s: a deleting namespace is Terminating until the namespace controller is done.
                obj["status"]["phase"] = json!("Terminating");
            }
            let meta = object::meta_mut(&mut obj);
            // k8s: generation is bumped once when deletion starts.
            if !was_deleting {
                if let Some(g) = meta
                    .get("generation")
                    .and_then(Value::as_i64)
                    .filter(|g| *g > 0)
                {
                    meta.insert("generation".into(), json!(g + 1));
                }
            }
            meta.remove("resourceVersion");
            if ctx.dry_run || encode(&obj) == kv.value.as_ref() {
                object::meta_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                return Ok(Arc::new(obj));
            }
            match self
                .store
                .update(&key, encode(&obj), Some(kv.mod_revision))
                .await
            {
                Ok(rev) => {
                    object::meta_mut(&mut obj)
                        .insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok(self.wrote(&key, rev, obj));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(res, name, e)),
            }
        }
        Err(ApiError::conflict(
            res,
            name,
            "too many concurrent writers; try again",
        ))
    }

    /// k8s: pods on a node that have not finished get a grace period (the request's, else the
    /// pod's terminationGracePeriodSeconds); everything else goes at once.
    fn grace_period(&self, res: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if !(res.group.is_empty() && res.plural == "pods") {
            return 0;
        }
        let bound = object::field_string(obj, "spec.nodeName").is_some_and(|n| !n.is_empty());
        let phase = object::field_string(obj, "status.phase").unwrap_or_default();
        if !bound || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        opts.grace_period_seconds
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    }

    /// pods/binding: assigns a pod to a node, once.
    pub async fn bind(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        ctx: &RequestContext,
    ) -> Result<Arc<Value>, ApiError> {
        let res = pods();
        if node.is_empty() {
            return Err(ApiError::invalid(
                res,
                name,
                vec![FieldError::required("target.name")],
            ));
        }
        let key = key(res, Some(namespace), name)?;
        for _ in 0..RETRIES {
            let (pod, kv) = self.read(res, &key, name).await?;
            let mut pod = Arc::unwrap_or_clone(pod);
            if object::is_deleting(&pod) {
                return Err(ApiError::conflict(
                    res,
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(current) =
                object::field_string(&pod, "spec.nodeName").filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!("pod {name} is already assigned to node \"{current}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            // k8s: binding also records PodScheduled=True.
            let status = pod
                .as_object_mut()
                .expect("object")
                .entry("status")
                .or_insert_with(|| json!({}));
            let conditions = status
                .as_object_mut()
                .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
            if let Some(Value::Array(list)) = conditions {
                list.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                list.push(json!({
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": null,
                    "lastTransitionTime": object::timestamp(ctx.now),
                }));
            }
            if ctx.dry_run {
                return Ok(Arc::new(pod));
            }
            object::meta_mut(&mut pod).remove("resourceVersion");
            match self
                .store
                .update(&key, encode(&pod), Some(kv.mod_revision))
                .await
            {
                Ok(rev) => {
                    object::meta_mut(&mut pod)
                        .insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok(self.wrote(&key, rev, pod));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(res, name, e)),
            }
        }
        Err(ApiError::conflict(
            res,
            name,
            "too many concurrent writers; try again",
        ))
    }
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "server"))]
mod token_tests;
