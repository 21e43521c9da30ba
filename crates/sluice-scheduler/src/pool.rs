//! One provider's pool of accounts: placement, leases, admission, and learning from outcomes.
//!
//! The pool is a plain state machine. The proxy asks it for a [`Decision`], carries the
//! decision out, and reports what happened; every method takes the current time. Nothing
//! here blocks, sleeps or touches the network, so a decision costs microseconds and the
//! simulator can drive the very same code with a virtual clock.
//!
//! `acquire` runs three gates before choosing: the upstream breaker (held while the upstream
//! throttles everyone, one probe when its time is up), the admission queue (first come, first
//! served), then the strategy's choice among the accounts that can serve. `release` turns
//! what happened into account health: benches for the account's own quota, provisional
//! exclusions and incidents for failures that may be the upstream's, cooldowns for transport
//! failures.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::account::{AccountId, AccountSpec, AccountState, ErrorClass};
use crate::availability::{Availability, availability};
use crate::decision::{Decision, Lease, RequestInfo, Unavailable};
use crate::incident::{Breaker, Fingerprint, Gate, Incidents};
use crate::outcome::Outcome;
use crate::queue::{AdmissionQueue, Ticket};
use crate::quota::{QuotaObservation, QuotaState, UnifiedStatus};
use crate::select;
use crate::session::SessionTable;
use crate::snapshot::{AccountSnapshot, PoolSnapshot, SchedulerSnapshot};
use crate::strategy::Strategy;
use crate::time::Timestamp;

pub use crate::config::PoolConfig;

/// Extra time a queue ticket is kept beyond `max_wait` before it is presumed abandoned.
const TICKET_GRACE: Duration = Duration::from_secs(60);

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
    /// Preferred-account routing: this account whenever it can serve, else the strategy.
    pub(crate) preferred: Option<AccountId>,
    /// The `sticky` strategy's current account.
    pub(crate) sticky: Option<AccountId>,
    queue: AdmissionQueue,
    breaker: Option<Breaker>,
    incidents: Incidents,
    /// The last time any account answered a request successfully (or began to).
    last_success_at: Option<Timestamp>,
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
            preferred: None,
            sticky: None,
            queue: AdmissionQueue::default(),
            breaker: None,
            incidents: Incidents::default(),
            last_success_at: None,
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: PoolConfig) {
        self.config = config;
    }

    pub fn strategy(&self) -> Strategy {
        self.config.strategy
    }

    /// Switch strategy at runtime. Conversation bindings are kept.
    pub fn set_strategy(&mut self, strategy: Strategy) {
        self.config.strategy = strategy;
    }

    /// The preferred account, if preferred-account routing is on.
    pub fn preferred(&self) -> Option<AccountId> {
        self.preferred
    }

    /// Route to `account` whenever it can serve (failing over to the strategy when it
    /// cannot), or back to automatic routing with `None`. Refused (false) for an unknown or
    /// disabled account.
    pub fn set_preferred(&mut self, account: Option<AccountId>) -> bool {
        match account {
            None => {
                self.preferred = None;
                true
            }
            Some(id) => match self.slot(id) {
                Some(slot) if slot.spec.enabled => {
                    self.preferred = Some(id);
                    true
                }
                _ => false,
            },
        }
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
            let id = slot.id;
            if !slot.spec.enabled && self.preferred == Some(id) {
                self.preferred = None;
            }
            return id;
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
        self.incidents.forget_account(id);
        if self.preferred == Some(id) {
            self.preferred = None;
        }
        if self.sticky == Some(id) {
            self.sticky = None;
        }
        if self.cursor >= self.slots.len() {
            self.cursor = 0;
        }
        Ok(slot.spec)
    }

    pub fn rename_account(&mut self, id: AccountId, name: String) -> bool {
        if self.slots.iter().any(|s| s.spec.name == name && s.id != id) {
            return false;
        }
        self.slot_mut(id).map(|s| s.spec.name = name).is_some()
    }

    pub fn set_enabled(&mut self, id: AccountId, enabled: bool) -> bool {
        if !enabled && self.preferred == Some(id) {
            self.preferred = None;
        }
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

    /// Where a conversation lives now, if the pool knows it.
    pub fn conversation(
        &self,
        key: crate::session::ConversationKey,
    ) -> Option<&crate::session::Binding> {
        self.sessions.get(key)
    }

    /// Requests waiting for capacity, in order.
    pub fn queued(&self) -> impl Iterator<Item = Ticket> + '_ {
        self.queue.tickets()
    }

    /// The open upstream breaker, if any.
    pub fn breaker(&self) -> Option<&Breaker> {
        self.breaker.as_ref()
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
        let ticket = request.ticket.filter(|t| self.queue.contains(*t));
        if self.slots.is_empty() {
            return self.refuse(ticket, None, Unavailable::NoAccounts);
        }
        if self.slots.iter().all(|s| excluded.contains(&s.id)) {
            return self.refuse(ticket, None, Unavailable::AllTried);
        }
        let gate = Breaker::gate(self.breaker.as_ref(), now);
        if let Gate::Held(until) = gate {
            return self.hold(ticket, until, Unavailable::UpstreamThrottled, now);
        }
        if !self.queue.may_go(ticket) {
            return self.hold(ticket, None, Unavailable::Queued, now);
        }
        if ticket.is_some()
            && let Some(at) = self.queue.spacing_until(now, self.config.admission_spacing)
        {
            return self.hold(ticket, Some(at), Unavailable::Queued, now);
        }

        let verdicts: Vec<Availability> = self
            .slots
            .iter()
            .map(|s| availability(&s.spec, &s.state, &self.config, self.global_in_flight, now))
            .collect();
        match select::choose(self, &verdicts, request, excluded, now) {
            Some(choice) => {
                if let Some(ticket) = ticket {
                    self.queue.admitted(ticket, now);
                }
                let probe = gate == Gate::Probe;
                if probe && let Some(breaker) = self.breaker.as_mut() {
                    breaker.probe_in_flight = true;
                }
                Decision::Route(self.lease(choice, request, probe, now))
            }
            None => {
                let stalled = self
                    .slots
                    .iter()
                    .zip(&verdicts)
                    .any(|(s, v)| v.is_available() && excluded.contains(&s.id));
                match self.unavailable(&verdicts, excluded, now) {
                    Ok((until, reason)) => {
                        let decision = self.hold(ticket, until, reason, now);
                        if let Decision::Wait { ticket, .. } = &decision {
                            self.queue.set_stalled(*ticket, stalled);
                        }
                        decision
                    }
                    Err((retry_after, reason)) => self.refuse(ticket, retry_after, reason),
                }
            }
        }
    }

    /// Give up a place in the queue (the client went away, or stopped waiting).
    pub fn leave_queue(&mut self, ticket: Ticket) {
        self.queue.leave(ticket);
    }

    /// Wait (queued) for `until`, or refuse if that is beyond the hold window.
    fn hold(
        &mut self,
        ticket: Option<Ticket>,
        until: Option<Timestamp>,
        reason: Unavailable,
        now: Timestamp,
    ) -> Decision {
        if let Some(at) = until
            && at > now + self.config.max_wait
        {
            return self.refuse(
                ticket,
                Some(now.until(at).max(Duration::from_secs(1))),
                reason,
            );
        }
        let ticket = ticket.unwrap_or_else(|| self.queue.join(now));
        Decision::Wait {
            until,
            reason,
            ticket,
        }
    }

    fn refuse(
        &mut self,
        ticket: Option<Ticket>,
        retry_after: Option<Duration>,
        reason: Unavailable,
    ) -> Decision {
        if let Some(ticket) = ticket {
            self.queue.leave(ticket);
        }
        Decision::Reject {
            retry_after,
            reason,
        }
    }

    fn lease(
        &mut self,
        choice: select::Choice,
        request: &RequestInfo,
        probe: bool,
        now: Timestamp,
    ) -> Lease {
        let index = choice.index;
        let weight = request.weight.max(1);
        let slot = &mut self.slots[index];
        slot.state.in_flight += 1;
        slot.state.active_weight += u64::from(weight);
        slot.state.last_used_at = Some(now);
        let id = slot.id;
        let priority = slot.spec.priority;
        self.global_in_flight += 1;
        if choice.advance_cursor {
            self.cursor = (index + 1) % self.slots.len();
        }
        let arrived = request
            .conversation
            .is_some_and(|key| self.sessions.get(key).is_none_or(|b| b.current != id));
        let moved_conversation = request
            .conversation
            .is_some_and(|key| self.sessions.bind(key, id, priority, now));
        if arrived {
            self.slots[index]
                .state
                .arrivals
                .bump(now, crate::burn::ARRIVAL_TIME_CONSTANT);
        }
        if self.config.strategy == Strategy::Sticky {
            self.sticky = Some(id);
        }
        Lease {
            account: id,
            weight,
            started_at: now,
            conversation: request.conversation,
            moved_conversation,
            probe,
        }
    }

    /// Nothing can serve: `Ok` to wait (for the soonest recovery if it is close, or for a
    /// release), `Err` to refuse.
    #[allow(clippy::type_complexity)]
    fn unavailable(
        &self,
        verdicts: &[Availability],
        excluded: &[AccountId],
        now: Timestamp,
    ) -> Result<(Option<Timestamp>, Unavailable), (Option<Duration>, Unavailable)> {
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
            return Err((None, Unavailable::AllTried));
        }
        let reason = reason.unwrap_or(Unavailable::Unusable);
        if waits_on_release {
            // Capacity frees up as soon as any request finishes.
            return Ok((soonest.filter(|s| *s <= now + self.config.max_wait), reason));
        }
        match soonest {
            Some(at) if at <= now + self.config.max_wait => Ok((Some(at), reason)),
            Some(at) => Err((Some(now.until(at).max(Duration::from_secs(1))), reason)),
            None => Err((None, reason)),
        }
    }

    // ----- learning ---------------------------------------------------------------------

    /// Apply quota learned from a response (or a usage probe) on account `id`.
    pub fn observe_quota(&mut self, id: AccountId, observation: &QuotaObservation, now: Timestamp) {
        if let Some(slot) = self.slot_mut(id) {
            let state = &mut slot.state;
            state.quota.apply(observation, now);
            if observation.session_utilization.is_some()
                && let Some(w) = &state.quota.session
            {
                state.session_burn.observe(w.utilization, w.resets_at, now);
            }
            if observation.weekly_utilization.is_some()
                && let Some(w) = &state.quota.weekly
            {
                state.weekly_burn.observe(w.utilization, w.resets_at, now);
            }
        }
    }

    /// The upstream accepted the request on `lease` (a success status, and for a stream its
    /// first event): the upstream serves, even if the response takes minutes to finish. An
    /// open breaker whose probe this is closes now.
    pub fn upstream_accepted(&mut self, lease: &mut Lease, now: Timestamp) {
        self.last_success_at = Some(self.last_success_at.map_or(now, |t| t.max(now)));
        if lease.probe {
            lease.probe = false;
            self.close_breaker(now);
        }
    }

    /// Hand a lease back with what happened. Updates health, load, benches and the breaker.
    pub fn release(&mut self, lease: Lease, outcome: Outcome, now: Timestamp) {
        self.global_in_flight = self.global_in_flight.saturating_sub(1);
        let config = self.config.clone();
        let Some(index) = self.index_of(lease.account) else {
            // Removed while in flight (only possible through a config reload).
            if lease.probe {
                self.finish_probe(ProbeResult::Abandoned, now);
            }
            return;
        };
        let state = &mut self.slots[index].state;
        state.in_flight = state.in_flight.saturating_sub(1);
        state.active_weight = state.active_weight.saturating_sub(u64::from(lease.weight));

        // The failure to compare across accounts, and the `retry-after` that came with it.
        let mut incident: Option<(Fingerprint, Option<Duration>)> = None;
        let failed_class = match &outcome {
            Outcome::Success { tokens } => {
                state.completed += 1;
                state.consecutive_failures = 0;
                state.last_status = Some(200);
                state.last_success_at = Some(now);
                state.provisional_until = None;
                state.provisional_fingerprint = None;
                state.tokens.add(tokens);
                None
            }
            Outcome::RateLimited {
                status,
                retry_after,
            } => {
                state.record_error(ErrorClass::RateLimited, Some(*status), now);
                match own_quota_reset(&state.quota, &config, now) {
                    Some(reset) => {
                        // The account's own quota: out until its reset, whatever else happens.
                        let until = reset
                            .filter(|at| *at > now)
                            .unwrap_or_else(|| now + bench_length(*retry_after, &config));
                        state.rate_limited_until = Some(until);
                        state.rate_limit_fingerprint = None;
                    }
                    None => {
                        state.rate_limited_until = Some(now + bench_length(*retry_after, &config));
                        state.rate_limit_fingerprint = Some(Fingerprint::RateLimited);
                        incident = Some((Fingerprint::RateLimited, *retry_after));
                    }
                }
                Some(ErrorClass::RateLimited)
            }
            Outcome::Overloaded { retry_after } => {
                state.record_error(ErrorClass::Overloaded, Some(529), now);
                provisional(state, Fingerprint::Overloaded, *retry_after, &config, now);
                incident = Some((Fingerprint::Overloaded, *retry_after));
                Some(ErrorClass::Overloaded)
            }
            Outcome::ServerError { status } => {
                state.record_error(ErrorClass::ServerError, Some(*status), now);
                let fingerprint = Fingerprint::ServerError { status: *status };
                provisional(state, fingerprint, None, &config, now);
                incident = Some((fingerprint, None));
                Some(ErrorClass::ServerError)
            }
            Outcome::Connect => transient(state, ErrorClass::Connect, None, &config, now),
            Outcome::Timeout => transient(state, ErrorClass::Timeout, None, &config, now),
            Outcome::StreamBroken => transient(state, ErrorClass::StreamBroken, None, &config, now),
            Outcome::AuthRejected { status } => {
                state.record_error(ErrorClass::AuthRejected, Some(*status), now);
                state.auth_failed = true;
                Some(ErrorClass::AuthRejected)
            }
            Outcome::Neutral => {
                if lease.probe {
                    self.finish_probe(ProbeResult::Abandoned, now);
                }
                return;
            }
        };
        state.load.record(now, lease.weight, failed_class.is_none());

        if outcome.is_success() {
            self.last_success_at = Some(now);
            if self.breaker.is_some() {
                // Any success is proof the upstream serves again.
                self.close_breaker(now);
            }
        }
        if lease.probe {
            let result = match (&outcome, incident) {
                (Outcome::Success { .. }, _) => ProbeResult::Success,
                (_, Some((_, retry_after))) => ProbeResult::Throttled(retry_after),
                _ => ProbeResult::Failed,
            };
            self.finish_probe(result, now);
        }
        if let Some((fingerprint, retry_after)) = incident {
            self.note_incident(fingerprint, lease.account, retry_after, now);
        }
    }

    /// The same failure on several accounts: not theirs. With no success since it began, the
    /// upstream is throttling everyone: open the breaker.
    fn note_incident(
        &mut self,
        fingerprint: Fingerprint,
        account: AccountId,
        retry_after: Option<Duration>,
        now: Timestamp,
    ) {
        let incident = self
            .incidents
            .note(fingerprint, account, now, self.config.incident_window);
        if incident.accounts.len() < 2 {
            return;
        }
        for id in &incident.accounts {
            if let Some(slot) = self.slots.iter_mut().find(|s| s.id == *id) {
                let state = &mut slot.state;
                if state.provisional_fingerprint == Some(fingerprint) {
                    state.provisional_until = None;
                    state.provisional_fingerprint = None;
                }
                if state.rate_limit_fingerprint == Some(fingerprint) {
                    state.rate_limited_until = None;
                    state.rate_limit_fingerprint = None;
                }
            }
        }
        let nothing_succeeded = self.last_success_at.is_none_or(|t| t < incident.first_at);
        if nothing_succeeded {
            self.open_breaker(fingerprint, retry_after, now);
            self.incidents.forget(fingerprint);
        }
    }

    fn open_breaker(&mut self, reason: Fingerprint, retry_after: Option<Duration>, now: Timestamp) {
        let until = now + bench_length(retry_after, &self.config);
        match self.breaker.as_mut() {
            Some(breaker) => {
                breaker.until = breaker.until.max(until);
                breaker.reason = reason;
                breaker.probe_in_flight = false;
            }
            None => {
                self.breaker = Some(Breaker {
                    until,
                    probe_in_flight: false,
                    reason,
                    opened_at: now,
                })
            }
        }
    }

    fn close_breaker(&mut self, now: Timestamp) {
        self.breaker = None;
        self.queue.start_ramp(now, self.config.admission_ramp);
    }

    /// The recovery probe came back with `result`.
    fn finish_probe(&mut self, result: ProbeResult, now: Timestamp) {
        if result == ProbeResult::Success {
            self.close_breaker(now);
            return;
        }
        let probe_retry = self.config.probe_retry;
        let rearm = match result {
            ProbeResult::Throttled(retry_after) => {
                Some(now + bench_length(retry_after, &self.config))
            }
            _ => None,
        };
        if let Some(breaker) = self.breaker.as_mut() {
            breaker.probe_in_flight = false;
            match (result, rearm) {
                (_, Some(until)) => breaker.until = until,
                // It failed some other way: try another probe a little later.
                (ProbeResult::Failed, None) => breaker.until = breaker.until.max(now + probe_retry),
                // No verdict (the client left): the next request probes at once.
                _ => {}
            }
        }
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
                AccountSnapshot::new(slot.id, &slot.spec, &slot.state, verdict, &self.config, now)
            })
            .collect();
        let scheduler = SchedulerSnapshot {
            strategy: self.config.strategy,
            preferred_account: self
                .preferred
                .and_then(|id| self.slot(id))
                .map(|s| s.spec.name.clone()),
            queued: self.queue.len(),
            oldest_queued_ms: self
                .queue
                .oldest_wait(now)
                .map_or(0, |d| d.as_millis() as u64),
            breaker: self.breaker.clone(),
        };
        PoolSnapshot::new(
            accounts,
            self.sessions.len(),
            self.global_in_flight,
            scheduler,
        )
    }

    // ----- internals --------------------------------------------------------------------

    fn housekeeping(&mut self, now: Timestamp) {
        let mut recovered = false;
        for slot in &mut self.slots {
            recovered |= slot.state.settle(now);
        }
        if recovered {
            self.queue.start_ramp(now, self.config.admission_ramp);
        }
        if now.since(self.last_eviction) >= Duration::from_secs(60) {
            self.last_eviction = now;
            self.sessions
                .evict(now, self.config.session_ttl, self.config.max_sessions);
            self.queue.sweep(now, self.config.max_wait + TICKET_GRACE);
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

/// What became of the breaker's recovery probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeResult {
    Success,
    /// Failed the way the upstream throttles (ambiguous 429, 529, 5xx), with its retry-after.
    Throttled(Option<Duration>),
    /// Failed otherwise (transport, auth, the account's own quota).
    Failed,
    /// No verdict: the client went away.
    Abandoned,
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

/// Exclude the account for a short while after a failure that may not be its own.
fn provisional(
    state: &mut AccountState,
    fingerprint: Fingerprint,
    retry_after: Option<Duration>,
    config: &PoolConfig,
    now: Timestamp,
) {
    let length = retry_after
        .unwrap_or(config.provisional_exclusion)
        .clamp(Duration::from_secs(1), config.max_provisional_exclusion);
    state.provisional_until = Some(state.provisional_until.unwrap_or(now).max(now + length));
    state.provisional_fingerprint = Some(fingerprint);
}

/// How long a 429 (or the breaker) holds when only `retry-after`, or nothing, says so.
fn bench_length(retry_after: Option<Duration>, config: &PoolConfig) -> Duration {
    retry_after.unwrap_or(config.default_rate_limit).clamp(
        crate::headers::MIN_RETRY_AFTER,
        crate::headers::MAX_RETRY_AFTER,
    )
}

/// Whether the account's quota says the 429 was its own, and if so until when (`Some(None)`:
/// its own, reset unknown).
fn own_quota_reset(
    quota: &QuotaState,
    config: &PoolConfig,
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    let mut own = false;
    let mut latest: Option<Timestamp> = None;
    let mut note = |reset: Option<Timestamp>| {
        own = true;
        latest = latest.max(reset.filter(|r| *r > now));
    };
    if quota.status == Some(UnifiedStatus::Rejected) {
        note(quota.status_resets_at);
    }
    if let Some(w) = &quota.session
        && (w.status == Some(UnifiedStatus::Rejected) || w.utilization >= 1.0)
    {
        note(w.resets_at);
    }
    if let Some(w) = &quota.weekly
        && (w.status == Some(UnifiedStatus::Rejected) || w.used() >= config.weekly_exhausted)
    {
        note(w.resets_at);
    }
    for bucket in quota.buckets() {
        if bucket.remaining == 0 {
            note(bucket.resets_at);
        }
    }
    own.then_some(latest)
}
