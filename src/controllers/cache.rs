//! The informer cache: a component's local copy of one resource, kept by list + watch.
//!
//! Components read only their caches and write through the API; their writes come back as
//! watch events. Keys are client-go's `namespace/name` (just `name` when cluster-scoped), and
//! a `BTreeMap` keeps every iteration in key order, so what a core does never depends on hash
//! order. A relist (after a broken or expired watch) replaces the contents and reports the
//! differences as changes, so handlers see every object that appeared, changed or vanished.

use std::collections::BTreeMap;
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
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[derive(Debug)]
pub struct Cache<T> {
    objects: BTreeMap<String, Arc<T>>,
    /// The revision the cache reflects: resume watching after it.
    revision: Revision,
    synced: bool,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            objects: BTreeMap::new(),
            revision: 0,
            synced: false,
        }
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Cache<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn decode(obj: &Value) -> Result<T, String> {
        // Deserializing from a borrowed Value copies only what T keeps.
        T::deserialize(obj).map_err(|e| format!("cannot decode {}: {e}", object_key(obj)))
    }

    /// Applies one watch event.
    pub fn apply(&mut self, ev: &ApiEvent) -> Result<Change<T>, String> {
        let key = object_key(&ev.object);
        self.revision = self.revision.max(ev.revision);
        let change = match ev.type_ {
            EventType::Added | EventType::Modified => {
                let new = ev
                    .decoded
                    .get_or_decode::<T>(&ev.object)
                    .map_err(|e| format!("cannot decode {key}: {e}"))?;
                let old = self.objects.insert(key.clone(), new.clone());
                Change {
                    key,
                    old,
                    new: Some(new),
                }
            }
            EventType::Deleted => {
                let old = self.objects.remove(&key);
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
