//! Time as the scheduler sees it: wall-clock instants in milliseconds since the Unix epoch,
//! always passed in by the caller.
//!
//! The scheduler never reads a clock. The proxy hands it `Timestamp::now()`-style values from
//! the system clock, the simulator hands it virtual time, and tests hand it whatever they need.
//! Epoch milliseconds (rather than `Instant`) because upstream quota resets are wall-clock
//! instants and the state must survive a restart.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An instant, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The time from `self` until `later`, zero if `later` is not after `self`.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0).max(0) as u64)
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is not before `self`.
    pub fn since(self, earlier: Timestamp) -> Duration {
        earlier.until(self)
    }

    /// The system clock's current time. Only the I/O side of sluice should call this.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_millis().min(i64::MAX as u128) as i64),
            Err(e) => Timestamp(-(e.duration().as_millis().min(i64::MAX as u128) as i64)),
        }
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(rhs.as_millis().min(i64::MAX as u128) as i64),
        )
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(rhs.as_millis().min(i64::MAX as u128) as i64),
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => write!(f, "{ts}"),
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative_for_durations() {
        let t = Timestamp::from_secs(100);
        assert_eq!(t + Duration::from_secs(5), Timestamp::from_secs(105));
        assert_eq!(t.until(Timestamp::from_secs(90)), Duration::ZERO);
        assert_eq!(t.since(Timestamp::from_secs(90)), Duration::from_secs(10));
        assert_eq!(
            Timestamp(i64::MAX) + Duration::from_secs(1),
            Timestamp(i64::MAX)
        );
    }

    #[test]
    fn displays_as_rfc3339() {
        assert_eq!(Timestamp::from_secs(0).to_string(), "1970-01-01T00:00:00Z");
    }
}
