//! `?limit=` and `?continue=`: a list in pages (k8s: API concepts, "Retrieving large results
//! sets in chunks"). The first page lists as usual and keeps the whole filtered result as a
//! snapshot; later pages are cut from that snapshot, so every page shows the collection as it
//! was at the first page's resourceVersion, as upstream's etcd-backed pagination does. The
//! continue token is upstream's: base64 of `{"v":"meta.k8s.io/v1","rv":<rv>,"start":"<key>\0"}`
//! where the key is the next object's `namespace/name` (or `name`). A token whose snapshot is
//! gone (the last `SNAPSHOTS` lists are kept, for at most 5 minutes) is 410 Expired with a
//! token that continues on the current state, as upstream's answer to a compacted continue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::status::ApiError;
use crate::apiserver::object;

/// How many paged lists keep their snapshot (the newest ones), and for how long. Upstream's
/// tokens last until etcd compacts their revision (k8s: --etcd-compaction-interval 5m).
const SNAPSHOTS: usize = 32;
const SNAPSHOT_LIFETIME: Duration = Duration::from_secs(300);

/// k8s: the token format's version.
const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// What a list was of: the resource, the namespace and the filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListKey {
    pub resource: String,
    pub namespace: String,
    pub label_selector: String,
    pub field_selector: String,
}

impl ListKey {
    fn filtered(&self) -> bool {
        !self.label_selector.is_empty() || !self.field_selector.is_empty()
    }
}

struct Snapshot {
    made: Instant,
    key: ListKey,
    revision: u64,
    /// The filtered objects in key order, and their keys.
    items: Arc<Vec<Value>>,
    keys: Arc<Vec<String>>,
}

/// The snapshots of recent paged lists.
#[derive(Default)]
pub struct ListSnapshots {
    recent: Mutex<VecDeque<Snapshot>>,
}

/// One page: its objects, the token for the rest (if any) and how many remain (unfiltered
/// lists only, as upstream).
#[derive(Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl Page {
    /// Sets the page's `continue` and `remainingItemCount` in a list's (or Table's) metadata.
    pub fn annotate(&self, list: &mut Value) {
        if let Some(token) = &self.continue_token {
            list["metadata"]["continue"] = json!(token);
            if let Some(n) = self.remaining {
                list["metadata"]["remainingItemCount"] = json!(n);
            }
        }
    }
}

/// A continue token whose snapshot is gone (k8s: 410 Expired, with a token that continues on
/// the current state in the Status's metadata).
#[derive(Debug)]
pub struct Expired {
    pub continue_token: String,
}

impl Expired {
    pub fn status(&self) -> Value {
        let e = ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue \
             token in this response to retrieve the remainder of the results. Continuing with \
             the provided token results in an inconsistent list - objects that were created, \
             modified, or deleted between the time the first chunk was returned and now may \
             show up in the list.",
        );
        let mut status = super::respond::status(&e);
        status["metadata"]["continue"] = json!(self.continue_token);
        status
    }
}

/// A continue token, decoded.
#[derive(Debug, PartialEq)]
pub struct Token {
    /// The first page's revision; -1 asks for the current state (an inconsistent continue).
    pub revision: i64,
    /// Objects whose key sorts at or after this come next.
    pub start: String,
}

/// `?limit=`: `None` for absent, empty or 0 (everything), an error if it is not a number.
pub fn limit(query: Option<&String>) -> Result<Option<usize>, ApiError> {
    match query.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad_request(format!(
                "limit: Invalid value: {s:?}: must be a number"
            ))),
        },
    }
}

fn object_key(obj: &Value) -> String {
    match object::meta_str(obj, "namespace").filter(|ns| !ns.is_empty()) {
        None => object::name(obj).to_string(),
        Some(ns) => format!("{ns}/{}", object::name(obj)),
    }
}

pub fn encode_token(revision: i64, start: &str) -> String {
    let json = json!({"v": TOKEN_VERSION, "rv": revision, "start": start}).to_string();
    super::super::protobuf::base64(json.as_bytes())
}

pub fn decode_token(token: &str) -> Result<Token, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = base64_decode(token).ok_or_else(|| bad("illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
    if v["v"] != TOKEN_VERSION {
        return Err(bad(&format!(
            "server does not recognize this encoded key version {}",
            v["v"]
        )));
    }
    let revision = v["rv"].as_i64().ok_or_else(|| bad("no resource version"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("no start key"))?;
    if start.is_empty() {
        return Err(bad("encoded key is empty"));
    }
    Ok(Token {
        revision,
        start: start.to_string(),
    })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

impl ListSnapshots {
    /// The first page of a list of `items` (filtered, in key order) at `revision`.
    pub fn first(&self, key: ListKey, items: Vec<Value>, revision: u64, limit: usize) -> Page {
        let keys: Vec<String> = items.iter().map(object_key).collect();
        self.page(
            key,
            Arc::new(items),
            Arc::new(keys),
            revision,
            0,
            limit,
            true,
        )
    }

    /// The page after `token`: from the snapshot it was cut from, or, for an inconsistent
    /// continue (revision -1), from `current` (a fresh list at `current_revision`).
    pub fn next(
        &self,
        key: ListKey,
        token: &Token,
        limit: Option<usize>,
        current: impl FnOnce() -> (Vec<Value>, u64),
    ) -> Result<Page, Expired> {
        let found = if token.revision < 0 {
            None
        } else {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.retain(|s| s.made.elapsed() < SNAPSHOT_LIFETIME);
            recent
                .iter()
                .find(|s| s.key == key && s.revision == token.revision as u64)
                .map(|s| (s.items.clone(), s.keys.clone(), s.revision))
        };
        let (items, keys, revision, fresh) = match found {
            Some((items, keys, revision)) => (items, keys, revision, false),
            None if token.revision < 0 => {
                let (items, revision) = current();
                let keys: Vec<String> = items.iter().map(object_key).collect();
                (Arc::new(items), Arc::new(keys), revision, true)
            }
            None => {
                return Err(Expired {
                    continue_token: encode_token(-1, &token.start),
                })
            }
        };
        let from = keys.partition_point(|k| k.as_str() < token.start.as_str());
        Ok(self.page(
            key,
            items,
            keys,
            revision,
            from,
            limit.unwrap_or(usize::MAX),
            fresh,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn page(
        &self,
        key: ListKey,
        items: Arc<Vec<Value>>,
        keys: Arc<Vec<String>>,
        revision: u64,
        from: usize,
        limit: usize,
        keep: bool,
    ) -> Page {
        let to = from.saturating_add(limit).min(items.len());
        let page: Vec<Value> = items[from..to].to_vec();
        let (continue_token, remaining) = if to < items.len() {
            // k8s: the next key with a NUL appended: "after this one".
            let token = encode_token(revision as i64, &format!("{}\u{0}", keys[to - 1]));
            let remaining = (!key.filtered()).then_some(items.len() - to);
            (Some(token), remaining)
        } else {
            (None, None)
        };
        if continue_token.is_some() && keep {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if !recent
                .iter()
                .any(|s| s.key == key && s.revision == revision)
            {
                if recent.len() == SNAPSHOTS {
                    recent.pop_front();
                }
                recent.retain(|s| s.made.elapsed() < SNAPSHOT_LIFETIME);
                recent.push_back(Snapshot {
                    made: Instant::now(),
                    key,
                    revision,
                    items,
                    keys,
                });
            }
        }
        Page {
            items: page,
            revision,
            continue_token,
            remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    fn key(label: &str) -> ListKey {
        ListKey {
            resource: "configmaps".into(),
            namespace: String::new(),
            label_selector: label.into(),
            field_selector: String::new(),
        }
    }

    fn names(p: &Page) -> Vec<String> {
        p.items.iter().map(object_key).collect()
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_400s() {
        let t = encode_token(42, "ns/b\u{0}");
        assert_eq!(
            decode_token(&t).unwrap(),
            Token {
                revision: 42,
                start: "ns/b\u{0}".into()
            }
        );
        // Upstream's own token for rv 1, start "a\0" decodes too.
        let upstream = r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a\u0000"}"#;
        let t = super::super::super::protobuf::base64(upstream.as_bytes());
        assert_eq!(decode_token(&t).unwrap().start, "a\u{0}");
        for bad in ["%%%", "e30=", &encode_token(1, "")] {
            let e = decode_token(bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
            assert!(
                e.message.starts_with("continue key is not valid"),
                "{}",
                e.message
            );
        }
        assert_eq!(limit(Some(&"2".into())).unwrap(), Some(2));
        assert_eq!(limit(Some(&"0".into())).unwrap(), None);
        assert_eq!(limit(None).unwrap(), None);
        assert_eq!(limit(Some(&"x".into())).unwrap_err().code, 400);
    }

    #[test]
    fn pages_come_from_the_first_pages_snapshot() {
        let snaps = ListSnapshots::default();
        let items: Vec<Value> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| cm("ns", n))
            .collect();
        let first = snaps.first(key(""), items, 7, 2);
        assert_eq!(names(&first), ["ns/a", "ns/b"]);
        assert_eq!(first.remaining, Some(3));
        let mut list = json!({"metadata": {}});
        first.annotate(&mut list);
        assert_eq!(list["metadata"]["remainingItemCount"], 3);
        // The collection changes meanwhile: the pages do not.
        let token = decode_token(first.continue_token.as_ref().unwrap()).unwrap();
        let never = || -> (Vec<Value>, u64) { panic!("a consistent continue lists nothing") };
        let second = snaps.next(key(""), &token, Some(2), never).unwrap();
        assert_eq!(
            (names(&second), second.revision),
            (vec!["ns/c".into(), "ns/d".into()], 7)
        );
        let token = decode_token(second.continue_token.as_ref().unwrap()).unwrap();
        let last = snaps.next(key(""), &token, Some(2), never).unwrap();
        assert_eq!(names(&last), ["ns/e"]);
        assert_eq!((last.continue_token, last.remaining), (None, None));
        // Filtered lists do not count what remains; a list that fits keeps no snapshot.
        let filtered = snaps.first(key("app=x"), vec![cm("ns", "a"), cm("ns", "b")], 8, 1);
        assert!(filtered.continue_token.is_some());
        assert_eq!(filtered.remaining, None);
        let whole = snaps.first(key(""), vec![cm("ns", "a")], 9, 5);
        assert_eq!(whole.continue_token, None);
        // Another list's token does not match this one's filters.
        let e = snaps
            .next(key("app=y"), &token, Some(1), never)
            .unwrap_err();
        assert_eq!(e.status()["code"], 410);
    }

    #[test]
    fn an_evicted_snapshot_is_expired_with_an_inconsistent_continue() {
        let snaps = ListSnapshots::default();
        let first = snaps.first(key(""), vec![cm("", "a"), cm("", "b"), cm("", "c")], 1, 1);
        for rev in 2..(2 + SNAPSHOTS as u64) {
            snaps.first(key(""), vec![cm("", "a"), cm("", "b")], rev, 1);
        }
        let token = decode_token(first.continue_token.as_ref().unwrap()).unwrap();
        let e = snaps
            .next(key(""), &token, Some(1), || unreachable!())
            .unwrap_err();
        let status = e.status();
        assert_eq!(
            (&status["code"], &status["reason"]),
            (&json!(410), &json!("Expired"))
        );
        assert!(
            status["message"].as_str().unwrap().contains("too old"),
            "{status}"
        );
        // Its token continues on the current state, after the same key.
        assert_eq!(status["metadata"]["continue"], json!(e.continue_token));
        let again = decode_token(&e.continue_token).unwrap();
        assert_eq!(again.revision, -1);
        let page = snaps
            .next(key(""), &again, Some(5), || {
                (vec![cm("", "a"), cm("", "b"), cm("", "z")], 40)
            })
            .unwrap();
        assert_eq!(
            (names(&page), page.revision),
            (vec!["b".into(), "z".into()], 40)
        );
    }
}
