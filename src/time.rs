//! Time as the cores see it: an integer count of nanoseconds since the Unix epoch, the same
//! frame as the timestamps in objects. Cores never read a clock; every input carries `now`.
//! The simulator starts its virtual clock at a fixed date, so runs are reproducible.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_secs(s: u64) -> Time {
        Time(s * 1_000_000_000)
    }

    pub fn from_millis(ms: u64) -> Time {
        Time(ms * 1_000_000)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Display for Time {
    /// Seconds with millisecond precision: `90.250s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            (self.0 / 1_000_000) % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_display() {
        let t = Time::from_secs(90) + Duration::from_millis(250);
        assert_eq!(t.to_string(), "90.250s");
        assert_eq!(t.since(Time::from_secs(90)), Duration::from_millis(250));
        assert_eq!(Time::from_secs(1).since(t), Duration::ZERO);
        assert_eq!(Time(5) - Duration::from_nanos(10), Time::ZERO);
    }
}
