//! Reading quota against time: how far an account is ahead of an even burn over its windows
//! (pace overage, "scarcity"), and its weekly tier.
//!
//! A window that is 60 % used with an hour left is cheap to spend (its quota refreshes
//! soon: use it or lose it); 60 % used on the first day of a week is scarce. Scarcity is the
//! worst pace overage across the known windows. The weekly tier adds a *burn debt* — how far
//! the week's use runs ahead of the week's elapsed time, weighted — to the raw weekly use, so
//! an account burning its week too fast is held back before it is actually out.

use std::time::Duration;

use serde::Serialize;

use crate::pool::PoolConfig;
use crate::quota::{QuotaState, UnifiedStatus, WindowUsage, clamp01};
use crate::time::Timestamp;

pub const FIVE_HOURS: Duration = Duration::from_secs(5 * 60 * 60);
pub const WEEK: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How much of an account's weekly quota may still be spent on new work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeeklyTier {
    /// No weekly window known yet (API keys, or nothing learned).
    Unknown,
    Normal,
    /// Past the soft threshold: still used normally, shown as a warning.
    Soft,
    /// Past the reserve threshold: only when nothing healthier can serve, or for a
    /// conversation already on it.
    Reserve,
    /// Past the critical threshold: only when nothing else at all can serve.
    Critical,
    /// Out for the week (or rejected by the upstream).
    Exhausted,
}

impl WeeklyTier {
    pub fn as_str(self) -> &'static str {
        match self {
            WeeklyTier::Unknown => "unknown",
            WeeklyTier::Normal => "normal",
            WeeklyTier::Soft => "soft",
            WeeklyTier::Reserve => "reserve",
            WeeklyTier::Critical => "critical",
            WeeklyTier::Exhausted => "exhausted",
        }
    }

    /// Whether a selection pass with these allowances may use an account in this tier.
    pub fn allowed(self, reserve: bool, critical: bool) -> bool {
        match self {
            WeeklyTier::Unknown | WeeklyTier::Normal | WeeklyTier::Soft => true,
            WeeklyTier::Reserve => reserve,
            WeeklyTier::Critical => critical,
            WeeklyTier::Exhausted => false,
        }
    }
}

/// The fraction of a window of length `length` that has elapsed when it resets at `resets_at`.
pub fn elapsed_fraction(resets_at: Timestamp, length: Duration, now: Timestamp) -> f64 {
    let remaining = now.until(resets_at).as_secs_f64();
    clamp01((length.as_secs_f64() - remaining) / length.as_secs_f64())
}

/// How far a window's use runs ahead of an even burn; face value when the reset is unknown.
pub fn window_scarcity(window: &WindowUsage, length: Duration, now: Timestamp) -> f64 {
    let used = window.used();
    match window.resets_at {
        Some(reset) if reset > now => (used - elapsed_fraction(reset, length, now)).max(0.0),
        _ => used,
    }
}

/// The worst pace overage across every known window and bucket, `0..=1`.
pub fn scarcity(quota: &QuotaState, now: Timestamp) -> f64 {
    let mut worst: f64 = 0.0;
    if let Some(w) = &quota.session {
        worst = worst.max(window_scarcity(w, FIVE_HOURS, now));
    }
    if let Some(w) = &quota.weekly {
        worst = worst.max(window_scarcity(w, WEEK, now));
    }
    for bucket in [quota.tokens.as_ref(), quota.requests.as_ref()]
        .into_iter()
        .flatten()
    {
        worst = worst.max(bucket.used());
    }
    worst
}

/// Weekly use plus weighted burn debt, capped at 1.5.
pub fn effective_weekly_use(quota: &QuotaState, config: &PoolConfig, now: Timestamp) -> f64 {
    let Some(weekly) = &quota.weekly else {
        return 0.0;
    };
    let used = weekly.used();
    let Some(reset) = weekly.resets_at else {
        return used;
    };
    let debt = (used - elapsed_fraction(reset, WEEK, now)).max(0.0);
    (used + debt * config.weekly_burn_debt_weight).min(1.5)
}

/// The account's weekly tier at `now`.
pub fn weekly_tier(quota: &QuotaState, config: &PoolConfig, now: Timestamp) -> WeeklyTier {
    let weekly_rejected = quota
        .weekly
        .as_ref()
        .is_some_and(|w| w.status == Some(UnifiedStatus::Rejected))
        || (quota.status == Some(UnifiedStatus::Rejected)
            && quota.representative_claim.as_deref() == Some("seven_day"));
    if weekly_rejected {
        return WeeklyTier::Exhausted;
    }
    let Some(weekly) = &quota.weekly else {
        return WeeklyTier::Unknown;
    };
    let used = weekly.used();
    if used >= config.weekly_exhausted {
        return WeeklyTier::Exhausted;
    }
    let pressure = used.max(effective_weekly_use(quota, config, now));
    if pressure >= config.weekly_critical {
        WeeklyTier::Critical
    } else if pressure >= config.weekly_reserve {
        WeeklyTier::Reserve
    } else if pressure >= config.weekly_soft {
        WeeklyTier::Soft
    } else {
        WeeklyTier::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week(used: f64, resets_in: Duration, now: Timestamp) -> QuotaState {
        QuotaState {
            weekly: Some(WindowUsage {
                utilization: used,
                resets_at: Some(now + resets_in),
                status: None,
            }),
            ..QuotaState::default()
        }
    }

    const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

    #[test]
    fn a_window_near_its_reset_is_cheap() {
        let w = WindowUsage {
            utilization: 0.6,
            resets_at: Some(NOW + Duration::from_secs(600)),
            status: None,
        };
        assert_eq!(window_scarcity(&w, FIVE_HOURS, NOW), 0.0);
        let early = WindowUsage {
            resets_at: Some(NOW + Duration::from_secs(4 * 3600)),
            ..w.clone()
        };
        assert!((window_scarcity(&early, FIVE_HOURS, NOW) - 0.4).abs() < 1e-9);
        let unknown = WindowUsage {
            resets_at: None,
            ..w
        };
        assert_eq!(window_scarcity(&unknown, FIVE_HOURS, NOW), 0.6);
    }

    #[test]
    fn burn_debt_raises_the_tier_before_the_raw_use_does() {
        let config = PoolConfig::default();
        // 65 % used with five days left: far ahead of pace.
        let fast = week(0.65, Duration::from_secs(5 * 86_400), NOW);
        assert_eq!(weekly_tier(&fast, &config, NOW), WeeklyTier::Reserve);
        // The same use a day before the reset is on pace.
        let slow = week(0.65, Duration::from_secs(86_400), NOW);
        assert_eq!(weekly_tier(&slow, &config, NOW), WeeklyTier::Soft);
        assert_eq!(
            weekly_tier(&week(0.99, Duration::from_secs(60), NOW), &config, NOW),
            WeeklyTier::Exhausted
        );
        assert_eq!(
            weekly_tier(&QuotaState::default(), &config, NOW),
            WeeklyTier::Unknown
        );
    }
}
