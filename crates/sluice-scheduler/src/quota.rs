//! What an account's upstream has told us about its quota, and how that knowledge ages.
//!
//! Subscription ("unified") accounts report a 5-hour session window and a 7-day weekly
//! window as utilization fractions with reset instants; API-key accounts report request and
//! token buckets. Everything here is learned passively from responses (or an idle-account
//! probe) and is safe to persist: it holds no credentials.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The upstream's verdict on a subscription account (`anthropic-ratelimit-unified-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnifiedStatus {
    Allowed,
    AllowedWarning,
    Rejected,
    /// A value this version does not know; treated like `allowed`.
    Unknown,
}

impl UnifiedStatus {
    pub fn parse(value: &str) -> UnifiedStatus {
        match value.trim().to_ascii_lowercase().as_str() {
            "allowed" => UnifiedStatus::Allowed,
            "allowed_warning" => UnifiedStatus::AllowedWarning,
            "rejected" => UnifiedStatus::Rejected,
            _ => UnifiedStatus::Unknown,
        }
    }
}

/// One rolling usage window (5-hour or 7-day).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowUsage {
    /// Fraction used as reported (0.56 = 56 %); may exceed 1 in overage.
    pub utilization: f64,
    pub resets_at: Option<Timestamp>,
    pub status: Option<UnifiedStatus>,
}

impl WindowUsage {
    /// Utilization clamped to `0..=1`, for comparisons and display.
    pub fn used(&self) -> f64 {
        clamp01(self.utilization)
    }
}

/// An API-key rate-limit bucket (`anthropic-ratelimit-{requests,tokens,…}-*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub limit: u64,
    pub remaining: u64,
    pub resets_at: Option<Timestamp>,
}

impl Bucket {
    /// Fraction of the bucket consumed, `0..=1`.
    pub fn used(&self) -> f64 {
        if self.limit == 0 {
            return 1.0;
        }
        clamp01(1.0 - self.remaining as f64 / self.limit as f64)
    }
}

/// Everything known about one account's quota.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaState {
    pub session: Option<WindowUsage>,
    pub weekly: Option<WindowUsage>,
    pub status: Option<UnifiedStatus>,
    /// When the window named by the representative claim resets (`-unified-reset`).
    pub status_resets_at: Option<Timestamp>,
    pub representative_claim: Option<String>,
    pub requests: Option<Bucket>,
    pub tokens: Option<Bucket>,
    pub input_tokens: Option<Bucket>,
    pub output_tokens: Option<Bucket>,
    pub updated_at: Option<Timestamp>,
}

/// A partial update learned from one response: only the fields that response carried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuotaObservation {
    pub session_utilization: Option<f64>,
    pub session_reset: Option<Timestamp>,
    pub session_status: Option<UnifiedStatus>,
    pub weekly_utilization: Option<f64>,
    pub weekly_reset: Option<Timestamp>,
    pub weekly_status: Option<UnifiedStatus>,
    pub status: Option<UnifiedStatus>,
    pub status_reset: Option<Timestamp>,
    pub representative_claim: Option<String>,
    pub requests: Option<Bucket>,
    pub tokens: Option<Bucket>,
    pub input_tokens: Option<Bucket>,
    pub output_tokens: Option<Bucket>,
}

impl QuotaObservation {
    pub fn is_empty(&self) -> bool {
        *self == QuotaObservation::default()
    }
}

/// Which windows [`QuotaState::clear_expired`] wiped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub session: bool,
    pub weekly: bool,
    pub buckets: bool,
}

impl Expired {
    pub fn any(self) -> bool {
        self.session || self.weekly || self.buckets
    }
}

impl QuotaState {
    /// Merge what one response said; fields it did not carry keep their old values.
    pub fn apply(&mut self, obs: &QuotaObservation, now: Timestamp) {
        if obs.is_empty() {
            return;
        }
        merge_window(
            &mut self.session,
            obs.session_utilization,
            obs.session_reset,
            obs.session_status,
        );
        merge_window(
            &mut self.weekly,
            obs.weekly_utilization,
            obs.weekly_reset,
            obs.weekly_status,
        );
        if let Some(status) = obs.status {
            self.status = Some(status);
            // A status without its reset must not inherit an older window's reset.
            self.status_resets_at = obs.status_reset;
        } else if obs.status_reset.is_some() {
            self.status_resets_at = obs.status_reset;
        }
        if let Some(claim) = &obs.representative_claim {
            self.representative_claim = Some(claim.clone());
        }
        for (slot, value) in [
            (&mut self.requests, &obs.requests),
            (&mut self.tokens, &obs.tokens),
            (&mut self.input_tokens, &obs.input_tokens),
            (&mut self.output_tokens, &obs.output_tokens),
        ] {
            if let Some(bucket) = value {
                *slot = Some(bucket.clone());
            }
        }
        self.updated_at = Some(now);
    }

    /// Forget every window whose reset instant has passed: its numbers describe a window that
    /// no longer exists. Cheap; called before every decision.
    pub fn clear_expired(&mut self, now: Timestamp) -> Expired {
        let mut expired = Expired::default();
        if is_past(self.session.as_ref().and_then(|w| w.resets_at), now) {
            self.session = None;
            expired.session = true;
        }
        if is_past(self.weekly.as_ref().and_then(|w| w.resets_at), now) {
            self.weekly = None;
            expired.weekly = true;
        }
        if is_past(self.status_resets_at, now) {
            self.status = None;
            self.status_resets_at = None;
            self.representative_claim = None;
        } else if expired.weekly
            && self.status == Some(UnifiedStatus::Rejected)
            && self.status_resets_at.is_none()
        {
            self.status = None;
        }
        for bucket in [
            &mut self.requests,
            &mut self.tokens,
            &mut self.input_tokens,
            &mut self.output_tokens,
        ] {
            if is_past(bucket.as_ref().and_then(|b| b.resets_at), now) {
                *bucket = None;
                expired.buckets = true;
            }
        }
        expired
    }

    /// Keep only what can still be cleared later: a restored utilization with no reset instant
    /// could pin an account unavailable forever.
    pub fn sanitize_restored(&mut self, now: Timestamp) {
        self.clear_expired(now);
        if self.session.as_ref().is_some_and(|w| w.resets_at.is_none()) {
            self.session = None;
        }
        if self.weekly.as_ref().is_some_and(|w| w.resets_at.is_none()) {
            self.weekly = None;
        }
        if self.status.is_some() && self.status_resets_at.is_none() {
            self.status = None;
        }
    }

    /// The highest known fraction used across every window and bucket, if any is known.
    pub fn highest_use(&self) -> Option<f64> {
        let windows = [self.session.as_ref(), self.weekly.as_ref()]
            .into_iter()
            .flatten()
            .map(WindowUsage::used);
        let buckets = self.buckets().map(Bucket::used);
        windows.chain(buckets).reduce(f64::max)
    }

    /// The API-key buckets that are known.
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        [
            self.requests.as_ref(),
            self.tokens.as_ref(),
            self.input_tokens.as_ref(),
            self.output_tokens.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    pub fn session_used(&self) -> Option<f64> {
        self.session.as_ref().map(WindowUsage::used)
    }

    pub fn weekly_used(&self) -> Option<f64> {
        self.weekly.as_ref().map(WindowUsage::used)
    }
}

fn merge_window(
    slot: &mut Option<WindowUsage>,
    utilization: Option<f64>,
    reset: Option<Timestamp>,
    status: Option<UnifiedStatus>,
) {
    if utilization.is_none() && reset.is_none() && status.is_none() {
        return;
    }
    let window = slot.get_or_insert(WindowUsage {
        utilization: 0.0,
        resets_at: None,
        status: None,
    });
    if let Some(u) = utilization {
        window.utilization = u;
    }
    if reset.is_some() {
        window.resets_at = reset;
    }
    if status.is_some() {
        window.status = status;
    }
}

fn is_past(at: Option<Timestamp>, now: Timestamp) -> bool {
    at.is_some_and(|at| at <= now)
}

pub(crate) fn clamp01(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn apply_merges_only_present_fields() {
        let mut q = QuotaState::default();
        q.apply(
            &QuotaObservation {
                session_utilization: Some(0.5),
                session_reset: Some(ts(100)),
                weekly_utilization: Some(0.2),
                weekly_reset: Some(ts(1000)),
                ..Default::default()
            },
            ts(1),
        );
        q.apply(
            &QuotaObservation {
                session_utilization: Some(0.6),
                ..Default::default()
            },
            ts(2),
        );
        let session = q.session.clone().unwrap();
        assert_eq!(session.utilization, 0.6);
        assert_eq!(session.resets_at, Some(ts(100)));
        assert_eq!(q.weekly_used(), Some(0.2));
        assert_eq!(q.updated_at, Some(ts(2)));
    }

    #[test]
    fn expired_windows_are_forgotten() {
        let mut q = QuotaState::default();
        q.apply(
            &QuotaObservation {
                session_utilization: Some(0.95),
                session_reset: Some(ts(100)),
                weekly_utilization: Some(0.5),
                weekly_reset: Some(ts(1000)),
                status: Some(UnifiedStatus::Rejected),
                status_reset: Some(ts(100)),
                ..Default::default()
            },
            ts(1),
        );
        let expired = q.clear_expired(ts(100));
        assert!(expired.session && !expired.weekly);
        assert!(q.session.is_none());
        assert!(q.status.is_none());
        assert_eq!(q.weekly_used(), Some(0.5));
    }

    #[test]
    fn restored_values_without_reset_are_dropped() {
        let mut q = QuotaState {
            session: Some(WindowUsage {
                utilization: 0.99,
                resets_at: None,
                status: None,
            }),
            status: Some(UnifiedStatus::Rejected),
            ..Default::default()
        };
        q.sanitize_restored(ts(5));
        assert!(q.session.is_none());
        assert!(q.status.is_none());
    }

    #[test]
    fn highest_use_covers_windows_and_buckets() {
        let q = QuotaState {
            weekly: Some(WindowUsage {
                utilization: 1.4,
                resets_at: None,
                status: None,
            }),
            tokens: Some(Bucket {
                limit: 100,
                remaining: 30,
                resets_at: None,
            }),
            ..Default::default()
        };
        assert_eq!(q.highest_use(), Some(1.0));
        assert_eq!(QuotaState::default().highest_use(), None);
    }
}
