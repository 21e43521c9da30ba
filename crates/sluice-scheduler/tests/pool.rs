//! Behaviour of a pool as the proxy drives it: placement, affinity, benches, waits.

use std::time::Duration;

mod common;

use common::*;
use sluice_scheduler::*;

#[test]
fn sequential_requests_take_turns_among_equal_accounts() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let mut seen = Vec::new();
    for i in 0..4 {
        let lease = route(&mut pool, &RequestInfo::default(), &[], t(i));
        seen.push(lease.account);
        pool.release(lease, ok(), t(i));
    }
    assert_eq!(seen, vec![a, b, a, b]);
}

#[test]
fn priority_wins_then_least_in_flight() {
    let mut pool = Pool::new(PoolConfig::default());
    let low = pool.upsert_account(spec("low", 1));
    let high1 = pool.upsert_account(spec("high1", 0));
    let high2 = pool.upsert_account(spec("high2", 0));
    let first = route(&mut pool, &RequestInfo::default(), &[], t(0));
    let second = route(&mut pool, &RequestInfo::default(), &[], t(0));
    assert_eq!(
        {
            let mut v = vec![first.account, second.account];
            v.sort();
            v
        },
        vec![high1, high2]
    );
    let _ = low;
}

#[test]
fn an_account_burning_quota_ahead_of_pace_is_avoided() {
    for strategy in [Strategy::Adaptive, Strategy::Maxpool] {
        let mut pool = pool_with(strategy);
        let scarce = pool.upsert_account(spec("scarce", 0));
        let fresh = pool.upsert_account(spec("fresh", 0));
        // 85 % of the 5-hour window gone with four and a half hours still to run.
        pool.observe_quota(
            scarce,
            &QuotaObservation {
                session_utilization: Some(0.85),
                session_reset: Some(t(4 * 3600 + 1800)),
                ..Default::default()
            },
            t(0),
        );
        for i in 0..3 {
            let lease = route(&mut pool, &RequestInfo::default(), &[], t(i));
            assert_eq!(lease.account, fresh, "{strategy}");
            pool.release(lease, ok(), t(i));
        }
    }
}

#[test]
fn a_429_benches_until_retry_after_then_the_account_returns() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 1));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    assert_eq!(lease.account, a);
    pool.release(
        lease,
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(20)),
        },
        t(0),
    );
    assert_eq!(
        pool.availability(a, t(1)),
        Some(Availability::RateLimited { until: t(20) })
    );
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(1));
    assert_eq!(lease.account, b, "fails over to the lower priority account");
    pool.release(lease, ok(), t(1));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(20));
    assert_eq!(lease.account, a, "back once the bench expires");
    pool.release(lease, ok(), t(20));
}

#[test]
fn a_rejected_429_benches_until_the_unified_reset() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.observe_quota(
        a,
        &QuotaObservation {
            status: Some(UnifiedStatus::Rejected),
            status_reset: Some(t(7200)),
            ..Default::default()
        },
        t(0),
    );
    pool.release(
        lease,
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(5)),
        },
        t(0),
    );
    assert_eq!(
        pool.availability(a, t(10)),
        Some(Availability::RateLimited { until: t(7200) })
    );
}

#[test]
fn transport_failures_cool_down_with_growing_backoff_and_reset_on_success() {
    let config = PoolConfig::default();
    let base = config.cooldown;
    let mut pool = Pool::new(config);
    let a = pool.upsert_account(spec("a", 0));
    let mut now = t(0);
    for expected in [base, base * 2, base * 4] {
        let lease = route(&mut pool, &RequestInfo::default(), &[], now);
        pool.release(lease, Outcome::Connect, now);
        assert_eq!(
            pool.availability(a, now),
            Some(Availability::CoolingDown {
                until: now + expected
            })
        );
        now = now + expected;
    }
    let lease = route(&mut pool, &RequestInfo::default(), &[], now);
    pool.release(lease, ok(), now);
    assert_eq!(pool.state(a).unwrap().consecutive_failures, 0);
    let lease = route(&mut pool, &RequestInfo::default(), &[], now);
    pool.release(lease, Outcome::Timeout, now);
    assert_eq!(
        pool.availability(a, now),
        Some(Availability::CoolingDown { until: now + base })
    );
}

#[test]
fn auth_failures_take_an_account_out_until_its_credential_changes() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.release(lease, Outcome::AuthRejected { status: 401 }, t(0));
    assert_eq!(pool.availability(a, t(1)), Some(Availability::AuthFailed));
    assert!(matches!(
        pool.acquire(&RequestInfo::default(), &[], t(1)),
        Decision::Reject {
            reason: Unavailable::Unusable,
            ..
        }
    ));
    pool.credential_changed(a);
    assert_eq!(pool.availability(a, t(1)), Some(Availability::Available));
}

#[test]
fn maxpool_keeps_a_conversation_home_moves_it_when_home_fails_and_brings_it_back() {
    let mut pool = pool_with(Strategy::Maxpool);
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let c = pool.upsert_account(spec("c", 0));
    let conv = conversation("conv-1");

    let lease = route(&mut pool, &conv, &[], t(0));
    let home = lease.account;
    pool.release(lease, ok(), t(0));
    // Other traffic makes home look busier; the conversation still stays.
    let other = route(&mut pool, &RequestInfo::default(), &[], t(1));
    for i in 0..5 {
        let lease = route(&mut pool, &conv, &[], t(2 + i));
        assert_eq!(lease.account, home);
        pool.release(lease, ok(), t(2 + i));
    }
    pool.release(other, ok(), t(8));

    // Home is benched: the conversation moves, and stays on its new account.
    let lease = route(&mut pool, &conv, &[], t(10));
    pool.release(
        lease,
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(60)),
        },
        t(10),
    );
    let lease = route(&mut pool, &conv, &[home], t(10));
    let away = lease.account;
    assert_ne!(away, home);
    assert!(lease.moved_conversation);
    pool.release(lease, ok(), t(10));
    for i in 0..3 {
        let lease = route(&mut pool, &conv, &[], t(11 + i));
        assert_eq!(lease.account, away, "no bouncing while home is out");
        pool.release(lease, ok(), t(11 + i));
    }

    // Home recovers: the conversation goes back.
    let lease = route(&mut pool, &conv, &[], t(70));
    assert_eq!(lease.account, home);
    pool.release(lease, ok(), t(70));
    let _ = (a, b, c);
}

#[test]
fn a_conversation_moves_to_a_strictly_better_priority_account() {
    let mut pool = Pool::new(PoolConfig::default());
    let backup = pool.upsert_account(spec("backup", 5));
    let main = pool.upsert_account(spec("main", 0));
    pool.set_enabled(main, false);
    let conv = conversation("c");
    let lease = route(&mut pool, &conv, &[], t(0));
    assert_eq!(lease.account, backup);
    pool.release(lease, ok(), t(0));
    pool.set_enabled(main, true);
    let lease = route(&mut pool, &conv, &[], t(1));
    assert_eq!(lease.account, main);
    pool.release(lease, ok(), t(1));
}

#[test]
fn waits_when_recovery_is_near_and_refuses_when_far() {
    let mut pool = Pool::new(PoolConfig {
        max_wait: Duration::from_secs(30),
        ..PoolConfig::default()
    });
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.release(
        lease,
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(10)),
        },
        t(0),
    );
    let ticket = match pool.acquire(&RequestInfo::default(), &[], t(1)) {
        Decision::Wait {
            until: Some(until),
            reason: Unavailable::RateLimited,
            ticket,
        } if until == t(10) => ticket,
        other => panic!("expected a wait until t(10), got {other:?}"),
    };
    let queued = RequestInfo {
        ticket: Some(ticket),
        ..RequestInfo::default()
    };
    let lease = route(&mut pool, &queued, &[], t(10));
    pool.release(
        lease,
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(600)),
        },
        t(10),
    );
    assert_eq!(
        pool.acquire(&RequestInfo::default(), &[], t(10)),
        Decision::Reject {
            retry_after: Some(Duration::from_secs(600)),
            reason: Unavailable::RateLimited
        }
    );
    assert_eq!(
        pool.acquire(&RequestInfo::default(), &[a], t(10)),
        Decision::Reject {
            retry_after: None,
            reason: Unavailable::AllTried
        }
    );
}

#[test]
fn safety_caps_hold_requests_until_a_release() {
    let mut pool = Pool::new(PoolConfig {
        max_in_flight_per_account: 1,
        ..PoolConfig::default()
    });
    pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    let ticket = match pool.acquire(&RequestInfo::default(), &[], t(0)) {
        Decision::Wait {
            until: None,
            reason: Unavailable::AtCapacity,
            ticket,
        } => ticket,
        other => panic!("expected a wait for a release, got {other:?}"),
    };
    pool.release(lease, ok(), t(1));
    let queued = RequestInfo {
        ticket: Some(ticket),
        ..RequestInfo::default()
    };
    let lease = route(&mut pool, &queued, &[], t(1));
    pool.release(lease, ok(), t(1));
    assert_eq!(pool.queued().count(), 0);
}

#[test]
fn session_threshold_blocks_until_the_window_resets() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    pool.observe_quota(
        a,
        &QuotaObservation {
            session_utilization: Some(0.93),
            session_reset: Some(t(100)),
            ..Default::default()
        },
        t(0),
    );
    assert_eq!(
        pool.availability(a, t(1)),
        Some(Availability::OverThreshold { until: t(100) })
    );
    assert_eq!(pool.availability(a, t(100)), Some(Availability::Available));
    assert!(pool.state(a).unwrap().quota.session.is_none());
}

#[test]
fn removal_is_refused_while_busy_and_forgets_conversations() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &conversation("x"), &[], t(0));
    assert_eq!(
        pool.remove_account(a),
        Err(RemoveError::Busy { in_flight: 1 })
    );
    pool.release(lease, ok(), t(0));
    assert!(pool.remove_account(a).is_ok());
    assert!(matches!(
        pool.acquire(&conversation("x"), &[], t(1)),
        Decision::Reject {
            reason: Unavailable::NoAccounts,
            ..
        }
    ));
}

#[test]
fn quota_survives_a_restart_but_stale_windows_do_not() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    pool.observe_quota(
        a,
        &QuotaObservation {
            session_utilization: Some(0.5),
            session_reset: Some(t(100)),
            weekly_utilization: Some(0.3),
            weekly_reset: Some(t(100_000)),
            ..Default::default()
        },
        t(0),
    );
    let saved = pool.export_quota();
    let json = serde_json::to_string(&saved).unwrap();
    let saved: Vec<SavedQuota> = serde_json::from_str(&json).unwrap();

    let mut restarted = Pool::new(PoolConfig::default());
    let a2 = restarted.upsert_account(spec("a", 0));
    restarted.restore_quota(&saved, t(200));
    let quota = &restarted.state(a2).unwrap().quota;
    assert!(
        quota.session.is_none(),
        "the 5h window reset while we were down"
    );
    assert_eq!(quota.weekly_used(), Some(0.3));
}

#[test]
fn the_whole_pool_round_trips_through_serde_and_decides_the_same() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 1));
    pool.observe_quota(a, &windows(0.4, t(3600), 0.2, t(86_400)), t(0));
    let lease = route(&mut pool, &conversation("kept"), &[], t(1));
    pool.release(lease, ok(), t(1));
    let lease = route(&mut pool, &RequestInfo::default(), &[a], t(2));
    pool.release(lease, Outcome::Overloaded { retry_after: None }, t(2));
    pool.set_preferred(Some(b));

    let json = serde_json::to_string(&pool).unwrap();
    assert!(!json.contains("sk-"), "no credential could be in it");
    let mut restored: Pool = serde_json::from_str(&json).unwrap();
    for i in 0..5 {
        let now = t(3 + i);
        let request = conversation("kept");
        let (x, y) = (
            route(&mut pool, &request, &[], now),
            route(&mut restored, &request, &[], now),
        );
        assert_eq!(x, y);
        pool.release(x, ok(), now);
        restored.release(y, ok(), now);
    }
}
