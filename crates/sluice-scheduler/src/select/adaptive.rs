//! sluice's own strategy: keep conversations where their prompt cache is, place new work
//! where quota is least scarce relative to each account's capacity, and spend quota that
//! would otherwise expire unused.

use super::{Choice, View, recovery_ramp};
use crate::burn::ARRIVAL_TIME_CONSTANT;

/// How long a newly placed conversation is expected to keep spending, for the forecast.
const NEWCOMER_HOURS: f64 = 0.5;
/// How far ahead the current spending is projected: conversations end, so further out the
/// rate says little.
const HORIZON_HOURS: f64 = 1.0;
const OVERFILL: f64 = 0.25;
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

    let per_conversation = per_conversation_burn(view);
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
            let cost = cost(view, per_conversation, i, request.weight);
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

/// What one conversation spends of a 5-hour window per hour, in units of a weight-1
/// account's window: the pool's current spending over the conversations recently placed.
fn per_conversation_burn(view: &View<'_>) -> f64 {
    let (mut burn, mut conversations) = (0.0, 0.0);
    for slot in &view.pool.slots {
        burn += slot.state.session_burn.at_time(view.now) * f64::from(slot.spec.weight.max(1));
        conversations += slot.state.arrivals.at_time(view.now, ARRIVAL_TIME_CONSTANT);
    }
    if conversations >= 0.5 {
        burn / conversations
    } else {
        0.0
    }
}

fn better_priority_available(view: &View<'_>, tiers: &[WeeklyTier], bound: usize) -> bool {
    let priority = view.priority(bound);
    (0..view.len()).any(|i| {
        i != bound && view.usable(i) && view.priority(i) < priority && tiers[i].allowed(true, false)
    })
}

/// The cost of placing new work on an account; lower is preferred.
fn cost(view: &View<'_>, per_conversation: f64, index: usize, weight: u32) -> f64 {
    let config = view.pool.config();
    let now = view.now;
    let slot = view.slot(index);
    let state = &slot.state;
    let capacity = f64::from(slot.spec.weight.max(1));
    let quota = &state.quota;

    // Where the 5-hour window is heading: its use now plus its recent spending rate until
    // it resets. Past 1, conversations on it will have to move before the reset.
    let (used_5h, hours_left) = match &quota.session {
        Some(w) => (
            w.used(),
            w.resets_at
                .filter(|r| *r > now)
                .map_or(5.0, |r| now.until(r).as_secs_f64() / 3600.0),
        ),
        None => (0.0, 5.0),
    };
    // The rate: what the readings show, or what the conversations that just arrived will
    // spend once they show (whichever is more), plus this newcomer.
    let measured = state.session_burn.at_time(now);
    let expected = state.arrivals.at_time(now, ARRIVAL_TIME_CONSTANT) * per_conversation / capacity;
    let newcomer = per_conversation / capacity * hours_left.min(NEWCOMER_HOURS);
    let projected = used_5h + measured.max(expected) * hours_left.min(HORIZON_HOURS) + newcomer;

    // Weekly slack: quota left beyond an even burn to the reset. Positive: it will go unused
    // unless spent faster (use it or lose it); negative: the week is burning ahead of pace.
    let slack = quota
        .weekly
        .as_ref()
        .and_then(|w| Some((w.used(), w.resets_at?)))
        .map_or(0.0, |(used, reset)| {
            (1.0 - used) - (1.0 - elapsed_fraction(reset, WEEK, now))
        });
    let scarcity = scarcity(quota, now);
    // A week with quota to spare is filled to the brim of each 5-hour window (what is left at
    // its reset is lost); a tight week is not.
    let target = 0.95 + OVERFILL * (slack / 0.2).clamp(0.0, 1.0);
    let overflow = (projected - target).max(0.0);

    let concurrency = (state.active_weight as f64 + f64::from(weight.max(1))) / capacity;
    let ramp = recovery_ramp(slot, view);
    let failures = f64::from(state.consecutive_failures) * config.failure_penalty;
    let weekly_unknown = quota.weekly.as_ref().and_then(|w| w.resets_at).is_none();
    let exploration = if weekly_unknown {
        -config.exploration_bonus
    } else {
        0.0
    };
    0.1 * concurrency + 10.0 * overflow - 4.0 * slack
        + config.scarcity_weight * scarcity
        + ramp
        + failures
        + exploration
}
