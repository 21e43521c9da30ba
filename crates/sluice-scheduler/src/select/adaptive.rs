//! sluice's own strategy: keep conversations where their prompt cache is, place new work
//! where quota is least scarce relative to each account's capacity, and spend quota that
//! would otherwise expire unused.

use super::{Choice, RecentLoad, View, recovery_ramp};
use crate::availability::Availability;
use crate::decision::RequestInfo;
use crate::pace::{WEEK, WeeklyTier, elapsed_fraction, scarcity};

pub(super) fn choose(view: &View<'_>, request: &RequestInfo) -> Option<Choice> {
    let tiers = view.weekly_tiers();
    // Over the 5-hour switch threshold but not exhausted: no new work, but a conversation
    // already there finishes its turns there, and it serves before anyone is refused.
    let may_serve = |i: usize| {
        !view.excluded(i)
            && matches!(
                view.verdicts[i],
                Availability::Available | Availability::OverThreshold { .. }
            )
    };

    if let Some(binding) = request
        .conversation
        .and_then(|key| view.pool.sessions.get(key))
    {
        for id in [binding.home, binding.current] {
            if let Some(i) = view.index_of(id)
                && may_serve(i)
                && tiers[i].allowed(true, false)
                && !better_priority_available(view, &tiers, i)
            {
                return Some(Choice::fixed(i));
            }
        }
    }

    let recent = RecentLoad::measure(view);
    let total_weight: f64 = view
        .pool
        .slots
        .iter()
        .filter(|s| s.spec.enabled)
        .map(|s| f64::from(s.spec.weight.max(1)))
        .sum();
    for pass in 0..4 {
        let allowed = |i: usize| match pass {
            0 => view.usable(i) && tiers[i].allowed(false, false),
            1 => view.usable(i) && tiers[i].allowed(true, false),
            2 => view.usable(i) && tiers[i].allowed(true, true),
            _ => may_serve(i) && tiers[i].allowed(true, true),
        };
        let mut best: Option<(usize, i32, f64)> = None;
        for i in view.rotation() {
            if !allowed(i) {
                continue;
            }
            let priority = view.priority(i);
            let cost = cost(view, &recent, total_weight, i, request.weight);
            if best.is_none_or(|(_, p, c)| priority < p || (priority == p && cost < c)) {
                best = Some((i, priority, cost));
            }
        }
        if let Some((i, _, _)) = best {
            return Some(Choice::rotating(i));
        }
    }
    None
}

fn better_priority_available(view: &View<'_>, tiers: &[WeeklyTier], bound: usize) -> bool {
    let priority = view.priority(bound);
    (0..view.len()).any(|i| {
        i != bound && view.usable(i) && view.priority(i) < priority && tiers[i].allowed(true, false)
    })
}

/// The cost of placing new work on an account; lower is preferred. Every term is relative
/// to the account's capacity (its `weight`), so a Max 20x account is not treated like a Pro.
fn cost(view: &View<'_>, recent: &RecentLoad, total_weight: f64, index: usize, weight: u32) -> f64 {
    let config = view.pool.config();
    let slot = view.slot(index);
    let state = &slot.state;
    let capacity = f64::from(slot.spec.weight.max(1));
    let fair_share = if total_weight > 0.0 {
        capacity / total_weight
    } else {
        1.0
    };

    let concurrency = (state.active_weight as f64 + f64::from(weight.max(1))) / capacity;
    let over_share = recent.share(index) / fair_share;
    let scarcity = scarcity(&state.quota, view.now);
    let session_left = state.quota.session.as_ref().map_or(1.0, |w| {
        (config.switch_threshold - w.used()).max(0.0) / config.switch_threshold
    });
    // Weekly quota that will expire unused if not spent soon: much left, reset near.
    let expiring = state
        .quota
        .weekly
        .as_ref()
        .and_then(|w| Some((w, w.resets_at?)))
        .map_or(0.0, |(w, reset)| {
            (1.0 - w.used()) * elapsed_fraction(reset, WEEK, view.now)
        });
    let ramp = recovery_ramp(slot, view);
    let failures = f64::from(state.consecutive_failures) * config.failure_penalty;
    let weekly_unknown = state
        .quota
        .weekly
        .as_ref()
        .and_then(|w| w.resets_at)
        .is_none();
    let exploration = if weekly_unknown {
        -config.exploration_bonus
    } else {
        0.0
    };
    concurrency
        + config.spread_share_weight * over_share
        + config.scarcity_weight * scarcity
        + 2.0 * (1.0 - session_left)
        - 2.0 * expiring
        + ramp
        + failures
        + exploration
}
