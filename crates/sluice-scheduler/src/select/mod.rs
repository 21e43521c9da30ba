//! Choosing among the accounts that can serve, per strategy.
//!
//! The pool has already applied the breaker and the admission queue; what is left is which
//! available account a request goes to. Preferred-account routing comes first for every
//! strategy: the preferred account whenever it can serve. Then the strategy decides.
//!
//! Every strategy only ever picks an account whose [`Availability`] is `Available` — except
//! the adaptive strategy, which may also use an account over its 5-hour switch threshold
//! (not exhausted) for a conversation already there or when nothing else can serve — and
//! every strategy only picks among the best (lowest) priority that can serve.

mod adaptive;
mod maxpool;
mod simple;

use crate::account::AccountId;
use crate::availability::Availability;
use crate::decision::RequestInfo;
use crate::pace::{WeeklyTier, weekly_tier};
use crate::pool::{Pool, Slot};
use crate::strategy::Strategy;
use crate::time::Timestamp;

/// The account chosen, and whether the rotation cursor should move past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub index: usize,
    pub advance_cursor: bool,
}

impl Choice {
    fn fixed(index: usize) -> Self {
        Choice {
            index,
            advance_cursor: false,
        }
    }

    fn rotating(index: usize) -> Self {
        Choice {
            index,
            advance_cursor: true,
        }
    }
}

/// What a strategy sees of the pool for one decision.
pub(crate) struct View<'a> {
    pub pool: &'a Pool,
    pub verdicts: &'a [Availability],
    pub excluded: &'a [AccountId],
    pub now: Timestamp,
}

impl<'a> View<'a> {
    fn len(&self) -> usize {
        self.pool.slots.len()
    }

    fn slot(&self, index: usize) -> &'a Slot {
        &self.pool.slots[index]
    }

    fn excluded(&self, index: usize) -> bool {
        self.excluded.contains(&self.pool.slots[index].id)
    }

    /// Available and not already tried by this request.
    fn usable(&self, index: usize) -> bool {
        self.verdicts[index].is_available() && !self.excluded(index)
    }

    fn priority(&self, index: usize) -> i32 {
        self.pool.slots[index].spec.priority
    }

    /// Indices in rotation order, starting at the pool's cursor.
    fn rotation(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len();
        let start = if n == 0 { 0 } else { self.pool.cursor % n };
        (0..n).map(move |offset| (start + offset) % n)
    }

    fn weekly_tiers(&self) -> Vec<WeeklyTier> {
        self.pool
            .slots
            .iter()
            .map(|s| weekly_tier(&s.state.quota, self.pool.config(), self.now))
            .collect()
    }

    fn index_of(&self, id: AccountId) -> Option<usize> {
        self.pool.index_of(id)
    }
}

/// The account to use, or `None` when no account may serve.
pub(crate) fn choose(
    pool: &Pool,
    verdicts: &[Availability],
    request: &RequestInfo,
    excluded: &[AccountId],
    now: Timestamp,
) -> Option<Choice> {
    let view = View {
        pool,
        verdicts,
        excluded,
        now,
    };
    if let Some(index) = pool.preferred.and_then(|id| view.index_of(id))
        && view.usable(index)
    {
        return Some(Choice::fixed(index));
    }
    match pool.config().strategy {
        Strategy::Adaptive => adaptive::choose(&view, request),
        Strategy::Maxpool => maxpool::choose(&view, request),
        other => simple::choose(&view, other),
    }
}

/// Each account's load over the spread window, and the pool's total over enabled accounts.
pub(crate) struct RecentLoad {
    pub per_slot: Vec<f64>,
    pub fleet: f64,
}

impl RecentLoad {
    fn measure(view: &View<'_>) -> Self {
        let window = view.pool.config().spread_window;
        let per_slot: Vec<f64> = view
            .pool
            .slots
            .iter()
            .map(|s| s.state.load.summary(view.now, window).weight as f64)
            .collect();
        let fleet = view
            .pool
            .slots
            .iter()
            .zip(&per_slot)
            .filter(|(s, _)| s.spec.enabled)
            .map(|(_, w)| w)
            .sum();
        RecentLoad { per_slot, fleet }
    }

    /// The account's share of the pool's recent load, `0..=1`.
    fn share(&self, index: usize) -> f64 {
        if self.fleet > 0.0 {
            self.per_slot[index] / self.fleet
        } else {
            0.0
        }
    }
}

/// A decaying penalty for an account that just came back from a bench or cooldown, so it is
/// eased back in rather than slammed to its limit again.
fn recovery_ramp(slot: &Slot, view: &View<'_>) -> f64 {
    let config = view.pool.config();
    let Some(at) = slot.state.recovered_at else {
        return 0.0;
    };
    let age = view.now.since(at);
    if at > view.now || age >= config.recovery_ramp {
        return 0.0;
    }
    config.recovery_ramp_weight * (1.0 - age.as_secs_f64() / config.recovery_ramp.as_secs_f64())
}
