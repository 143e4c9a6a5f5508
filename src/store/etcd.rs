//! EtcdStore: the store on etcd v3, for clusters that outgrow one machine.
//!
//! k8s: the same mapping the apiserver's etcd3 storage uses: create is a Txn guarded by
//! `create_revision == 0`, update and delete are Txns guarded by `mod_revision == precondition`,
//! list is a Range with its header revision, watch is a Watch with prev_kv, and a compacted start
//! is etcd's `compact_revision` cancellation, reported as `Expired`. `compact(r)` is etcd's
//! compact(r), and a watch from a past `after` starts at etcd revision `after` (not `after + 1`)
//! and skips the events at `after`: an etcd without the fix for etcd-io/etcd#18089 (Debian's
//! 3.4.23) drops a tombstone at exactly its compaction revision, so its history is complete only
//! *after* that revision (docs/decisions.md).
//! Needs a tokio runtime (etcd-client is tonic).

use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};

use super::{
    watch_channel, Deleted, EventKind, KeyValue, ListResult, Result, Revision, Store, StoreError,
    Watch, WatchEvent,
};

#[derive(Clone, Debug)]
pub struct EtcdConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Undelivered events one watcher may hold before it is closed (see `HistoryConfig`).
    pub watch_capacity: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            watch_capacity: 10_000,
        }
    }
}

pub struct EtcdStore {
    client: Client,
    endpoint: String,
    config: EtcdConfig,
}

/// Stops a watch's feeding task when the watch is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn rev(r: i64) -> Revision {
    r.max(0) as Revision
}

impl EtcdStore {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:2379`) and checks that etcd answers, so a
    /// down or wrong endpoint is reported here, naming it.
    pub async fn connect(endpoint: &str, config: EtcdConfig) -> Result<Self> {
        let unavailable = |message: String| StoreError::Unavailable {
            endpoint: format!("etcd {endpoint}"),
            message,
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout);
        let client = tokio::time::timeout(
            config.connect_timeout,
            Client::connect([endpoint], Some(options)),
        )
        .await
        .map_err(|_| unavailable(format!("no connection within {:?}", config.connect_timeout)))?
        .map_err(|e| unavailable(e.to_string()))?;
        let store = EtcdStore {
            client,
            endpoint: endpoint.to_string(),
            config,
        };
        tokio::time::timeout(store.config.connect_timeout, store.current_revision())
            .await
            .map_err(|_| {
                unavailable(format!(
                    "no answer within {:?}",
                    store.config.connect_timeout
                ))
            })??;
        Ok(store)
    }

    fn error(&self, e: etcd_client::Error) -> StoreError {
        let endpoint = format!("etcd {}", self.endpoint);
        match e {
            etcd_client::Error::GRpcStatus(s) if i32::from(s.code()) == GRPC_DEADLINE_EXCEEDED => {
                StoreError::Timeout { endpoint }
            }
            etcd_client::Error::InvalidArgs(m) => StoreError::Invalid(m),
            other => StoreError::Unavailable {
                endpoint,
                message: other.to_string(),
            },
        }
    }

    /// A Txn guarded by `guard`; on failure the key is read back to say why.
    async fn guarded(
        &self,
        key: &str,
        guard: Compare,
        op: TxnOp,
    ) -> Result<(Revision, Vec<TxnOpResponse>)> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .txn(
                Txn::new()
                    .when([guard])
                    .and_then([op])
                    .or_else([TxnOp::get(key, None)]),
            )
            .await
            .map_err(|e| self.error(e))?;
        let revision = rev(resp.header().map_or(0, |h| h.revision()));
        if resp.succeeded() {
            return Ok((revision, resp.op_responses()));
        }
        Err(match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(g)) => match g.kvs().first() {
                Some(found) => StoreError::Conflict {
                    key: key.into(),
                    expected: 0,
                    actual: rev(found.mod_revision()),
                },
                None => StoreError::NotFound { key: key.into() },
            },
            _ => StoreError::Unavailable {
                endpoint: format!("etcd {}", self.endpoint),
                message: "unexpected Txn response".into(),
            },
        })
    }

    /// The guard for update/delete: with a precondition the mod_revision must match; without
    /// one the key must exist.
    fn precondition_guard(key: &str, precondition: Option<Revision>) -> Compare {
        match precondition {
            Some(r) => Compare::mod_revision(key, CompareOp::Equal, r as i64),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        }
    }

    fn fix_conflict(e: StoreError, precondition: Option<Revision>) -> StoreError {
        match (e, precondition) {
            (StoreError::Conflict { key, actual, .. }, Some(expected)) => StoreError::Conflict {
                key,
                expected,
                actual,
            },
            (e, _) => e,
        }
    }
}

/// gRPC's DEADLINE_EXCEEDED status code (tonic is not re-exported by etcd-client).
const GRPC_DEADLINE_EXCEEDED: i32 = 4;

fn to_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: rev(kv.create_revision()),
        mod_revision: rev(kv.mod_revision()),
    }
}

fn to_event(ev: &etcd_client::Event) -> Option<WatchEvent> {
    let kv = ev.kv()?;
    let prev = ev.prev_kv();
    Some(match ev.event_type() {
        EventType::Put => WatchEvent {
            kind: if kv.create_revision() == kv.mod_revision() {
                EventKind::Added
            } else {
                EventKind::Modified
            },
            kv: to_kv(kv),
            prev_value: prev.map(|p| Bytes::copy_from_slice(p.value())),
        },
        EventType::Delete => {
            let last = prev.map(to_kv);
            WatchEvent {
                kind: EventKind::Deleted,
                kv: KeyValue {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: last.as_ref().map(|l| l.value.clone()).unwrap_or_default(),
                    create_revision: last.as_ref().map_or(0, |l| l.create_revision),
                    mod_revision: rev(kv.mod_revision()),
                },
                prev_value: last.map(|l| l.value),
            }
        }
    })
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {}", self.endpoint)
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.error(e))?;
        Ok(rev(resp.header().map_or(0, |h| h.revision())))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let guard = Compare::create_revision(key, CompareOp::Equal, 0);
        match self
            .guarded(key, guard, TxnOp::put(key, value.to_vec(), None))
            .await
        {
            Ok((revision, _)) => Ok(revision),
            Err(StoreError::Conflict { .. }) => Err(StoreError::AlreadyExists { key: key.into() }),
            Err(e) => Err(e),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> Result<Revision> {
        let guard = Self::precondition_guard(key, precondition);
        self.guarded(
            key,
            guard,
            TxnOp::put(key, value.to_vec(), Some(PutOptions::new())),
        )
        .await
        .map(|(revision, _)| revision)
        .map_err(|e| Self::fix_conflict(e, precondition))
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        let guard = Self::precondition_guard(key, precondition);
        let op = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let (revision, responses) = self
            .guarded(key, guard, op)
            .await
            .map_err(|e| Self::fix_conflict(e, precondition))?;
        match responses.into_iter().next() {
            Some(TxnOpResponse::Delete(d)) if !d.prev_kvs().is_empty() => Ok(Deleted {
                revision,
                prev: to_kv(&d.prev_kvs()[0]),
            }),
            _ => Err(StoreError::NotFound { key: key.into() }),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let resp = kv.get(key, None).await.map_err(|e| self.error(e))?;
        Ok(resp.kvs().first().map(to_kv))
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.error(e))?;
        Ok(ListResult {
            items: resp.kvs().iter().map(to_kv).collect(),
            revision: rev(resp.header().map_or(0, |h| h.revision())),
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        // etcd confirms a watch before it checks the start against compaction (the cancellation
        // follows asynchronously), so ask first: a read at `after` fails exactly when `after` is
        // below etcd's compaction revision, i.e. when the watch is `Expired`. Revision 1 is etcd's
        // empty initial state (and a read or watch at 0 would mean "now").
        let floor = after.max(1) as i64;
        let mut kv = self.client.kv_client();
        let probe = GetOptions::new().with_revision(floor).with_count_only();
        let (start_compacted, current) = match kv.get(prefix, Some(probe)).await {
            Ok(resp) => (false, rev(resp.header().map_or(0, |h| h.revision()))),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("compacted") => {
                (true, 0)
            }
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("future revision") => {
                (false, after)
            }
            Err(e) => return Err(self.error(e)),
        };
        // A watch that must catch up from etcd's history starts at `after` itself, one revision
        // early (its events at `after` are skipped below): etcd cancels a catching-up watcher
        // whose next revision is below the compaction revision, and with that start it does so
        // exactly when the watch is `Expired`, also when a compaction lands before the watcher
        // has caught up. At `after + 1` a watcher exactly at the compaction point would go on
        // reading history, and an etcd without the fix for etcd-io/etcd#18089 has dropped a
        // tombstone at its compaction revision: the deletion would be silently missing.
        // A watch from the current revision starts at `after + 1`, so etcd treats it as live
        // and delivers the next write at once (a start at or below the current revision waits
        // for etcd's next history sync, up to 100 ms).
        let start = if start_compacted || after < current {
            floor
        } else {
            after as i64 + 1
        };
        let mut client = self.client.watch_client();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start)
            .with_prev_key();
        let mut stream = client
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.error(e))?;
        // etcd answers a watch request first with `created`, or with a cancellation carrying
        // `compact_revision` when the start is already compacted.
        let first = stream
            .message()
            .await
            .map_err(|e| self.error(e))?
            .ok_or_else(|| StoreError::Unavailable {
                endpoint: self.describe(),
                message: "watch stream closed before it was created".into(),
            })?;
        // `compact(r)` is etcd's compact(r), so etcd's compact revision is ours.
        let expired = move |compact_revision: i64, current: Revision| StoreError::Expired {
            requested: after,
            compacted: rev(compact_revision),
            current,
        };
        let mut first = first;
        if start_compacted && !first.canceled() {
            // Wait for the cancellation that names the compaction revision.
            first = tokio::time::timeout(self.config.request_timeout, stream.message())
                .await
                .map_err(|_| StoreError::Timeout {
                    endpoint: self.describe(),
                })?
                .map_err(|e| self.error(e))?
                .ok_or_else(|| StoreError::WatchClosed {
                    reason: format!("{} closed the watch stream", self.describe()),
                })?;
        }
        if first.canceled() {
            let current = self.current_revision().await.unwrap_or(0);
            return Err(if first.compact_revision() > 0 {
                expired(first.compact_revision(), current)
            } else {
                StoreError::WatchClosed {
                    reason: format!("etcd refused the watch: {}", first.cancel_reason()),
                }
            });
        }
        let (tx, rx) = watch_channel(self.config.watch_capacity);
        let endpoint = self.describe();
        let task = tokio::spawn(async move {
            let mut pending = Some(first);
            loop {
                let resp = match pending.take() {
                    Some(r) => r,
                    None => match stream.message().await {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            tx.close(StoreError::WatchClosed {
                                reason: format!("{endpoint} closed the watch stream"),
                            });
                            return;
                        }
                        Err(e) => {
                            tx.close(StoreError::WatchClosed {
                                reason: format!("{endpoint}: {e}"),
                            });
                            return;
                        }
                    },
                };
                for ev in resp.events() {
                    // A catching-up watch starts one revision early (see above).
                    if ev.kv().is_some_and(|kv| rev(kv.mod_revision()) <= after) {
                        continue;
                    }
                    match to_event(ev) {
                        Some(event) => {
                            if !tx.send(std::sync::Arc::new(event)) {
                                return;
                            }
                        }
                        None => {
                            tx.close(StoreError::WatchClosed {
                                reason: format!("{endpoint} sent an event without a key"),
                            });
                            return;
                        }
                    }
                }
                if resp.canceled() {
                    tx.close(if resp.compact_revision() > 0 {
                        expired(
                            resp.compact_revision(),
                            rev(resp.header().map_or(0, |h| h.revision())),
                        )
                    } else {
                        StoreError::WatchClosed {
                            reason: format!(
                                "{endpoint} canceled the watch: {}",
                                resp.cancel_reason()
                            ),
                        }
                    });
                    return;
                }
            }
        });
        Ok(Watch::with_guard(
            rx,
            Box::new(AbortOnDrop(task.abort_handle())),
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::Invalid(format!(
                "cannot compact at revision {revision}: the current revision is {current}"
            )));
        }
        // etcd's compact(r) keeps every change after r: our compaction point is etcd's. (etcd
        // also keeps the state at r, but without the fix for etcd-io/etcd#18089 not a tombstone
        // at r, so a watch starting at r could miss that deletion; see `watch`.)
        let at = revision as i64;
        let mut kv = self.client.kv_client();
        match kv
            .compact(at, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("compacted") => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}
