//! The informer cache: a component's local copy of one resource, kept by list + watch.
//!
//! Components read only their caches and write through the API; their writes come back as
//! watch events. Keys are client-go's `namespace/name` (just `name` when cluster-scoped), and
//! a `BTreeMap` keeps every iteration in key order, so what a core does never depends on hash
//! order. A relist (after a broken or expired watch) replaces the contents and reports the
//! differences as changes, so handlers see every object that appeared, changed or vanished.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::apiserver::{ApiEvent, EventType};
use crate::component::Input;
use crate::store::Revision;

/// One change the cache applied: `old` absent for a new object, `new` absent for a deleted one.
/// Objects are shared with the cache, not copied.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<T> {
    pub key: String,
    pub old: Option<Arc<T>>,
    pub new: Option<Arc<T>>,
}

/// `namespace/name`, or `name` for cluster-scoped objects (client-go MetaNamespaceKeyFunc).
pub fn object_key(obj: &Value) -> String {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    match meta["namespace"].as_str().filter(|n| !n.is_empty()) {
        Some(ns) => {
            let mut key = String::with_capacity(ns.len() + 1 + name.len());
            key.push_str(ns);
            key.push('/');
            key.push_str(name);
            key
        }
        None => name.to_string(),
    }
}

#[derive(Debug)]
pub struct Cache<T> {
    objects: BTreeMap<String, Arc<T>>,
    /// The revision the cache reflects: resume watching after it.
    revision: Revision,
    synced: bool,
    index: Option<Index<T>>,
}

/// A secondary index (client-go's Indexer): object keys grouped by a value computed from each
/// object, so a component finds "the pods of this node" without a pass over every pod.
#[derive(Debug)]
struct Index<T> {
    of: fn(&T) -> String,
    keys: BTreeMap<String, BTreeSet<String>>,
}

impl<T> Index<T> {
    fn update(&mut self, key: &str, old: Option<&T>, new: Option<&T>) {
        let (old, new) = (old.map(self.of), new.map(self.of));
        if old == new {
            return;
        }
        if let Some(value) = old {
            if let Some(keys) = self.keys.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.keys.remove(&value);
                }
            }
        }
        if let Some(value) = new {
            self.keys.entry(value).or_default().insert(key.to_string());
        }
    }
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            objects: BTreeMap::new(),
            revision: 0,
            synced: false,
            index: None,
        }
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Cache<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache that also groups its objects by `of(object)` (see `indexed`).
    pub fn with_index(of: fn(&T) -> String) -> Self {
        Cache {
            index: Some(Index {
                of,
                keys: BTreeMap::new(),
            }),
            ..Self::default()
        }
    }

    fn decode(obj: &Value) -> Result<T, String> {
        // Deserializing from a borrowed Value copies only what T keeps.
        T::deserialize(obj).map_err(|e| format!("cannot decode {}: {e}", object_key(obj)))
    }

    /// Applies one watch event.
    pub fn apply(&mut self, ev: &ApiEvent) -> Result<Change<T>, String> {
        let key = ev
            .decoded
            .key_or_init(|| object_key(&ev.object))
            .to_string();
        self.revision = self.revision.max(ev.revision);
        let change = match ev.type_ {
            EventType::Added | EventType::Modified => {
                let new = ev
                    .decoded
                    .get_or_decode::<T>(&ev.object)
                    .map_err(|e| format!("cannot decode {key}: {e}"))?;
                let old = self.objects.insert(key.clone(), new.clone());
                if let Some(index) = &mut self.index {
                    index.update(&key, old.as_deref(), Some(&new));
                }
                Change {
                    key,
                    old,
                    new: Some(new),
                }
            }
            EventType::Deleted => {
                let old = self.objects.remove(&key);
                if let Some(index) = &mut self.index {
                    index.update(&key, old.as_deref(), None);
                }
                Change {
                    key,
                    old,
                    new: None,
                }
            }
        };
        Ok(change)
    }

    /// Replaces everything with a fresh list read at `revision`; returns what differs.
    pub fn replace(&mut self, items: &[Value], revision: Revision) -> Result<Vec<Change<T>>, String>
    where
        T: PartialEq,
    {
        let mut fresh = BTreeMap::new();
        for obj in items {
            fresh.insert(object_key(obj), Arc::new(Self::decode(obj)?));
        }
        let mut changes = Vec::new();
        for (key, old) in &self.objects {
            if !fresh.contains_key(key) {
                changes.push(Change {
                    key: key.clone(),
                    old: Some(old.clone()),
                    new: None,
                });
            }
        }
        for (key, new) in &fresh {
            let old = self.objects.get(key);
            if old != Some(new) {
                changes.push(Change {
                    key: key.clone(),
                    old: old.cloned(),
                    new: Some(new.clone()),
                });
            }
        }
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(index) = &mut self.index {
            for c in &changes {
                index.update(&c.key, c.old.as_deref(), c.new.as_deref());
            }
        }
        self.objects = fresh;
        self.revision = revision;
        self.synced = true;
        Ok(changes)
    }

    /// Applies a list or watch input if it is about `resource`: the informer step every
    /// component repeats. `None` when the input is for something else.
    pub fn feed(&mut self, resource: &ResourceInfo, input: &Input) -> Option<Vec<Change<T>>>
    where
        T: PartialEq,
    {
        match input {
            Input::Listed {
                resource: r,
                items,
                revision,
            } if *r == resource => self.replace(items, *revision).ok(),
            Input::Watched { resource: r, event } if *r == resource => {
                self.apply(event).ok().map(|c| vec![c])
            }
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.objects.get(key).map(|o| &**o)
    }

    /// The object, shared (no copy).
    pub fn get_shared(&self, key: &str) -> Option<Arc<T>> {
        self.objects.get(key).cloned()
    }

    /// Every object, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.objects.iter().map(|(k, o)| (k, &**o))
    }

    /// Every object, shared, in key order.
    pub fn iter_shared(&self) -> impl Iterator<Item = (&String, &Arc<T>)> {
        self.objects.iter()
    }

    /// The objects of one namespace, in key order.
    pub fn in_namespace<'a>(
        &'a self,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a String, &'a T)> + 'a {
        let prefix = format!("{namespace}/");
        self.objects
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, o)| (k, &**o))
    }

    /// The objects of one namespace, shared, in key order.
    pub fn in_namespace_shared<'a>(
        &'a self,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Arc<T>)> + 'a {
        let prefix = format!("{namespace}/");
        self.objects
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
    }

    /// The objects whose index value is `value`, shared, in key order (none without an index).
    pub fn indexed<'a>(
        &'a self,
        value: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Arc<T>)> + 'a {
        self.index
            .as_ref()
            .and_then(|i| i.keys.get(value))
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get_key_value(k))
    }

    /// The same, in one namespace.
    pub fn indexed_in_namespace<'a>(
        &'a self,
        value: &str,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Arc<T>)> + 'a {
        let prefix = format!("{namespace}/");
        self.index
            .as_ref()
            .and_then(|i| i.keys.get(value))
            .into_iter()
            .flat_map(move |keys| {
                let prefix = prefix.clone();
                keys.range(prefix.clone()..)
                    .take_while(move |k| k.starts_with(&prefix))
            })
            .filter_map(|k| self.objects.get_key_value(k))
    }

    /// The index values that have objects, in order.
    pub fn index_values(&self) -> impl Iterator<Item = &String> {
        self.index.iter().flat_map(|i| i.keys.keys())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// True once a first list has been loaded (client-go HasSynced).
    pub fn synced(&self) -> bool {
        self.synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(ns: &str, name: &str, image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name},
               "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn ev(type_: EventType, obj: Value, revision: Revision) -> ApiEvent {
        ApiEvent::new(type_, obj, revision)
    }

    #[test]
    fn events_update_the_cache_and_report_old_and_new() {
        let mut c: Cache<Pod> = Cache::new();
        let added = c
            .apply(&ev(EventType::Added, pod("a", "p", "x:1"), 5))
            .unwrap();
        assert_eq!(
            (added.key.as_str(), added.old.is_none(), added.new.is_some()),
            ("a/p", true, true)
        );
        let modified = c
            .apply(&ev(EventType::Modified, pod("a", "p", "x:2"), 6))
            .unwrap();
        let image = |p: &Option<std::sync::Arc<Pod>>| {
            p.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
                .image
                .clone()
        };
        assert_eq!(
            (image(&modified.old), image(&modified.new)),
            (Some("x:1".into()), Some("x:2".into()))
        );
        c.apply(&ev(EventType::Added, pod("b", "q", "y"), 7))
            .unwrap();
        c.apply(&ev(EventType::Added, pod("ab", "r", "y"), 8))
            .unwrap();
        let in_a: Vec<&String> = c.in_namespace("a").map(|(k, _)| k).collect();
        assert_eq!(in_a, vec!["a/p"], "namespace a does not include ab");
        let deleted = c
            .apply(&ev(EventType::Deleted, pod("a", "p", "x:2"), 9))
            .unwrap();
        assert!(deleted.new.is_none() && deleted.old.is_some());
        assert_eq!((c.len(), c.revision()), (2, 9));
        assert!(c
            .apply(&ev(
                EventType::Added,
                json!({"metadata": {"name": "bad"}, "spec": 5}),
                10
            ))
            .is_err());
    }

    #[test]
    fn the_index_follows_events_and_relists() {
        let image = |p: &Pod| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        };
        let mut c: Cache<Pod> = Cache::with_index(image);
        let keys = |c: &Cache<Pod>, value: &str| -> Vec<String> {
            c.indexed(value).map(|(k, _)| k.clone()).collect()
        };
        let in_ns = |c: &Cache<Pod>, value: &str, ns: &str| -> Vec<String> {
            c.indexed_in_namespace(value, ns)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for (i, (ns, name, img)) in [
            ("b", "q", "x"),
            ("a", "p", "x"),
            ("ab", "r", "x"),
            ("a", "s", "y"),
        ]
        .into_iter()
        .enumerate()
        {
            c.apply(&ev(EventType::Added, pod(ns, name, img), i as u64 + 1))
                .unwrap();
        }
        assert_eq!(keys(&c, "x"), ["a/p", "ab/r", "b/q"], "in key order");
        assert_eq!(
            in_ns(&c, "x", "a"),
            ["a/p"],
            "namespace a does not include ab"
        );
        assert_eq!(c.index_values().collect::<Vec<_>>(), ["x", "y"]);
        // A change of the indexed value moves the object; a deletion removes it.
        c.apply(&ev(EventType::Modified, pod("a", "p", "y"), 5))
            .unwrap();
        c.apply(&ev(EventType::Deleted, pod("b", "q", "x"), 6))
            .unwrap();
        assert_eq!(keys(&c, "x"), ["ab/r"]);
        assert_eq!(keys(&c, "y"), ["a/p", "a/s"]);
        // A relist: what vanished leaves the index, what appeared or changed enters it.
        c.replace(
            &[pod("a", "p", "y"), pod("ab", "r", "z"), pod("c", "t", "x")],
            9,
        )
        .unwrap();
        assert_eq!(keys(&c, "x"), ["c/t"]);
        assert_eq!(keys(&c, "y"), ["a/p"]);
        assert_eq!(keys(&c, "z"), ["ab/r"]);
        assert_eq!(c.index_values().collect::<Vec<_>>(), ["x", "y", "z"]);
        // Without an index nothing is indexed.
        let plain: Cache<Pod> = Cache::new();
        assert_eq!(plain.indexed("x").count(), 0);
    }

    #[test]
    fn a_relist_reports_what_appeared_changed_and_vanished() {
        let mut c: Cache<Pod> = Cache::new();
        for (name, rev) in [("gone", 2), ("same", 3), ("changed", 4)] {
            c.apply(&ev(EventType::Added, pod("ns", name, "v1"), rev))
                .unwrap();
        }
        let changes = c
            .replace(
                &[
                    pod("ns", "same", "v1"),
                    pod("ns", "changed", "v2"),
                    pod("ns", "new", "v1"),
                ],
                20,
            )
            .unwrap();
        let summary: Vec<(&str, bool, bool)> = changes
            .iter()
            .map(|ch| (ch.key.as_str(), ch.old.is_some(), ch.new.is_some()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("ns/changed", true, true),
                ("ns/gone", true, false),
                ("ns/new", false, true)
            ]
        );
        assert!(c.synced());
        assert_eq!((c.len(), c.revision()), (3, 20));
    }
}
