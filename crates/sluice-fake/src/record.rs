//! The log of every request the fake received, in arrival order, with a way to wait for more to arrive.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    /// `GET`, `POST`, ….
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Headers in the order received (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
    /// The credential (`x-api-key`, else the `authorization: Bearer` token), if any.
    pub credential: Option<String>,
    /// When the request (with its body) was received.
    pub received_at: SystemTime,
    /// The `request-id` header the fake answered with.
    pub request_id: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Thread-safe request log keeping the most recent `capacity` requests.
#[derive(Debug)]
pub(crate) struct RequestLog {
    inner: Mutex<Inner>,
    capacity: usize,
    next_seq: AtomicU64,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<RecordedRequest>,
    /// Requests received since the last clear, including those no longer kept.
    total: usize,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::default(),
            capacity,
            next_seq: AtomicU64::new(0),
            arrived: Notify::new(),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn push(&self, request: RecordedRequest) {
        {
            let mut inner = self.inner.lock();
            inner.total += 1;
            if self.capacity > 0 {
                if inner.entries.len() >= self.capacity {
                    inner.entries.pop_front();
                }
                inner.entries.push_back(request);
            }
        }
        self.arrived.notify_waiters();
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.inner.lock().entries.iter().cloned().collect()
    }

    pub(crate) fn for_credential(&self, key: &str) -> Vec<RecordedRequest> {
        let inner = self.inner.lock();
        inner
            .entries
            .iter()
            .filter(|r| r.credential.as_deref() == Some(key))
            .cloned()
            .collect()
    }

    /// Requests received since the last clear (kept or not).
    pub(crate) fn total(&self) -> usize {
        self.inner.lock().total
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.entries.clear();
        inner.total = 0;
    }

    /// Wait until at least `n` requests were received since the last clear; false on timeout.
    pub(crate) async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.total() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seq: u64) -> RecordedRequest {
        RecordedRequest {
            seq,
            method: "GET".into(),
            path: "/v1/models?x=1".into(),
            headers: vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())],
            body: Bytes::new(),
            credential: None,
            received_at: SystemTime::UNIX_EPOCH,
            request_id: String::new(),
        }
    }

    #[test]
    fn keeps_the_most_recent() {
        let log = RequestLog::new(2);
        for seq in 0..3 {
            log.push(request(seq));
        }
        assert_eq!(
            log.snapshot().iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(log.total(), 3);
        log.clear();
        assert_eq!(log.total(), 0);
        let off = RequestLog::new(0);
        off.push(request(0));
        assert!(off.snapshot().is_empty());
        assert_eq!(off.total(), 1);
    }

    #[test]
    fn header_helpers() {
        let r = request(0);
        assert_eq!(r.header("x-a"), Some("1"));
        assert_eq!(r.header_all("X-A"), ["1", "2"]);
        assert_eq!(r.path_only(), "/v1/models");
    }
}
