//! EmbeddedStore: the real binary's default store, a redb file.
//!
//! Writes go through one writer thread fed by a crossbeam channel. The thread takes every write
//! queued at that moment (up to `max_batch`), applies them in order in one transaction and
//! commits it durably (fsync) once: group commit. A write is acknowledged only after its commit,
//! so an acknowledged write survives `kill -9`. The watch history window is stored with the
//! data, so after a restart the revision and the window continue where they were.
//!
//! Reads use redb's MVCC read transactions and never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;
use futures::channel::oneshot;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::{decode_event, decode_kv, encode_event, encode_kv};
use super::hub::WatchHub;
use super::{
    Deleted, EventKind, HistoryConfig, KeyValue, ListResult, Result, Revision, Store, StoreError,
    Watch, WatchEvent,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"gantry-store/1";
const REVISION_KEY: &str = "revision";
const COMPACTED_KEY: &str = "compacted";

#[derive(Clone, Copy, Debug)]
pub struct EmbeddedConfig {
    pub history: HistoryConfig,
    /// The most writes committed in one transaction.
    pub max_batch: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            history: HistoryConfig::default(),
            max_batch: 1024,
        }
    }
}

enum WriteOp {
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
    Compact {
        revision: Revision,
    },
}

enum Written {
    Revision(Revision),
    Deleted(Deleted),
    Compacted,
}

struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<Written>>,
}

struct Shared {
    db: Database,
    path: PathBuf,
    hub: Mutex<WatchHub>,
    /// The latest revision whose events were published.
    revision: AtomicU64,
    config: EmbeddedConfig,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, WatchHub> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Option<crossbeam_channel::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens the data file at `path`, creating it if absent. The directory must exist.
    pub fn open(path: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::Io {
                path: dir.display().to_string(),
                message: "data directory does not exist".into(),
            });
        }
        if path.is_dir() {
            return Err(StoreError::Io {
                path: shown,
                message: "is a directory, expected a data file".into(),
            });
        }
        // An empty file holds nothing yet (a crash before the first commit): start it afresh.
        let existed = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        let db = if existed {
            Database::open(&path)
        } else {
            Database::create(&path)
        }
        .map_err(|e| open_error(&shown, e))?;

        let (revision, compacted) = init_meta(&db, &shown)?;
        let mut hub = WatchHub::new(config.history, compacted);
        {
            let corrupt = |m: String| StoreError::Corrupt {
                path: shown.clone(),
                message: m,
            };
            let read = db.begin_read().map_err(|e| corrupt(e.to_string()))?;
            let history = read
                .open_table(HISTORY)
                .map_err(|e| corrupt(e.to_string()))?;
            for row in history
                .range(compacted + 1..=revision)
                .map_err(|e| corrupt(e.to_string()))?
            {
                let (rev, bytes) = row.map_err(|e| corrupt(e.to_string()))?;
                hub.restore(decode_event(rev.value(), bytes.value()).map_err(corrupt)?);
            }
        }
        tracing::info!(path = %shown, revision, compacted, "opened embedded store");

        let shared = Arc::new(Shared {
            db,
            path,
            hub: Mutex::new(hub),
            revision: AtomicU64::new(revision),
            config,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("gantry-store-writer".into())
            .spawn(move || run_writer(&writer_shared, rx, revision, compacted))
            .map_err(|e| shared.io(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            shared,
            requests: Some(tx),
            writer: Some(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn write(&self, op: WriteOp) -> Result<Written> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Unavailable {
            endpoint: self.describe(),
            message: "the store's writer thread has stopped".into(),
        };
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request { op, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<T, StoreError>,
    ) -> Result<T> {
        let txn = self.shared.db.begin_read().map_err(|e| self.shared.io(e))?;
        f(&txn)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.shared.hub().close_all("the store was closed");
    }
}

fn open_error(path: &str, e: redb::DatabaseError) -> StoreError {
    use redb::DatabaseError as D;
    match e {
        D::DatabaseAlreadyOpen | D::LockProtocolMismatch => StoreError::Io {
            path: path.into(),
            message: "the data file is in use by another process".into(),
        },
        D::UpgradeRequired(v) => StoreError::Corrupt {
            path: path.into(),
            message: format!("written in an unsupported redb file format (version {v})"),
        },
        D::Storage(redb::StorageError::Io(io)) if io.kind() != std::io::ErrorKind::InvalidData => {
            StoreError::Io {
                path: path.into(),
                message: io.to_string(),
            }
        }
        other => StoreError::Corrupt {
            path: path.into(),
            message: format!("not a readable gantry data file: {other}"),
        },
    }
}

/// Checks the format marker (writing it into a new file) and reads revision and compaction.
fn init_meta(db: &Database, path: &str) -> Result<(Revision, Revision)> {
    let corrupt = |m: String| StoreError::Corrupt {
        path: path.into(),
        message: m,
    };
    let txn = db.begin_write().map_err(|e| corrupt(e.to_string()))?;
    let had_tables = txn
        .list_tables()
        .map_err(|e| corrupt(e.to_string()))?
        .next()
        .is_some();
    let result =
        {
            let mut meta = txn.open_table(META).map_err(|e| corrupt(e.to_string()))?;
            txn.open_table(KV).map_err(|e| corrupt(e.to_string()))?;
            txn.open_table(HISTORY)
                .map_err(|e| corrupt(e.to_string()))?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(|e| corrupt(e.to_string()))?
                .map(|v| v.value().to_vec());
            match format {
                Some(f) if f == FORMAT => {
                    let num = |k: &str| -> Result<u64> {
                        let v = meta
                            .get(k)
                            .map_err(|e| corrupt(e.to_string()))?
                            .ok_or_else(|| corrupt(format!("missing {k}")))?;
                        let arr: [u8; 8] = v
                            .value()
                            .try_into()
                            .map_err(|_| corrupt(format!("{k} is not 8 bytes")))?;
                        Ok(u64::from_le_bytes(arr))
                    };
                    (num(REVISION_KEY)?, num(COMPACTED_KEY)?)
                }
                Some(f) => {
                    return Err(corrupt(format!(
                        "unsupported format {:?} (this gantry reads {:?})",
                        String::from_utf8_lossy(&f),
                        String::from_utf8_lossy(FORMAT)
                    )))
                }
                None if had_tables => return Err(corrupt(
                    "a redb file that gantry did not write (no format marker); refusing to use it"
                        .into(),
                )),
                None => {
                    meta.insert(FORMAT_KEY, FORMAT)
                        .map_err(|e| corrupt(e.to_string()))?;
                    meta.insert(REVISION_KEY, &1u64.to_le_bytes()[..])
                        .map_err(|e| corrupt(e.to_string()))?;
                    meta.insert(COMPACTED_KEY, &0u64.to_le_bytes()[..])
                        .map_err(|e| corrupt(e.to_string()))?;
                    (1, 0)
                }
            }
        };
    txn.commit().map_err(|e| corrupt(e.to_string()))?;
    Ok(result)
}

fn run_writer(
    shared: &Shared,
    rx: crossbeam_channel::Receiver<Request>,
    mut revision: Revision,
    mut compacted: Revision,
) {
    let max_batch = shared.config.max_batch.max(1);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match commit_batch(shared, &batch, revision, compacted) {
            Ok(outcome) => {
                {
                    let mut hub = shared.hub();
                    for ev in outcome.events {
                        hub.publish(ev);
                    }
                    hub.compact(outcome.compacted);
                }
                revision = outcome.revision;
                compacted = outcome.compacted;
                shared.revision.store(revision, Ordering::Release);
                for (req, result) in batch.into_iter().zip(outcome.results) {
                    let _ = req.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(path = %shared.path.display(), error = %e, "commit failed");
                for req in batch {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

struct BatchOutcome {
    results: Vec<Result<Written>>,
    events: Vec<WatchEvent>,
    revision: Revision,
    compacted: Revision,
}

/// Applies `batch` in order in one durable transaction. Nothing is visible (to readers or
/// watchers) until the commit has returned.
fn commit_batch(
    shared: &Shared,
    batch: &[Request],
    mut revision: Revision,
    mut compacted: Revision,
) -> Result<BatchOutcome> {
    let io = |e: &dyn std::fmt::Display| shared.io(e);
    let txn = shared.db.begin_write().map_err(|e| io(&e))?;
    let mut results = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    {
        let mut kv = txn.open_table(KV).map_err(|e| io(&e))?;
        let mut history = txn.open_table(HISTORY).map_err(|e| io(&e))?;
        let corrupt = |key: &str, m: String| StoreError::Corrupt {
            path: shared.path.display().to_string(),
            message: format!("record {key}: {m}"),
        };
        for req in batch {
            let current = |kv: &redb::Table<&str, &[u8]>, key: &str| -> Result<Option<KeyValue>> {
                match kv.get(key).map_err(|e| io(&e))? {
                    Some(v) => decode_kv(key, v.value())
                        .map(Some)
                        .map_err(|m| corrupt(key, m)),
                    None => Ok(None),
                }
            };
            let checked = |found: Option<KeyValue>,
                           key: &str,
                           pre: Option<Revision>|
             -> Result<KeyValue> {
                let found = found.ok_or_else(|| StoreError::NotFound { key: key.into() })?;
                match pre {
                    Some(expected) if expected != found.mod_revision => Err(StoreError::Conflict {
                        key: key.into(),
                        expected,
                        actual: found.mod_revision,
                    }),
                    _ => Ok(found),
                }
            };
            let result: Result<(Written, Option<WatchEvent>)> = match &req.op {
                WriteOp::Create { key, value } => match current(&kv, key)? {
                    Some(_) => Err(StoreError::AlreadyExists { key: key.clone() }),
                    None => {
                        let rev = revision + 1;
                        kv.insert(key.as_str(), encode_kv(rev, rev, value).as_slice())
                            .map_err(|e| io(&e))?;
                        let ev = WatchEvent {
                            kind: EventKind::Added,
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: rev,
                                mod_revision: rev,
                            },
                            prev_value: None,
                        };
                        Ok((Written::Revision(rev), Some(ev)))
                    }
                },
                WriteOp::Update {
                    key,
                    value,
                    precondition,
                } => checked(current(&kv, key)?, key, *precondition).and_then(|found| {
                    let rev = revision + 1;
                    kv.insert(
                        key.as_str(),
                        encode_kv(found.create_revision, rev, value).as_slice(),
                    )
                    .map_err(|e| io(&e))?;
                    let ev = WatchEvent {
                        kind: EventKind::Modified,
                        kv: KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: found.create_revision,
                            mod_revision: rev,
                        },
                        prev_value: Some(found.value),
                    };
                    Ok((Written::Revision(rev), Some(ev)))
                }),
                WriteOp::Delete { key, precondition } => {
                    checked(current(&kv, key)?, key, *precondition).and_then(|found| {
                        let rev = revision + 1;
                        kv.remove(key.as_str()).map_err(|e| io(&e))?;
                        let ev = WatchEvent {
                            kind: EventKind::Deleted,
                            kv: KeyValue {
                                mod_revision: rev,
                                ..found.clone()
                            },
                            prev_value: Some(found.value.clone()),
                        };
                        Ok((
                            Written::Deleted(Deleted {
                                revision: rev,
                                prev: found,
                            }),
                            Some(ev),
                        ))
                    })
                }
                WriteOp::Compact { revision: at } => {
                    if *at > revision {
                        Err(StoreError::Invalid(format!(
                            "cannot compact at revision {at}: the current revision is {revision}"
                        )))
                    } else {
                        compacted = compacted.max(*at);
                        Ok((Written::Compacted, None))
                    }
                }
            };
            match result {
                Ok((written, event)) => {
                    if let Some(ev) = event {
                        revision = ev.revision();
                        history
                            .insert(revision, encode_event(&ev).as_slice())
                            .map_err(|e| io(&e))?;
                        events.push(ev);
                    }
                    results.push(Ok(written));
                }
                // A precondition failure is the caller's answer, not the batch's failure.
                Err(e @ StoreError::Io { .. }) => return Err(e),
                Err(e) => results.push(Err(e)),
            }
        }
        compacted = WatchHub::window_start(&shared.config.history, compacted, revision);
        history
            .retain_in(..=compacted, |_, _| false)
            .map_err(|e| io(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| io(&e))?;
        meta.insert(REVISION_KEY, &revision.to_le_bytes()[..])
            .map_err(|e| io(&e))?;
        meta.insert(COMPACTED_KEY, &compacted.to_le_bytes()[..])
            .map_err(|e| io(&e))?;
    }
    txn.commit().map_err(|e| io(&e))?;
    Ok(BatchOutcome {
        results,
        events,
        revision,
        compacted,
    })
}

impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded {}", self.shared.path.display())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        match self
            .write(WriteOp::Create {
                key: key.into(),
                value,
            })
            .await?
        {
            Written::Revision(r) => Ok(r),
            _ => unreachable!("create answers with a revision"),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> Result<Revision> {
        match self
            .write(WriteOp::Update {
                key: key.into(),
                value,
                precondition,
            })
            .await?
        {
            Written::Revision(r) => Ok(r),
            _ => unreachable!("update answers with a revision"),
        }
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        match self
            .write(WriteOp::Delete {
                key: key.into(),
                precondition,
            })
            .await?
        {
            Written::Deleted(d) => Ok(d),
            _ => unreachable!("delete answers with the deleted key"),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(|txn| {
            let kv = txn.open_table(KV).map_err(|e| self.shared.io(e))?;
            match kv.get(key).map_err(|e| self.shared.io(e))? {
                Some(v) => decode_kv(key, v.value())
                    .map(Some)
                    .map_err(|m| StoreError::Corrupt {
                        path: self.shared.path.display().to_string(),
                        message: format!("record {key}: {m}"),
                    }),
                None => Ok(None),
            }
        })
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        self.read(|txn| {
            let io = |e: &dyn std::fmt::Display| self.shared.io(e);
            let meta = txn.open_table(META).map_err(|e| io(&e))?;
            let revision = meta
                .get(REVISION_KEY)
                .map_err(|e| io(&e))?
                .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                .ok_or_else(|| io(&"missing revision"))?;
            let kv = txn.open_table(KV).map_err(|e| io(&e))?;
            let mut items = Vec::new();
            for row in kv.range(prefix..).map_err(|e| io(&e))? {
                let (k, v) = row.map_err(|e| io(&e))?;
                let key = k.value();
                if !key.starts_with(prefix) {
                    break;
                }
                items.push(decode_kv(key, v.value()).map_err(|m| io(&m))?);
            }
            Ok(ListResult { items, revision })
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let mut hub = self.shared.hub();
        let current = self.shared.revision.load(Ordering::Acquire);
        hub.watch(prefix, after, current).map(Watch::new)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.write(WriteOp::Compact { revision }).await? {
            Written::Compacted => Ok(()),
            _ => unreachable!("compact answers Compacted"),
        }
    }
}
