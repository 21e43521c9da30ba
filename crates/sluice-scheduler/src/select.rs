//! Choosing among the accounts that can serve: conversation affinity first, then priority,
//! then the least loaded, then the least used quota, with ties taking turns.

use std::cmp::Ordering;

use crate::account::AccountId;
use crate::availability::Availability;
use crate::decision::RequestInfo;
use crate::pool::{Pool, Slot};

/// The index of the slot to use, or `None` when no account may serve.
pub(crate) fn choose(
    pool: &Pool,
    verdicts: &[Availability],
    request: &RequestInfo,
    excluded: &[AccountId],
) -> Option<usize> {
    let usable =
        |index: usize| verdicts[index].is_available() && !excluded.contains(&pool.slots[index].id);

    if let Some(binding) = request.conversation.and_then(|key| pool.sessions.get(key)) {
        let best_priority = (0..pool.slots.len())
            .filter(|&i| usable(i))
            .map(|i| pool.slots[i].spec.priority)
            .min();
        // Stay where the conversation's cache is: home first, then wherever it went last,
        // unless an account of strictly better priority can serve (it becomes the new home).
        for id in [binding.home, binding.current] {
            if let Some(index) = pool.index_of(id)
                && usable(index)
                && best_priority.is_none_or(|best| pool.slots[index].spec.priority <= best)
            {
                return Some(index);
            }
        }
    }

    let n = pool.slots.len();
    (0..n)
        .map(|offset| (pool.cursor + offset) % n)
        .filter(|&i| usable(i))
        .min_by(|&a, &b| compare(&pool.slots[a], &pool.slots[b]))
}

/// Lower is better: priority, then in-flight load relative to capacity, then quota used.
/// `min_by` keeps the first of equals, and candidates arrive in rotation order.
fn compare(a: &Slot, b: &Slot) -> Ordering {
    a.spec
        .priority
        .cmp(&b.spec.priority)
        .then_with(|| load(a).total_cmp(&load(b)))
        .then_with(|| quota_used(a).total_cmp(&quota_used(b)))
}

fn load(slot: &Slot) -> f64 {
    slot.state.in_flight as f64 / f64::from(slot.spec.weight.max(1))
}

fn quota_used(slot: &Slot) -> f64 {
    slot.state.quota.highest_use().unwrap_or(0.0)
}
