//! Serializable, credential-free views of a pool for status output.

use serde::Serialize;

use crate::account::{AccountId, AccountSpec, AccountState, LastError, TokenTotals};
use crate::availability::Availability;
use crate::config::PoolConfig;
use crate::incident::Breaker;
use crate::load::LoadSummary;
use crate::pace::{WeeklyTier, weekly_tier};
use crate::quota::QuotaState;
use crate::strategy::Strategy;
use crate::time::Timestamp;

const FIFTEEN_MINUTES: std::time::Duration = std::time::Duration::from_secs(15 * 60);
const ONE_HOUR: std::time::Duration = std::time::Duration::from_secs(60 * 60);

#[derive(Clone, Debug, Serialize)]
pub struct AccountSnapshot {
    pub id: AccountId,
    pub name: String,
    pub provider: String,
    pub kind: &'static str,
    pub priority: i32,
    pub weight: u32,
    pub enabled: bool,
    /// `available`, `rate_limited`, `cooling_down`, … (see [`Availability::name`]).
    pub state: &'static str,
    /// When the account is expected back, if it is out for a known time.
    pub until: Option<Timestamp>,
    pub in_flight: u32,
    pub completed: u64,
    pub failed: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    pub cooldown_until: Option<Timestamp>,
    pub rate_limited_until: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub load_15m: LoadSummary,
    pub load_1h: LoadSummary,
    pub quota: QuotaState,
    /// How much of the week may still be spent on new work (see [`WeeklyTier`]).
    pub weekly_tier: WeeklyTier,
    pub tokens: TokenTotals,
}

impl AccountSnapshot {
    pub(crate) fn new(
        id: AccountId,
        spec: &AccountSpec,
        state: &AccountState,
        verdict: Availability,
        config: &PoolConfig,
        now: Timestamp,
    ) -> Self {
        AccountSnapshot {
            id,
            name: spec.name.clone(),
            provider: spec.provider.clone(),
            kind: spec.kind.as_str(),
            priority: spec.priority,
            weight: spec.weight,
            enabled: spec.enabled,
            state: verdict.name(),
            until: verdict.recovers_at(),
            in_flight: state.in_flight,
            completed: state.completed,
            failed: state.failed,
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.as_ref().map(LastError::to_string),
            last_error_at: state.last_error.as_ref().map(|e| e.at),
            cooldown_until: state.cooling_until(),
            rate_limited_until: state.rate_limited_until,
            last_used_at: state.last_used_at,
            load_15m: state.load.summary(now, FIFTEEN_MINUTES),
            load_1h: state.load.summary(now, ONE_HOUR),
            quota: state.quota.clone(),
            weekly_tier: weekly_tier(&state.quota, config, now),
            tokens: state.tokens,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolTotals {
    pub accounts: usize,
    pub available: usize,
    pub in_flight: u32,
    pub completed: u64,
    pub failed: u64,
    pub conversations: usize,
    pub tokens: TokenTotals,
}

/// The pool's routing state.
#[derive(Clone, Debug, Serialize)]
pub struct SchedulerSnapshot {
    pub strategy: Strategy,
    /// Preferred-account routing, when on.
    pub preferred_account: Option<String>,
    /// Requests waiting for capacity.
    pub queued: usize,
    pub oldest_queued_ms: u64,
    /// The upstream breaker, while open.
    pub breaker: Option<Breaker>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolSnapshot {
    pub accounts: Vec<AccountSnapshot>,
    pub totals: PoolTotals,
    pub scheduler: SchedulerSnapshot,
}

impl PoolSnapshot {
    pub(crate) fn new(
        accounts: Vec<AccountSnapshot>,
        conversations: usize,
        in_flight: u32,
        scheduler: SchedulerSnapshot,
    ) -> Self {
        let mut tokens = TokenTotals::default();
        for account in &accounts {
            tokens.add(&account.tokens);
        }
        let totals = PoolTotals {
            accounts: accounts.len(),
            available: accounts.iter().filter(|a| a.state == "available").count(),
            in_flight,
            completed: accounts.iter().map(|a| a.completed).sum(),
            failed: accounts.iter().map(|a| a.failed).sum(),
            conversations,
            tokens,
        };
        PoolSnapshot {
            accounts,
            totals,
            scheduler,
        }
    }
}
