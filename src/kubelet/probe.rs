//! A probe worker: when to probe a container, and what its consecutive results mean.
//! k8s: pkg/kubelet/prober/worker.go (reference §4.4)

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unknown,
    Success,
    Failure,
}

#[derive(Clone, Debug)]
pub struct ProbeWorker {
    pub kind: &'static str,
    pub probe: Probe,
    pub result: Outcome,
    successes: i32,
    failures: i32,
    /// When the next probe is due.
    pub next: Time,
    pub in_flight: bool,
}

impl ProbeWorker {
    /// A worker for a container that started at `started_at`; the first probe waits for the
    /// initial delay, and `offset` (a random fraction of the period when the kubelet just
    /// started) spreads workers out.
    pub fn new(kind: &'static str, probe: Probe, started_at: Time, offset: Duration) -> Self {
        // k8s: initial results — readiness Failure, liveness Success, startup Unknown
        let result = match kind {
            "readiness" => Outcome::Failure,
            "liveness" => Outcome::Success,
            _ => Outcome::Unknown,
        };
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        ProbeWorker {
            kind,
            probe,
            result,
            successes: 0,
            failures: 0,
            next: started_at + delay.max(offset),
            in_flight: false,
        }
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    /// Records one probe result; the published outcome changes only after `successThreshold`
    /// successes or `failureThreshold` failures in a row. Returns true when it changed.
    pub fn record(&mut self, success: bool, now: Time) -> bool {
        self.in_flight = false;
        self.next = now + self.period();
        let before = self.result;
        if success {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.result = Outcome::Success;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.result = Outcome::Failure;
            }
        }
        before != self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(failure: i32, success: i32, delay: i32) -> Probe {
        Probe {
            failure_threshold: Some(failure),
            success_threshold: Some(success),
            initial_delay_seconds: Some(delay),
            period_seconds: Some(10),
            ..Default::default()
        }
    }

    #[test]
    fn results_publish_after_consecutive_thresholds() {
        let t = Time::from_secs(100);
        let mut w = ProbeWorker::new("liveness", probe(3, 1, 5), t, Duration::ZERO);
        assert_eq!(
            (w.result, w.next),
            (Outcome::Success, t + Duration::from_secs(5))
        );
        assert!(!w.record(false, t));
        assert!(!w.record(false, t));
        assert!(!w.record(true, t), "a success resets the failure count");
        assert!(!w.record(false, t));
        assert!(!w.record(false, t));
        assert!(w.record(false, t));
        assert_eq!(w.result, Outcome::Failure);

        let mut r = ProbeWorker::new("readiness", probe(3, 2, 0), t, Duration::ZERO);
        assert_eq!(r.result, Outcome::Failure);
        assert!(!r.record(true, t));
        assert!(r.record(true, t));
        assert_eq!(r.result, Outcome::Success);
        assert_eq!(
            ProbeWorker::new("startup", probe(3, 1, 0), t, Duration::ZERO).result,
            Outcome::Unknown
        );
    }
}
