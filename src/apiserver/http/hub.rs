//! One watch cache per resource for every HTTP watcher (k8s: the apiserver's cacher): a single
//! store watch per resource feeds a [`Cacher`] (the sans-IO watch cache the simulator also
//! runs), which filters each change for every watcher and keeps a bounded history for watches
//! that resume. A watcher that falls `QUEUE` events behind is closed, as upstream closes slow
//! watchers, so it never holds up the others; its client re-watches or relists.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};

use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::apiserver::cacher::{Cacher, Filter};
use crate::apiserver::{ApiEvent, ApiServer, ListOptions};
use crate::store::backend::Backend;
use crate::store::{Revision, Store};

/// Events a watcher may be behind before it is closed.
const QUEUE: usize = 1024;

pub struct Hub {
    /// Changes each resource's cache keeps for watches that resume.
    history: usize,
    caches: Mutex<HashMap<(&'static str, &'static str), Arc<Shared>>>,
    next_id: AtomicU64,
}

struct Shared {
    state: Mutex<CacheState>,
}

struct CacheState {
    cacher: Cacher,
    senders: HashMap<u64, mpsc::Sender<ApiEvent>>,
    /// The store watch ended (it fell behind, or its history was compacted): the cache is
    /// being rebuilt from a fresh list and takes no watchers meanwhile.
    rebuilding: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a watch starts.
pub enum From {
    /// The current objects as ADDED events, then what follows (no resourceVersion, or 0).
    Now,
    /// The changes after this resourceVersion.
    After(Revision),
}

impl Hub {
    pub fn new(history: usize) -> Self {
        Hub {
            history: history.max(1),
            caches: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Registers a watcher of `res` through `filter`.
    pub async fn watch(
        &self,
        api: &Arc<ApiServer<Backend>>,
        res: &'static ResourceInfo,
        filter: Filter,
        from: From,
    ) -> Result<Registration, ApiError> {
        let shared = self.cache(api, res).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = shared.lock();
        if state.rebuilding {
            return Err(ApiError::unavailable(
                "the watch cache is being rebuilt; try again",
            ));
        }
        let (initial, after) = match from {
            From::Now => {
                let (items, revision) = state.cacher.list(&filter);
                let added = items
                    .into_iter()
                    .map(|o| ApiEvent::new(crate::apiserver::EventType::Added, o, revision))
                    .collect::<Vec<_>>();
                (added, revision)
            }
            From::After(rv) => (Vec::new(), rv),
        };
        let current = state.cacher.revision();
        let missed = state.cacher.watch(id, filter, after.min(current))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        state.senders.insert(id, tx);
        drop(state);
        let mut events = initial;
        events.extend(missed.into_iter().filter(|e| e.revision > after));
        Ok(Registration {
            id,
            after,
            initial: events.into(),
            rx,
            shared,
        })
    }

    /// Starts the caches of every resource, as upstream does at start-up: resourceVersions
    /// handed out from then on can be watched from.
    pub async fn start(&self, api: &Arc<ApiServer<Backend>>) -> Result<(), ApiError> {
        for res in crate::api::registry::RESOURCES {
            if !crate::api::registry::is_stored(res) {
                continue;
            }
            self.cache(api, res).await?;
        }
        Ok(())
    }

    async fn cache(
        &self,
        api: &Arc<ApiServer<Backend>>,
        res: &'static ResourceInfo,
    ) -> Result<Arc<Shared>, ApiError> {
        if let Some(s) = self
            .caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(res.group, res.plural))
        {
            return Ok(s.clone());
        }
        let (items, revision) = api.list(res, None, &ListOptions::default()).await?;
        let fresh = Arc::new(Shared {
            state: Mutex::new(CacheState {
                cacher: Cacher::new(res, items, revision, self.history),
                senders: HashMap::new(),
                rebuilding: false,
            }),
        });
        let shared = {
            let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
            // Another request may have built it meanwhile: keep the first.
            caches
                .entry((res.group, res.plural))
                .or_insert_with(|| fresh.clone())
                .clone()
        };
        if Arc::ptr_eq(&shared, &fresh) {
            let (api, shared, history) = (api.clone(), shared.clone(), self.history);
            actix_web::rt::spawn(feed(api, res, shared, revision, history));
        }
        Ok(shared)
    }
}

/// Reads the resource's store watch into its cache for as long as the server runs. When the
/// store watch ends, every watcher is closed (clients re-watch, or relist on 410) and the
/// cache starts again from a fresh list.
async fn feed(
    api: Arc<ApiServer<Backend>>,
    res: &'static ResourceInfo,
    shared: Arc<Shared>,
    mut revision: Revision,
    history: usize,
) {
    loop {
        match api.store().watch(&res.storage_prefix(), revision).await {
            Ok(mut watch) => {
                while let Some(item) = watch.next().await {
                    let Ok(ev) = item else { break };
                    let decoded = api.decoded(&ev.kv.key, ev.revision());
                    let mut state = shared.lock();
                    let Ok(applied) = state.cacher.apply_decoded(&ev, decoded) else {
                        continue;
                    };
                    for (id, event) in applied.events {
                        let delivered = state
                            .senders
                            .get_mut(&id)
                            .is_some_and(|tx| tx.try_send(event).is_ok());
                        if !delivered {
                            // Too far behind, or gone: close it.
                            state.senders.remove(&id);
                            state.cacher.unwatch(id);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("watch of {} failed: {e}", res.plural),
        }
        {
            let mut state = shared.lock();
            state.rebuilding = true;
            state.senders.clear();
        }
        tracing::info!("rebuilding the watch cache of {}", res.plural);
        loop {
            match api.list(res, None, &ListOptions::default()).await {
                Ok((items, rev)) => {
                    let mut state = shared.lock();
                    state.cacher = Cacher::new(res, items, rev, history);
                    state.rebuilding = false;
                    revision = rev;
                    break;
                }
                Err(e) => {
                    tracing::warn!("relist of {} failed: {}", res.plural, e.message);
                    actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// A registered watcher: the events it missed, then the live ones. Dropping it unregisters.
pub struct Registration {
    id: u64,
    /// Events at or before this revision were already seen by the client.
    after: Revision,
    initial: std::collections::VecDeque<ApiEvent>,
    rx: mpsc::Receiver<ApiEvent>,
    shared: Arc<Shared>,
}

impl Registration {
    /// The revision up to which this watcher has been sent everything, if nothing is waiting
    /// to be read (a bookmark then says so); `None` while events are pending.
    pub fn bookmark(&mut self) -> Option<Revision> {
        if !self.initial.is_empty() {
            return None;
        }
        // Under the cache's lock no change is being handed out: an empty queue means every
        // change up to the cache's revision has been read.
        let state = self.shared.lock();
        match self.rx.try_recv() {
            Ok(e) => {
                self.initial.push_back(e);
                None
            }
            Err(mpsc::TryRecvError::Empty) => Some(state.cacher.revision().max(self.after)),
            Err(_) => None,
        }
    }
}

impl Stream for Registration {
    type Item = ApiEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ApiEvent>> {
        if let Some(e) = self.initial.pop_front() {
            return Poll::Ready(Some(e));
        }
        loop {
            match Pin::new(&mut self.rx).poll_next(cx) {
                // A list served from the store can be ahead of the cache: skip what it held.
                Poll::Ready(Some(e)) if e.revision <= self.after => continue,
                other => return other,
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders.remove(&self.id);
        state.cacher.unwatch(self.id);
    }
}
