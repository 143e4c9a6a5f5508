//! CrashLoopBackOff bookkeeping: client-go's flowcontrol.Backoff with the kubelet's settings.
//! k8s: initial 10 s (backOffPeriod), max 300 s (MaxContainerBackOff); an entry expires when the
//! container ran more than 2 × max = 10 min since the last update (reference §4.3).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::time::Time;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Time,
}

#[derive(Debug, Default)]
pub struct Backoff {
    entries: BTreeMap<String, Entry>,
}

fn expired(event: Time, last_update: Time) -> bool {
    event.since(last_update) > MAX * 2
}

impl Backoff {
    /// k8s: IsInBackOffSince — the container that finished at `finished` must still wait.
    pub fn in_backoff(&self, id: &str, finished: Time, now: Time) -> bool {
        match self.entries.get(id) {
            Some(e) if !expired(finished, e.last_update) => now.since(finished) < e.backoff,
            _ => false,
        }
    }

    /// When the wait for a container that finished at `finished` ends.
    pub fn until(&self, id: &str, finished: Time) -> Option<Time> {
        self.entries.get(id).map(|e| finished + e.backoff)
    }

    /// k8s: Next — a restart is happening now; the next wait doubles (or starts at 10 s).
    pub fn next(&mut self, id: &str, now: Time) {
        let backoff = match self.entries.get(id) {
            Some(e) if !expired(now, e.last_update) => (e.backoff * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(
            id.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    pub fn forget(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crashes right after each start: the waits are 0, 10, 20, 40, ..., 300 s.
    #[test]
    fn waits_double_from_10s_to_300s_after_an_immediate_first_restart() {
        let mut b = Backoff::default();
        let mut now = Time::from_secs(1000);
        let mut waits = Vec::new();
        for _ in 0..9 {
            let finished = now; // crashed at once
            let mut wait = 0;
            while b.in_backoff("c", finished, now) {
                now = now + Duration::from_secs(1);
                wait += 1;
            }
            waits.push(wait);
            b.next("c", now); // restart
        }
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_it() {
        let mut b = Backoff::default();
        let t = Time::from_secs(0);
        b.next("c", t);
        b.next("c", t + Duration::from_secs(1)); // 20 s now
        let crashed = t + Duration::from_secs(700); // ran > 10 min
        assert!(!b.in_backoff("c", crashed, crashed));
        b.next("c", crashed);
        assert_eq!(b.until("c", crashed), Some(crashed + INITIAL));
    }
}
