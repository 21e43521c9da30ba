//! Recent per-account load, kept in one-minute buckets for the last hour.
//!
//! Fixed memory whatever the request rate: sixty counters, not one entry per request.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

const BUCKET_MS: i64 = 60_000;
const BUCKETS: usize = 60;

/// Requests finished on an account over a recent span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub requests: u64,
    pub failed: u64,
    /// Sum of request weights (a large request counts more than a small one).
    pub weight: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Minute {
    /// Index of the minute since the epoch this slot currently holds.
    minute: i64,
    requests: u32,
    failed: u32,
    weight: u64,
}

/// A ring of per-minute counters covering the last hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadHistory {
    minutes: Vec<Minute>,
}

impl Default for LoadHistory {
    fn default() -> Self {
        LoadHistory {
            minutes: vec![Minute::default(); BUCKETS],
        }
    }
}

impl LoadHistory {
    pub fn record(&mut self, at: Timestamp, weight: u32, success: bool) {
        let minute = at.as_millis().div_euclid(BUCKET_MS);
        let slot = &mut self.minutes[minute.rem_euclid(BUCKETS as i64) as usize];
        if slot.minute != minute {
            *slot = Minute {
                minute,
                ..Minute::default()
            };
        }
        slot.requests += 1;
        slot.weight += u64::from(weight.max(1));
        if !success {
            slot.failed += 1;
        }
    }

    /// Load over the last `span` (rounded up to whole minutes, at most an hour).
    pub fn summary(&self, now: Timestamp, span: Duration) -> LoadSummary {
        let current = now.as_millis().div_euclid(BUCKET_MS);
        let span_minutes = (span.as_millis() as i64 + BUCKET_MS - 1) / BUCKET_MS;
        let oldest = current - span_minutes.clamp(1, BUCKETS as i64) + 1;
        self.minutes
            .iter()
            .filter(|m| m.minute >= oldest && m.minute <= current && m.requests > 0)
            .fold(LoadSummary::default(), |acc, m| LoadSummary {
                requests: acc.requests + u64::from(m.requests),
                failed: acc.failed + u64::from(m.failed),
                weight: acc.weight + m.weight,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_minutes_fall_out_of_the_window() {
        let mut load = LoadHistory::default();
        let t0 = Timestamp::from_secs(1_000_000 * 60);
        load.record(t0, 2, true);
        load.record(t0 + Duration::from_secs(61), 1, false);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            load.summary(later, Duration::from_secs(15 * 60)),
            LoadSummary {
                requests: 2,
                failed: 1,
                weight: 3
            }
        );
        assert_eq!(load.summary(later, Duration::from_secs(60)).requests, 1);
        let hour_later = t0 + Duration::from_secs(3600);
        assert_eq!(
            load.summary(hour_later, Duration::from_secs(3600)).requests,
            1
        );
        // A slot reused an hour later starts from zero.
        load.record(t0 + Duration::from_secs(3600), 1, true);
        assert_eq!(
            load.summary(hour_later, Duration::from_secs(60)).requests,
            1
        );
    }
}
