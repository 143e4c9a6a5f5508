//! The versioned store: what Kubernetes needs from etcd, no more.
//!
//! One global, strictly increasing revision is Kubernetes' resourceVersion. Every key carries the
//! revision that created it and the revision that last modified it. Watches resume from a
//! revision and deliver every later change under a prefix, in revision order, with no gaps and no
//! duplicates, for as long as the bounded history covers the start; older starts are `Expired`
//! (which the API turns into 410).
//!
//! Three backends implement [`Store`]: [`mem::MemStore`] (deterministic, fault hooks for the
//! simulator), `embedded::EmbeddedStore` (redb, group commit; the real binary's default) and
//! `etcd::EtcdStore` (etcd v3). One conformance suite (tests/store_conformance.rs) runs against all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

mod channel;
mod hub;
mod keyspace;
pub mod mem;

#[cfg(feature = "server")]
pub mod backend;
#[cfg(feature = "server")]
mod codec;
#[cfg(feature = "server")]
pub mod embedded;
#[cfg(feature = "server")]
pub mod etcd;

pub use channel::{watch_channel, WatchReceiver, WatchSender};

/// A store revision (Kubernetes' resourceVersion). A fresh store is at revision 1, like etcd;
/// every successful write adds exactly one.
pub type Revision = u64;

/// One key and its current value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision of the write that created the key.
    pub create_revision: Revision,
    /// The revision of the last write to the key (for a deleted key in a watch event: the
    /// revision of the deletion).
    pub mod_revision: Revision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// The key after the change. For `Deleted`: the last value the key held, with
    /// `mod_revision` set to the revision of the deletion.
    pub kv: KeyValue,
    /// The value before the change (`None` for `Added`). Lets a watch filter send the
    /// enter/leave-selector events Kubernetes clients expect.
    pub prev_value: Option<Bytes>,
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The result of a list: the items under a prefix, sorted by key, and the revision they were
/// read at (a consistent snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
}

/// The result of a delete: the revision of the deletion and the key as it was before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub revision: Revision,
    pub prev: KeyValue,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// A precondition on mod_revision did not hold; nothing was written.
    #[error(
        "conflict on {key}: precondition mod_revision {expected}, current mod_revision {actual}"
    )]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The history no longer covers the requested start (k8s: 410 "too old resource version").
    #[error("too old resource version: {requested} (history starts after {compacted}, current {current})")]
    Expired {
        requested: Revision,
        /// Changes at or below this revision are forgotten.
        compacted: Revision,
        current: Revision,
    },
    /// The store cannot be reached or refused to serve; the request was not carried out.
    #[error("store {endpoint} unavailable: {message}")]
    Unavailable { endpoint: String, message: String },
    /// No answer in time: a write may or may not have been applied.
    #[error("store {endpoint} timed out; the request may or may not have been applied")]
    Timeout { endpoint: String },
    /// A watch the store ended: the consumer fell too far behind, or the store dropped its
    /// watches. Re-watch from the last revision seen (or relist if that is Expired).
    #[error("watch closed: {reason}")]
    WatchClosed { reason: String },
    /// The data file is damaged, foreign, or from an unknown format.
    #[error("data file {path}: {message}")]
    Corrupt { path: String, message: String },
    /// An I/O failure, naming the file or directory involved.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("invalid request: {0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store contract. Futures are `Send` so a multi-threaded host can await them; MemStore's
/// are always ready, so the simulator drives them without an executor (`now_or_never`).
pub trait Store: Send + Sync + 'static {
    /// Names the backend and its location for logs and errors ("etcd http://127.0.0.1:2379").
    fn describe(&self) -> String;

    /// The revision of the latest committed write.
    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send;

    /// Creates `key`; `AlreadyExists` if it is present. Returns the new revision.
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<Revision>> + Send;

    /// Replaces the value of an existing `key`. With `precondition = Some(rev)` the write only
    /// happens if the key's mod_revision is `rev` (else `Conflict`, nothing written).
    fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Revision>> + Send;

    /// Deletes `key`, with the same optional precondition as `update`.
    fn delete(
        &self,
        key: &str,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send;

    /// Every key starting with `prefix`, sorted, with the revision of the snapshot.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<ListResult>> + Send;

    /// Every change under `prefix` with a revision greater than `after`, in order, then live
    /// changes as they commit. `Expired` if changes after `after` were already compacted.
    fn watch(&self, prefix: &str, after: Revision) -> impl Future<Output = Result<Watch>> + Send;

    /// Forgets the history up to and including `revision` (it must not be in the future):
    /// afterwards a watch from below `revision` is `Expired`.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send;
}

/// A shared store is a store: hosts hand one `Arc` to every component.
impl<S: Store> Store for Arc<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send {
        (**self).current_revision()
    }
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<Revision>> + Send {
        (**self).create(key, value)
    }
    fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Revision>> + Send {
        (**self).update(key, value, precondition)
    }
    fn delete(
        &self,
        key: &str,
        precondition: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        (**self).delete(key, precondition)
    }
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send {
        (**self).get(key)
    }
    fn list(&self, prefix: &str) -> impl Future<Output = Result<ListResult>> + Send {
        (**self).list(prefix)
    }
    fn watch(&self, prefix: &str, after: Revision) -> impl Future<Output = Result<Watch>> + Send {
        (**self).watch(prefix, after)
    }
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send {
        (**self).compact(revision)
    }
}

/// A live watch: a stream of committed changes. After an `Err` item the stream ends.
pub struct Watch {
    rx: WatchReceiver,
    /// Keeps a backend's feeding task alive; dropping the watch stops it.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Watch {
    pub fn new(rx: WatchReceiver) -> Self {
        Watch { rx, _guard: None }
    }

    pub fn with_guard(rx: WatchReceiver, guard: Box<dyn Send + Sync>) -> Self {
        Watch {
            rx,
            _guard: Some(guard),
        }
    }

    /// The next item if one is ready, without waiting (`None` when nothing is queued yet or
    /// the stream has ended; see [`Watch::is_terminated`]).
    pub fn try_next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        self.rx.try_next()
    }

    /// Moves every queued item into `out`; returns false once the stream has ended.
    pub fn drain_into(&mut self, out: &mut Vec<Result<Arc<WatchEvent>>>) -> bool {
        self.rx.drain_into(out)
    }

    pub fn is_terminated(&self) -> bool {
        self.rx.is_terminated()
    }
}

impl futures::Stream for Watch {
    type Item = Result<Arc<WatchEvent>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

/// Defaults shared by the MemStore and EmbeddedStore history windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// How many changes are kept for watches to resume from. Older ones are compacted
    /// automatically as writes arrive.
    pub history_limit: u64,
    /// How many undelivered events one watcher may hold before the store closes it
    /// (`WatchClosed`); the consumer re-watches from its last revision.
    pub watch_capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            history_limit: 100_000,
            watch_capacity: 10_000,
        }
    }
}
