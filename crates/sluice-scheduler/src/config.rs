//! A pool's tunables. The defaults are sluice's documented configuration defaults; the
//! scoring and weekly-tier constants are maxpool's (the `maxpool` strategy depends on them
//! being exactly those).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::strategy::Strategy;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// Which account a request goes to among those that can serve.
    pub strategy: Strategy,
    /// 5-hour (and API bucket) utilization at which an account stops taking new work.
    pub switch_threshold: f64,
    /// Safety caps: in-flight requests per account and across the pool.
    pub max_in_flight_per_account: u32,
    pub max_in_flight_total: u32,
    /// First transport-failure cooldown; doubles with each consecutive failure.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// Hold a request when an account recovers within this long; refuse otherwise.
    pub max_wait: Duration,
    /// Bench length for a 429 that says nothing usable about when to retry, and the breaker's
    /// length when the upstream gave no `retry-after`.
    pub default_rate_limit: Duration,
    /// Forget conversations idle this long.
    pub session_ttl: Duration,
    pub max_sessions: usize,

    /// Weekly tiers (fractions of the 7-day window, raw use or use plus burn debt).
    pub weekly_soft: f64,
    pub weekly_reserve: f64,
    pub weekly_critical: f64,
    pub weekly_exhausted: f64,
    /// Weight of the weekly burn debt (use ahead of the week's elapsed time).
    pub weekly_burn_debt_weight: f64,

    /// Routing-cost weights (lower cost is preferred).
    pub scarcity_weight: f64,
    pub spread_share_weight: f64,
    pub recovery_ramp_weight: f64,
    /// How long a just-recovered account is eased back in.
    pub recovery_ramp: Duration,
    /// Window over which recent per-account load is measured.
    pub spread_window: Duration,
    /// Cost added per consecutive failure.
    pub failure_penalty: f64,
    /// Cost removed for an account whose weekly quota is still unknown, so it gets learned.
    pub exploration_bonus: f64,

    /// Provisional exclusion after a 529/5xx when no `retry-after` says otherwise, and its cap.
    pub provisional_exclusion: Duration,
    pub max_provisional_exclusion: Duration,
    /// The same failure on two accounts within this window is the upstream's, not theirs.
    pub incident_window: Duration,
    /// After a failed recovery probe that was not itself throttled, wait this long for the next.
    pub probe_retry: Duration,

    /// After a recovery, queued requests are admitted at most one per `admission_spacing`
    /// for `admission_ramp`.
    pub admission_ramp: Duration,
    pub admission_spacing: Duration,

    /// How long the upstream keeps a conversation's prompt cache without use. The adaptive
    /// strategy treats a conversation idle for longer as cold.
    pub prompt_cache_ttl: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            strategy: Strategy::Adaptive,
            switch_threshold: 0.90,
            max_in_flight_per_account: 50,
            max_in_flight_total: 150,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(5 * 60),
            max_wait: Duration::from_secs(30),
            default_rate_limit: Duration::from_secs(30),
            session_ttl: Duration::from_secs(12 * 60 * 60),
            max_sessions: 100_000,
            weekly_soft: 0.65,
            weekly_reserve: 0.85,
            weekly_critical: 0.95,
            weekly_exhausted: 0.985,
            weekly_burn_debt_weight: 0.6,
            scarcity_weight: 6.0,
            spread_share_weight: 3.0,
            recovery_ramp_weight: 4.0,
            recovery_ramp: Duration::from_secs(5 * 60),
            spread_window: Duration::from_secs(15 * 60),
            failure_penalty: 5.0,
            exploration_bonus: 0.5,
            provisional_exclusion: Duration::from_secs(10),
            max_provisional_exclusion: Duration::from_secs(30),
            incident_window: Duration::from_secs(30),
            probe_retry: Duration::from_secs(5),
            admission_ramp: Duration::from_secs(5),
            admission_spacing: Duration::from_millis(250),
            prompt_cache_ttl: Duration::from_secs(5 * 60),
        }
    }
}
