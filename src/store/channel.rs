//! A single-producer, single-consumer queue of watch events with an end reason.
//!
//! std-only (no runtime): the consumer can poll it as a `Stream`, or take what is queued without
//! waiting (the simulator). The producer never blocks: a consumer that falls more than `capacity`
//! events behind is ended with `WatchClosed`, as etcd and the Kubernetes watch cache close slow
//! watchers, and re-watches from the last revision it saw.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::{Result, StoreError, WatchEvent};

struct State {
    queue: VecDeque<Arc<WatchEvent>>,
    /// Set once the producer ends the stream; delivered after the queued events.
    end: Option<StoreError>,
    /// The end was delivered: the stream is over.
    finished: bool,
    receiver_alive: bool,
    waker: Option<Waker>,
    capacity: usize,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every mutation
        // is a single push/pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct WatchSender {
    shared: Arc<Shared>,
}

pub struct WatchReceiver {
    shared: Arc<Shared>,
}

/// A connected pair. `capacity` bounds the undelivered events (at least 1).
pub fn watch_channel(capacity: usize) -> (WatchSender, WatchReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            end: None,
            finished: false,
            receiver_alive: true,
            waker: None,
            capacity: capacity.max(1),
        }),
    });
    (
        WatchSender {
            shared: shared.clone(),
        },
        WatchReceiver { shared },
    )
}

impl WatchSender {
    /// Queues an event. Returns false when the watch is over (receiver gone, ended, or just
    /// ended because it overflowed); the producer should then forget this sender.
    pub fn send(&self, event: Arc<WatchEvent>) -> bool {
        self.send_inner(event, false)
    }

    /// Queues an event even past capacity: used to replay history into a new watch, which has
    /// not had the chance to consume anything yet.
    pub fn send_unbounded(&self, event: Arc<WatchEvent>) -> bool {
        self.send_inner(event, true)
    }

    fn send_inner(&self, event: Arc<WatchEvent>, unbounded: bool) -> bool {
        let (accepted, waker) = {
            let mut st = self.shared.lock();
            if !st.receiver_alive || st.end.is_some() || st.finished {
                return false;
            }
            if !unbounded && st.queue.len() >= st.capacity {
                st.end = Some(StoreError::WatchClosed {
                    reason: format!(
                        "consumer fell more than {} events behind; re-watch from the last revision received",
                        st.capacity
                    ),
                });
                (false, st.waker.take())
            } else {
                st.queue.push_back(event);
                (true, st.waker.take())
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        accepted
    }

    /// Ends the stream with `reason` after the events already queued.
    pub fn close(&self, reason: StoreError) {
        let waker = {
            let mut st = self.shared.lock();
            if st.end.is_none() && !st.finished {
                st.end = Some(reason);
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// False once the receiver is gone or the stream has been ended.
    pub fn is_open(&self) -> bool {
        let st = self.shared.lock();
        st.receiver_alive && st.end.is_none() && !st.finished
    }
}

impl Drop for WatchSender {
    fn drop(&mut self) {
        self.close(StoreError::WatchClosed {
            reason: "the store stopped serving this watch".into(),
        });
    }
}

impl WatchReceiver {
    fn take_one(st: &mut State) -> Option<Result<Arc<WatchEvent>>> {
        if let Some(ev) = st.queue.pop_front() {
            return Some(Ok(ev));
        }
        if let Some(err) = st.end.take() {
            st.finished = true;
            return Some(Err(err));
        }
        None
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Arc<WatchEvent>>>> {
        let mut st = self.shared.lock();
        if let Some(item) = Self::take_one(&mut st) {
            return Poll::Ready(Some(item));
        }
        if st.finished {
            return Poll::Ready(None);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub fn try_next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        Self::take_one(&mut self.shared.lock())
    }

    pub fn drain_into(&mut self, out: &mut Vec<Result<Arc<WatchEvent>>>) -> bool {
        let mut st = self.shared.lock();
        out.extend(st.queue.drain(..).map(Ok));
        if let Some(err) = st.end.take() {
            st.finished = true;
            out.push(Err(err));
        }
        !st.finished
    }

    pub fn is_terminated(&self) -> bool {
        let st = self.shared.lock();
        st.finished
    }
}

impl Drop for WatchReceiver {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receiver_alive = false;
        st.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};
    use futures::StreamExt;

    fn ev(rev: u64) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            kind: EventKind::Added,
            kv: KeyValue {
                key: format!("k{rev}"),
                value: bytes::Bytes::new(),
                create_revision: rev,
                mod_revision: rev,
            },
            prev_value: None,
        })
    }

    #[test]
    fn delivers_in_order_then_the_end() {
        let (tx, rx) = watch_channel(8);
        assert!(tx.send(ev(2)));
        assert!(tx.send(ev(3)));
        tx.close(StoreError::WatchClosed { reason: "x".into() });
        assert!(!tx.send(ev(4)), "nothing is accepted after the end");
        let mut watch = crate::store::Watch::new(rx);
        let got: Vec<_> = futures::executor::block_on(watch.by_ref().collect::<Vec<_>>());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().revision(), 2);
        assert_eq!(got[1].as_ref().unwrap().revision(), 3);
        assert!(matches!(got[2], Err(StoreError::WatchClosed { .. })));
        assert!(watch.is_terminated());
    }

    #[test]
    fn overflow_ends_the_watch_after_what_was_queued() {
        let (tx, mut rx) = watch_channel(2);
        assert!(tx.send(ev(2)));
        assert!(tx.send(ev(3)));
        assert!(!tx.send(ev(4)), "third event overflows a capacity of 2");
        assert_eq!(rx.try_next().unwrap().unwrap().revision(), 2);
        assert_eq!(rx.try_next().unwrap().unwrap().revision(), 3);
        match rx.try_next() {
            Some(Err(StoreError::WatchClosed { reason })) => {
                assert!(reason.contains("2 events behind"), "{reason}")
            }
            other => panic!("expected WatchClosed, got {other:?}"),
        }
        assert!(rx.try_next().is_none());
    }

    #[test]
    fn dropped_receiver_closes_the_sender() {
        let (tx, rx) = watch_channel(2);
        drop(rx);
        assert!(!tx.is_open());
        assert!(!tx.send(ev(2)));
    }

    #[test]
    fn dropped_sender_ends_the_stream() {
        let (tx, mut rx) = watch_channel(2);
        tx.send(ev(2));
        drop(tx);
        let mut out = Vec::new();
        assert!(!rx.drain_into(&mut out));
        assert_eq!(out.len(), 2);
        assert!(out[1].is_err());
    }
}
