//! The simple strategies other pools offer: sticky, round-robin, least-requests, weighted,
//! fill-first and drain-soonest. None of them keeps a conversation on its account on
//! purpose; each only looks at the accounts that can serve, at the best priority among them.

use super::{Choice, View};
use crate::strategy::Strategy;

pub(super) fn choose(view: &View<'_>, strategy: Strategy) -> Option<Choice> {
    let best = (0..view.len())
        .filter(|&i| view.usable(i))
        .map(|i| view.priority(i))
        .min()?;
    let candidate = |i: usize| view.usable(i) && view.priority(i) == best;
    let n = view.len();
    match strategy {
        Strategy::Sticky => {
            let current = view.pool.sticky.and_then(|id| view.index_of(id));
            if let Some(i) = current.filter(|&i| candidate(i)) {
                return Some(Choice::fixed(i));
            }
            // The next one after the account it was on, in configuration order.
            let start = current.map_or(0, |i| i + 1);
            (0..n)
                .map(|offset| (start + offset) % n)
                .find(|&i| candidate(i))
                .map(Choice::fixed)
        }
        Strategy::RoundRobin => view
            .rotation()
            .find(|&i| candidate(i))
            .map(Choice::rotating),
        Strategy::LeastRequests => view
            .rotation()
            .filter(|&i| candidate(i))
            .min_by_key(|&i| requests(view, i))
            .map(Choice::rotating),
        Strategy::Weighted => view
            .rotation()
            .filter(|&i| candidate(i))
            .min_by(|&a, &b| per_weight(view, a).total_cmp(&per_weight(view, b)))
            .map(Choice::rotating),
        Strategy::FillFirst => (0..n).find(|&i| candidate(i)).map(Choice::fixed),
        Strategy::DrainSoonest => (0..n)
            .filter(|&i| candidate(i))
            .min_by_key(|&i| {
                view.slot(i)
                    .state
                    .quota
                    .weekly
                    .as_ref()
                    .and_then(|w| w.resets_at)
                    .map_or(i64::MAX, |t| t.as_millis())
            })
            .map(Choice::fixed),
        Strategy::Adaptive | Strategy::Maxpool => None,
    }
}

/// Every request the account has taken: finished, failed and in flight.
fn requests(view: &View<'_>, index: usize) -> u64 {
    let state = &view.slot(index).state;
    state.completed + state.failed + u64::from(state.in_flight)
}

fn per_weight(view: &View<'_>, index: usize) -> f64 {
    requests(view, index) as f64 / f64::from(view.slot(index).spec.weight.max(1))
}
