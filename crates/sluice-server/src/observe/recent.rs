//! What just happened, in memory: the last few hundred requests (for the dashboards' lists)
//! and per-second counts over the last minute (for throughput). Fixed memory whatever the
//! rate; one short lock per finished request.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use sluice_scheduler::Timestamp;
use sluice_store::RequestLogRow;

/// How many finished requests are kept for the dashboards.
pub const RECENT_REQUESTS: usize = 200;
const RATE_SECONDS: usize = 60;

#[derive(Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

struct Inner {
    requests: VecDeque<Arc<RequestLogRow>>,
    seconds: [Second; RATE_SECONDS],
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            requests: VecDeque::with_capacity(RECENT_REQUESTS),
            seconds: [Second::default(); RATE_SECONDS],
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Second {
    /// Which second since the epoch this slot counts.
    second: i64,
    requests: u64,
    failed: u64,
    tokens: u64,
}

/// Requests and tokens over the last minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Throughput {
    pub requests_per_minute: u64,
    pub failed_per_minute: u64,
    pub tokens_per_minute: u64,
}

impl Recent {
    pub fn push(&self, row: Arc<RequestLogRow>, tokens: u64) {
        let second = row.at_ms.div_euclid(1000);
        let failed = row.error.is_some();
        let mut inner = self.inner.lock();
        if inner.requests.len() == RECENT_REQUESTS {
            inner.requests.pop_back();
        }
        inner.requests.push_front(row);
        let slot = &mut inner.seconds[second.rem_euclid(RATE_SECONDS as i64) as usize];
        if slot.second != second {
            *slot = Second {
                second,
                ..Second::default()
            };
        }
        slot.requests += 1;
        slot.tokens += tokens;
        if failed {
            slot.failed += 1;
        }
    }

    /// The newest `limit` requests, newest first.
    pub fn requests(&self, limit: usize) -> Vec<Arc<RequestLogRow>> {
        self.inner
            .lock()
            .requests
            .iter()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Requests and tokens over the minute before `now`.
    pub fn throughput(&self, now: Timestamp) -> Throughput {
        let current = now.as_millis().div_euclid(1000);
        let oldest = current - RATE_SECONDS as i64 + 1;
        let inner = self.inner.lock();
        inner
            .seconds
            .iter()
            .filter(|s| s.second >= oldest && s.second <= current)
            .fold(Throughput::default(), |acc, s| Throughput {
                requests_per_minute: acc.requests_per_minute + s.requests,
                failed_per_minute: acc.failed_per_minute + s.failed,
                tokens_per_minute: acc.tokens_per_minute + s.tokens,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at_ms: i64, error: Option<&str>) -> Arc<RequestLogRow> {
        Arc::new(RequestLogRow {
            at_ms,
            error: error.map(str::to_owned),
            ..RequestLogRow::default()
        })
    }

    #[test]
    fn the_list_is_bounded_and_newest_first() {
        let recent = Recent::default();
        for i in 0..(RECENT_REQUESTS as i64 + 10) {
            recent.push(row(i, None), 0);
        }
        let list = recent.requests(usize::MAX);
        assert_eq!(list.len(), RECENT_REQUESTS);
        assert_eq!(list[0].at_ms, RECENT_REQUESTS as i64 + 9);
        assert_eq!(recent.requests(3).len(), 3);
    }

    #[test]
    fn throughput_counts_the_last_minute_only() {
        let recent = Recent::default();
        let t0 = 1_000_000_000;
        recent.push(row(t0, None), 100);
        recent.push(row(t0 + 30_000, Some("rate_limited")), 50);
        recent.push(row(t0 + 59_000, None), 1);
        let at = |ms| Timestamp::from_millis(ms);
        assert_eq!(
            recent.throughput(at(t0 + 59_500)),
            Throughput {
                requests_per_minute: 3,
                failed_per_minute: 1,
                tokens_per_minute: 151
            }
        );
        assert_eq!(recent.throughput(at(t0 + 60_000)).requests_per_minute, 2);
        assert_eq!(recent.throughput(at(t0 + 200_000)).requests_per_minute, 0);
    }
}
