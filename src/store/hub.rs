//! The watch history window and the fan-out to watchers, shared by MemStore and EmbeddedStore.
//!
//! Events are published in revision order by the one place that commits writes. A new watch
//! replays the retained events after its start and is registered in the same critical section,
//! so it sees every change exactly once. History is bounded: keeping the last `history_limit`
//! revisions, like etcd's compaction or the apiserver's watch cache.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::{
    watch_channel, HistoryConfig, Result, Revision, StoreError, WatchEvent, WatchReceiver,
    WatchSender,
};

struct Watcher {
    after: Revision,
    tx: WatchSender,
}

pub(crate) struct WatchHub {
    config: HistoryConfig,
    history: VecDeque<Arc<WatchEvent>>,
    /// Changes at or below this revision are forgotten.
    compacted: Revision,
    /// Watchers grouped by prefix: a write visits each distinct prefix once.
    watchers: BTreeMap<String, Vec<Watcher>>,
}

impl WatchHub {
    pub(crate) fn new(config: HistoryConfig, compacted: Revision) -> Self {
        WatchHub {
            config,
            history: VecDeque::new(),
            compacted,
            watchers: BTreeMap::new(),
        }
    }

    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The compaction point the automatic window implies once `current` is committed.
    pub(crate) fn window_start(
        config: &HistoryConfig,
        compacted: Revision,
        current: Revision,
    ) -> Revision {
        compacted.max(current.saturating_sub(config.history_limit))
    }

    /// Records a committed change (revisions must increase) and hands it to every watcher
    /// of a matching prefix.
    pub(crate) fn publish(&mut self, event: WatchEvent) {
        let event = Arc::new(event);
        let rev = event.revision();
        debug_assert!(self.history.back().is_none_or(|last| last.revision() < rev));
        let key = event.kv.key.as_str();
        self.watchers.retain(|prefix, group| {
            if key.starts_with(prefix.as_str()) {
                group.retain(|w| rev <= w.after || w.tx.send(event.clone()));
            }
            !group.is_empty()
        });
        self.history.push_back(event);
        let start = Self::window_start(&self.config, self.compacted, rev);
        self.compact(start);
    }

    /// Loads a retained event without fanning it out (reopening a durable store).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn restore(&mut self, event: WatchEvent) {
        self.history.push_back(Arc::new(event));
    }

    /// Forgets every change at or below `revision`.
    pub(crate) fn compact(&mut self, revision: Revision) {
        while self
            .history
            .front()
            .is_some_and(|e| e.revision() <= revision)
        {
            self.history.pop_front();
        }
        self.compacted = self.compacted.max(revision);
    }

    /// Opens a watch of `prefix` from `after`; `current` is the latest committed revision.
    pub(crate) fn watch(
        &mut self,
        prefix: &str,
        after: Revision,
        current: Revision,
    ) -> Result<WatchReceiver> {
        if after < self.compacted {
            return Err(StoreError::Expired {
                requested: after,
                compacted: self.compacted,
                current,
            });
        }
        let (tx, rx) = watch_channel(self.config.watch_capacity);
        let start = self.history.partition_point(|e| e.revision() <= after);
        for event in self.history.range(start..) {
            if event.kv.key.starts_with(prefix) {
                tx.send_unbounded(event.clone());
            }
        }
        // Watchers whose consumer left are dropped when an event reaches them, or here, so a
        // quiet prefix does not collect them.
        let group = self.watchers.entry(prefix.to_string()).or_default();
        group.retain(|w| w.tx.is_open());
        group.push(Watcher { after, tx });
        Ok(rx)
    }

    /// Ends every watch (a simulated store fault, or shutdown).
    pub(crate) fn close_all(&mut self, reason: &str) {
        for (_, group) in std::mem::take(&mut self.watchers) {
            for w in group {
                w.tx.close(StoreError::WatchClosed {
                    reason: reason.to_string(),
                });
            }
        }
    }

    pub(crate) fn watcher_count(&self) -> usize {
        self.watchers.values().map(Vec::len).sum()
    }
}
