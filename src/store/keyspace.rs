//! The current keys, the revision and the watch hub: the state every in-process backend keeps,
//! and the rules that decide what a write does (shared so MemStore and EmbeddedStore cannot
//! disagree).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::hub::WatchHub;
use super::{
    EventKind, HistoryConfig, KeyValue, ListResult, Result, Revision, StoreError, WatchEvent,
    WatchReceiver,
};

/// A write as a backend receives it.
#[derive(Clone, Debug)]
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        precondition: Option<Revision>,
    },
    Delete {
        key: String,
        precondition: Option<Revision>,
    },
}

impl WriteOp {
    pub(crate) fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// What `op` does to a key whose current state is `current`, committed at `revision`: the
/// change to record, or why it must not happen (nothing is written then).
pub(crate) fn plan(
    op: &WriteOp,
    current: Option<&KeyValue>,
    revision: Revision,
) -> Result<WatchEvent> {
    let checked = |key: &str, pre: Option<Revision>| -> Result<&KeyValue> {
        let found = current.ok_or_else(|| StoreError::NotFound { key: key.into() })?;
        match pre {
            Some(expected) if expected != found.mod_revision => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual: found.mod_revision,
            }),
            _ => Ok(found),
        }
    };
    match op {
        WriteOp::Create { key, value } => match current {
            Some(_) => Err(StoreError::AlreadyExists { key: key.clone() }),
            None => Ok(WatchEvent {
                kind: EventKind::Added,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                },
                prev_value: None,
            }),
        },
        WriteOp::Update {
            key,
            value,
            precondition,
        } => {
            let found = checked(key, *precondition)?;
            Ok(WatchEvent {
                kind: EventKind::Modified,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: found.create_revision,
                    mod_revision: revision,
                },
                prev_value: Some(found.value.clone()),
            })
        }
        WriteOp::Delete { key, precondition } => {
            let found = checked(key, *precondition)?;
            Ok(WatchEvent {
                kind: EventKind::Deleted,
                kv: KeyValue {
                    mod_revision: revision,
                    ..found.clone()
                },
                prev_value: Some(found.value.clone()),
            })
        }
    }
}

pub(crate) struct Keyspace {
    data: BTreeMap<String, KeyValue>,
    revision: Revision,
    hub: WatchHub,
}

impl Keyspace {
    pub(crate) fn new(config: HistoryConfig, revision: Revision, compacted: Revision) -> Self {
        Keyspace {
            data: BTreeMap::new(),
            revision,
            hub: WatchHub::new(config, compacted),
        }
    }

    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    pub(crate) fn hub(&mut self) -> &mut WatchHub {
        &mut self.hub
    }

    /// Loads a key without recording a change (reopening a durable store).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn restore_key(&mut self, kv: KeyValue) {
        self.data.insert(kv.key.clone(), kv);
    }

    /// Makes a planned change visible: the key, the revision, and every matching watcher.
    pub(crate) fn apply(&mut self, event: WatchEvent) {
        debug_assert!(event.revision() > self.revision);
        self.revision = event.revision();
        match event.kind {
            EventKind::Deleted => {
                self.data.remove(&event.kv.key);
            }
            EventKind::Added | EventKind::Modified => {
                self.data.insert(event.kv.key.clone(), event.kv.clone());
            }
        }
        self.hub.publish(event);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&KeyValue> {
        self.data.get(key)
    }

    pub(crate) fn list(&self, prefix: &str) -> ListResult {
        let items = self
            .data
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        ListResult {
            items,
            revision: self.revision,
        }
    }

    pub(crate) fn watch(&mut self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        let current = self.revision;
        self.hub.watch(prefix, after, current)
    }

    /// Checks a compaction request against the current revision.
    pub(crate) fn check_compact(&self, revision: Revision) -> Result<()> {
        if revision > self.revision {
            return Err(StoreError::Invalid(format!(
                "cannot compact at revision {revision}: the current revision is {}",
                self.revision
            )));
        }
        Ok(())
    }
}
