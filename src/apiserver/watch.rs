//! A watch as the API serves it: objects with their resourceVersion, filtered by selectors,
//! with objects that start or stop matching reported as ADDED and DELETED (k8s: the watch
//! cache's filtering, staging/src/k8s.io/apiserver/pkg/storage/cacher).

use std::any::Any;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{decode, object, ListOptions};
use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::store::{EventKind, Revision, Watch, WatchEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiEvent {
    pub type_: EventType,
    /// Shared by every watcher that gets this change.
    pub object: Arc<Value>,
    pub revision: Revision,
    /// The object decoded into a typed form, and encoded as JSON, both shared: the first
    /// informer that decodes it (the first HTTP watcher that encodes it) saves the others the
    /// work.
    pub decoded: Decoded,
}

impl ApiEvent {
    pub fn new(type_: EventType, object: Value, revision: Revision) -> Self {
        ApiEvent {
            type_,
            object: Arc::new(object),
            revision,
            decoded: Decoded::default(),
        }
    }
}

/// Once-filled cells for an event's typed object and its JSON (a cache: it never changes what
/// the event says, so it takes no part in equality). One allocation serves both.
#[derive(Clone, Default)]
pub struct Decoded(Arc<Cells>);

#[derive(Default)]
struct Cells {
    typed: OnceLock<Arc<dyn Any + Send + Sync>>,
    json: OnceLock<bytes::Bytes>,
    key: OnceLock<String>,
}

impl Decoded {
    /// The object's informer cache key (`namespace/name`), made at most once: every
    /// informer that gets the change files the object under it.
    pub fn key_or_init(&self, make: impl FnOnce() -> String) -> &str {
        self.0.key.get_or_init(make)
    }

    /// The object as a `T`, decoded at most once per type.
    pub fn get_or_decode<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        obj: &Value,
    ) -> Result<Arc<T>, serde_json::Error> {
        if let Some(t) = self
            .0
            .typed
            .get()
            .and_then(|any| any.clone().downcast::<T>().ok())
        {
            return Ok(t);
        }
        let t = Arc::new(T::deserialize(obj)?);
        let _ = self.0.typed.set(t.clone());
        Ok(t)
    }

    /// The object as JSON, encoded at most once.
    pub fn get_or_encode(&self, obj: &Value) -> bytes::Bytes {
        self.0
            .json
            .get_or_init(|| bytes::Bytes::from(serde_json::to_vec(obj).unwrap_or_default()))
            .clone()
    }
}

impl PartialEq for Decoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.typed.get().is_some() {
            "Decoded(filled)"
        } else {
            "Decoded(empty)"
        })
    }
}

pub struct ApiWatch {
    inner: Watch,
    opts: ListOptions,
    res: &'static ResourceInfo,
}

impl ApiWatch {
    pub(super) fn new(inner: Watch, opts: ListOptions, res: &'static ResourceInfo) -> Self {
        ApiWatch { inner, opts, res }
    }

    fn matches(&self, obj: &Value) -> bool {
        self.opts.label_selector.matches(&object::labels(obj))
            && self.opts.field_selector.matches(obj)
    }

    fn convert(&self, ev: &WatchEvent) -> Result<Option<ApiEvent>, ApiError> {
        let rev = ev.revision();
        let obj = decode(&ev.kv.value, rev)?;
        let type_ = match ev.kind {
            EventKind::Added => self.matches(&obj).then_some(EventType::Added),
            EventKind::Deleted => self.matches(&obj).then_some(EventType::Deleted),
            EventKind::Modified => {
                let was = match &ev.prev_value {
                    Some(prev) => self.matches(&decode(prev, rev)?),
                    None => true,
                };
                match (was, self.matches(&obj)) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        };
        Ok(type_.map(|type_| ApiEvent::new(type_, obj, rev)))
    }

    fn map(
        &self,
        item: crate::store::Result<std::sync::Arc<WatchEvent>>,
    ) -> Option<Result<ApiEvent, ApiError>> {
        match item {
            Ok(ev) => self.convert(&ev).transpose(),
            Err(e) => Some(Err(ApiError::from_store(self.res, "", e))),
        }
    }

    /// The next event that is ready, without waiting.
    pub fn try_next(&mut self) -> Option<Result<ApiEvent, ApiError>> {
        while let Some(item) = self.inner.try_next() {
            if let Some(out) = self.map(item) {
                return Some(out);
            }
        }
        None
    }

    pub fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl Stream for ApiWatch {
    type Item = Result<ApiEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if let Some(out) = self.map(item) {
                        return Poll::Ready(Some(out));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
