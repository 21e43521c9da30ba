//! Helpers shared by the scheduler's integration tests.

#![allow(dead_code)]

use std::time::Duration;

use sluice_scheduler::*;

pub fn spec(name: &str, priority: i32) -> AccountSpec {
    AccountSpec {
        name: name.to_owned(),
        provider: "anthropic".to_owned(),
        kind: CredentialKind::OAuth,
        priority,
        weight: 1,
        enabled: true,
    }
}

pub fn weighted(name: &str, weight: u32) -> AccountSpec {
    AccountSpec {
        weight,
        ..spec(name, 0)
    }
}

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_800_000_000 + secs)
}

pub fn pool_with(strategy: Strategy) -> Pool {
    Pool::new(PoolConfig {
        strategy,
        ..PoolConfig::default()
    })
}

pub fn route(
    pool: &mut Pool,
    request: &RequestInfo,
    excluded: &[AccountId],
    now: Timestamp,
) -> Lease {
    match pool.acquire(request, excluded, now) {
        Decision::Route(lease) => lease,
        other => panic!("expected a route, got {other:?}"),
    }
}

/// Acquire and expect a wait; returns (until, reason, ticket).
pub fn wait(
    pool: &mut Pool,
    request: &RequestInfo,
    excluded: &[AccountId],
    now: Timestamp,
) -> (Option<Timestamp>, Unavailable, Ticket) {
    match pool.acquire(request, excluded, now) {
        Decision::Wait {
            until,
            reason,
            ticket,
        } => (until, reason, ticket),
        other => panic!("expected a wait, got {other:?}"),
    }
}

pub fn ok() -> Outcome {
    Outcome::Success {
        tokens: TokenTotals::default(),
    }
}

pub fn ambiguous_429(secs: u64) -> Outcome {
    Outcome::RateLimited {
        status: 429,
        retry_after: Some(Duration::from_secs(secs)),
    }
}

pub fn conversation(name: &str) -> RequestInfo {
    RequestInfo {
        conversation: Some(ConversationKey::from_raw(name)),
        weight: 1,
        ticket: None,
    }
}

pub fn with_ticket(ticket: Ticket) -> RequestInfo {
    RequestInfo {
        ticket: Some(ticket),
        ..RequestInfo::default()
    }
}

/// Quota readings for a subscription account: 5-hour and weekly use with their resets.
pub fn windows(
    session: f64,
    session_reset: Timestamp,
    weekly: f64,
    weekly_reset: Timestamp,
) -> QuotaObservation {
    QuotaObservation {
        session_utilization: Some(session),
        session_reset: Some(session_reset),
        weekly_utilization: Some(weekly),
        weekly_reset: Some(weekly_reset),
        ..Default::default()
    }
}
