//! FIFO admission while nothing can serve: order, no queue-jumping, leaving, stalled
//! requests stepping aside, and the ramp after a recovery.

mod common;

use common::*;
use sluice_scheduler::*;

fn capped(per_account: u32) -> Pool {
    Pool::new(PoolConfig {
        max_in_flight_per_account: per_account,
        ..PoolConfig::default()
    })
}

#[test]
fn waiting_requests_are_placed_first_come_first_served() {
    let mut pool = capped(1);
    pool.upsert_account(spec("a", 0));
    let busy = route(&mut pool, &RequestInfo::default(), &[], t(0));
    let (_, reason, first) = wait(&mut pool, &RequestInfo::default(), &[], t(1));
    assert_eq!(reason, Unavailable::AtCapacity);
    let (_, _, second) = wait(&mut pool, &RequestInfo::default(), &[], t(2));
    assert_eq!(pool.queued().collect::<Vec<_>>(), vec![first, second]);

    pool.release(busy, ok(), t(3));
    // Capacity is back, but a new arrival does not jump the queue, nor does the second.
    let (_, reason, third) = wait(&mut pool, &RequestInfo::default(), &[], t(3));
    assert_eq!(reason, Unavailable::Queued);
    let (_, reason, _) = wait(&mut pool, &with_ticket(second), &[], t(3));
    assert_eq!(reason, Unavailable::Queued);
    let lease = route(&mut pool, &with_ticket(first), &[], t(3));
    assert_eq!(pool.queued().collect::<Vec<_>>(), vec![second, third]);
    pool.release(lease, ok(), t(4));
    let lease = route(&mut pool, &with_ticket(second), &[], t(4));
    pool.release(lease, ok(), t(5));
    let lease = route(&mut pool, &with_ticket(third), &[], t(5));
    pool.release(lease, ok(), t(6));
    assert_eq!(pool.queued().count(), 0);
    // The queue is empty again: nobody waits for nothing.
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(6));
    pool.release(lease, ok(), t(6));
}

#[test]
fn a_request_that_gives_up_leaves_and_the_next_moves_up() {
    let mut pool = capped(1);
    pool.upsert_account(spec("a", 0));
    let busy = route(&mut pool, &RequestInfo::default(), &[], t(0));
    let (_, _, first) = wait(&mut pool, &RequestInfo::default(), &[], t(1));
    let (_, _, second) = wait(&mut pool, &RequestInfo::default(), &[], t(1));
    pool.leave_queue(first);
    pool.release(busy, ok(), t(2));
    let lease = route(&mut pool, &with_ticket(second), &[], t(2));
    pool.release(lease, ok(), t(2));
}

#[test]
fn abandoned_tickets_are_swept_after_the_hold_window() {
    let mut pool = capped(1);
    pool.upsert_account(spec("a", 0));
    let busy = route(&mut pool, &RequestInfo::default(), &[], t(0));
    let (_, _, _forgotten) = wait(&mut pool, &RequestInfo::default(), &[], t(1));
    pool.release(busy, ok(), t(2));
    // Long after anyone could still be holding it, the ticket no longer blocks newcomers.
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(600));
    pool.release(lease, ok(), t(600));
}

#[test]
fn a_request_held_back_only_by_its_own_exclusions_does_not_block_others() {
    let mut pool = Pool::new(PoolConfig::default());
    let a = pool.upsert_account(spec("a", 0));
    let b = pool.upsert_account(spec("b", 0));
    // b is out for a short while; a request that already failed on a waits for b…
    let lease = route(&mut pool, &RequestInfo::default(), &[a], t(0));
    assert_eq!(lease.account, b);
    pool.release(lease, Outcome::Connect, t(0));
    let (until, _, stalled) = wait(&mut pool, &RequestInfo::default(), &[a], t(1));
    assert!(until.is_some());
    // …but a fresh request can still use a meanwhile.
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(1));
    assert_eq!(lease.account, a);
    pool.release(lease, ok(), t(1));
    assert_eq!(pool.queued().collect::<Vec<_>>(), vec![stalled]);
}

#[test]
fn after_a_recovery_queued_requests_go_one_at_a_time_for_a_moment() {
    let config = PoolConfig::default();
    let spacing = config.admission_spacing;
    let mut pool = Pool::new(config);
    let a = pool.upsert_account(spec("a", 0));
    let lease = route(&mut pool, &RequestInfo::default(), &[], t(0));
    pool.release(lease, ambiguous_429(10), t(0));
    assert!(matches!(
        pool.availability(a, t(1)),
        Some(Availability::RateLimited { .. })
    ));
    let tickets: Vec<Ticket> = (0..3)
        .map(|_| wait(&mut pool, &RequestInfo::default(), &[], t(1)).2)
        .collect();
    // Back at t(10): the first goes at once, the next only a spacing later.
    let first = route(&mut pool, &with_ticket(tickets[0]), &[], t(10));
    let (until, reason, _) = wait(&mut pool, &with_ticket(tickets[1]), &[], t(10));
    assert_eq!(
        (until, reason),
        (Some(t(10) + spacing), Unavailable::Queued)
    );
    let second = route(&mut pool, &with_ticket(tickets[1]), &[], t(10) + spacing);
    let (until, _, _) = wait(&mut pool, &with_ticket(tickets[2]), &[], t(10) + spacing);
    assert_eq!(until, Some(t(10) + spacing * 2));
    for lease in [first, second] {
        pool.release(lease, ok(), t(11));
    }
}
