//! MemStore: the in-memory, deterministic backend the simulator runs on.
//!
//! No threads, no clock: every future it returns is already complete, so a single-threaded
//! event loop drives it with `now_or_never`. Faults are first-class: the simulator can make the
//! next operations fail or time out (optionally after applying them, as a real timed-out write
//! may have been), pause the store (an outage), and drop every watch.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::hub::WatchHub;
use super::{
    Deleted, EventKind, HistoryConfig, KeyValue, ListResult, Result, Revision, Store, StoreError,
    Watch, WatchEvent,
};

const ENDPOINT: &str = "memory";

#[derive(Default)]
struct Faults {
    fail_next: u64,
    timeout_next: u64,
    timeout_applies: bool,
    paused: bool,
}

struct Inner {
    data: BTreeMap<String, KeyValue>,
    revision: Revision,
    hub: WatchHub,
    faults: Faults,
}

/// What a fault hook decided for one operation.
enum Verdict {
    Proceed,
    Fail(StoreError),
    /// Carry the operation out, then report a timeout.
    ApplyThenTimeout,
}

pub struct MemStore {
    inner: Mutex<Inner>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new(HistoryConfig::default())
    }
}

impl MemStore {
    pub fn new(config: HistoryConfig) -> Self {
        MemStore {
            inner: Mutex::new(Inner {
                data: BTreeMap::new(),
                revision: 1,
                hub: WatchHub::new(config, 0),
                faults: Faults::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` operations fail with `Unavailable` and change nothing.
    pub fn fail_next(&self, n: u64) {
        self.lock().faults.fail_next = n;
    }

    /// The next `n` operations answer `Timeout`. With `applied`, writes among them are carried
    /// out first (the client cannot tell which happened, as with a real store).
    pub fn timeout_next(&self, n: u64, applied: bool) {
        let mut inner = self.lock();
        inner.faults.timeout_next = n;
        inner.faults.timeout_applies = applied;
    }

    /// An outage: until `resume`, every operation fails with `Unavailable`. Open watches stay
    /// open and resume delivering once writes succeed again.
    pub fn pause(&self) {
        self.lock().faults.paused = true;
    }

    pub fn resume(&self) {
        self.lock().faults.paused = false;
    }

    /// Ends every open watch with `WatchClosed`, as a restarting store does.
    pub fn drop_watches(&self) {
        self.lock().hub.close_all("the store dropped all watches");
    }

    pub fn watcher_count(&self) -> usize {
        self.lock().hub.watcher_count()
    }

    fn with<T>(&self, is_write: bool, op: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let mut inner = self.lock();
        match inner.verdict(is_write) {
            Verdict::Proceed => op(&mut inner),
            Verdict::Fail(e) => Err(e),
            Verdict::ApplyThenTimeout => {
                let _ = op(&mut inner);
                Err(StoreError::Timeout {
                    endpoint: ENDPOINT.into(),
                })
            }
        }
    }
}

impl Inner {
    fn verdict(&mut self, is_write: bool) -> Verdict {
        let f = &mut self.faults;
        if f.paused {
            return Verdict::Fail(StoreError::Unavailable {
                endpoint: ENDPOINT.into(),
                message: "store paused (simulated outage)".into(),
            });
        }
        if f.fail_next > 0 {
            f.fail_next -= 1;
            return Verdict::Fail(StoreError::Unavailable {
                endpoint: ENDPOINT.into(),
                message: "injected failure".into(),
            });
        }
        if f.timeout_next > 0 {
            f.timeout_next -= 1;
            if f.timeout_applies && is_write {
                return Verdict::ApplyThenTimeout;
            }
            return Verdict::Fail(StoreError::Timeout {
                endpoint: ENDPOINT.into(),
            });
        }
        Verdict::Proceed
    }

    fn commit(&mut self, kind: EventKind, kv: KeyValue, prev_value: Option<Bytes>) -> Revision {
        let rev = kv.mod_revision;
        debug_assert_eq!(rev, self.revision + 1);
        self.revision = rev;
        match kind {
            EventKind::Deleted => {
                self.data.remove(&kv.key);
            }
            _ => {
                self.data.insert(kv.key.clone(), kv.clone());
            }
        }
        self.hub.publish(WatchEvent {
            kind,
            kv,
            prev_value,
        });
        rev
    }

    fn check_precondition(&self, key: &str, precondition: Option<Revision>) -> Result<&KeyValue> {
        let current = self
            .data
            .get(key)
            .ok_or_else(|| StoreError::NotFound { key: key.into() })?;
        match precondition {
            Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual: current.mod_revision,
            }),
            _ => Ok(current),
        }
    }
}

impl Store for MemStore {
    fn describe(&self) -> String {
        ENDPOINT.to_string()
    }

    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send {
        ready(self.with(false, |inner| Ok(inner.revision)))
    }

    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<Revision>> + Send {
        ready(self.with(true, |inner| {
            if inner.data.contains_key(key) {
                return Err(StoreError::AlreadyExists { key: key.into() });
            }
            let rev = inner.revision + 1;
            let kv = KeyValue {
                key: key.into(),
                value,
                create_revision: rev,
                mod_revision: rev,
            };
            Ok(inner.commit(EventKind::Added, kv, None))
        }))
    }

    fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Revision>> + Send {
        ready(self.with(true, |inner| {
            let current = inner.check_precondition(key, precondition)?;
            let prev = current.value.clone();
            let kv = KeyValue {
                key: key.into(),
                value,
                create_revision: current.create_revision,
                mod_revision: inner.revision + 1,
            };
            Ok(inner.commit(EventKind::Modified, kv, Some(prev)))
        }))
    }

    fn delete(
        &self,
        key: &str,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        ready(self.with(true, |inner| {
            let prev = inner.check_precondition(key, precondition)?.clone();
            let kv = KeyValue {
                mod_revision: inner.revision + 1,
                ..prev.clone()
            };
            let revision = inner.commit(EventKind::Deleted, kv, Some(prev.value.clone()));
            Ok(Deleted { revision, prev })
        }))
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send {
        ready(self.with(false, |inner| Ok(inner.data.get(key).cloned())))
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<ListResult>> + Send {
        ready(self.with(false, |inner| {
            let items = inner
                .data
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, kv)| kv.clone())
                .collect();
            Ok(ListResult {
                items,
                revision: inner.revision,
            })
        }))
    }

    fn watch(&self, prefix: &str, after: Revision) -> impl Future<Output = Result<Watch>> + Send {
        ready(self.with(false, |inner| {
            let current = inner.revision;
            inner.hub.watch(prefix, after, current).map(Watch::new)
        }))
    }

    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send {
        ready(self.with(false, |inner| {
            if revision > inner.revision {
                return Err(StoreError::Invalid(format!(
                    "cannot compact at revision {revision}: the current revision is {}",
                    inner.revision
                )));
            }
            inner.hub.compact(revision);
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn now<F: Future>(f: F) -> F::Output {
        f.now_or_never().expect("MemStore futures are always ready")
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn fail_next_writes_nothing() {
        let s = MemStore::default();
        s.fail_next(2);
        assert!(matches!(
            now(s.create("/a", b("1"))),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            now(s.get("/a")),
            Err(StoreError::Unavailable { .. })
        ));
        assert_eq!(now(s.current_revision()).unwrap(), 1);
        assert_eq!(now(s.create("/a", b("1"))).unwrap(), 2);
    }

    #[test]
    fn timeout_may_or_may_not_apply() {
        for (applied, expect_present) in [(false, false), (true, true)] {
            let s = MemStore::default();
            s.timeout_next(1, applied);
            assert!(matches!(
                now(s.create("/a", b("1"))),
                Err(StoreError::Timeout { .. })
            ));
            assert_eq!(
                now(s.get("/a")).unwrap().is_some(),
                expect_present,
                "applied={applied}"
            );
        }
    }

    #[test]
    fn pause_is_an_outage_and_watches_survive_it() {
        let s = MemStore::default();
        let mut w = now(s.watch("/", 1)).unwrap();
        s.pause();
        assert!(matches!(
            now(s.list("/")),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            now(s.create("/a", b("1"))),
            Err(StoreError::Unavailable { .. })
        ));
        s.resume();
        now(s.create("/a", b("1"))).unwrap();
        let ev = w.try_next().unwrap().unwrap();
        assert_eq!((ev.kind, ev.revision()), (EventKind::Added, 2));
    }

    #[test]
    fn drop_watches_ends_them() {
        let s = MemStore::default();
        let mut w = now(s.watch("/", 1)).unwrap();
        assert_eq!(s.watcher_count(), 1);
        s.drop_watches();
        assert!(matches!(
            w.try_next(),
            Some(Err(StoreError::WatchClosed { .. }))
        ));
        assert_eq!(s.watcher_count(), 0);
    }

    #[test]
    fn history_window_compacts_automatically() {
        let s = MemStore::new(HistoryConfig {
            history_limit: 3,
            watch_capacity: 100,
        });
        for i in 0..5 {
            now(s.create(&format!("/k{i}"), b("v"))).unwrap();
        }
        // Revisions 2..=6 were written; the last 3 (4, 5, 6) are kept: watches from 3 on work.
        assert!(now(s.watch("/", 3)).is_ok());
        match now(s.watch("/", 2)) {
            Err(StoreError::Expired {
                requested,
                compacted,
                current,
            }) => assert_eq!((requested, compacted, current), (2, 3, 6)),
            other => panic!("expected Expired, got {other:?}"),
        }
    }
}
