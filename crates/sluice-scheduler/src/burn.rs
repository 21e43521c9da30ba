//! How fast an account is spending each quota window right now, learned from successive
//! utilization readings.
//!
//! A leaky integrator of the utilization's increments: every reading adds its increase over
//! the previous one (same window) and the sum decays with a time constant, so the value is
//! the recent spending rate in window-fractions per hour, smoothed over about that constant.
//! It needs no knowledge of the upstream's token accounting — only the readings the headers
//! already carry — and a window's reset does not count as spending.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Smoothing time constant of the rates.
pub const BURN_TIME_CONSTANT: Duration = Duration::from_secs(20 * 60);

/// How long a conversation's arrival on an account keeps counting. The same as the burn
/// rates', so their ratio (what one conversation spends) does not drift while the pool idles.
pub const ARRIVAL_TIME_CONSTANT: Duration = BURN_TIME_CONSTANT;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BurnRate {
    /// Window-fractions per hour as of `at`.
    per_hour: f64,
    at: Option<Timestamp>,
    last: f64,
    window: Option<Timestamp>,
}

impl BurnRate {
    /// Note a reading `utilization` of the window that resets at `resets_at`.
    pub fn observe(&mut self, utilization: f64, resets_at: Option<Timestamp>, now: Timestamp) {
        if !utilization.is_finite() {
            return;
        }
        let tau = BURN_TIME_CONSTANT.as_secs_f64() / 3600.0;
        let decayed = self.at_time(now);
        let same_window = self.at.is_some() && resets_at == self.window;
        let increase = if same_window {
            (utilization - self.last).max(0.0)
        } else {
            0.0
        };
        self.per_hour = decayed + increase / tau;
        self.at = Some(now.max(self.at.unwrap_or(now)));
        self.last = utilization;
        self.window = resets_at;
    }

    /// The spending rate at `now`, in window-fractions per hour.
    pub fn at_time(&self, now: Timestamp) -> f64 {
        let Some(at) = self.at else {
            return 0.0;
        };
        let tau = BURN_TIME_CONSTANT.as_secs_f64();
        self.per_hour * (-now.since(at).as_secs_f64() / tau).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_burn_is_measured_and_fades_when_it_stops() {
        let mut rate = BurnRate::default();
        let reset = Some(Timestamp::from_secs(100_000));
        let mut now = Timestamp::from_secs(0);
        // 0.1 of the window per hour, read every minute for two hours.
        for minute in 0..=120 {
            rate.observe(0.1 * f64::from(minute) / 60.0, reset, now);
            now = now + Duration::from_secs(60);
        }
        let measured = rate.at_time(now);
        assert!((measured - 0.1).abs() < 0.01, "{measured}");
        assert!(rate.at_time(now + Duration::from_secs(3 * 3600)) < 0.001);
        // A new window starting from zero is not a burst of spending.
        let before = rate.at_time(now);
        rate.observe(0.0, Some(Timestamp::from_secs(200_000)), now);
        assert!(rate.at_time(now) <= before);
    }
}

/// A count of recent events that fades with a time constant (e.g. conversations that
/// recently started on an account).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decaying {
    value: f64,
    at: Option<Timestamp>,
}

impl Decaying {
    pub fn bump(&mut self, now: Timestamp, time_constant: Duration) {
        self.value = self.at_time(now, time_constant) + 1.0;
        self.at = Some(now.max(self.at.unwrap_or(now)));
    }

    pub fn at_time(&self, now: Timestamp, time_constant: Duration) -> f64 {
        let Some(at) = self.at else {
            return 0.0;
        };
        self.value * (-now.since(at).as_secs_f64() / time_constant.as_secs_f64()).exp()
    }
}
