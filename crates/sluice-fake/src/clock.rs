//! The wall clock the simulated quota windows run on: the system clock, or a manual one tests advance.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A shareable clock. Clones share the same time source.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    System,
    Manual(Mutex<SystemTime>),
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start: SystemTime) -> Self {
        Self(Arc::new(Source::Manual(Mutex::new(start))))
    }

    /// A manual clock starting at the current system time, truncated to whole seconds.
    pub fn manual_now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self::manual(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        match &*self.0 {
            Source::System => SystemTime::now(),
            Source::Manual(t) => *t.lock(),
        }
    }

    /// The current time in seconds since the Unix epoch.
    pub fn epoch_secs(&self) -> u64 {
        epoch_secs(self.now())
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(t) = &*self.0 {
            *t.lock() += by;
        }
    }

    /// Set a manual clock (no effect on the system clock).
    pub fn set(&self, to: SystemTime) {
        if let Source::Manual(t) = &*self.0 {
            *t.lock() = to;
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(&*self.0, Source::Manual(_))
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Whole seconds from `now` until `later`, rounded up, at least 1.
pub(crate) fn secs_until(now: SystemTime, later: SystemTime) -> u64 {
    let d = later.duration_since(now).unwrap_or_default();
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_and_clones_share() {
        let c = Clock::manual(UNIX_EPOCH + Duration::from_secs(100));
        let c2 = c.clone();
        c.advance(Duration::from_secs(5));
        assert_eq!(c2.epoch_secs(), 105);
        c2.set(UNIX_EPOCH + Duration::from_secs(7));
        assert_eq!(c.epoch_secs(), 7);
        assert!(c.is_manual());
        assert!(!Clock::system().is_manual());
    }

    #[test]
    fn secs_until_rounds_up() {
        let t = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(secs_until(t, t + Duration::from_millis(1500)), 2);
        assert_eq!(secs_until(t, t), 1);
        assert_eq!(secs_until(t + Duration::from_secs(3), t), 1);
    }
}
