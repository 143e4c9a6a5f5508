//! The byte layout of EmbeddedStore's records. Fixed little-endian integers and length-prefixed
//! byte strings; every decode checks lengths, so a damaged record is an error, never a panic.

use bytes::Bytes;

use super::{EventKind, KeyValue, Revision, WatchEvent};

/// Value of the `kv` table: create_revision, mod_revision, value.
pub(crate) fn encode_kv(
    create_revision: Revision,
    mod_revision: Revision,
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, String> {
    let mut r = Reader(bytes);
    let create_revision = r.u64()?;
    let mod_revision = r.u64()?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(r.0),
        create_revision,
        mod_revision,
    })
}

/// Value of the `history` table (keyed by revision): kind, create_revision, key, prev, value.
pub(crate) fn encode_event(ev: &WatchEvent) -> Vec<u8> {
    let kv = &ev.kv;
    let prev = ev.prev_value.as_deref();
    let mut out = Vec::with_capacity(
        1 + 8 + 4 + kv.key.len() + 1 + 4 + prev.map_or(0, <[u8]>::len) + kv.value.len(),
    );
    out.push(match ev.kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    });
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    put_bytes(&mut out, kv.key.as_bytes());
    match prev {
        Some(p) => {
            out.push(1);
            put_bytes(&mut out, p);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&kv.value);
    out
}

pub(crate) fn decode_event(revision: Revision, bytes: &[u8]) -> Result<WatchEvent, String> {
    let mut r = Reader(bytes);
    let kind = match r.u8()? {
        0 => EventKind::Added,
        1 => EventKind::Modified,
        2 => EventKind::Deleted,
        k => return Err(format!("unknown event kind {k} at revision {revision}")),
    };
    let create_revision = r.u64()?;
    let key = String::from_utf8(r.bytes()?.to_vec())
        .map_err(|_| format!("key at revision {revision} is not UTF-8"))?;
    let prev_value = match r.u8()? {
        0 => None,
        1 => Some(Bytes::copy_from_slice(r.bytes()?)),
        f => return Err(format!("bad prev flag {f} at revision {revision}")),
    };
    Ok(WatchEvent {
        kind,
        kv: KeyValue {
            key,
            value: Bytes::copy_from_slice(r.0),
            create_revision,
            mod_revision: revision,
        },
        prev_value,
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "record truncated: wanted {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let cases = [
            (EventKind::Added, None),
            (EventKind::Modified, Some(Bytes::from_static(b"old"))),
            (EventKind::Deleted, Some(Bytes::from_static(b""))),
        ];
        for (kind, prev_value) in cases {
            let ev = WatchEvent {
                kind,
                kv: KeyValue {
                    key: "/registry/core/pods/default/p".into(),
                    value: Bytes::from_static(b"{\"x\":1}"),
                    create_revision: 7,
                    mod_revision: 9,
                },
                prev_value,
            };
            assert_eq!(decode_event(9, &encode_event(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let kv = encode_kv(3, 4, b"v");
        assert_eq!(decode_kv("k", &kv).unwrap().mod_revision, 4);
        assert!(decode_kv("k", &kv[..10]).is_err());
        let ev = encode_event(&WatchEvent {
            kind: EventKind::Added,
            kv: KeyValue {
                key: "k".into(),
                value: Bytes::new(),
                create_revision: 2,
                mod_revision: 2,
            },
            prev_value: None,
        });
        for cut in 0..ev.len() - 1 {
            assert!(decode_event(2, &ev[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_event(2, &[9]).is_err());
    }
}
