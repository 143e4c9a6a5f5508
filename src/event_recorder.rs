//! Kubernetes Events for the cores: a component emits `Effect::Event`, and `Recording` (a
//! wrapper every host puts around its components) turns it into Event objects the way
//! client-go's recorder does — spam filtered, similar events aggregated, repeats counted on
//! one object.
//!
//! k8s: client-go tools/record (event.go, events_cache.go): EventSourceObjectSpamFilter
//! (a token bucket of 25, refilled one per 5 minutes, per source, object, type and reason),
//! EventAggregator (more than 10 similar events with different messages in 10 minutes are
//! combined), EventLogger (an identical event raises the count and lastTimestamp of the one
//! before it). Events are named `<object>.<unix nanos in hex>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rand::RngCore;
use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::Part;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: defaultSpamBurst, defaultSpamQPS (1/300)
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);
/// k8s: defaultAggregateMaxEvents, defaultAggregateIntervalInSeconds
const AGGREGATE_MAX: usize = 10;
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// k8s: maxLruCacheEntries — how many keys each cache remembers.
const CACHE_ENTRIES: usize = 4096;
/// Request ids of the recorder's own writes; the wrapped component's stay below.
const OWN_IDS: u64 = 1 << 63;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// A reference to an object for `Effect::Event` (k8s: ref.GetReference).
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// The event for `object` (k8s: recorder.Eventf).
pub fn event(
    involved: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Effect {
    Effect::Event {
        involved: Box::new(involved),
        type_,
        reason,
        message,
    }
}

fn events() -> &'static ResourceInfo {
    registry::by_plural("", "events").expect("registered")
}

struct Bucket {
    tokens: f64,
    at: Time,
}

/// What the recorder remembers of an event it wrote, to count its repeats: the fields its
/// body is made of (the body itself, a tree of maps, is made again for each write; keeping
/// only the fields holds a small part of the memory for the hour an Event lives).
struct Written {
    name: String,
    namespace: String,
    involved: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
    first: Value,
    last: Value,
    count: i64,
}

struct Similar {
    messages: BTreeMap<String, ()>,
    since: Time,
}

/// A map that forgets its least recently used entries beyond `CACHE_ENTRIES` (k8s: the
/// recorder's LRU caches).
struct Lru<T> {
    entries: BTreeMap<String, (u64, T)>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
}

impl<T> Lru<T> {
    fn new() -> Self {
        Lru {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        let (used, _) = self.entries.get_mut(key)?;
        self.tick += 1;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, key.to_string());
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    fn insert(&mut self, key: String, value: T) {
        self.remove(&key);
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (self.tick, value));
        while self.entries.len() > CACHE_ENTRIES {
            let (_, oldest) = self.order.pop_first().expect("as many as entries");
            self.entries.remove(&oldest);
        }
    }

    fn get_or_insert_with(&mut self, key: &str, f: impl FnOnce() -> T) -> &mut T {
        if !self.entries.contains_key(key) {
            // Inserted as the most recently used: no second touch needed.
            self.insert(key.to_string(), f());
            return self.entries.get_mut(key).map(|(_, v)| v).expect("present");
        }
        self.get_mut(key).expect("present")
    }

    fn remove(&mut self, key: &str) {
        if let Some((used, _)) = self.entries.remove(key) {
            self.order.remove(&used);
        }
    }
}

/// Wraps a component: its `Effect::Event`s become Event writes; everything else passes.
pub struct Recording<C> {
    inner: C,
    component: String,
    host: Option<String>,
    spam: Lru<Bucket>,
    similar: Lru<Similar>,
    written: Lru<Written>,
    /// Outstanding writes: id → (dedup key, attempt), so a name clash is retried.
    pending: BTreeMap<u64, (String, u32)>,
    next_id: u64,
    /// The last name timestamp handed out (kept strictly rising, as real clocks are).
    last_stamp: u64,
    buf: Vec<Effect>,
}

impl<C: Component> Recording<C> {
    pub fn new(inner: C) -> Self {
        // k8s: the kubelet reports as component "kubelet" with its node as the host.
        let name = inner.name().to_string();
        let (component, host) = match name.split_once('/') {
            Some((c, h)) => (c.to_string(), Some(h.to_string())),
            None => (name, None),
        };
        Recording {
            inner,
            component,
            host,
            spam: Lru::new(),
            similar: Lru::new(),
            written: Lru::new(),
            pending: BTreeMap::new(),
            next_id: OWN_IDS,
            last_stamp: 0,
            buf: Vec::new(),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn object_key(&self, r: &ObjectReference, type_: &str, reason: &str) -> String {
        fn s(o: &Option<String>) -> &str {
            o.as_deref().unwrap_or_default()
        }
        let parts = [
            self.component.as_str(),
            s(&self.host),
            s(&r.kind),
            s(&r.namespace),
            s(&r.name),
            s(&r.uid),
            s(&r.api_version),
            type_,
            reason,
        ];
        let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                key.push('\u{1f}');
            }
            key.push_str(p);
        }
        key
    }

    /// The Event object for what the recorder remembers (k8s: makeEvent, and the copy the
    /// EventLogger updates).
    fn body(&self, w: &Written) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": w.name, "namespace": w.namespace},
            "involvedObject": w.involved,
            "reason": w.reason,
            "message": w.message,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": w.first,
            "lastTimestamp": w.last,
            "count": w.count,
            "type": w.type_,
            "eventTime": null,
            "reportingComponent": self.component,
            "reportingInstance": self.host.clone().unwrap_or_default(),
        })
    }

    /// k8s: EventSourceObjectSpamFilter — false if the event is to be dropped.
    fn allow(&mut self, key: &str, now: Time) -> bool {
        let b = self.spam.get_or_insert_with(key, || Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let refill = now.since(b.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        b.tokens = (b.tokens + refill).min(SPAM_BURST);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    /// k8s: EventAggregator — the message to record (combined once similar events pile up).
    fn aggregate(&mut self, key: &str, message: String, now: Time) -> String {
        let s = self.similar.get_or_insert_with(key, || Similar {
            messages: BTreeMap::new(),
            since: now,
        });
        if now.since(s.since) > AGGREGATE_INTERVAL {
            s.messages.clear();
            s.since = now;
        }
        s.messages.insert(message.clone(), ());
        let combined = s.messages.len() >= AGGREGATE_MAX;
        if combined {
            format!("(combined from similar events): {message}")
        } else {
            message
        }
    }

    fn record(
        &mut self,
        involved: ObjectReference,
        type_: &'static str,
        reason: &'static str,
        message: String,
        now: Time,
    ) {
        let key = self.object_key(&involved, type_, reason);
        if !self.allow(&key, now) {
            return;
        }
        let message = self.aggregate(&key, message, now);
        let mut dedup = key;
        dedup.push('\u{1f}');
        dedup.push_str(&message);
        let stamp = crate::apiserver::format_time(now);
        if let Some(w) = self.written.get_mut(&dedup) {
            // k8s: EventLogger — the same event again: one more on its count.
            w.count += 1;
            w.last = stamp;
            let w = self.written.entries.get(&dedup).map(|(_, w)| w);
            let body = self.body(w.expect("present"));
            self.write(dedup, body, false, 0);
            return;
        }
        let name = format!(
            "{}.{:x}",
            involved.name.as_deref().unwrap_or(""),
            self.stamp(now)
        );
        let namespace = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let w = Written {
            name,
            namespace,
            involved,
            type_,
            reason,
            message,
            first: stamp.clone(),
            last: stamp,
            count: 1,
        };
        let body = self.body(&w);
        self.written.insert(dedup.clone(), w);
        self.write(dedup, body, true, 0);
    }

    /// A name timestamp: the clock in nanoseconds, kept strictly rising.
    fn stamp(&mut self, now: Time) -> u64 {
        self.last_stamp = now.as_nanos().max(self.last_stamp + 1);
        self.last_stamp
    }

    fn write(&mut self, key: String, body: Value, create: bool, attempt: u32) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (key, attempt));
        let namespace = body["metadata"]["namespace"].as_str().map(String::from);
        let op = if create {
            ApiOp::Create {
                resource: events(),
                namespace,
                body,
            }
        } else {
            // k8s: the recorder patches count and lastTimestamp; an update without a
            // resourceVersion is the same write.
            ApiOp::Update {
                resource: events(),
                namespace,
                name: body["metadata"]["name"].as_str().unwrap_or("").to_string(),
                body,
                part: Part::Main,
            }
        };
        self.buf.push(Effect::Api { id, op });
    }

    fn on_result(
        &mut self,
        id: u64,
        result: &Result<Arc<Value>, crate::api::status::ApiError>,
        now: Time,
    ) {
        let Some((key, attempt)) = self.pending.remove(&id) else {
            return;
        };
        let Err(e) = result else { return };
        let Some(w) = self.written.get_mut(&key) else {
            return;
        };
        match e.code {
            // Another recorder took the name in the same nanosecond: a fresh name.
            409 if attempt < 3 && w.count == 1 => {
                let name = w.involved.name.clone().unwrap_or_default();
                let stamp = {
                    self.last_stamp = now.as_nanos().max(self.last_stamp + 1) + 1;
                    self.last_stamp
                };
                let w = self.written.get_mut(&key).expect("present");
                w.name = format!("{name}.{stamp:x}");
                let w = self.written.entries.get(&key).map(|(_, w)| w);
                let body = self.body(w.expect("present"));
                self.write(key, body, true, attempt + 1);
            }
            // The event expired (or was deleted): the next repeat starts a new one.
            404 => {
                self.written.remove(&key);
            }
            // k8s: the recorder gives up on other errors (after its retries); so do we.
            _ => {}
        }
    }
}

impl<C: Component> Component for Recording<C> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn user(&self) -> crate::auth::UserInfo {
        self.inner.user()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.inner.watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        if let Input::ApiResult { id, result } = &input {
            if *id >= OWN_IDS {
                self.on_result(*id, result, now);
                out.append(&mut self.buf);
                return;
            }
        }
        let start = out.len();
        self.inner.step(now, input, rng, out);
        if out[start..]
            .iter()
            .any(|e| matches!(e, Effect::Event { .. }))
        {
            // The events become writes; every other effect keeps its place.
            for effect in out.split_off(start) {
                match effect {
                    Effect::Event {
                        involved,
                        type_,
                        reason,
                        message,
                    } => self.record(*involved, type_, reason, message, now),
                    other => out.push(other),
                }
            }
        }
        out.append(&mut self.buf);
    }
}

/// Wraps a boxed component (the hosts' form).
pub fn recording(inner: Box<dyn Component>) -> Box<dyn Component> {
    Box::new(Recording::new(inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A component that emits the events it is given, one batch per step.
    struct Emitter {
        batches: std::collections::VecDeque<Vec<(&'static str, String)>>,
    }

    impl Component for Emitter {
        fn name(&self) -> &str {
            "kubelet/node-1"
        }
        fn user(&self) -> crate::auth::UserInfo {
            crate::auth::UserInfo::node("node-1")
        }
        fn watches(&self) -> Vec<WatchSpec> {
            Vec::new()
        }
        fn step(&mut self, _: Time, _: Input, _: &mut dyn RngCore, out: &mut Vec<Effect>) {
            out.push(Effect::Log {
                v: 4,
                message: "passes through".into(),
            });
            for (reason, message) in self.batches.pop_front().unwrap_or_default() {
                let meta = ObjectMeta {
                    name: Some("p".into()),
                    namespace: Some("ns".into()),
                    uid: Some("u1".into()),
                    ..Default::default()
                };
                out.push(event(
                    reference("v1", "Pod", &meta),
                    WARNING,
                    reason,
                    message,
                ));
            }
        }
    }

    fn run(batches: Vec<Vec<(&'static str, String)>>, every: Duration) -> Vec<ApiOp> {
        let n = batches.len();
        let mut r = Recording::new(Emitter {
            batches: batches.into(),
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut ops = Vec::new();
        let mut now = Time::from_secs(1_000_000);
        for _ in 0..n {
            let mut out = Vec::new();
            r.step(now, Input::Timer { id: 0 }, &mut rng, &mut out);
            assert!(matches!(out[0], Effect::Log { .. }), "other effects pass");
            for e in out {
                if let Effect::Api { id, op } = e {
                    assert!(id >= OWN_IDS);
                    ops.push(op);
                }
            }
            now = now + every;
        }
        ops
    }

    fn body(op: &ApiOp) -> (&'static str, &Value) {
        match op {
            ApiOp::Create { body, .. } => ("create", body),
            ApiOp::Update { body, .. } => ("update", body),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_caches_forget_the_least_recently_used() {
        let mut lru = Lru::new();
        for i in 0..CACHE_ENTRIES {
            lru.insert(format!("k{i}"), i);
        }
        assert!(lru.get_mut("k0").is_some(), "touched: now the most recent");
        lru.insert("new".into(), 0);
        assert!(lru.get_mut("k0").is_some());
        assert!(lru.get_mut("k1").is_none(), "the least recently used went");
        assert_eq!(lru.entries.len(), CACHE_ENTRIES);
        assert_eq!(lru.order.len(), CACHE_ENTRIES);
    }

    #[test]
    fn a_repeated_event_counts_up_on_one_object() {
        let ops = run(
            vec![vec![("BackOff", "again".into())]; 3],
            Duration::from_secs(10),
        );
        let writes: Vec<(&str, i64)> = ops
            .iter()
            .map(|op| {
                let (w, b) = body(op);
                (w, b["count"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(writes, vec![("create", 1), ("update", 2), ("update", 3)]);
        let (_, first) = body(&ops[0]);
        let (_, last) = body(&ops[2]);
        assert_eq!(first["metadata"]["name"], last["metadata"]["name"]);
        assert!(first["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("p."));
        assert_eq!(last["firstTimestamp"], first["firstTimestamp"]);
        assert_ne!(last["lastTimestamp"], first["lastTimestamp"]);
        // The kubelet reports as component "kubelet" from its node.
        assert_eq!(
            first["source"],
            json!({"component": "kubelet", "host": "node-1"})
        );
        assert_eq!(first["involvedObject"]["uid"], "u1");
        assert_eq!(first["metadata"]["namespace"], "ns");
    }

    #[test]
    fn similar_events_are_combined_after_ten_messages() {
        // k8s: EventAggregator — the 10th distinct message within 10 minutes is combined.
        let batches = (0..12)
            .map(|i| vec![("Unhealthy", format!("probe {i}"))])
            .collect();
        let ops = run(batches, Duration::from_secs(1));
        let messages: Vec<String> = ops
            .iter()
            .map(|op| body(op).1["message"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(messages[8], "probe 8");
        assert_eq!(messages[9], "(combined from similar events): probe 9");
        assert_eq!(messages[11], "(combined from similar events): probe 11");
    }

    #[test]
    fn a_burst_beyond_25_is_dropped_until_tokens_refill() {
        // k8s: EventSourceObjectSpamFilter — 25 at once, then one per 5 minutes.
        let ops = run(
            vec![vec![("BackOff", "x".into()); 30]],
            Duration::from_secs(1),
        );
        assert_eq!(ops.len(), 25);
        let mut batches = vec![vec![("BackOff", "x".into()); 25]];
        batches.push(vec![("BackOff", "x".into())]);
        // 300 s later one more token is there.
        let ops = run(batches, Duration::from_secs(300));
        assert_eq!(ops.len(), 26);
    }
}
