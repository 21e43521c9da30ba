//! What a run measured, and the report it becomes.

use std::time::Duration;

use serde::Serialize;
use sluice_scheduler::{Strategy, Timestamp};

use crate::engine::START;
use crate::upstream::Leftovers;
use crate::workload::Scenario;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub served: u64,
    pub decisions: u64,
    /// When the first refusal happened, how many requests had been served by then, and the
    /// share of the pool's binding quota used at that moment.
    pub first_refusal: Option<(Timestamp, u64, f64)>,
    pub refused_requests: u64,
    pub queued_requests: u64,
    pub queue_wait: Duration,
    pub upstream_429: u64,
    pub moves: u64,
    pub conversations_moved: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub units: f64,
    /// Requests served per account, in scenario order.
    pub served_by_account: Vec<u64>,
}

/// One account's part in a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountReport {
    pub name: String,
    pub served: u64,
    pub unused_at_5h_reset: Option<f64>,
    pub unused_at_weekly_reset: Option<f64>,
}

/// One strategy's results on one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub strategy: String,
    pub scenario: String,
    /// Requests (turns) the workload holds.
    pub requests: u64,
    /// Requests answered by the end of the run.
    pub served: u64,
    /// Requests answered before anyone was refused (all of them if nobody was).
    pub served_before_first_refusal: u64,
    /// Hours into the run of the first refusal.
    pub first_refusal_hours: Option<f64>,
    /// Use of each account's tighter window when the first refusal came, averaged over the
    /// accounts weighted by tier (1 = every account was at its limit).
    pub quota_used_at_first_refusal: Option<f64>,
    /// Requests that were refused at least once (sent again later by the client).
    pub refused_requests: u64,
    /// Requests that waited in the admission queue at least once.
    pub queued_requests: u64,
    /// Total time requests spent queued, in seconds.
    pub queue_wait_seconds: f64,
    /// 429s from the upstream that sluice failed over from (the client never saw them).
    pub upstream_429s: u64,
    /// Turns served on a different account than the conversation's previous turn.
    pub moves: u64,
    /// Conversations that moved at least once.
    pub conversations_moved: u64,
    /// Share of prompt tokens read from the prompt cache.
    pub cache_hit_share: f64,
    /// Quota units spent.
    pub quota_units: f64,
    /// Share of the 5-hour windows' capacity left unused when they reset.
    pub unused_at_5h_reset: Option<f64>,
    /// Share of the weekly windows' capacity left unused when they reset.
    pub unused_at_weekly_reset: Option<f64>,
    /// Scheduler decisions taken.
    pub decisions: u64,
    pub accounts: Vec<AccountReport>,
}

impl Metrics {
    pub(crate) fn report(
        &self,
        strategy: Strategy,
        scenario: &Scenario,
        leftovers: &[Leftovers],
    ) -> Report {
        let sum = |f: fn(&Leftovers) -> f64| leftovers.iter().map(f).sum::<f64>();
        let share = |unused: f64, ended: f64| (ended > 0.0).then(|| unused / ended);
        let prompt = (self.cache_read + self.cache_write) as f64;
        Report {
            strategy: strategy.as_str().to_owned(),
            scenario: scenario.name.clone(),
            requests: scenario.requests() as u64,
            served: self.served,
            served_before_first_refusal: self.first_refusal.map_or(self.served, |(_, n, _)| n),
            first_refusal_hours: self
                .first_refusal
                .map(|(at, _, _)| START.until(at).as_secs_f64() / 3600.0),
            quota_used_at_first_refusal: self.first_refusal.map(|(_, _, share)| share),
            refused_requests: self.refused_requests,
            queued_requests: self.queued_requests,
            queue_wait_seconds: self.queue_wait.as_secs_f64(),
            upstream_429s: self.upstream_429,
            moves: self.moves,
            conversations_moved: self.conversations_moved,
            cache_hit_share: if prompt > 0.0 {
                self.cache_read as f64 / prompt
            } else {
                0.0
            },
            quota_units: self.units,
            unused_at_5h_reset: share(sum(|l| l.unused_5h), sum(|l| l.ended_5h)),
            unused_at_weekly_reset: share(sum(|l| l.unused_7d), sum(|l| l.ended_7d)),
            decisions: self.decisions,
            accounts: scenario
                .accounts
                .iter()
                .zip(leftovers)
                .zip(&self.served_by_account)
                .map(|((plan, l), served)| AccountReport {
                    name: plan.name.clone(),
                    served: *served,
                    unused_at_5h_reset: share(l.unused_5h, l.ended_5h),
                    unused_at_weekly_reset: share(l.unused_7d, l.ended_7d),
                })
                .collect(),
        }
    }
}
