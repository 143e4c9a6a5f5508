//! MemStore: the in-memory, deterministic backend the simulator runs on.
//!
//! No threads, no clock: every future it returns is already complete, so a single-threaded
//! event loop drives it with `now_or_never`. Faults are first-class: the simulator can make the
//! next operations fail or time out (optionally after applying them, as a real timed-out write
//! may have been), pause the store (an outage), and drop every watch.

use std::future::{ready, Future};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::keyspace::{plan, Keyspace, WriteOp};
use super::{
    Deleted, HistoryConfig, KeyValue, ListResult, Result, Revision, Store, StoreError, Watch,
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
    keys: Keyspace,
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
                keys: Keyspace::new(config, 1, 0),
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
        self.lock()
            .keys
            .hub()
            .close_all("the store dropped all watches");
    }

    pub fn watcher_count(&self) -> usize {
        self.lock().keys.hub().watcher_count()
    }

    fn with<T>(&self, is_write: bool, op: impl FnOnce(&mut Keyspace) -> Result<T>) -> Result<T> {
        let mut inner = self.lock();
        match inner.faults.verdict(is_write) {
            Verdict::Proceed => op(&mut inner.keys),
            Verdict::Fail(e) => Err(e),
            Verdict::ApplyThenTimeout => {
                let _ = op(&mut inner.keys);
                Err(StoreError::Timeout {
                    endpoint: ENDPOINT.into(),
                })
            }
        }
    }

    /// Plans `op` against the current keys and applies it; returns the key as it was.
    fn write(&self, op: WriteOp) -> Result<(Revision, Option<KeyValue>)> {
        self.with(true, |keys| {
            let current = keys.get(op.key()).cloned();
            let event = plan(&op, current.as_ref(), keys.revision() + 1)?;
            let revision = event.revision();
            keys.apply(event);
            Ok((revision, current))
        })
    }
}

impl Faults {
    fn verdict(&mut self, is_write: bool) -> Verdict {
        if self.paused {
            return Verdict::Fail(StoreError::Unavailable {
                endpoint: ENDPOINT.into(),
                message: "store paused (simulated outage)".into(),
            });
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Verdict::Fail(StoreError::Unavailable {
                endpoint: ENDPOINT.into(),
                message: "injected failure".into(),
            });
        }
        if self.timeout_next > 0 {
            self.timeout_next -= 1;
            if self.timeout_applies && is_write {
                return Verdict::ApplyThenTimeout;
            }
            return Verdict::Fail(StoreError::Timeout {
                endpoint: ENDPOINT.into(),
            });
        }
        Verdict::Proceed
    }
}

impl Store for MemStore {
    fn describe(&self) -> String {
        ENDPOINT.to_string()
    }

    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send {
        ready(self.with(false, |keys| Ok(keys.revision())))
    }

    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<Revision>> + Send {
        let op = WriteOp::Create {
            key: key.into(),
            value,
        };
        ready(self.write(op).map(|(rev, _)| rev))
    }

    fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Revision>> + Send {
        let op = WriteOp::Update {
            key: key.into(),
            value,
            precondition,
        };
        ready(self.write(op).map(|(rev, _)| rev))
    }

    fn delete(
        &self,
        key: &str,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        let op = WriteOp::Delete {
            key: key.into(),
            precondition,
        };
        ready(self.write(op).map(|(revision, prev)| Deleted {
            revision,
            prev: prev.expect("a successful delete had a key to delete"),
        }))
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send {
        ready(self.with(false, |keys| Ok(keys.get(key).cloned())))
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<ListResult>> + Send {
        ready(self.with(false, |keys| Ok(keys.list(prefix))))
    }

    fn watch(&self, prefix: &str, after: Revision) -> impl Future<Output = Result<Watch>> + Send {
        ready(self.with(false, |keys| keys.watch(prefix, after).map(Watch::new)))
    }

    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send {
        ready(self.with(false, |keys| {
            keys.check_compact(revision)?;
            keys.hub().compact(revision);
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;
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
