//! sluice's own strategy: keep conversations where their prompt cache is, place new work
//! where it fits in the 5-hour window until that window resets, and spend the weeks that
//! would otherwise expire before those that will run short.
//!
//! * **A conversation stays put.** It keeps its account while that account can serve —
//!   including past the 5-hour switch threshold, up to the upstream's own limit — unless a
//!   strictly better priority can take it. When it has to move, it stays where it moved
//!   (no bouncing) until its home recovers, then returns home. (Re-homing to the new account
//!   instead was measured in the simulator: it saves almost no moves — 9 instead of 14 on the
//!   nearly-exhausted preset, none elsewhere — and serves no more.)
//! * **New work goes where it fits.** Each 5-hour window is forecast to its reset: the use
//!   so far, plus the recent spending rate (learned from successive readings, see
//!   [`crate::burn`]) or what the conversations placed there recently will spend once they
//!   show, whichever is more, plus the newcomer. A window forecast to run out will force its
//!   conversations to move, so new work avoids it.
//! * **Use it or lose it.** Weekly *slack* is the quota left beyond an even burn until the
//!   weekly reset: positive slack will go unused unless spent faster, negative slack means
//!   the week is burning ahead of pace (maxpool's scarcity, kept). New work prefers slack.
//!   An account whose week has more slack than another's is filled to the brim of its
//!   5-hour windows (their leftovers are lost at each reset), sparing the tighter week.
//! * **Nobody is refused while something can serve.** Healthy weeks first, then reserve,
//!   then critical, then accounts over their 5-hour threshold but not yet out.
//! * Every capacity term is relative to the account's `weight`, so a Max 20x account is not
//!   treated like a Pro.

use super::{Choice, View, recovery_ramp};
use crate::availability::Availability;
use crate::burn::ARRIVAL_TIME_CONSTANT;
use crate::decision::RequestInfo;
use crate::pace::{WEEK, WeeklyTier, elapsed_fraction, scarcity};
use crate::pool::Slot;

/// How long a newly placed conversation is expected to keep spending, for the forecast.
const NEWCOMER_HOURS: f64 = 0.5;
/// How far ahead the current spending is projected: conversations end, so further out the
/// rate says little.
const HORIZON_HOURS: f64 = 1.0;
/// Forecast use of a 5-hour window at which new work stops going there.
const FULL: f64 = 0.95;
/// How far past full a window may be forecast when its week has slack that a tighter week
/// elsewhere would otherwise have to cover.
const OVERFILL: f64 = 0.25;
/// The slack difference that earns the whole overfill.
const OVERFILL_SLACK: f64 = 0.2;
/// Cost per unit of forecast beyond the target.
const OVERFLOW_WEIGHT: f64 = 10.0;
/// Cost (credit) per unit of weekly slack.
const SLACK_WEIGHT: f64 = 4.0;
/// Cost per unit of in-flight weight, relative to capacity: a tie-breaker.
const CONCURRENCY_WEIGHT: f64 = 0.1;

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

    let context = Context::new(view);
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
            let cost = context.cost(view, i, request.weight);
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

/// What one decision needs about the whole pool, measured once.
struct Context {
    /// What one conversation spends of a 5-hour window per hour, in units of a weight-1
    /// account's window: the pool's current spending over the conversations recently
    /// placed (both fade with the same time constant, so the ratio holds while idle).
    per_conversation: f64,
    /// Each account's weekly slack (`None` while its week is unknown).
    slack: Vec<Option<f64>>,
}

impl Context {
    fn new(view: &View<'_>) -> Self {
        let (mut burn, mut conversations) = (0.0, 0.0);
        for slot in &view.pool.slots {
            burn += slot.state.session_burn.at_time(view.now) * capacity(slot);
            conversations += slot.state.arrivals.at_time(view.now, ARRIVAL_TIME_CONSTANT);
        }
        Context {
            per_conversation: if conversations >= 0.5 {
                burn / conversations
            } else {
                0.0
            },
            slack: view
                .pool
                .slots
                .iter()
                .map(|s| (s.spec.enabled).then(|| weekly_slack(s, view)).flatten())
                .collect(),
        }
    }

    /// How much more slack this account's week has than the tightest other week.
    fn spare_over_others(&self, index: usize) -> f64 {
        let Some(own) = self.slack[index] else {
            return 0.0;
        };
        self.slack
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .filter_map(|(_, s)| *s)
            .map(|other| own - other)
            .fold(0.0, f64::max)
    }

    /// The cost of placing new work on an account; lower is preferred.
    fn cost(&self, view: &View<'_>, index: usize, weight: u32) -> f64 {
        let config = view.pool.config();
        let now = view.now;
        let slot = view.slot(index);
        let state = &slot.state;
        let capacity = capacity(slot);
        let quota = &state.quota;

        let (used_5h, hours_left) = match &quota.session {
            Some(w) => (
                w.used(),
                w.resets_at
                    .filter(|r| *r > now)
                    .map_or(5.0, |r| now.until(r).as_secs_f64() / 3600.0),
            ),
            None => (0.0, 5.0),
        };
        let measured = state.session_burn.at_time(now);
        let arrived =
            state.arrivals.at_time(now, ARRIVAL_TIME_CONSTANT) * self.per_conversation / capacity;
        let newcomer = self.per_conversation / capacity * hours_left.min(NEWCOMER_HOURS);
        let forecast = used_5h + measured.max(arrived) * hours_left.min(HORIZON_HOURS) + newcomer;
        let spare = (self.spare_over_others(index) / OVERFILL_SLACK).clamp(0.0, 1.0);
        let overflow = (forecast - (FULL + OVERFILL * spare)).max(0.0);

        let slack = self.slack[index].unwrap_or(0.0);
        let concurrency = (state.active_weight as f64 + f64::from(weight.max(1))) / capacity;
        let failures = f64::from(state.consecutive_failures) * config.failure_penalty;
        let exploration = if quota.weekly.as_ref().and_then(|w| w.resets_at).is_none() {
            -config.exploration_bonus
        } else {
            0.0
        };
        OVERFLOW_WEIGHT * overflow - SLACK_WEIGHT * slack
            + config.scarcity_weight * scarcity(quota, now)
            + CONCURRENCY_WEIGHT * concurrency
            + recovery_ramp(slot, view)
            + failures
            + exploration
    }
}

fn capacity(slot: &Slot) -> f64 {
    f64::from(slot.spec.weight.max(1))
}

/// Weekly quota left beyond an even burn until the reset.
fn weekly_slack(slot: &Slot, view: &View<'_>) -> Option<f64> {
    let weekly = slot.state.quota.weekly.as_ref()?;
    let reset = weekly.resets_at?;
    Some((1.0 - weekly.used()) - (1.0 - elapsed_fraction(reset, WEEK, view.now)))
}
