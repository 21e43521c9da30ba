//! One provider's pool of accounts: placement, leases, and learning from outcomes.
//!
//! The pool is a plain state machine. The proxy asks it for a [`Decision`], carries the
//! decision out, and reports what happened; every method takes the current time. Nothing
//! here blocks, sleeps or touches the network, so a decision costs microseconds and the
//! simulator can drive the very same code with a virtual clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::account::{AccountId, AccountSpec, AccountState, ErrorClass};
use crate::availability::{Availability, availability};
use crate::decision::{Decision, Lease, RequestInfo, Unavailable};
use crate::outcome::Outcome;
use crate::quota::{QuotaObservation, QuotaState};
use crate::select;
use crate::session::SessionTable;
use crate::snapshot::{AccountSnapshot, PoolSnapshot};
use crate::time::Timestamp;

/// Tunables of a pool. Defaults match sluice's documented configuration defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// 5-hour (and API bucket) utilization at which an account stops taking new work.
    pub switch_threshold: f64,
    pub max_in_flight_per_account: u32,
    pub max_in_flight_total: u32,
    /// First transient-failure cooldown; doubles with each consecutive failure.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// Hold a request when an account recovers within this long; refuse otherwise.
    pub max_wait: Duration,
    /// Bench length for a 429 that says nothing usable about when to retry.
    pub default_rate_limit: Duration,
    /// Forget conversations idle this long.
    pub session_ttl: Duration,
    pub max_sessions: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            switch_threshold: 0.90,
            max_in_flight_per_account: 50,
            max_in_flight_total: 150,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(5 * 60),
            max_wait: Duration::from_secs(30),
            default_rate_limit: Duration::from_secs(30),
            session_ttl: Duration::from_secs(12 * 60 * 60),
            max_sessions: 100_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Slot {
    pub(crate) id: AccountId,
    pub(crate) spec: AccountSpec,
    pub(crate) state: AccountState,
}

/// Why an account could not be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveError {
    Unknown,
    /// The account has requests in flight.
    Busy {
        in_flight: u32,
    },
}

/// Quota learned for one account, in the shape persisted across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedQuota {
    pub name: String,
    pub quota: QuotaState,
}

/// A pool of accounts for one provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pool {
    config: PoolConfig,
    pub(crate) slots: Vec<Slot>,
    next_id: u32,
    pub(crate) sessions: SessionTable,
    /// Rotation start for ties, so equal accounts take turns.
    pub(crate) cursor: usize,
    pub(crate) global_in_flight: u32,
    last_eviction: Timestamp,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            slots: Vec::new(),
            next_id: 0,
            sessions: SessionTable::default(),
            cursor: 0,
            global_in_flight: 0,
            last_eviction: Timestamp::EPOCH,
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: PoolConfig) {
        self.config = config;
    }

    // ----- membership -------------------------------------------------------------------

    /// Add an account, or update the declared fields of the account with that name while
    /// keeping everything learned about it.
    pub fn upsert_account(&mut self, spec: AccountSpec) -> AccountId {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == spec.name) {
            if slot.spec.priority != spec.priority {
                self.sessions.reprioritize(slot.id, spec.priority);
            }
            slot.spec = AccountSpec {
                weight: spec.weight.max(1),
                ..spec
            };
            return slot.id;
        }
        let id = AccountId(self.next_id);
        self.next_id += 1;
        self.slots.push(Slot {
            id,
            spec: AccountSpec {
                weight: spec.weight.max(1),
                ..spec
            },
            state: AccountState::default(),
        });
        id
    }

    /// Remove an idle account. Refused while it has requests in flight.
    pub fn remove_account(&mut self, id: AccountId) -> Result<AccountSpec, RemoveError> {
        let index = self.index_of(id).ok_or(RemoveError::Unknown)?;
        let in_flight = self.slots[index].state.in_flight;
        if in_flight > 0 {
            return Err(RemoveError::Busy { in_flight });
        }
        let slot = self.slots.remove(index);
        self.sessions.forget_account(id);
        Ok(slot.spec)
    }

    pub fn rename_account(&mut self, id: AccountId, name: String) -> bool {
        if self.slots.iter().any(|s| s.spec.name == name && s.id != id) {
            return false;
        }
        self.slot_mut(id).map(|s| s.spec.name = name).is_some()
    }

    pub fn set_enabled(&mut self, id: AccountId, enabled: bool) -> bool {
        self.slot_mut(id)
            .map(|s| s.spec.enabled = enabled)
            .is_some()
    }

    pub fn set_priority(&mut self, id: AccountId, priority: i32) -> bool {
        self.sessions.reprioritize(id, priority);
        self.slot_mut(id)
            .map(|s| s.spec.priority = priority)
            .is_some()
    }

    pub fn set_weight(&mut self, id: AccountId, weight: u32) -> bool {
        self.slot_mut(id)
            .map(|s| s.spec.weight = weight.max(1))
            .is_some()
    }

    pub fn id_of(&self, name: &str) -> Option<AccountId> {
        self.slots
            .iter()
            .find(|s| s.spec.name == name)
            .map(|s| s.id)
    }

    pub fn ids(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.slots.iter().map(|s| s.id)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn spec(&self, id: AccountId) -> Option<&AccountSpec> {
        self.slot(id).map(|s| &s.spec)
    }

    pub fn state(&self, id: AccountId) -> Option<&AccountState> {
        self.slot(id).map(|s| &s.state)
    }

    /// The account's availability at `now`.
    pub fn availability(&mut self, id: AccountId, now: Timestamp) -> Option<Availability> {
        let global = self.global_in_flight;
        let config = &self.config;
        self.slots.iter_mut().find(|s| s.id == id).map(|slot| {
            slot.state.settle(now);
            availability(&slot.spec, &slot.state, config, global, now)
        })
    }

    // ----- placement --------------------------------------------------------------------

    /// Choose an account for a request, never one in `excluded` (already tried).
    pub fn acquire(
        &mut self,
        request: &RequestInfo,
        excluded: &[AccountId],
        now: Timestamp,
    ) -> Decision {
        self.housekeeping(now);
        if self.slots.is_empty() {
            return Decision::Reject {
                retry_after: None,
                reason: Unavailable::NoAccounts,
            };
        }
        let verdicts: Vec<Availability> = self
            .slots
            .iter()
            .map(|s| availability(&s.spec, &s.state, &self.config, self.global_in_flight, now))
            .collect();

        match select::choose(self, &verdicts, request, excluded) {
            Some(index) => Decision::Route(self.lease(index, request, now)),
            None => self.unavailable(&verdicts, excluded, now),
        }
    }

    fn lease(&mut self, index: usize, request: &RequestInfo, now: Timestamp) -> Lease {
        let weight = request.weight.max(1);
        let slot = &mut self.slots[index];
        slot.state.in_flight += 1;
        slot.state.active_weight += u64::from(weight);
        slot.state.last_used_at = Some(now);
        let id = slot.id;
        let priority = slot.spec.priority;
        self.global_in_flight += 1;
        self.cursor = (index + 1) % self.slots.len();
        let moved_conversation = request
            .conversation
            .is_some_and(|key| self.sessions.bind(key, id, priority, now));
        Lease {
            account: id,
            weight,
            started_at: now,
            conversation: request.conversation,
            moved_conversation,
        }
    }

    /// Nothing can serve: wait for the soonest recovery if it is close, else refuse.
    fn unavailable(
        &self,
        verdicts: &[Availability],
        excluded: &[AccountId],
        now: Timestamp,
    ) -> Decision {
        let mut soonest: Option<Timestamp> = None;
        let mut waits_on_release = false;
        let mut reason: Option<Unavailable> = None;
        let mut untried = 0;
        for (slot, verdict) in self.slots.iter().zip(verdicts) {
            if excluded.contains(&slot.id) {
                continue;
            }
            untried += 1;
            if !verdict.is_recoverable() {
                continue;
            }
            // Report the reason of the account that recovers first.
            match verdict.recovers_at() {
                Some(at) if soonest.is_none_or(|s| at < s) => {
                    soonest = Some(at);
                    if !waits_on_release {
                        reason = Some(verdict.reason());
                    }
                }
                Some(_) => {}
                None => {
                    waits_on_release = true;
                    reason = Some(verdict.reason());
                }
            }
        }
        if untried == 0 {
            return Decision::Reject {
                retry_after: None,
                reason: Unavailable::AllTried,
            };
        }
        let reason = reason.unwrap_or(Unavailable::Unusable);
        if waits_on_release {
            // Capacity frees up as soon as any request finishes.
            return Decision::Wait {
                until: soonest.filter(|s| *s <= now + self.config.max_wait),
                reason,
            };
        }
        match soonest {
            Some(at) if at <= now + self.config.max_wait => Decision::Wait {
                until: Some(at),
                reason,
            },
            Some(at) => Decision::Reject {
                retry_after: Some(now.until(at).max(Duration::from_secs(1))),
                reason,
            },
            None => Decision::Reject {
                retry_after: None,
                reason,
            },
        }
    }

    // ----- learning ---------------------------------------------------------------------

    /// Apply quota learned from a response (or a usage probe) on account `id`.
    pub fn observe_quota(&mut self, id: AccountId, observation: &QuotaObservation, now: Timestamp) {
        if let Some(slot) = self.slot_mut(id) {
            slot.state.quota.apply(observation, now);
        }
    }

    /// Hand a lease back with what happened. Updates health, load and benches.
    pub fn release(&mut self, lease: Lease, outcome: Outcome, now: Timestamp) {
        self.global_in_flight = self.global_in_flight.saturating_sub(1);
        let config = self.config.clone();
        let Some(slot) = self.slot_mut(lease.account) else {
            return; // removed while in flight (only possible through a config reload)
        };
        let state = &mut slot.state;
        state.in_flight = state.in_flight.saturating_sub(1);
        state.active_weight = state.active_weight.saturating_sub(u64::from(lease.weight));

        let failed_class = match &outcome {
            Outcome::Success { tokens } => {
                state.completed += 1;
                state.consecutive_failures = 0;
                state.last_status = Some(200);
                state.last_success_at = Some(now);
                state.tokens.add(tokens);
                None
            }
            Outcome::RateLimited {
                status,
                retry_after,
            } => {
                state.record_error(ErrorClass::RateLimited, Some(*status), now);
                state.rate_limited_until =
                    Some(now + rate_limit_bench(state, *retry_after, &config, now));
                Some(ErrorClass::RateLimited)
            }
            Outcome::Overloaded { retry_after } => {
                state.record_error(ErrorClass::Overloaded, Some(529), now);
                let backoff = state
                    .cooldown_for(config.cooldown, config.max_cooldown)
                    .max(retry_after.unwrap_or_default().min(config.max_cooldown));
                state.cooldown_until = Some(now + backoff);
                Some(ErrorClass::Overloaded)
            }
            Outcome::ServerError { status } => {
                transient(state, ErrorClass::ServerError, Some(*status), &config, now)
            }
            Outcome::Connect => transient(state, ErrorClass::Connect, None, &config, now),
            Outcome::Timeout => transient(state, ErrorClass::Timeout, None, &config, now),
            Outcome::StreamBroken => transient(state, ErrorClass::StreamBroken, None, &config, now),
            Outcome::AuthRejected { status } => {
                state.record_error(ErrorClass::AuthRejected, Some(*status), now);
                state.auth_failed = true;
                Some(ErrorClass::AuthRejected)
            }
            Outcome::Neutral => return,
        };
        state.load.record(now, lease.weight, failed_class.is_none());
    }

    /// The account's credential changed (refresh, new login, edited config): forget that the
    /// old one was rejected.
    pub fn credential_changed(&mut self, id: AccountId) {
        if let Some(slot) = self.slot_mut(id) {
            slot.state.auth_failed = false;
            slot.state.needs_relogin = false;
        }
    }

    /// The account's refresh token is dead; only a new login revives it.
    pub fn mark_needs_relogin(&mut self, id: AccountId, now: Timestamp) {
        if let Some(slot) = self.slot_mut(id) {
            slot.state.needs_relogin = true;
            slot.state.last_error = Some(crate::account::LastError {
                class: ErrorClass::TokenRefresh,
                status: None,
                at: now,
            });
        }
    }

    // ----- persistence and views --------------------------------------------------------

    /// Quota learned so far, keyed by account name (never credentials).
    pub fn export_quota(&self) -> Vec<SavedQuota> {
        self.slots
            .iter()
            .filter(|s| s.state.quota != QuotaState::default())
            .map(|s| SavedQuota {
                name: s.spec.name.clone(),
                quota: s.state.quota.clone(),
            })
            .collect()
    }

    /// Restore quota saved by an earlier run. Windows that have since reset are dropped.
    pub fn restore_quota(&mut self, saved: &[SavedQuota], now: Timestamp) {
        for entry in saved {
            if let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == entry.name) {
                let mut quota = entry.quota.clone();
                quota.sanitize_restored(now);
                slot.state.quota = quota;
            }
        }
    }

    /// A point-in-time view for status output.
    pub fn snapshot(&mut self, now: Timestamp) -> PoolSnapshot {
        for slot in &mut self.slots {
            slot.state.settle(now);
        }
        let accounts: Vec<AccountSnapshot> = self
            .slots
            .iter()
            .map(|slot| {
                let verdict = availability(
                    &slot.spec,
                    &slot.state,
                    &self.config,
                    self.global_in_flight,
                    now,
                );
                AccountSnapshot::new(slot.id, &slot.spec, &slot.state, verdict, now)
            })
            .collect();
        PoolSnapshot::new(accounts, self.sessions.len(), self.global_in_flight)
    }

    // ----- internals --------------------------------------------------------------------

    fn housekeeping(&mut self, now: Timestamp) {
        for slot in &mut self.slots {
            slot.state.settle(now);
        }
        if now.since(self.last_eviction) >= Duration::from_secs(60) {
            self.last_eviction = now;
            self.sessions
                .evict(now, self.config.session_ttl, self.config.max_sessions);
        }
    }

    pub(crate) fn index_of(&self, id: AccountId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    fn slot(&self, id: AccountId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    fn slot_mut(&mut self, id: AccountId) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }
}

fn transient(
    state: &mut AccountState,
    class: ErrorClass,
    status: Option<u16>,
    config: &PoolConfig,
    now: Timestamp,
) -> Option<ErrorClass> {
    state.record_error(class, status, now);
    state.cooldown_until = Some(now + state.cooldown_for(config.cooldown, config.max_cooldown));
    Some(class)
}

/// How long a 429 benches an account: until the upstream's own reset when it said the
/// account is rejected, else `retry-after`, else a default.
fn rate_limit_bench(
    state: &AccountState,
    retry_after: Option<Duration>,
    config: &PoolConfig,
    now: Timestamp,
) -> Duration {
    let quota = &state.quota;
    let rejected_until = (quota.status == Some(crate::quota::UnifiedStatus::Rejected))
        .then_some(quota.status_resets_at)
        .flatten()
        .filter(|at| *at > now)
        .map(|at| now.until(at));
    rejected_until
        .or(retry_after)
        .unwrap_or(config.default_rate_limit)
        .max(Duration::from_secs(1))
}
