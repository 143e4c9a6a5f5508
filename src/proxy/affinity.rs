//! `sessionAffinity: ClientIP`: which backend each client IP was last sent to, per Service
//! port. k8s (iptables mode): each endpoint chain `--set`s the client in an xt_recent list and
//! the service chain first sends a client found with `--rcheck --seconds <timeout>` to its
//! endpoint, so an entry lives `timeout` seconds after the client's latest new connection.

use std::collections::BTreeMap;
use std::time::Duration;

use super::rules::{Backend, ServicePortKey};
use crate::time::Time;

/// How often expired entries are swept out (they are ignored as soon as they expire).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct AffinityTable {
    /// (service port, client IP) → (backend, expiry).
    entries: BTreeMap<(ServicePortKey, String), (Backend, Time)>,
    next_sweep: Time,
}

impl AffinityTable {
    /// The backend `client` is held to, if its entry has not expired.
    pub fn get(&self, key: &ServicePortKey, client: &str, now: Time) -> Option<&Backend> {
        self.entries
            .get(&(key.clone(), client.to_string()))
            .filter(|(_, expires)| now < *expires)
            .map(|(b, _)| b)
    }

    /// Holds `client` to `backend` for `timeout` seconds from `now`.
    pub fn set(
        &mut self,
        key: &ServicePortKey,
        client: &str,
        backend: Backend,
        now: Time,
        timeout: u64,
    ) {
        let expires = now + Duration::from_secs(timeout);
        self.entries
            .insert((key.clone(), client.to_string()), (backend, expires));
        self.sweep(now);
    }

    /// Forgets every client of `key` (the Service port is gone or its affinity turned off).
    pub fn forget(&mut self, key: &ServicePortKey) {
        self.entries.retain(|(k, _), _| k != key);
    }

    /// Forgets the clients held to a backend `key` no longer has.
    pub fn retain_backends(&mut self, key: &ServicePortKey, backends: &[Backend]) {
        self.entries
            .retain(|(k, _), (b, _)| k != key || backends.contains(b));
    }

    fn sweep(&mut self, now: Time) {
        if now < self.next_sweep {
            return;
        }
        self.entries.retain(|_, (_, expires)| now < *expires);
        self.next_sweep = now + SWEEP_EVERY;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServicePortKey {
        ServicePortKey {
            namespace: "ns".into(),
            name: name.into(),
            port: "http".into(),
        }
    }

    fn b(ip: &str) -> Backend {
        Backend {
            ip: ip.into(),
            port: 80,
        }
    }

    #[test]
    fn entries_expire_timeout_after_the_last_connection_and_are_swept() {
        let mut t = AffinityTable::default();
        let s = Time::from_secs;
        t.set(&key("a"), "1.1.1.1", b("10.0.0.1"), s(100), 10);
        // (lookup at, expected)
        for (at, want) in [(100, true), (109, true), (110, false), (500, false)] {
            assert_eq!(
                t.get(&key("a"), "1.1.1.1", s(at)).is_some(),
                want,
                "at {at}"
            );
        }
        assert_eq!(t.get(&key("b"), "1.1.1.1", s(100)), None);
        assert_eq!(t.get(&key("a"), "2.2.2.2", s(100)), None);
        // A new connection renews the entry.
        t.set(&key("a"), "1.1.1.1", b("10.0.0.1"), s(108), 10);
        assert!(t.get(&key("a"), "1.1.1.1", s(117)).is_some());
        // A sweep a minute later drops what expired.
        t.set(&key("a"), "3.3.3.3", b("10.0.0.1"), s(1000), 10);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn forgetting_a_service_or_a_backend() {
        let mut t = AffinityTable::default();
        let now = Time::from_secs(1);
        t.set(&key("a"), "c1", b("10.0.0.1"), now, 10);
        t.set(&key("a"), "c2", b("10.0.0.2"), now, 10);
        t.set(&key("b"), "c1", b("10.0.0.1"), now, 10);
        t.retain_backends(&key("a"), &[b("10.0.0.2")]);
        assert_eq!(t.get(&key("a"), "c1", now), None);
        assert_eq!(t.get(&key("a"), "c2", now), Some(&b("10.0.0.2")));
        assert_eq!(t.get(&key("b"), "c1", now), Some(&b("10.0.0.1")));
        t.forget(&key("a"));
        assert_eq!(t.len(), 1);
    }
}
