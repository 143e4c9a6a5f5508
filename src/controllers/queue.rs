//! The controller work queue, as client-go's rate-limited workqueue behaves, without a clock.
//!
//! k8s: a key is queued at most once; a key being processed is never handed out twice, and a
//! re-add while it is processed is deferred until `done`. Failed keys come back after
//! max(per-item 5 ms·2^failures capped at 1000 s, a shared 10 qps / burst 100 bucket)
//! (client-go util/workqueue DefaultControllerRateLimiter). The host calls `advance(now)` and
//! arms a timer for `next_wakeup()`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::component::Effect;
use crate::time::Time;

/// k8s: ItemExponentialFailureRateLimiter(5ms, 1000s)
pub const BASE_DELAY: Duration = Duration::from_millis(5);
pub const MAX_DELAY: Duration = Duration::from_secs(1000);
/// k8s: BucketRateLimiter(rate.NewLimiter(10, 100))
pub const BUCKET_QPS: u64 = 10;
pub const BUCKET_BURST: u64 = 100;

#[derive(Debug, Default)]
pub struct WorkQueue {
    queue: VecDeque<String>,
    /// Keys waiting to be processed (queued, or re-added while processing).
    dirty: BTreeSet<String>,
    processing: BTreeSet<String>,
    /// Delayed adds: (ready at, sequence) → key. The sequence keeps equal times in order.
    waiting: BTreeMap<(Time, u64), String>,
    /// When each waiting key is due (the earliest request wins).
    waiting_at: BTreeMap<String, (Time, u64)>,
    seq: u64,
    failures: BTreeMap<String, u32>,
    /// The bucket's theoretical arrival time (GCRA form of a token bucket).
    bucket_tat: Time,
}

impl WorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, key: &str) {
        if !self.dirty.insert(key.to_string()) {
            return;
        }
        if !self.processing.contains(key) {
            self.queue.push_back(key.to_string());
        }
    }

    /// Queues `key` once `delay` has passed after `now` (an earlier pending request wins).
    pub fn add_after(&mut self, key: &str, delay: Duration, now: Time) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = now + delay;
        if let Some(&(existing, _)) = self.waiting_at.get(key) {
            if existing <= at {
                return;
            }
            let old = self.waiting_at.remove(key).expect("present");
            self.waiting.remove(&old);
        }
        self.seq += 1;
        let slot = (at, self.seq);
        self.waiting.insert(slot, key.to_string());
        self.waiting_at.insert(key.to_string(), slot);
    }

    /// Re-queues a key whose processing failed, after its backoff.
    pub fn add_rate_limited(&mut self, key: &str, now: Time) {
        let delay = self.item_delay(key).max(self.bucket_delay(now));
        self.add_after(key, delay, now);
    }

    fn item_delay(&mut self, key: &str) -> Duration {
        let n = self.failures.entry(key.to_string()).or_insert(0);
        let exp = *n;
        *n = n.saturating_add(1);
        // 5 ms · 2^n, capped (checked to avoid overflow for large n).
        let factor = 1u64.checked_shl(exp).unwrap_or(u64::MAX);
        BASE_DELAY
            .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY)
    }

    fn bucket_delay(&mut self, now: Time) -> Duration {
        let interval = Duration::from_nanos(1_000_000_000 / BUCKET_QPS);
        let tolerance = interval * (BUCKET_BURST as u32 - 1);
        let tat = self.bucket_tat.max(now);
        let wait = tat.since(now).saturating_sub(tolerance);
        self.bucket_tat = tat + interval;
        wait
    }

    /// Resets a key's failure count (processing succeeded).
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    pub fn requeues(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// Moves delayed keys that are due at `now` into the queue.
    pub fn advance(&mut self, now: Time) {
        while let Some((&slot, _)) = self.waiting.first_key_value() {
            if slot.0 > now {
                break;
            }
            let key = self.waiting.remove(&slot).expect("present");
            self.waiting_at.remove(&key);
            self.add(&key);
        }
    }

    /// When the next delayed key becomes due.
    pub fn next_wakeup(&self) -> Option<Time> {
        self.waiting.first_key_value().map(|(&(at, _), _)| at)
    }

    /// The next key to process; it is processing until `done`.
    pub fn get(&mut self) -> Option<String> {
        let key = self.queue.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    pub fn done(&mut self, key: &str) {
        self.processing.remove(key);
        if self.dirty.contains(key) {
            self.queue.push_back(key.to_string());
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Keeps a core's one queue timer set for `wake`, the queue's next due time: a timer is sent
/// only when that time changes (the host replaces a timer of the same id).
pub fn arm_timer(armed: &mut Option<Time>, wake: Option<Time>, id: u64, out: &mut Vec<Effect>) {
    if wake != *armed {
        *armed = wake;
        if let Some(at) = wake {
            out.push(Effect::Timer { id, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let mut q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().as_deref(), Some("a"));
        q.add("a"); // re-added while processing: deferred
        assert_eq!(q.get().as_deref(), Some("b"));
        assert_eq!(q.get(), None, "a is still processing");
        q.done("a");
        assert_eq!(q.get().as_deref(), Some("a"));
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }

    #[test]
    fn per_item_backoff_doubles_from_5ms_to_1000s() {
        let mut q = WorkQueue::new();
        // Spread the calls out so the shared bucket never limits them.
        let mut now = Time::ZERO;
        let mut delays = Vec::new();
        for _ in 0..20 {
            q.add_rate_limited("k", now);
            let due = q.next_wakeup().unwrap();
            delays.push(due.since(now));
            now = due;
            q.advance(now);
            q.get();
            q.done("k");
            now = now + Duration::from_secs(1);
        }
        let want: Vec<Duration> = (0..20u32)
            .map(|n| (BASE_DELAY * 2u32.pow(n)).min(MAX_DELAY))
            .collect();
        assert_eq!(delays, want);
        assert_eq!(q.requeues("k"), 20);
        q.forget("k");
        q.add_rate_limited("k", now);
        assert_eq!(q.next_wakeup().unwrap().since(now), BASE_DELAY);
    }

    #[test]
    fn the_shared_bucket_allows_a_burst_of_100_then_10_per_second() {
        let mut q = WorkQueue::new();
        let now = Time::from_secs(10);
        for i in 0..120 {
            q.add_rate_limited(&format!("k{i}"), now);
        }
        let due: Vec<Duration> = (0..120)
            .map(|i| q.waiting_at[&format!("k{i}")].0.since(now))
            .collect();
        assert!(
            due[..100].iter().all(|d| *d == BASE_DELAY),
            "the burst is only item-delayed"
        );
        assert_eq!(due[100], ms(100));
        assert_eq!(due[119], ms(2000));
    }

    #[test]
    fn delayed_adds_keep_the_earliest_and_fire_in_order() {
        let mut q = WorkQueue::new();
        let t0 = Time::ZERO;
        q.add_after("late", ms(300), t0);
        q.add_after("early", ms(100), t0);
        q.add_after("late", ms(200), t0); // earlier wins
        q.add_after("early", ms(500), t0); // later loses
        assert_eq!(q.next_wakeup(), Some(Time::from_millis(100)));
        q.advance(Time::from_millis(150));
        assert_eq!(q.get().as_deref(), Some("early"));
        assert_eq!(q.get(), None);
        q.advance(Time::from_millis(200));
        assert_eq!(q.get().as_deref(), Some("late"));
        assert_eq!(q.next_wakeup(), None);
    }
}
