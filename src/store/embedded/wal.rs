//! The write-ahead log: EmbeddedStore's durability path.
//!
//! Each group commit appends one frame, `[payload length u32][crc32 u32][payload]`, and
//! fdatasyncs the file before any write in it is acknowledged. Segments are files named by the
//! first revision they may hold; the checkpointer deletes them once the redb file holds their
//! changes and the watch history window no longer needs them. A frame cut short by a crash can only be the last one written, was never
//! acknowledged, and is cut off when the log is opened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::store::codec::{decode_event, encode_event};
use crate::store::{Result, Revision, StoreError, WatchEvent};

/// One logged change.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    Event(WatchEvent),
    /// An explicit compaction at this revision.
    Compact(Revision),
}

const TAG_EVENT: u8 = 0;
const TAG_COMPACT: u8 = 1;
const HEADER: usize = 8;

pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    size: u64,
    segment_limit: u64,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn corrupt(path: &Path, message: String) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        message,
    }
}

fn segment_name(first: Revision) -> String {
    format!("{first:020}.log")
}

/// The segments in `dir`, oldest first, with the first revision each may hold.
fn segments(dir: &Path) -> Result<Vec<(Revision, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(first) = name
            .strip_suffix(".log")
            .and_then(|n| n.parse::<Revision>().ok())
        {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn encode_frame(records: &[Record]) -> Vec<u8> {
    let mut payload = Vec::new();
    for r in records {
        match r {
            Record::Event(ev) => {
                payload.push(TAG_EVENT);
                payload.extend_from_slice(&ev.revision().to_le_bytes());
                let body = encode_event(ev);
                payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
                payload.extend_from_slice(&body);
            }
            Record::Compact(rev) => {
                payload.push(TAG_COMPACT);
                payload.extend_from_slice(&rev.to_le_bytes());
            }
        }
    }
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

fn decode_payload(path: &Path, mut p: &[u8], out: &mut Vec<Record>) -> Result<()> {
    let bad = |m: &str| corrupt(path, format!("write-ahead log: {m}"));
    while let Some((&tag, rest)) = p.split_first() {
        if rest.len() < 8 {
            return Err(bad("record truncated"));
        }
        let rev = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        p = &rest[8..];
        match tag {
            TAG_EVENT => {
                if p.len() < 4 {
                    return Err(bad("record truncated"));
                }
                let len = u32::from_le_bytes(p[..4].try_into().expect("4 bytes")) as usize;
                let body = p.get(4..4 + len).ok_or_else(|| bad("record truncated"))?;
                out.push(Record::Event(decode_event(rev, body).map_err(|m| bad(&m))?));
                p = &p[4 + len..];
            }
            TAG_COMPACT => out.push(Record::Compact(rev)),
            t => return Err(bad(&format!("unknown record tag {t}"))),
        }
    }
    Ok(())
}

/// Reads every record in `dir`, oldest first. A damaged frame at the end of the newest
/// segment (a write cut by a crash, never acknowledged) is cut off; anywhere else it is
/// corruption.
pub(crate) fn replay(dir: &Path) -> Result<Vec<Record>> {
    let segs = segments(dir)?;
    let mut out = Vec::new();
    for (i, (_, path)) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io_err(path, e))?;
        let mut at = 0usize;
        while at < bytes.len() {
            let frame = bytes.get(at..at + HEADER).and_then(|h| {
                let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
                let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
                bytes
                    .get(at + HEADER..at + HEADER + len)
                    .filter(|p| crc32fast::hash(p) == crc)
            });
            match frame {
                Some(payload) => {
                    decode_payload(path, payload, &mut out)?;
                    at += HEADER + payload.len();
                }
                None if last => {
                    tracing::warn!(path = %path.display(), offset = at, "cutting off an incomplete write-ahead log frame (a write interrupted by a crash, never acknowledged)");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| io_err(path, e))?;
                    f.set_len(at as u64)
                        .and_then(|_| f.sync_all())
                        .map_err(|e| io_err(path, e))?;
                    break;
                }
                None => {
                    return Err(corrupt(
                        path,
                        format!("write-ahead log frame at offset {at} is damaged"),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Deletes every segment whose changes all lie at or below `revision` (the newest segment is
/// kept: it is the one being written).
pub(crate) fn remove_through(dir: &Path, revision: Revision) -> Result<()> {
    let segs = segments(dir)?;
    for pair in segs.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first.saturating_sub(1) <= revision {
            std::fs::remove_file(path).map_err(|e| io_err(path, e))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

impl Wal {
    /// Starts a new segment for revisions from `next`.
    pub(crate) fn create(dir: &Path, next: Revision, segment_limit: u64) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(segment_name(next));
        // A segment of that name can only hold what replay already cut off: start it empty.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        file.sync_all().map_err(|e| io_err(&path, e))?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path,
            size: 0,
            segment_limit,
        })
    }

    /// Appends one frame and makes it durable.
    pub(crate) fn append(&mut self, records: &[Record]) -> Result<()> {
        let frame = encode_frame(records);
        self.file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| io_err(&self.path, e))?;
        self.size += frame.len() as u64;
        Ok(())
    }

    /// Moves to a new segment once this one is large enough to be worth deleting separately.
    pub(crate) fn rotate_if_full(&mut self, next: Revision) -> Result<()> {
        if self.size >= self.segment_limit {
            *self = Wal::create(&self.dir, next, self.segment_limit)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};
    use bytes::Bytes;

    fn ev(rev: Revision) -> Record {
        Record::Event(WatchEvent {
            kind: EventKind::Added,
            kv: KeyValue {
                key: format!("/k/{rev}"),
                value: Bytes::from(vec![7u8; 100]),
                create_revision: rev,
                mod_revision: rev,
            },
            prev_value: None,
        })
    }

    fn revs(records: &[Record]) -> Vec<Revision> {
        records
            .iter()
            .map(|r| match r {
                Record::Event(e) => e.revision(),
                Record::Compact(c) => 1000 + c,
            })
            .collect()
    }

    #[test]
    fn frames_replay_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 2, 100).unwrap();
        wal.append(&[ev(2), ev(3)]).unwrap();
        wal.rotate_if_full(4).unwrap();
        wal.append(&[ev(4), Record::Compact(3)]).unwrap();
        wal.rotate_if_full(5).unwrap();
        wal.append(&[ev(5)]).unwrap();
        assert_eq!(revs(&replay(dir.path()).unwrap()), vec![2, 3, 4, 1003, 5]);
        assert_eq!(segments(dir.path()).unwrap().len(), 3);
        remove_through(dir.path(), 4).unwrap();
        assert_eq!(revs(&replay(dir.path()).unwrap()), vec![5]);
    }

    #[test]
    fn a_torn_tail_is_cut_off_but_damage_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 2, u64::MAX).unwrap();
        wal.append(&[ev(2)]).unwrap();
        wal.append(&[ev(3)]).unwrap();
        let path = wal.path.clone();
        let full = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 5).unwrap();
        assert_eq!(revs(&replay(dir.path()).unwrap()), vec![2]);
        // The cut happened on disk: a newer segment after it does not make it look damaged.
        let mut wal = Wal::create(dir.path(), 3, u64::MAX).unwrap();
        wal.append(&[ev(3)]).unwrap();
        assert_eq!(revs(&replay(dir.path()).unwrap()), vec![2, 3]);

        // Flip a byte inside the first (older) segment: that is corruption, not a torn tail.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 3] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let e = replay(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
