//! A faithful reproduction of maxpool's adaptive least-loaded scoring (the seed's
//! `AccountManager._selectNext`), kept as the baseline sluice's own strategy must beat.
//!
//! Order of decisions: a bound conversation's home, then its current account, if it can
//! serve with weekly reserve allowed and no strictly better priority can; then selection
//! passes over the weekly tiers (an unbound request: healthy accounts only, then reserve,
//! then critical; a bound one: reserve, then critical). Within a pass the lowest priority
//! wins, then the lowest cost: in-flight weight plus this request's, 6 × scarcity (pace
//! overage), 3 × share of the last 15 minutes' load, a decaying 4-point ramp after a
//! recovery, 5 per consecutive failure, and half a point off while the weekly quota is still
//! unknown. Ties go to the first in rotation order. (Accounts over the 5-hour switch
//! threshold are unavailable, as in maxpool.)

use super::{Choice, RecentLoad, View, recovery_ramp};
use crate::decision::RequestInfo;
use crate::pace::{WeeklyTier, scarcity};

pub(super) fn choose(view: &View<'_>, request: &RequestInfo) -> Option<Choice> {
    let tiers = view.weekly_tiers();
    let eligible = |i: usize, reserve: bool, critical: bool| {
        view.usable(i) && tiers[i].allowed(reserve, critical)
    };

    let binding = request
        .conversation
        .and_then(|key| view.pool.sessions.get(key));
    if let Some(binding) = binding {
        let bound = [binding.home, binding.current]
            .into_iter()
            .filter_map(|id| view.index_of(id))
            .find(|&i| eligible(i, true, false));
        if let Some(i) = bound
            && !higher_priority_available(view, &tiers, i)
        {
            return Some(Choice::fixed(i));
        }
    }

    let passes: &[(bool, bool)] = if binding.is_some() {
        &[(true, false), (true, true)]
    } else {
        &[(false, false), (true, false), (true, true)]
    };
    let recent = RecentLoad::measure(view);
    for &(reserve, critical) in passes {
        let mut best: Option<(usize, i32, f64)> = None;
        for i in view.rotation() {
            if !eligible(i, reserve, critical) {
                continue;
            }
            let priority = view.priority(i);
            let cost = cost(view, &recent, i, request.weight);
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

fn higher_priority_available(view: &View<'_>, tiers: &[WeeklyTier], bound: usize) -> bool {
    let priority = view.priority(bound);
    (0..view.len()).any(|i| {
        i != bound && view.usable(i) && view.priority(i) < priority && tiers[i].allowed(true, false)
    })
}

/// maxpool's `_scoreAccount`: lower is preferred.
fn cost(view: &View<'_>, recent: &RecentLoad, index: usize, weight: u32) -> f64 {
    let config = view.pool.config();
    let slot = view.slot(index);
    let state = &slot.state;
    let concurrency = state.active_weight as f64 + f64::from(weight.max(1));
    let scarcity = scarcity(&state.quota, view.now) * config.scarcity_weight;
    let spread = recent.share(index) * config.spread_share_weight;
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
    concurrency + scarcity + spread + ramp + failures + exploration
}
