//! The watch cache of one resource (k8s: staging/src/k8s.io/apiserver/pkg/storage/cacher): one
//! store watch feeds it, each store event is decoded once, and every API watcher gets the
//! events that pass its filters, objects entering or leaving a filter as ADDED or DELETED. It
//! keeps the current objects (lists are served from it, as for `resourceVersion=0`) and a
//! bounded history so that a broken watch resumes; a watch from before the history's start is
//! answered 410 Expired and the client relists, as after an apiserver restart.
//!
//! Sans-IO: the host reads the store watch and hands the events to [`Cacher::apply`], which
//! returns what each watcher must be sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::watch::{ApiEvent, Decoded, EventType};
use super::{decode, object, ListOptions};
use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::store::{EventKind, Revision, WatchEvent};

/// A watcher's filters: a namespace (or all) and the list options.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub opts: ListOptions,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if object::meta_str(obj, "namespace") != Some(ns.as_str()) {
                return false;
            }
        }
        self.opts.field_selector.matches(obj)
            && (self.opts.label_selector.is_empty()
                || self.opts.label_selector.matches(&object::labels(obj)))
    }

    /// The node a `spec.nodeName=X` field selector pins the watcher to (a kubelet's pods).
    fn node(&self) -> Option<&str> {
        self.opts
            .field_selector
            .0
            .iter()
            .find(|(f, equal, _)| f == "spec.nodeName" && *equal)
            .map(|(_, _, v)| v.as_str())
    }

    /// What a watcher with this filter sees of a change from `prev` to `new`.
    fn event_type(&self, prev: Option<&Value>, new: Option<&Value>) -> Option<EventType> {
        let was = prev.is_some_and(|p| self.matches(p));
        let is = new.is_some_and(|n| self.matches(n));
        match (was, is) {
            (false, true) => Some(EventType::Added),
            (true, true) => Some(EventType::Modified),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        }
    }
}

/// One change in the history: the object before and after (absent when created or deleted),
/// and what every watcher is sent of it: the object after, or for a deletion the last state
/// with the deletion's resourceVersion.
#[derive(Clone, Debug)]
struct Change {
    revision: Revision,
    prev: Option<Arc<Value>>,
    new: Option<Arc<Value>>,
    object: Arc<Value>,
    decoded: Decoded,
}

impl Change {
    fn new(revision: Revision, prev: Option<Arc<Value>>, new: Option<Arc<Value>>) -> Self {
        let object = match (&new, &prev) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => {
                let mut last = (**p).clone();
                object::meta_mut(&mut last)
                    .insert("resourceVersion".into(), revision.to_string().into());
                Arc::new(last)
            }
            (None, None) => unreachable!("a change has an object before or after"),
        };
        Change {
            revision,
            prev,
            new,
            object,
            decoded: Decoded::default(),
        }
    }

    fn event_for(&self, filter: &Filter) -> Option<ApiEvent> {
        let type_ = filter.event_type(self.prev.as_deref(), self.new.as_deref())?;
        Some(ApiEvent {
            type_,
            object: self.object.clone(),
            revision: self.revision,
            decoded: self.decoded.clone(),
        })
    }
}

/// What one store event did: the object before and after, and the events for each watcher.
#[derive(Debug, Default)]
pub struct Applied {
    pub prev: Option<Arc<Value>>,
    pub new: Option<Arc<Value>>,
    pub events: Vec<(u64, ApiEvent)>,
}

pub struct Cacher {
    res: &'static ResourceInfo,
    /// The resource's storage prefix: a store key without it is the object's cache key.
    prefix: String,
    objects: BTreeMap<String, Arc<Value>>,
    revision: Revision,
    /// The oldest revision a watch may start after.
    floor: Revision,
    history: VecDeque<Change>,
    capacity: usize,
    watchers: BTreeMap<u64, Filter>,
    /// Watchers pinned to one node's pods, by node (k8s: the cacher's nodeName trigger), so
    /// that a change wakes only the watchers of the nodes it was or is on.
    by_node: BTreeMap<String, BTreeSet<u64>>,
    /// The other watchers.
    unpinned: BTreeSet<u64>,
}

impl Cacher {
    /// A cache initialised from a list of `res` read at `revision`, keeping the last
    /// `capacity` changes for watches that resume.
    pub fn new(
        res: &'static ResourceInfo,
        items: Vec<Value>,
        revision: Revision,
        capacity: usize,
    ) -> Self {
        let objects = items
            .into_iter()
            .map(|o| (object_key(&o), Arc::new(o)))
            .collect();
        Cacher {
            res,
            prefix: res.storage_prefix(),
            objects,
            revision,
            floor: revision,
            history: VecDeque::new(),
            capacity: capacity.max(1),
            watchers: BTreeMap::new(),
            by_node: BTreeMap::new(),
            unpinned: BTreeSet::new(),
        }
    }

    pub fn resource(&self) -> &'static ResourceInfo {
        self.res
    }

    /// The revision of the last change applied.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<&Value> {
        let key = match namespace {
            Some(ns) if self.res.namespaced => format!("{ns}/{name}"),
            _ => name.to_string(),
        };
        self.objects.get(&key).map(|o| &**o)
    }

    /// Every object, in namespace/name order.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.objects.values().map(|o| &**o)
    }

    /// The objects passing `filter`, and the revision they are current at.
    pub fn list(&self, filter: &Filter) -> (Vec<Value>, Revision) {
        let matching = |o: &&Arc<Value>| filter.matches(o);
        let items = match filter.namespace.as_deref().filter(|_| self.res.namespaced) {
            // Keys are `namespace/name`: one namespace is one range of them.
            Some(ns) => {
                let prefix = format!("{ns}/");
                self.objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, o)| o)
                    .filter(matching)
                    .map(|o| (**o).clone())
                    .collect()
            }
            None => self
                .objects
                .values()
                .filter(matching)
                .map(|o| (**o).clone())
                .collect(),
        };
        (items, self.revision)
    }

    /// Registers watcher `id` for the changes after `after`; returns the changes it missed.
    /// `after` older than the history → 410 Expired (the client relists).
    pub fn watch(
        &mut self,
        id: u64,
        filter: Filter,
        after: Revision,
    ) -> Result<Vec<ApiEvent>, ApiError> {
        if after < self.floor {
            return Err(ApiError::expired(format!(
                "too old resource version: {after} ({})",
                self.floor
            )));
        }
        let missed = self
            .history
            .iter()
            .filter(|c| c.revision > after)
            .filter_map(|c| c.event_for(&filter))
            .collect();
        self.unwatch(id);
        match filter.node().filter(|_| self.res.plural == "pods") {
            Some(node) => {
                self.by_node.entry(node.to_string()).or_default().insert(id);
            }
            None => {
                self.unpinned.insert(id);
            }
        }
        self.watchers.insert(id, filter);
        Ok(missed)
    }

    pub fn unwatch(&mut self, id: u64) {
        self.unpinned.remove(&id);
        if let Some(f) = self.watchers.remove(&id) {
            if let Some(node) = f.node() {
                if let Some(set) = self.by_node.get_mut(node) {
                    set.remove(&id);
                }
            }
        }
    }

    /// The apiserver restarted: every watch is gone and the new cache starts from a fresh list
    /// at the store's current `revision`, so watches from before it are Expired.
    pub fn restart(&mut self, revision: Revision) {
        self.watchers.clear();
        self.by_node.clear();
        self.unpinned.clear();
        self.history.clear();
        self.revision = self.revision.max(revision);
        self.floor = self.revision;
    }

    pub fn watchers(&self) -> impl Iterator<Item = u64> + '_ {
        self.watchers.keys().copied()
    }

    /// Applies one event of the store watch.
    pub fn apply(&mut self, ev: &WatchEvent) -> Result<Applied, ApiError> {
        self.apply_decoded(ev, None)
    }

    /// Applies one event of the store watch whose object the caller may already hold decoded
    /// (the apiserver that wrote it: `ApiServer::decoded`), so that it is not decoded twice.
    pub fn apply_decoded(
        &mut self,
        ev: &WatchEvent,
        decoded: Option<Arc<Value>>,
    ) -> Result<Applied, ApiError> {
        let revision = ev.revision();
        let decode_event = || decode(&ev.kv.value, revision).map(Arc::new);
        let key = match ev.kv.key.strip_prefix(self.prefix.as_str()) {
            Some(key) => key.to_string(),
            None => object_key(&*decode_event()?),
        };
        let (prev, new) = match ev.kind {
            EventKind::Added | EventKind::Modified => {
                let new = match decoded {
                    Some(obj) => obj,
                    None => decode_event()?,
                };
                (self.objects.insert(key, new.clone()), Some(new))
            }
            EventKind::Deleted => {
                let prev = match self.objects.remove(&key) {
                    Some(obj) => obj,
                    None => decode_event()?,
                };
                (Some(prev), None)
            }
        };
        self.revision = revision;
        let change = Change::new(revision, prev.clone(), new.clone());
        // Watchers pinned to other nodes cannot see this change.
        // (An absent object or nodeName is node "": the watchers of unbound pods.)
        let pinned = |o: &Option<Arc<Value>>| {
            if self.by_node.is_empty() {
                return None;
            }
            let node = o.as_ref().and_then(|o| o["spec"]["nodeName"].as_str());
            self.by_node.get(node.unwrap_or(""))
        };
        let event = |id: &u64| change.event_for(&self.watchers[id]).map(|e| (*id, e));
        let events: Vec<(u64, ApiEvent)> = match (pinned(&prev), pinned(&new)) {
            // Most changes wake no pinned watcher: the unpinned ones in id order.
            (None, None) => self.unpinned.iter().filter_map(event).collect(),
            (a, b) => {
                // In id order, each watcher once, as the set union they were taken from.
                let mut ids: Vec<u64> = self.unpinned.iter().copied().collect();
                ids.extend(a.into_iter().chain(b).flatten().copied());
                ids.sort_unstable();
                ids.dedup();
                ids.iter().filter_map(event).collect()
            }
        };
        self.history.push_back(change);
        while self.history.len() > self.capacity {
            let old = self.history.pop_front().expect("not empty");
            self.floor = old.revision;
        }
        Ok(Applied { prev, new, events })
    }
}

fn object_key(obj: &Value) -> String {
    let name = object::name(obj);
    match object::meta_str(obj, "namespace") {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry;
    use crate::api::selector::Selector;
    use crate::store::KeyValue;
    use bytes::Bytes;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        registry::by_plural("", "pods").unwrap()
    }

    fn pod(name: &str, node: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
               "spec": {"nodeName": node}})
    }

    fn event(kind: EventKind, obj: &Value, rev: Revision) -> WatchEvent {
        WatchEvent {
            kind,
            kv: KeyValue {
                key: pods().storage_key(Some("default"), obj["metadata"]["name"].as_str().unwrap()),
                value: Bytes::from(serde_json::to_vec(obj).unwrap()),
                create_revision: 1,
                mod_revision: rev,
            },
            prev_value: None,
        }
    }

    fn on_node(node: &str) -> Filter {
        Filter {
            namespace: None,
            opts: ListOptions {
                field_selector: super::super::FieldSelector::parse(
                    pods(),
                    &format!("spec.nodeName={node}"),
                )
                .unwrap(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn watchers_see_objects_enter_and_leave_their_filter() {
        let mut c = Cacher::new(pods(), vec![], 1, 100);
        c.watch(1, on_node("n1"), 1).unwrap();
        c.watch(2, Filter::default(), 1).unwrap();
        type Seen<'a> = &'a [(u64, EventType)];
        let cases: [(EventKind, Value, Seen); 4] = [
            (
                EventKind::Added,
                pod("a", "", "web"),
                &[(2, EventType::Added)],
            ),
            (
                EventKind::Modified,
                pod("a", "n1", "web"),
                &[(1, EventType::Added), (2, EventType::Modified)],
            ),
            (
                EventKind::Modified,
                pod("a", "n2", "web"),
                &[(1, EventType::Deleted), (2, EventType::Modified)],
            ),
            (
                EventKind::Deleted,
                pod("a", "n2", "web"),
                &[(2, EventType::Deleted)],
            ),
        ];
        for (i, (kind, obj, want)) in cases.into_iter().enumerate() {
            let rev = 2 + i as u64;
            let applied = c.apply(&event(kind, &obj, rev)).unwrap();
            let got: Vec<(u64, EventType)> = applied
                .events
                .iter()
                .map(|(id, e)| (*id, e.type_))
                .collect();
            assert_eq!(got, want, "step {i}");
            for (_, e) in &applied.events {
                assert_eq!(e.revision, rev);
                assert_eq!(e.object["metadata"]["resourceVersion"], rev.to_string());
            }
        }
        assert_eq!(c.revision(), 5);
        assert!(c.get(Some("default"), "a").is_none());
    }

    #[test]
    fn a_watch_resumes_from_history_and_expires_before_it() {
        let mut c = Cacher::new(pods(), vec![pod("x", "n1", "db")], 10, 2);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            c.apply(&event(
                EventKind::Added,
                &pod(name, "n1", "web"),
                11 + i as u64,
            ))
            .unwrap();
        }
        // History holds revisions 12 and 13: a watch after 11 resumes, one after 10 is too old.
        let web = Filter {
            namespace: Some("default".into()),
            opts: ListOptions {
                label_selector: Selector::parse("app=web").unwrap(),
                ..Default::default()
            },
        };
        let missed = c.watch(1, web.clone(), 11).unwrap();
        let names: Vec<&str> = missed
            .iter()
            .map(|e| e.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "c"]);
        let err = c.watch(2, web.clone(), 10).unwrap_err();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert_eq!(c.list(&web).0.len(), 3);
        assert_eq!(c.list(&Filter::default()).0.len(), 4);
        assert_eq!(c.list(&on_node("n2")).0.len(), 0);
    }

    #[test]
    fn objects_decoded_by_the_writer_are_shared_and_deletes_need_no_decoding() {
        let mut c = Cacher::new(pods(), vec![], 1, 100);
        c.watch(1, Filter::default(), 1).unwrap();
        // The writer's object is taken as it is, not decoded again.
        let mut written = pod("a", "n1", "web");
        written["metadata"]["resourceVersion"] = json!("2");
        let written = Arc::new(written);
        let applied = c
            .apply_decoded(
                &event(EventKind::Added, &pod("a", "n1", "web"), 2),
                Some(written.clone()),
            )
            .unwrap();
        assert!(Arc::ptr_eq(applied.new.as_ref().unwrap(), &written));
        assert!(Arc::ptr_eq(&applied.events[0].1.object, &written));
        assert_eq!(c.get(Some("default"), "a"), Some(&*written));
        // A delete of a cached object reports the cached object; its bytes are not read.
        let mut gone = event(EventKind::Deleted, &pod("a", "n1", "web"), 3);
        gone.kv.value = Bytes::from_static(b"not json");
        let applied = c.apply(&gone).unwrap();
        assert!(Arc::ptr_eq(applied.prev.as_ref().unwrap(), &written));
        assert_eq!(applied.events[0].1.type_, EventType::Deleted);
        assert_eq!(c.get(Some("default"), "a"), None);
        // Without a cached object the bytes must decode.
        let mut unknown = event(EventKind::Deleted, &pod("b", "n1", "web"), 4);
        unknown.kv.value = Bytes::from_static(b"not json");
        assert!(c.apply(&unknown).is_err());
        let mut bad = event(EventKind::Added, &pod("c", "n1", "web"), 5);
        bad.kv.value = Bytes::from_static(b"not json");
        assert!(c.apply(&bad).is_err());
    }
}
