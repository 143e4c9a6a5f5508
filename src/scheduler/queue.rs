//! The scheduling queue: activeQ (priority, then arrival), backoffQ and unschedulablePods.
//! k8s: pkg/scheduler/backend/queue/scheduling_queue.go (reference §5.4)

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::time::Time;

/// k8s: podInitialBackoffSeconds 1, podMaxBackoffSeconds 10
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// k8s: DefaultPodMaxInUnschedulablePodsDuration
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);
/// k8s: the unschedulable pods are checked every 30 s.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

/// Cluster events that may make an unschedulable pod schedulable, as bits; each filter plugin
/// registers the ones it cares about. k8s: framework.ClusterEvent / EventsToRegister
pub mod events {
    pub const NODE_ADD: u32 = 1;
    pub const NODE_DELETE: u32 = 1 << 1;
    pub const NODE_LABEL: u32 = 1 << 2;
    /// Taints or spec.unschedulable.
    pub const NODE_TAINT: u32 = 1 << 3;
    pub const NODE_ALLOCATABLE: u32 = 1 << 4;
    /// An assigned pod appeared.
    pub const POD_ADD: u32 = 1 << 5;
    pub const POD_LABEL: u32 = 1 << 6;
    /// An assigned pod went away or finished (its resources are free).
    pub const POD_DELETE: u32 = 1 << 7;
    pub const ALL: u32 = u32::MAX;
}

#[derive(Clone, Debug)]
struct Entry {
    priority: i32,
    /// When the pod last entered the queue (orders activeQ, starts backoff).
    timestamp: Time,
    attempts: u32,
    /// Its place in activeQ or backoffQ, so it is removed without a scan.
    active_at: Option<(Reverse<i32>, Time, u64)>,
    backoff_at: Option<(Time, u64)>,
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    entries: BTreeMap<String, Entry>,
    active: BTreeSet<(Reverse<i32>, Time, u64, String)>,
    backoff: BTreeMap<(Time, u64), String>,
    /// Unschedulable pods: when they became so, and the events their rejecting plugins wait
    /// for (k8s: UnschedulablePlugins with their QueueingHints).
    unschedulable: BTreeMap<String, (Time, u32)>,
    in_flight: BTreeSet<String>,
    seq: u64,
    next_flush: Option<Time>,
}

/// k8s: backoff for attempt n = min(1 s · 2^(n−1), 10 s)
pub fn backoff(attempts: u32) -> Duration {
    let n = attempts.max(1) - 1;
    INITIAL_BACKOFF
        .checked_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

impl SchedulingQueue {
    fn push_active(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        let Some(e) = self.entries.get_mut(key).filter(|e| e.active_at.is_none()) else {
            return; // gone, or already in activeQ
        };
        let at = (Reverse(e.priority), e.timestamp, seq);
        e.active_at = Some(at);
        self.active.insert((at.0, at.1, at.2, key.to_string()));
    }

    fn remove_everywhere(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            if let Some((p, t, seq)) = e.active_at.take() {
                self.active.remove(&(p, t, seq, key.to_string()));
            }
            if let Some(at) = e.backoff_at.take() {
                self.backoff.remove(&at);
            }
        }
        self.unschedulable.remove(key);
    }

    /// A pending pod appeared (or changed): it is queued, or an unschedulable one is retried.
    pub fn add_or_update(&mut self, key: &str, priority: i32, now: Time) {
        if self.in_flight.contains(key) {
            return;
        }
        match self.entries.get_mut(key) {
            None => {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        priority,
                        timestamp: now,
                        attempts: 0,
                        active_at: None,
                        backoff_at: None,
                    },
                );
                self.push_active(key);
            }
            Some(e) => {
                e.priority = priority;
                if self.unschedulable.contains_key(key) {
                    // k8s: an update to an unschedulable pod may make it schedulable.
                    self.unschedulable.remove(key);
                    self.requeue_after_backoff(key, now);
                }
            }
        }
    }

    pub fn delete(&mut self, key: &str) {
        self.remove_everywhere(key);
        self.entries.remove(key);
        self.in_flight.remove(key);
    }

    /// The next pod to schedule; it is in flight until it is done or deleted.
    pub fn pop(&mut self) -> Option<String> {
        let first = self.active.iter().next().cloned()?;
        self.active.remove(&first);
        let key = first.3;
        if let Some(e) = self.entries.get_mut(&key) {
            e.attempts += 1;
            e.active_at = None;
        }
        self.in_flight.insert(key.clone());
        Some(key)
    }

    /// Scheduling found no node: the pod waits for a cluster change its rejecting plugins care
    /// about (`events`, a mask of `events::*`), or for 5 minutes.
    pub fn unschedulable(&mut self, key: &str, now: Time, events: u32) {
        if !self.in_flight.remove(key) {
            return;
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.timestamp = now;
            self.unschedulable.insert(key.to_string(), (now, events));
            if self.next_flush.is_none() {
                self.next_flush = Some(now + UNSCHEDULABLE_FLUSH);
            }
        }
    }

    /// Scheduling or binding failed with an error: retry after the backoff.
    pub fn error(&mut self, key: &str, now: Time) {
        if !self.in_flight.remove(key) {
            return;
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.timestamp = now;
            self.requeue_after_backoff(key, now);
        }
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, key: &str) {
        self.delete(key);
    }

    fn requeue_after_backoff(&mut self, key: &str, now: Time) {
        let e = &self.entries[key];
        let ready = e.timestamp + backoff(e.attempts);
        if ready <= now {
            self.push_active(key);
        } else {
            self.seq += 1;
            let at = (ready, self.seq);
            self.backoff.insert(at, key.to_string());
            if let Some(e) = self.entries.get_mut(key) {
                e.backoff_at = Some(at);
            }
        }
    }

    /// A cluster change (`event`, of `events::*`): the unschedulable pods whose rejecting
    /// plugins care about it go back (after their backoff). k8s: MoveAllToActiveOrBackoffQueue
    pub fn move_all_to_active_or_backoff(&mut self, now: Time, event: u32) {
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, (_, wants))| wants & event != 0)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.unschedulable.remove(&key);
            self.requeue_after_backoff(&key, now);
        }
    }

    /// Moves what is due at `now`: finished backoffs, and pods unschedulable for 5 minutes (at
    /// the 30-second flush).
    pub fn advance(&mut self, now: Time) {
        while let Some((&(ready, seq), _)) = self.backoff.first_key_value() {
            if ready > now {
                break;
            }
            let key = self.backoff.remove(&(ready, seq)).expect("present");
            if let Some(e) = self.entries.get_mut(&key) {
                e.backoff_at = None;
            }
            self.push_active(&key);
        }
        while self.next_flush.is_some_and(|t| t <= now) {
            let flush_at = self.next_flush.expect("checked");
            let stale: Vec<String> = self
                .unschedulable
                .iter()
                .filter(|(_, (since, _))| flush_at.since(*since) > MAX_UNSCHEDULABLE)
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                self.unschedulable.remove(&key);
                self.requeue_after_backoff(&key, now);
            }
            self.next_flush =
                (!self.unschedulable.is_empty()).then(|| flush_at + UNSCHEDULABLE_FLUSH);
        }
    }

    pub fn next_wakeup(&self) -> Option<Time> {
        let backoff = self.backoff.first_key_value().map(|(&(t, _), _)| t);
        match (backoff, self.next_flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    pub fn is_unschedulable(&self, key: &str) -> bool {
        self.unschedulable.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_1s_to_10s() {
        let got: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn priority_then_arrival() {
        let mut q = SchedulingQueue::default();
        let t = Time::from_secs(1);
        q.add_or_update("low", 0, t);
        q.add_or_update("high", 100, Time::from_secs(2));
        q.add_or_update("low2", 0, Time::from_secs(3));
        assert_eq!(q.pop().as_deref(), Some("high"));
        assert_eq!(q.pop().as_deref(), Some("low"));
        assert_eq!(q.pop().as_deref(), Some("low2"));
        assert_eq!(q.pop(), None);
        // A deleted pod leaves activeQ (by its recorded place, not a scan).
        q.add_or_update("a", 0, Time::from_secs(4));
        q.add_or_update("b", 0, Time::from_secs(5));
        q.delete("a");
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_change_or_five_minutes() {
        let mut q = SchedulingQueue::default();
        let t0 = Time::from_secs(100);
        q.add_or_update("p", 0, t0);
        q.pop();
        q.unschedulable("p", t0, events::ALL);
        assert!(q.is_unschedulable("p"));
        // The 30 s flushes leave it until it has waited more than 5 minutes.
        q.advance(t0 + Duration::from_secs(300));
        assert!(q.is_unschedulable("p"));
        q.advance(t0 + Duration::from_secs(330));
        assert!(!q.is_unschedulable("p"));
        assert_eq!(q.pop().as_deref(), Some("p"));

        // A cluster change moves it at once, but not before its backoff (2 s after attempt 2).
        let t1 = Time::from_secs(1000);
        q.unschedulable("p", t1, events::ALL);
        q.move_all_to_active_or_backoff(t1 + Duration::from_millis(500), events::NODE_ADD);
        assert_eq!(q.pop(), None, "still backing off");
        assert_eq!(q.next_wakeup(), Some(t1 + Duration::from_secs(2)));
        q.advance(t1 + Duration::from_secs(2));
        assert_eq!(q.pop().as_deref(), Some("p"));
    }

    #[test]
    fn only_relevant_events_move_unschedulable_pods() {
        use events::*;
        let t = Time::from_secs(100);
        // (what rejected the pod, the event, moved) — k8s: QueueingHints per plugin
        let cases = [
            (POD_DELETE | NODE_ADD | NODE_ALLOCATABLE, POD_DELETE, true),
            (POD_DELETE | NODE_ADD | NODE_ALLOCATABLE, NODE_LABEL, false),
            (NODE_ADD | NODE_LABEL, NODE_LABEL, true),
            (NODE_ADD | NODE_TAINT, POD_ADD, false),
            (ALL, POD_LABEL, true),
        ];
        for (i, (wants, event, moved)) in cases.into_iter().enumerate() {
            let mut q = SchedulingQueue::default();
            q.add_or_update("p", 0, t);
            q.pop();
            q.unschedulable("p", t, wants);
            q.move_all_to_active_or_backoff(t + Duration::from_secs(5), event);
            assert_eq!(!q.is_unschedulable("p"), moved, "case {i}");
        }
    }

    #[test]
    fn errors_back_off() {
        let mut q = SchedulingQueue::default();
        let t = Time::from_secs(10);
        q.add_or_update("p", 0, t);
        for (attempt, wait) in [(1, 1), (2, 2), (3, 4)] {
            let key = q.pop().unwrap();
            assert_eq!(key, "p", "attempt {attempt}");
            let now = q.next_wakeup().unwrap_or(t);
            q.error("p", now);
            assert_eq!(q.next_wakeup(), Some(now + Duration::from_secs(wait)));
            q.advance(now + Duration::from_secs(wait));
        }
    }
}
