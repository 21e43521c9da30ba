//! Load generator counters: requests sent, succeeded and failed (by status, transport error, stream
//! error event or truncated body), in flight, skipped, and latency.

use std::collections::BTreeMap;
use std::time::Duration;

/// A snapshot of what a [`crate::LoadGen`] has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Requests started.
    pub sent: u64,
    /// Requests answered 200 and read to a complete end (`message_stop` for streams).
    pub ok: u64,
    /// Requests that did not end `ok` (the sum of the failure counters below).
    pub failed: u64,
    /// Requests started and not yet finished.
    pub in_flight: u64,
    /// Requests cut short because the generator was stopped (neither ok nor failed).
    pub aborted: u64,
    /// Ticks skipped because `max_in_flight` requests were already running.
    pub skipped: u64,
    /// Requests that got no response (connect error, timeout before headers, …).
    pub transport_errors: u64,
    /// Requests answered with a non-200 status.
    pub error_statuses: u64,
    /// 200 streams that carried an `event: error`.
    pub stream_errors: u64,
    /// 200 responses whose body broke off or ended without `message_stop`.
    pub truncated: u64,
    /// Responses per HTTP status.
    pub status_counts: BTreeMap<u16, u64>,
    /// Body bytes received.
    pub bytes_received: u64,
    /// Sum of the latency (send to end of body) of finished requests that got a response.
    pub latency_total: Duration,
    /// Longest such latency.
    pub latency_max: Duration,
    /// Finished requests that got a response.
    pub responses: u64,
}

impl LoadStats {
    /// Mean latency of finished requests that got a response.
    pub fn mean_latency(&self) -> Option<Duration> {
        (self.responses > 0).then(|| self.latency_total / self.responses.max(1) as u32)
    }

    /// Responses with status `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.status_counts.get(&status).copied().unwrap_or(0)
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Transport,
    Status,
    StreamError,
    Truncated,
}

impl LoadStats {
    pub(crate) fn record(
        &mut self,
        outcome: Outcome,
        status: Option<u16>,
        bytes: u64,
        latency: Option<Duration>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bytes_received += bytes;
        if let Some(s) = status {
            *self.status_counts.entry(s).or_default() += 1;
        }
        if let Some(l) = latency {
            self.responses += 1;
            self.latency_total += l;
            self.latency_max = self.latency_max.max(l);
        }
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                return;
            }
            Outcome::Transport => self.transport_errors += 1,
            Outcome::Status => self.error_statuses += 1,
            Outcome::StreamError => self.stream_errors += 1,
            Outcome::Truncated => self.truncated += 1,
        }
        self.failed += 1;
    }
}
