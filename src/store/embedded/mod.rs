//! EmbeddedStore: the real binary's default store — a redb file fronted by a write-ahead log.
//!
//! Writes go through one writer thread fed by a crossbeam channel. The thread takes every write
//! queued at that moment (up to `max_batch`), decides each in order against the current keys,
//! appends the batch to the write-ahead log as one frame and fdatasyncs it once (group commit),
//! then makes the changes visible and acknowledges them. An acknowledged write therefore
//! survives `kill -9`, and nothing is ever visible before it is durable.
//!
//! A checkpointer thread folds the logged changes into the redb file in the background, many
//! group commits per durable redb transaction. Random-key B-tree updates thus stay off the
//! acknowledgement path, as etcd keeps bbolt commits off it behind its WAL. The log keeps the
//! segments the watch history window still needs and the checkpointer deletes older ones. On
//! open, the redb checkpoint is read and the log replayed on top, so the revision and the watch
//! history window continue where they were.
//!
//! The current keys live in memory (like the apiserver's watch cache), so reads never touch
//! the disk or wait for the writer.

mod checkpoint;
mod wal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;

use self::checkpoint::Checkpoint;
use self::wal::{Record, Wal};
use super::hub::WatchHub;
use super::keyspace::{plan, Keyspace, WriteOp};
use super::{
    Deleted, EventKind, HistoryConfig, KeyValue, ListResult, Result, Revision, Store, StoreError,
    Watch,
};

#[derive(Clone, Copy, Debug)]
pub struct EmbeddedConfig {
    pub history: HistoryConfig,
    /// The most writes in one group commit.
    pub max_batch: usize,
    /// How often the checkpointer folds the log into the redb file.
    pub checkpoint_interval: Duration,
    /// Writers wait when this many revisions are logged but not yet checkpointed, so the log and
    /// the replay after a crash stay bounded.
    pub max_unchecked_revisions: u64,
    /// Size at which the log moves to a new segment.
    pub wal_segment_bytes: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            history: HistoryConfig::default(),
            max_batch: 1024,
            checkpoint_interval: Duration::from_millis(100),
            max_unchecked_revisions: 100_000,
            wal_segment_bytes: 64 << 20,
        }
    }
}

enum Op {
    Write(WriteOp),
    Compact(Revision),
}

/// A write's answer: its revision, and for a delete the key as it was.
type Answer = Result<(Revision, Option<KeyValue>)>;

struct Request {
    op: Op,
    reply: oneshot::Sender<Answer>,
}

/// Progress of the checkpointer, watched by a writer that must wait for it.
struct Progress {
    checkpointed: Revision,
    /// A checkpoint or log failure; the store answers every later write with it.
    failure: Option<StoreError>,
}

struct Shared {
    keys: Mutex<Keyspace>,
    progress: Mutex<Progress>,
    progressed: Condvar,
    path: PathBuf,
    wal_dir: PathBuf,
    config: EmbeddedConfig,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, Keyspace> {
        relock(&self.keys)
    }

    fn fail(&self, e: &StoreError) {
        tracing::error!(path = %self.path.display(), error = %e, "embedded store failed; reopen it after fixing the cause");
        let mut p = relock(&self.progress);
        p.failure.get_or_insert_with(|| e.clone());
        self.progressed.notify_all();
    }

    fn failure(&self) -> Option<StoreError> {
        relock(&self.progress).failure.clone()
    }
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Option<crossbeam_channel::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens the data file at `path` (and its log, `<path>.wal/`), creating them if absent.
    /// The directory must exist.
    pub fn open(path: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
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
                path: path.display().to_string(),
                message: "is a directory, expected a data file".into(),
            });
        }
        let mut wal_dir = path.clone().into_os_string();
        wal_dir.push(".wal");
        let wal_dir = PathBuf::from(wal_dir);

        let (checkpoint, loaded) = Checkpoint::open(&path)?;
        let mut keys = Keyspace::new(config.history, loaded.revision, loaded.compacted);
        for kv in loaded.keys {
            keys.restore_key(kv);
        }
        // Replay the log: changes the checkpoint holds rebuild the history window, later ones
        // are applied on top.
        let mut replayed = Vec::new();
        for record in wal::replay(&wal_dir)? {
            match record {
                Record::Event(ev) if ev.revision() <= loaded.revision => {
                    if ev.revision() > keys.hub().compacted() {
                        keys.hub().restore(ev);
                    }
                }
                Record::Event(ev) => {
                    if ev.revision() != keys.revision() + 1 {
                        return Err(StoreError::Corrupt {
                            path: wal_dir.display().to_string(),
                            message: format!(
                                "write-ahead log jumps from revision {} to {}",
                                keys.revision(),
                                ev.revision()
                            ),
                        });
                    }
                    keys.apply(ev.clone());
                    replayed.push(Record::Event(ev));
                }
                Record::Compact(rev) => {
                    let at = rev.min(keys.revision());
                    keys.hub().compact(at);
                    replayed.push(Record::Compact(rev));
                }
            }
        }
        let window =
            WatchHub::window_start(&config.history, keys.hub().compacted(), keys.revision());
        keys.hub().compact(window);
        let revision = keys.revision();
        let compacted = keys.hub().compacted();
        let wal = Wal::create(&wal_dir, revision + 1, config.wal_segment_bytes)?;
        tracing::info!(path = %path.display(), revision, compacted, replayed = replayed.len(), "opened embedded store");

        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            progress: Mutex::new(Progress {
                checkpointed: loaded.revision,
                failure: None,
            }),
            progressed: Condvar::new(),
            path,
            wal_dir,
            config,
        });
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let (cp_tx, cp_rx) = crossbeam_channel::unbounded();
        if !replayed.is_empty() {
            let _ = cp_tx.send(Logged {
                records: replayed,
                revision,
                compacted,
            });
        }
        let spawn_err = |e: std::io::Error| StoreError::Io {
            path: shared.path.display().to_string(),
            message: format!("cannot start a store thread: {e}"),
        };
        let s = shared.clone();
        let checkpointer = std::thread::Builder::new()
            .name("gantry-store-checkpoint".into())
            .spawn(move || run_checkpointer(&s, checkpoint, cp_rx))
            .map_err(spawn_err)?;
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("gantry-store-writer".into())
            .spawn(move || run_writer(&s, wal, req_rx, cp_tx))
            .map_err(spawn_err)?;
        Ok(EmbeddedStore {
            shared,
            requests: Some(req_tx),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn submit(&self, op: Op) -> Answer {
        let (reply, rx) = oneshot::channel();
        let stopped = || {
            self.shared
                .failure()
                .unwrap_or_else(|| StoreError::Unavailable {
                    endpoint: self.describe(),
                    message: "the store's writer thread has stopped".into(),
                })
        };
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request { op, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // The writer finishes what is queued and stops; the checkpointer then folds everything
        // into the redb file and removes the log.
        self.requests.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(c) = self.checkpointer.take() {
            let _ = c.join();
        }
        self.shared.keys().hub().close_all("the store was closed");
    }
}

/// Changes that are durable in the log, on their way to the redb file.
struct Logged {
    records: Vec<Record>,
    revision: Revision,
    compacted: Revision,
}

fn run_writer(
    shared: &Shared,
    mut wal: Wal,
    rx: crossbeam_channel::Receiver<Request>,
    checkpoints: crossbeam_channel::Sender<Logged>,
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
        if let Some(e) = shared.failure() {
            for req in batch {
                let _ = req.reply.send(Err(e.clone()));
            }
            continue;
        }

        // Decide every request in order; later requests see earlier ones through `touched`.
        let mut records = Vec::new();
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        {
            let keys = shared.keys();
            let mut revision = keys.revision();
            let mut touched: HashMap<&str, Option<KeyValue>> = HashMap::new();
            for req in &batch {
                answers.push(match &req.op {
                    Op::Write(op) => {
                        let current = match touched.get(op.key()) {
                            Some(state) => state.clone(),
                            None => keys.get(op.key()).cloned(),
                        };
                        plan(op, current.as_ref(), revision + 1).map(|ev| {
                            revision += 1;
                            let after = (ev.kind != EventKind::Deleted).then(|| ev.kv.clone());
                            touched.insert(op.key(), after);
                            records.push(Record::Event(ev));
                            (revision, current)
                        })
                    }
                    Op::Compact(at) if *at > revision => Err(StoreError::Invalid(format!(
                        "cannot compact at revision {at}: the current revision is {revision}"
                    ))),
                    Op::Compact(at) => {
                        records.push(Record::Compact(*at));
                        Ok((revision, None))
                    }
                });
            }
        }

        if !records.is_empty() {
            if let Err(e) = wal.append(&records) {
                // The log's tail is now unknown: stop accepting writes (a reopen recovers).
                shared.fail(&e);
                for req in batch {
                    let _ = req.reply.send(Err(e.clone()));
                }
                continue;
            }
            let (revision, compacted) = {
                let mut keys = shared.keys();
                for r in &records {
                    match r {
                        Record::Event(ev) => keys.apply(ev.clone()),
                        Record::Compact(at) => keys.hub().compact(*at),
                    }
                }
                (keys.revision(), keys.hub().compacted())
            };
            let _ = checkpoints.send(Logged {
                records,
                revision,
                compacted,
            });
            if let Err(e) = wal.rotate_if_full(revision + 1) {
                shared.fail(&e);
            }
            wait_for_checkpointer(shared, revision);
        }
        for (req, answer) in batch.into_iter().zip(answers) {
            let _ = req.reply.send(answer);
        }
    }
}

/// Back-pressure: hold the writer while too much is logged but not checkpointed.
fn wait_for_checkpointer(shared: &Shared, revision: Revision) {
    let limit = shared.config.max_unchecked_revisions.max(1);
    let mut p = relock(&shared.progress);
    while p.failure.is_none() && revision.saturating_sub(p.checkpointed) > limit {
        p = shared
            .progressed
            .wait_timeout(p, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn run_checkpointer(
    shared: &Shared,
    checkpoint: Checkpoint,
    rx: crossbeam_channel::Receiver<Logged>,
) {
    let interval = shared.config.checkpoint_interval;
    let mut open = true;
    while open {
        let Ok(first) = rx.recv() else { break };
        let mut pending = vec![first];
        let deadline = Instant::now() + interval;
        loop {
            match rx.recv_deadline(deadline) {
                Ok(l) => pending.push(l),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let last = pending.last().expect("at least one");
        let (revision, compacted) = (last.revision, last.compacted);
        let records: Vec<Record> = pending.into_iter().flat_map(|l| l.records).collect();
        if let Err(e) = checkpoint.write(&records, revision, compacted) {
            shared.fail(&e);
            return;
        }
        {
            let mut p = relock(&shared.progress);
            p.checkpointed = revision;
            shared.progressed.notify_all();
        }
        // A segment can go once the redb file holds its changes and the history window no
        // longer reaches into it.
        if let Err(e) = wal::remove_through(&shared.wal_dir, revision.min(compacted)) {
            tracing::warn!(error = %e, "could not delete old write-ahead log segments");
        }
    }
}

impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded {}", self.shared.path.display())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.keys().revision())
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let op = WriteOp::Create {
            key: key.into(),
            value,
        };
        self.submit(Op::Write(op)).await.map(|(rev, _)| rev)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> Result<Revision> {
        let op = WriteOp::Update {
            key: key.into(),
            value,
            precondition,
        };
        self.submit(Op::Write(op)).await.map(|(rev, _)| rev)
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        let op = WriteOp::Delete {
            key: key.into(),
            precondition,
        };
        let (revision, prev) = self.submit(Op::Write(op)).await?;
        Ok(Deleted {
            revision,
            prev: prev.expect("a successful delete had a key to delete"),
        })
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.shared.keys().get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        Ok(self.shared.keys().list(prefix))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        self.shared.keys().watch(prefix, after).map(Watch::new)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(Op::Compact(revision)).await.map(|_| ())
    }
}
