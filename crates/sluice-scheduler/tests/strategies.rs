//! What each strategy picks, preferred-account routing, weekly tiers, and the adaptive
//! strategy's use of accounts over their 5-hour threshold.

mod common;

use common::*;
use sluice_scheduler::*;

/// Serve `n` unbound requests one after another; the accounts that served them.
fn serve(pool: &mut Pool, n: usize, from: i64) -> Vec<AccountId> {
    (0..n)
        .map(|i| {
            let now = t(from + i as i64);
            let lease = route(pool, &RequestInfo::default(), &[], now);
            let id = lease.account;
            pool.release(lease, ok(), now);
            id
        })
        .collect()
}

fn bench(pool: &mut Pool, id: AccountId, secs: u64, now: Timestamp) {
    let others: Vec<AccountId> = pool.ids().filter(|x| *x != id).collect();
    let lease = route(pool, &RequestInfo::default(), &others, now);
    assert_eq!(lease.account, id);
    pool.release(lease, ambiguous_429(secs), now);
}

#[test]
fn round_robin_takes_turns_even_within_a_conversation() {
    let mut pool = pool_with(Strategy::RoundRobin);
    let ids: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| pool.upsert_account(spec(n, 0)))
        .collect();
    let conv = conversation("c1");
    let mut seen = Vec::new();
    for i in 0..6 {
        let lease = route(&mut pool, &conv, &[], t(i));
        seen.push(lease.account);
        pool.release(lease, ok(), t(i));
    }
    assert_eq!(seen, [ids.clone(), ids].concat());
}

#[test]
fn least_requests_and_weighted_balance_counts() {
    let mut pool = pool_with(Strategy::LeastRequests);
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let served = serve(&mut pool, 6, 0);
    assert_eq!(served.iter().filter(|x| **x == a).count(), 3);
    assert_eq!(served.iter().filter(|x| **x == b).count(), 3);

    let mut pool = pool_with(Strategy::Weighted);
    let pro = pool.upsert_account(weighted("pro", 1));
    let max = pool.upsert_account(weighted("max", 5));
    let served = serve(&mut pool, 12, 0);
    assert_eq!(served.iter().filter(|x| **x == pro).count(), 2);
    assert_eq!(served.iter().filter(|x| **x == max).count(), 10);
}

#[test]
fn fill_first_returns_to_the_first_account_and_sticky_does_not() {
    for (strategy, back_to_first) in [(Strategy::FillFirst, true), (Strategy::Sticky, false)] {
        let mut pool = pool_with(strategy);
        let a = pool.upsert_account(spec("a", 0));
        let b = pool.upsert_account(spec("b", 0));
        assert_eq!(serve(&mut pool, 3, 0), [a, a, a], "{strategy}");
        bench(&mut pool, a, 10, t(5));
        assert_eq!(serve(&mut pool, 2, 6), [b, b], "{strategy}");
        let expected = if back_to_first { a } else { b };
        assert_eq!(serve(&mut pool, 2, 20), [expected, expected], "{strategy}");
    }
}

#[test]
fn drain_soonest_prefers_the_week_that_resets_first() {
    let mut pool = pool_with(Strategy::DrainSoonest);
    let late = pool.upsert_account(spec("late", 0));
    let soon = pool.upsert_account(spec("soon", 0));
    let unknown = pool.upsert_account(spec("unknown", 0));
    pool.observe_quota(late, &windows(0.1, t(3600), 0.5, t(5 * 86_400)), t(0));
    pool.observe_quota(soon, &windows(0.1, t(3600), 0.5, t(86_400)), t(0));
    assert_eq!(serve(&mut pool, 3, 1), [soon, soon, soon]);
    bench(&mut pool, soon, 60, t(10));
    assert_eq!(serve(&mut pool, 1, 11), [late]);
    let _ = unknown;
}

#[test]
fn every_strategy_picks_the_best_priority_that_can_serve() {
    for &strategy in Strategy::ALL {
        let mut pool = pool_with(strategy);
        let backup = pool.upsert_account(spec("backup", 3));
        let main = pool.upsert_account(spec("main", 1));
        assert_eq!(serve(&mut pool, 3, 0), [main, main, main], "{strategy}");
        bench(&mut pool, main, 30, t(5));
        assert_eq!(serve(&mut pool, 1, 6), [backup], "{strategy}");
        assert_eq!(serve(&mut pool, 1, 40), [main], "{strategy}");
    }
}

#[test]
fn preferred_routing_wins_while_it_can_serve_and_fails_over_when_not() {
    for &strategy in Strategy::ALL {
        let mut pool = pool_with(strategy);
        let a = pool.upsert_account(spec("a", 0));
        let b = pool.upsert_account(spec("b", 5));
        assert!(pool.set_preferred(Some(b)));
        assert_eq!(serve(&mut pool, 3, 0), [b, b, b], "{strategy}");
        bench(&mut pool, b, 30, t(5));
        assert_eq!(serve(&mut pool, 1, 6), [a], "{strategy}");
        assert_eq!(serve(&mut pool, 1, 40), [b], "{strategy}");
        pool.set_enabled(b, false);
        assert_eq!(
            pool.preferred(),
            None,
            "disabling it ends preferred routing"
        );
        assert!(
            !pool.set_preferred(Some(b)),
            "a disabled account cannot be preferred"
        );
        assert!(!pool.set_preferred(Some(AccountId(99))));
    }
}

#[test]
fn reserve_weeks_serve_only_when_nothing_healthier_can_but_keep_their_conversations() {
    for strategy in [Strategy::Adaptive, Strategy::Maxpool] {
        let mut pool = pool_with(strategy);
        let reserve = pool.upsert_account(spec("reserve", 0));
        let healthy = pool.upsert_account(spec("healthy", 0));
        pool.observe_quota(healthy, &windows(0.1, t(3600), 0.2, t(3 * 86_400)), t(0));
        let conv = conversation("bound");
        let lease = route(&mut pool, &conv, &[healthy], t(0));
        assert_eq!(lease.account, reserve);
        pool.release(lease, ok(), t(0));
        // The week turns to reserve (88 % used, on pace): no new work, but its conversation
        // stays.
        pool.observe_quota(reserve, &windows(0.1, t(3600), 0.88, t(12 * 3600)), t(1));
        assert_eq!(
            pool.snapshot(t(1)).accounts[0].weekly_tier,
            WeeklyTier::Reserve
        );
        assert_eq!(serve(&mut pool, 3, 2), [healthy; 3], "{strategy}");
        let lease = route(&mut pool, &conv, &[], t(6));
        assert_eq!(lease.account, reserve, "{strategy}: the conversation stays");
        pool.release(lease, ok(), t(6));
        // Only reserve left: it serves rather than anyone being refused.
        bench(&mut pool, healthy, 60, t(7));
        assert_eq!(serve(&mut pool, 1, 8), [reserve], "{strategy}");
    }
}

#[test]
fn adaptive_finishes_conversations_over_the_threshold_and_uses_it_before_refusing() {
    let mut adaptive = pool_with(Strategy::Adaptive);
    let mut maxpool = pool_with(Strategy::Maxpool);
    for pool in [&mut adaptive, &mut maxpool] {
        let a = pool.upsert_account(spec("a", 0));
        let conv = conversation("long");
        let lease = route(pool, &conv, &[], t(0));
        pool.release(lease, ok(), t(0));
        // 92 % of the 5-hour window, resetting in two hours.
        pool.observe_quota(a, &windows(0.92, t(7200), 0.3, t(4 * 86_400)), t(1));
        assert_eq!(
            pool.availability(a, t(1)),
            Some(Availability::OverThreshold { until: t(7200) })
        );
    }
    // adaptive: the conversation keeps going there, and so does anyone else rather than
    // being refused.
    let lease = route(&mut adaptive, &conversation("long"), &[], t(2));
    adaptive.release(lease, ok(), t(2));
    let lease = route(&mut adaptive, &RequestInfo::default(), &[], t(3));
    adaptive.release(lease, ok(), t(3));
    // maxpool stops at the threshold.
    assert!(matches!(
        maxpool.acquire(&conversation("long"), &[], t(2)),
        Decision::Reject {
            reason: Unavailable::QuotaExhausted,
            ..
        }
    ));
}

#[test]
fn adaptive_places_new_conversations_away_from_a_window_about_to_run_out() {
    let mut pool = pool_with(Strategy::Adaptive);
    let tight = pool.upsert_account(spec("tight", 0));
    let roomy = pool.upsert_account(spec("roomy", 0));
    // Both weeks alike; tight's 5-hour window is 80 % gone with four hours to run.
    pool.observe_quota(tight, &windows(0.80, t(4 * 3600), 0.3, t(4 * 86_400)), t(0));
    pool.observe_quota(roomy, &windows(0.20, t(4 * 3600), 0.3, t(4 * 86_400)), t(0));
    for i in 0..4 {
        let lease = route(&mut pool, &conversation(&format!("new-{i}")), &[], t(1 + i));
        assert_eq!(lease.account, roomy);
        pool.release(lease, ok(), t(1 + i));
    }
}

#[test]
fn adaptive_spends_the_week_that_would_otherwise_expire() {
    let mut pool = pool_with(Strategy::Adaptive);
    let expiring = pool.upsert_account(spec("expiring", 0));
    let fresh = pool.upsert_account(spec("fresh", 0));
    // Same 5-hour picture; one week resets tomorrow with 60 % left, the other in six days.
    pool.observe_quota(expiring, &windows(0.1, t(3 * 3600), 0.4, t(86_400)), t(0));
    pool.observe_quota(fresh, &windows(0.1, t(3 * 3600), 0.1, t(6 * 86_400)), t(0));
    let lease = route(&mut pool, &conversation("c"), &[], t(1));
    assert_eq!(lease.account, expiring);
    pool.release(lease, ok(), t(1));
}

#[test]
fn a_moved_conversation_returns_home_once_home_recovers() {
    let mut adaptive = pool_with(Strategy::Adaptive);
    let mut maxpool = pool_with(Strategy::Maxpool);
    for pool in [&mut adaptive, &mut maxpool] {
        let a = pool.upsert_account(spec("a", 0));
        let b = pool.upsert_account(spec("b", 0));
        let conv = conversation("c");
        let lease = route(pool, &conv, &[b], t(0));
        pool.release(lease, ok(), t(0));
        bench(pool, a, 30, t(1));
        let lease = route(pool, &conv, &[], t(2));
        assert_eq!(lease.account, b);
        assert!(lease.moved_conversation);
        pool.release(lease, ok(), t(2));
        let lease = route(pool, &conv, &[], t(10));
        assert_eq!(lease.account, b, "stays where it moved while home is out");
        pool.release(lease, ok(), t(10));
        let lease = route(pool, &conv, &[], t(40));
        assert_eq!(lease.account, a, "home again once home recovers");
        pool.release(lease, ok(), t(40));
    }
}

#[test]
fn maxpool_cost_matches_the_seed() {
    // Two idle accounts; one carries in-flight weight 3. maxpool's cost is
    // active weight + request weight + 6·scarcity + 3·share + ramp + 5·failures − 0.5 (unknown
    // week), so the idle one wins; once it has 4 weight in flight the other is cheaper.
    let mut pool = pool_with(Strategy::Maxpool);
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let heavy = RequestInfo {
        weight: 3,
        ..RequestInfo::default()
    };
    let first = route(&mut pool, &heavy, &[b], t(0));
    assert_eq!(first.account, a);
    let light = RequestInfo {
        weight: 1,
        ..RequestInfo::default()
    };
    let second = route(&mut pool, &light, &[], t(0));
    assert_eq!(second.account, b);
    // Now a: 3 + 1, b: 1 + 1 in flight. A known week takes away b's exploration bonus (0.5)
    // but b is still cheaper.
    pool.observe_quota(b, &windows(0.0, t(3600), 0.0, t(86_400)), t(0));
    let third = route(&mut pool, &light, &[], t(0));
    assert_eq!(third.account, b);
    // A consecutive failure costs 5: b fails once and a becomes the cheaper one.
    pool.release(third, Outcome::Timeout, t(0));
    let fourth = route(&mut pool, &light, &[], t(600));
    assert_eq!(fourth.account, a);
    for lease in [first, second, fourth] {
        pool.release(lease, ok(), t(600));
    }
}
