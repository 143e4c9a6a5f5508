//! A watch as the API serves it: objects with their resourceVersion, filtered by selectors,
//! with objects that start or stop matching reported as ADDED and DELETED (k8s: the watch
//! cache's filtering, staging/src/k8s.io/apiserver/pkg/storage/cacher).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
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
    pub object: Value,
    pub revision: Revision,
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
        Ok(type_.map(|type_| ApiEvent {
            type_,
            object: obj,
            revision: rev,
        }))
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
