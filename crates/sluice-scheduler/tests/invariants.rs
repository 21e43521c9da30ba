//! Property tests: invariants that hold for every strategy, whatever the pool's state and
//! whatever happens to it.
//!
//! * No strategy ever picks a disabled, benched, cooling-down or exhausted account (the
//!   adaptive strategy may pick one over its 5-hour threshold, never one that is out).
//! * A conversation stays on its home account while home is healthy (adaptive, maxpool).
//! * Priorities are respected: an unbound request goes to the best priority among the
//!   healthiest accounts that can serve.
//! * The admission queue is first come, first served and starves no one.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use sluice_scheduler::{
    AccountId, AccountSnapshot, AccountSpec, ConversationKey, Decision, Lease, Outcome, Pool,
    PoolConfig, RequestInfo, Strategy as Routing, Ticket, Timestamp, UnifiedStatus, WeeklyTier,
};

#[derive(Clone, Debug)]
struct AccountPlan {
    priority: i32,
    weight: u32,
    enabled: bool,
    session: f64,
    session_reset_min: i64,
    weekly: f64,
    weekly_reset_h: i64,
    rejected: bool,
}

fn account_plan() -> impl Strategy<Value = AccountPlan> {
    (
        0..3i32,
        prop_oneof![Just(1u32), Just(5), Just(20)],
        prop::bool::weighted(0.85),
        0.0..1.1f64,
        1..300i64,
        0.0..1.0f64,
        1..168i64,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                priority,
                weight,
                enabled,
                session,
                session_reset_min,
                weekly,
                weekly_reset_h,
                rejected,
            )| {
                AccountPlan {
                    priority,
                    weight,
                    enabled,
                    session,
                    session_reset_min,
                    weekly,
                    weekly_reset_h,
                    rejected,
                }
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        conversation: Option<u8>,
        weight: u32,
        exclude: Option<usize>,
    },
    Release {
        lease: usize,
        outcome: u8,
    },
    Observe {
        account: usize,
        session: f64,
        weekly: f64,
    },
    Advance {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::option::of(0..4u8), 1..6u32, prop::option::of(0..5usize)).prop_map(
            |(conversation, weight, exclude)| Op::Acquire { conversation, weight, exclude }
        ),
        3 => (0..8usize, 0..8u8).prop_map(|(lease, outcome)| Op::Release { lease, outcome }),
        1 => (0..5usize, 0.0..1.05f64, 0.0..1.0f64)
            .prop_map(|(account, session, weekly)| Op::Observe { account, session, weekly }),
        1 => (1..900u64).prop_map(|secs| Op::Advance { secs }),
    ]
}

fn outcome(kind: u8) -> Outcome {
    match kind {
        0..=3 => ok(),
        4 => ambiguous_429(20),
        5 => Outcome::Overloaded { retry_after: None },
        6 => Outcome::Connect,
        _ => Outcome::ServerError { status: 500 },
    }
}

fn strategy_of(index: usize) -> Routing {
    Routing::ALL[index % Routing::ALL.len()]
}

const BENCHED: [&str; 6] = [
    "disabled",
    "needs_relogin",
    "auth_failed",
    "rate_limited",
    "cooling_down",
    "quota_exhausted",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn routing_invariants_hold(
        strategy in 0..8usize,
        plans in prop::collection::vec(account_plan(), 2..6),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let strategy = strategy_of(strategy);
        let mut pool = pool_with(strategy);
        let mut now = t(0);
        let ids: Vec<AccountId> = plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let id = pool.upsert_account(AccountSpec {
                    priority: p.priority,
                    weight: p.weight,
                    enabled: p.enabled,
                    ..spec(&format!("acct{i}"), 0)
                });
                let mut seen = windows(
                    p.session,
                    now + Duration::from_secs(p.session_reset_min as u64 * 60),
                    p.weekly,
                    now + Duration::from_secs(p.weekly_reset_h as u64 * 3600),
                );
                if p.rejected {
                    seen.status = Some(UnifiedStatus::Rejected);
                    seen.status_reset = seen.session_reset;
                }
                pool.observe_quota(id, &seen, now);
                id
            })
            .collect();
        let mut leases: Vec<Lease> = Vec::new();

        for op in ops {
            match op {
                Op::Advance { secs } => now = now + Duration::from_secs(secs),
                Op::Observe { account, session, weekly } => {
                    let id = ids[account % ids.len()];
                    pool.observe_quota(
                        id,
                        &windows(session, now + Duration::from_secs(3600), weekly, now + Duration::from_secs(3 * 86_400)),
                        now,
                    );
                }
                Op::Release { lease, outcome: kind } => {
                    if !leases.is_empty() {
                        let lease = leases.remove(lease % leases.len());
                        pool.release(lease, outcome(kind), now);
                    }
                }
                Op::Acquire { conversation: conv, weight, exclude } => {
                    let excluded: Vec<AccountId> = exclude.map(|i| ids[i % ids.len()]).into_iter().collect();
                    let request = RequestInfo {
                        conversation: conv.map(|c| ConversationKey::from_raw(&format!("conv-{c}"))),
                        weight,
                        ticket: None,
                    };
                    let before = pool.snapshot(now);
                    let binding = request.conversation.and_then(|k| pool.conversation(k).copied());
                    let decision = pool.acquire(&request, &excluded, now);
                    if let Decision::Wait { ticket, .. } = &decision {
                        pool.leave_queue(*ticket);
                    }
                    let Decision::Route(lease) = decision else { continue };
                    let view = |id: AccountId| before.accounts.iter().find(|a| a.id == id).unwrap();
                    let chosen = view(lease.account);

                    // Never an account that cannot serve.
                    prop_assert!(!excluded.contains(&lease.account));
                    prop_assert!(!BENCHED.contains(&chosen.state), "{strategy}: chose {} ({})", chosen.name, chosen.state);
                    prop_assert!(chosen.weekly_tier != WeeklyTier::Exhausted);
                    if strategy != Routing::Adaptive {
                        prop_assert_eq!(chosen.state, "available");
                    } else {
                        prop_assert!(matches!(chosen.state, "available" | "over_threshold"));
                    }

                    let can_serve = |a: &&AccountSnapshot| a.state == "available" && !excluded.contains(&a.id);
                    let healthy = |a: &&AccountSnapshot| can_serve(a) && a.weekly_tier <= WeeklyTier::Soft;

                    // A conversation stays home while home is healthy.
                    if strategy.keeps_conversations()
                        && let Some(binding) = binding
                        && let Some(home) = before.accounts.iter().find(|a| a.id == binding.home)
                        && healthy(&home)
                        && !before.accounts.iter().filter(can_serve).any(|a| a.priority < home.priority && a.weekly_tier <= WeeklyTier::Reserve)
                    {
                        prop_assert_eq!(lease.account, home.id, "{}: left a healthy home", strategy);
                    }

                    // Priorities: an unbound request takes the best priority among the
                    // healthiest that can serve (for the weekly-tier strategies: healthy
                    // weeks first, then reserve, then critical).
                    if request.conversation.is_none() {
                        let serving: Vec<&AccountSnapshot> = before.accounts.iter().filter(can_serve).collect();
                        let pool_of: Vec<&AccountSnapshot> = if strategy.keeps_conversations() {
                            [WeeklyTier::Soft, WeeklyTier::Reserve, WeeklyTier::Critical]
                                .into_iter()
                                .map(|tier| serving.iter().copied().filter(|a| a.weekly_tier <= tier).collect::<Vec<_>>())
                                .find(|tier| !tier.is_empty())
                                .unwrap_or_default()
                        } else {
                            serving
                        };
                        if let Some(best) = pool_of.iter().map(|a| a.priority).min() {
                            prop_assert_eq!(chosen.priority, best, "{}: priority", strategy);
                        }
                    }
                    leases.push(lease);
                }
            }
        }
        for lease in leases {
            pool.release(lease, ok(), now);
        }
    }

    #[test]
    fn the_queue_is_first_come_first_served_and_starves_no_one(
        cap in 1..3u32,
        steps in prop::collection::vec((0..3u8, any::<u64>()), 1..80),
    ) {
        let mut pool = Pool::new(PoolConfig {
            max_in_flight_per_account: cap,
            max_wait: Duration::from_secs(3600),
            ..PoolConfig::default()
        });
        pool.upsert_account(spec("only", 0));
        let mut now = t(0);
        let mut running: Vec<Lease> = Vec::new();
        let mut waiting: Vec<Ticket> = Vec::new();
        let mut admitted: Vec<Ticket> = Vec::new();
        let poll = |pool: &mut Pool, waiting: &mut Vec<Ticket>, running: &mut Vec<Lease>, admitted: &mut Vec<Ticket>, shuffle: u64, now: Timestamp| {
            // Waiters wake in any order; the pool must still admit them in ticket order.
            let mut order = waiting.clone();
            if !order.is_empty() {
                let k = (shuffle as usize) % order.len();
                order.rotate_left(k);
            }
            for ticket in order {
                match pool.acquire(&with_ticket(ticket), &[], now) {
                    Decision::Route(lease) => {
                        waiting.retain(|w| *w != ticket);
                        admitted.push(ticket);
                        running.push(lease);
                    }
                    Decision::Wait { ticket: kept, .. } => assert_eq!(kept, ticket),
                    Decision::Reject { .. } => panic!("nobody is refused here"),
                }
            }
        };
        for (action, shuffle) in steps {
            now = now + Duration::from_secs(1);
            match action {
                0 | 1 => match pool.acquire(&RequestInfo::default(), &[], now) {
                    Decision::Route(lease) => {
                        prop_assert!(waiting.is_empty(), "a newcomer jumped the queue");
                        running.push(lease);
                    }
                    Decision::Wait { ticket, .. } => waiting.push(ticket),
                    Decision::Reject { .. } => prop_assert!(false, "refused"),
                },
                _ => {
                    if !running.is_empty() {
                        let lease = running.remove((shuffle as usize) % running.len());
                        pool.release(lease, ok(), now);
                    }
                    poll(&mut pool, &mut waiting, &mut running, &mut admitted, shuffle, now);
                }
            }
        }
        // Drain: everyone still waiting gets in once the running ones finish.
        let mut rounds = 0;
        while !waiting.is_empty() {
            rounds += 1;
            prop_assert!(rounds < 500, "starved: {waiting:?}");
            now = now + Duration::from_secs(1);
            if let Some(lease) = running.pop() {
                pool.release(lease, ok(), now);
            }
            poll(&mut pool, &mut waiting, &mut running, &mut admitted, rounds, now);
        }
        let mut sorted = admitted.clone();
        sorted.sort();
        prop_assert_eq!(admitted, sorted, "admitted out of order");
    }
}
