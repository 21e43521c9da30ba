//! Telling an account's own quota from the upstream's throttling: benches, provisional
//! exclusions, incidents across accounts, and the pool-wide breaker with its single probe.

mod common;

use std::time::Duration;

use common::*;
use sluice_scheduler::*;

#[test]
fn a_429_with_the_accounts_own_quota_rejected_benches_it_until_the_reset() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[b], t(0));
    pool.observe_quota(
        a,
        &QuotaObservation {
            status: Some(UnifiedStatus::Rejected),
            status_reset: Some(t(7200)),
            representative_claim: Some("five_hour".into()),
            session_utilization: Some(1.02),
            session_reset: Some(t(7200)),
            ..Default::default()
        },
        t(0),
    );
    pool.release(lease, ambiguous_429(5), t(0));
    assert_eq!(
        pool.availability(a, t(10)),
        Some(Availability::RateLimited { until: t(7200) })
    );
    // The same 429 on another account does not lift an own-quota bench.
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(10));
    assert_eq!(lease.account, b);
    pool.release(lease, ambiguous_429(5), t(10));
    assert_eq!(
        pool.availability(a, t(11)),
        Some(Availability::RateLimited { until: t(7200) })
    );
}

#[test]
fn an_api_bucket_at_zero_is_the_accounts_own_limit() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.observe_quota(
        a,
        &QuotaObservation {
            requests: Some(quota::Bucket {
                limit: 50,
                remaining: 0,
                resets_at: Some(t(40)),
            }),
            ..Default::default()
        },
        t(0),
    );
    pool.release(lease, ambiguous_429(1), t(0));
    assert_eq!(
        pool.availability(a, t(1)),
        Some(Availability::RateLimited { until: t(40) })
    );
    assert!(pool.breaker().is_none());
}

#[test]
fn the_same_ambiguous_429_on_two_accounts_with_nothing_succeeding_opens_the_breaker() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let c = pool.upsert_account(spec("c", 0));

    let lease = route(&mut pool, &RequestInfo::default(), &[b, c], t(0));
    pool.release(lease, ambiguous_429(20), t(0));
    assert_eq!(
        pool.availability(a, t(1)),
        Some(Availability::RateLimited { until: t(20) }),
        "first, only the account that answered is benched"
    );
    let lease = route(&mut pool, &RequestInfo::default(), &[a, c], t(2));
    pool.release(lease, ambiguous_429(20), t(2));

    // Not the accounts' fault: their benches are lifted; the upstream is throttling.
    assert_eq!(pool.availability(a, t(3)), Some(Availability::Available));
    assert_eq!(pool.availability(b, t(3)), Some(Availability::Available));
    let breaker = pool.breaker().expect("breaker open").clone();
    assert_eq!(breaker.reason, Fingerprint::RateLimited);
    assert_eq!(breaker.until, t(22));
    let (until, reason, first) = wait(&mut pool, &RequestInfo::default(), &[], t(3));
    assert_eq!(
        (until, reason),
        (Some(t(22)), Unavailable::UpstreamThrottled)
    );
    let (_, _, second) = wait(&mut pool, &RequestInfo::default(), &[], t(4));

    // Time is up: exactly one probe goes; the rest wait for its verdict.
    let probe = route(&mut pool, &with_ticket(first), &[], t(22));
    assert!(probe.probe);
    let (until, reason, _) = wait(&mut pool, &with_ticket(second), &[], t(22));
    assert_eq!((until, reason), (None, Unavailable::UpstreamThrottled));
    let (_, _, third) = wait(&mut pool, &RequestInfo::default(), &[], t(23));

    pool.release(probe, ok(), t(24));
    assert!(pool.breaker().is_none());
    let lease = route(&mut pool, &with_ticket(second), &[], t(24));
    assert!(!lease.probe);
    pool.release(lease, ok(), t(24));
    // The admission ramp spaces the next one a little.
    let (until, _, _) = wait(&mut pool, &with_ticket(third), &[], t(24));
    assert!(until.is_some_and(|u| u > t(24)));
}

#[test]
fn a_failed_probe_rearms_the_breaker_and_another_failure_defers_it() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    for (id, other) in [(a, b), (b, a)] {
        let lease = route(&mut pool, &RequestInfo::default(), &[other], t(0));
        assert_eq!(lease.account, id);
        pool.release(
            lease,
            Outcome::Overloaded {
                retry_after: Some(Duration::from_secs(10)),
            },
            t(0),
        );
    }
    assert_eq!(pool.breaker().map(|b| b.until), Some(t(10)));

    let probe = route(&mut pool, &RequestInfo::default(), &[], t(10));
    assert!(probe.probe);
    pool.release(
        probe,
        Outcome::Overloaded {
            retry_after: Some(Duration::from_secs(15)),
        },
        t(11),
    );
    let breaker = pool.breaker().expect("still open");
    assert_eq!(breaker.until, t(26), "re-armed for the new retry-after");
    assert!(!breaker.probe_in_flight);

    let probe = route(&mut pool, &RequestInfo::default(), &[], t(26));
    assert!(probe.probe);
    pool.release(probe, Outcome::Connect, t(27));
    assert_eq!(
        pool.breaker().map(|b| b.until),
        Some(t(27) + PoolConfig::default().probe_retry)
    );
    // A client that left mid-probe lets the next request probe at once.
    let probe = route(&mut pool, &RequestInfo::default(), &[], t(40));
    pool.release(probe, Outcome::Neutral, t(40));
    let probe = route(&mut pool, &RequestInfo::default(), &[], t(40));
    assert!(probe.probe);
    // Accepted by the upstream: closed even before the response ends.
    let mut probe = probe;
    pool.upstream_accepted(&mut probe, t(41));
    assert!(pool.breaker().is_none());
    pool.release(probe, ok(), t(60));
}

#[test]
fn a_529_excludes_provisionally_and_is_cleared_when_another_account_shows_it() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    let c = pool.upsert_account(spec("c", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[b, c], t(1));
    pool.release(lease, Outcome::Overloaded { retry_after: None }, t(1));
    // Something succeeds in the meantime, so the second 529 is not a breaker.
    let lease = route(&mut pool, &RequestInfo::default(), &[a, b], t(2));
    pool.release(lease, ok(), t(2));
    let cooling = PoolConfig::default().provisional_exclusion;
    assert_eq!(
        pool.availability(a, t(2)),
        Some(Availability::CoolingDown {
            until: t(1) + cooling
        })
    );
    let lease = route(&mut pool, &RequestInfo::default(), &[a, c], t(3));
    assert_eq!(lease.account, b);
    pool.release(lease, Outcome::Overloaded { retry_after: None }, t(3));
    assert_eq!(pool.availability(a, t(4)), Some(Availability::Available));
    assert_eq!(pool.availability(b, t(4)), Some(Availability::Available));
    assert!(
        pool.breaker().is_none(),
        "c succeeded since: not upstream-wide"
    );
}

#[test]
fn a_long_retry_after_is_clamped_for_provisional_exclusions() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.release(
        lease,
        Outcome::Overloaded {
            retry_after: Some(Duration::from_secs(3600)),
        },
        t(0),
    );
    assert_eq!(
        pool.availability(a, t(1)),
        Some(Availability::CoolingDown {
            until: t(0) + PoolConfig::default().max_provisional_exclusion
        })
    );
}

#[test]
fn a_request_that_tried_every_account_is_refused_at_once_even_under_the_breaker() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    for (id, other) in [(a, b), (b, a)] {
        let lease = route(&mut pool, &RequestInfo::default(), &[other], t(0));
        assert_eq!(lease.account, id);
        pool.release(lease, ambiguous_429(30), t(0));
    }
    assert!(pool.breaker().is_some());
    assert_eq!(
        pool.acquire(&RequestInfo::default(), &[a, b], t(1)),
        Decision::Reject {
            retry_after: None,
            reason: Unavailable::AllTried
        }
    );
    assert!(matches!(
        pool.acquire(&RequestInfo::default(), &[], t(1)),
        Decision::Wait {
            reason: Unavailable::UpstreamThrottled,
            ..
        }
    ));
}

#[test]
fn a_breaker_longer_than_the_hold_window_refuses_with_its_retry_after() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    for (id, other) in [(a, b), (b, a)] {
        let lease = route(&mut pool, &RequestInfo::default(), &[other], t(0));
        assert_eq!(lease.account, id);
        pool.release(lease, ambiguous_429(120), t(0));
    }
    assert_eq!(
        pool.acquire(&RequestInfo::default(), &[], t(0)),
        Decision::Reject {
            retry_after: Some(Duration::from_secs(120)),
            reason: Unavailable::UpstreamThrottled
        }
    );
    assert_eq!(pool.queued().count(), 0, "a refused request holds no place");
}
