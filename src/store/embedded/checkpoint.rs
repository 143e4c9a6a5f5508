//! The redb file: a durable checkpoint of the keys, the revision and the compaction point.
//! Written in the background by one thread, many group commits at a time; read once at open.
//! (The watch history window lives in the write-ahead log, which keeps the segments it needs.)

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::wal::Record;
use crate::store::codec::{decode_kv, encode_kv};
use crate::store::{EventKind, KeyValue, Result, Revision, StoreError};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"gantry-store/1";
const REVISION_KEY: &str = "revision";
const COMPACTED_KEY: &str = "compacted";

/// What the file held when it was opened.
pub(crate) struct Loaded {
    pub revision: Revision,
    pub compacted: Revision,
    pub keys: Vec<KeyValue>,
}

pub(crate) struct Checkpoint {
    db: Database,
    path: String,
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

impl Checkpoint {
    /// Opens (or creates) the file and reads it whole. A file gantry did not write is refused,
    /// never overwritten.
    pub(crate) fn open(path: &Path) -> Result<(Checkpoint, Loaded)> {
        let shown = path.display().to_string();
        // An empty file holds nothing yet (a crash before the first commit): start it afresh.
        let existed = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let db = if existed {
            Database::open(path)
        } else {
            Database::create(path)
        }
        .map_err(|e| open_error(&shown, e))?;
        let cp = Checkpoint { db, path: shown };
        let (revision, compacted) = cp.init_meta()?;
        let loaded = cp.load(revision, compacted)?;
        Ok((cp, loaded))
    }

    fn corrupt(&self, m: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message: m.to_string(),
        }
    }

    fn io(&self, m: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            message: m.to_string(),
        }
    }

    /// Checks the format marker (writing it into a new file); returns revision and compaction.
    fn init_meta(&self) -> Result<(Revision, Revision)> {
        let c = |e: &dyn std::fmt::Display| self.corrupt(e);
        let txn = self.db.begin_write().map_err(|e| c(&e))?;
        let had_tables = txn.list_tables().map_err(|e| c(&e))?.next().is_some();
        let result = {
            let mut meta = txn.open_table(META).map_err(|e| c(&e))?;
            txn.open_table(KV).map_err(|e| c(&e))?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(|e| c(&e))?
                .map(|v| v.value().to_vec());
            match format {
                Some(f) if f == FORMAT => {
                    let num = |k: &str| -> Result<u64> {
                        let v = meta
                            .get(k)
                            .map_err(|e| c(&e))?
                            .ok_or_else(|| c(&format!("missing {k}")))?;
                        let arr: [u8; 8] = v
                            .value()
                            .try_into()
                            .map_err(|_| c(&format!("{k} is not 8 bytes")))?;
                        Ok(u64::from_le_bytes(arr))
                    };
                    (num(REVISION_KEY)?, num(COMPACTED_KEY)?)
                }
                Some(f) => {
                    return Err(c(&format!(
                        "unsupported format {:?} (this gantry reads {:?})",
                        String::from_utf8_lossy(&f),
                        String::from_utf8_lossy(FORMAT)
                    )))
                }
                None if had_tables => return Err(c(
                    &"a redb file that gantry did not write (no format marker); refusing to use it",
                )),
                None => {
                    meta.insert(FORMAT_KEY, FORMAT).map_err(|e| c(&e))?;
                    meta.insert(REVISION_KEY, &1u64.to_le_bytes()[..])
                        .map_err(|e| c(&e))?;
                    meta.insert(COMPACTED_KEY, &0u64.to_le_bytes()[..])
                        .map_err(|e| c(&e))?;
                    (1, 0)
                }
            }
        };
        txn.commit().map_err(|e| c(&e))?;
        Ok(result)
    }

    fn load(&self, revision: Revision, compacted: Revision) -> Result<Loaded> {
        let c = |e: &dyn std::fmt::Display| self.corrupt(e);
        let read = self.db.begin_read().map_err(|e| c(&e))?;
        let mut keys = Vec::new();
        for row in read
            .open_table(KV)
            .map_err(|e| c(&e))?
            .iter()
            .map_err(|e| c(&e))?
        {
            let (k, v) = row.map_err(|e| c(&e))?;
            let key = k.value();
            keys.push(decode_kv(key, v.value()).map_err(|m| c(&format!("record {key}: {m}")))?);
        }
        Ok(Loaded {
            revision,
            compacted,
            keys,
        })
    }

    /// Writes `records` (all changes after the last checkpoint, in order) in one durable
    /// transaction, ending at `revision` with the window compacted at `compacted`.
    pub(crate) fn write(
        &self,
        records: &[Record],
        revision: Revision,
        compacted: Revision,
    ) -> Result<()> {
        let io = |e: &dyn std::fmt::Display| self.io(e);
        let txn = self.db.begin_write().map_err(|e| io(&e))?;
        {
            // Only the last state of each key matters to the kv table; sorted keys also make
            // the B-tree updates sequential.
            let mut last: BTreeMap<&str, Option<&KeyValue>> = BTreeMap::new();
            for r in records {
                if let Record::Event(ev) = r {
                    let state = (ev.kind != EventKind::Deleted).then_some(&ev.kv);
                    last.insert(ev.kv.key.as_str(), state);
                }
            }
            let mut kv = txn.open_table(KV).map_err(|e| io(&e))?;
            for (key, state) in last {
                match state {
                    Some(s) => {
                        kv.insert(
                            key,
                            encode_kv(s.create_revision, s.mod_revision, &s.value).as_slice(),
                        )
                        .map_err(|e| io(&e))?;
                    }
                    None => {
                        kv.remove(key).map_err(|e| io(&e))?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| io(&e))?;
            meta.insert(REVISION_KEY, &revision.to_le_bytes()[..])
                .map_err(|e| io(&e))?;
            meta.insert(COMPACTED_KEY, &compacted.to_le_bytes()[..])
                .map_err(|e| io(&e))?;
        }
        txn.commit().map_err(|e| io(&e))
    }
}
