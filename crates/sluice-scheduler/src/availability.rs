//! Whether an account can take a request right now, and if not, why and until when.

use std::time::Duration;

use serde::Serialize;

use crate::account::{AccountSpec, AccountState};
use crate::decision::Unavailable;
use crate::pool::PoolConfig;
use crate::quota::UnifiedStatus;
use crate::time::Timestamp;

/// How long a high utilization with no known reset keeps an account out before it is tried
/// again to relearn its quota.
pub const UNKNOWN_RESET_RECHECK: Duration = Duration::from_secs(5 * 60);

/// An account's availability, as shown in status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Availability {
    Available,
    Disabled,
    NeedsRelogin,
    AuthFailed,
    RateLimited {
        until: Timestamp,
    },
    CoolingDown {
        until: Timestamp,
    },
    /// Out of quota (rejected by the upstream, the week used up, an API bucket at its
    /// threshold) until the reset.
    QuotaExhausted {
        until: Timestamp,
    },
    /// The 5-hour window is at `switch_threshold` but not yet exhausted: no new work until it
    /// resets. (The adaptive strategy lets conversations already there finish their turns,
    /// and uses it before refusing anyone.)
    OverThreshold {
        until: Timestamp,
    },
    AtCapacity,
}

impl Availability {
    pub fn is_available(self) -> bool {
        self == Availability::Available
    }

    pub fn name(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Disabled => "disabled",
            Availability::NeedsRelogin => "needs_relogin",
            Availability::AuthFailed => "auth_failed",
            Availability::RateLimited { .. } => "rate_limited",
            Availability::CoolingDown { .. } => "cooling_down",
            Availability::QuotaExhausted { .. } => "quota_exhausted",
            Availability::OverThreshold { .. } => "over_threshold",
            Availability::AtCapacity => "at_capacity",
        }
    }

    /// When this account is expected to be usable again. `None` with a recoverable state
    /// means "on the next release"; unrecoverable states return `None` too.
    pub fn recovers_at(self) -> Option<Timestamp> {
        match self {
            Availability::RateLimited { until }
            | Availability::CoolingDown { until }
            | Availability::QuotaExhausted { until }
            | Availability::OverThreshold { until } => Some(until),
            _ => None,
        }
    }

    /// Whether waiting can help at all.
    pub fn is_recoverable(self) -> bool {
        !matches!(
            self,
            Availability::Disabled | Availability::NeedsRelogin | Availability::AuthFailed
        )
    }

    pub fn reason(self) -> Unavailable {
        match self {
            Availability::RateLimited { .. } => Unavailable::RateLimited,
            Availability::CoolingDown { .. } => Unavailable::CoolingDown,
            Availability::QuotaExhausted { .. } | Availability::OverThreshold { .. } => {
                Unavailable::QuotaExhausted
            }
            Availability::AtCapacity => Unavailable::AtCapacity,
            Availability::Available
            | Availability::Disabled
            | Availability::NeedsRelogin
            | Availability::AuthFailed => Unavailable::Unusable,
        }
    }
}

/// The account's availability at `now`. Expects `state.settle(now)` to have run.
pub(crate) fn availability(
    spec: &AccountSpec,
    state: &AccountState,
    config: &PoolConfig,
    global_in_flight: u32,
    now: Timestamp,
) -> Availability {
    if !spec.enabled {
        return Availability::Disabled;
    }
    if state.needs_relogin {
        return Availability::NeedsRelogin;
    }
    if state.auth_failed {
        return Availability::AuthFailed;
    }
    if let Some(until) = state.rate_limited_until.filter(|u| *u > now) {
        return Availability::RateLimited { until };
    }
    if let Some(until) = state.cooling_until().filter(|u| *u > now) {
        return Availability::CoolingDown { until };
    }
    if let Some(blocked) = quota_block(state, config, now) {
        return blocked;
    }
    if let Some(until) = over_threshold(state, config, now) {
        return Availability::OverThreshold { until };
    }
    if state.in_flight >= config.max_in_flight_per_account
        || global_in_flight >= config.max_in_flight_total
    {
        return Availability::AtCapacity;
    }
    Availability::Available
}

fn quota_block(state: &AccountState, config: &PoolConfig, now: Timestamp) -> Option<Availability> {
    let quota = &state.quota;
    let recheck = recheck_at(state, now);
    let session_reset = quota.session.as_ref().and_then(|w| w.resets_at);

    // Several windows may block; the account is back only when the last of them resets.
    let mut latest: Option<Timestamp> = None;
    let mut block = |until: Option<Timestamp>| latest = latest.max(until);
    if quota.status == Some(UnifiedStatus::Rejected) {
        block(quota.status_resets_at.or(session_reset).or(recheck));
    }
    for window in [quota.session.as_ref(), quota.weekly.as_ref()]
        .into_iter()
        .flatten()
    {
        if window.status == Some(UnifiedStatus::Rejected) || window.utilization >= 1.0 {
            block(window.resets_at.or(recheck));
        }
    }
    if let Some(weekly) = quota.weekly.as_ref()
        && weekly.used() >= config.weekly_exhausted
    {
        block(weekly.resets_at.or(recheck));
    }
    for bucket in quota.buckets() {
        if bucket.used() >= config.switch_threshold {
            block(bucket.resets_at.filter(|r| *r > now));
        }
    }
    latest.map(|until| Availability::QuotaExhausted { until })
}

/// A high reading with no known reset keeps an account out only for a while, after which it
/// is tried again to relearn its quota.
fn recheck_at(state: &AccountState, now: Timestamp) -> Option<Timestamp> {
    state
        .quota
        .updated_at
        .map(|at| at + UNKNOWN_RESET_RECHECK)
        .filter(|at| *at > now)
}

/// When the 5-hour window is at the switch threshold (but not exhausted): until its reset.
fn over_threshold(state: &AccountState, config: &PoolConfig, now: Timestamp) -> Option<Timestamp> {
    let session = state.quota.session.as_ref()?;
    (session.used() >= config.switch_threshold)
        .then(|| session.resets_at.or(recheck_at(state, now)))
        .flatten()
}
