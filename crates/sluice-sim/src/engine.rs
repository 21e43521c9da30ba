//! The event loop: conversations send turns, the real scheduler [`Pool`] decides, simulated
//! upstreams serve or refuse, and time jumps from one event to the next.
//!
//! The engine plays the proxy's part exactly: it asks the pool, sends to the chosen account,
//! feeds the response headers through the same parser the proxy uses, releases the lease
//! with the outcome, fails over to another account on a 429, holds a queued request until its
//! wait hint or the next change in the pool (any release), and refuses it when it has waited
//! `max_wait`. A refused turn is sent again when the refusal said to retry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use sluice_scheduler::headers::parse_anthropic_headers;
use sluice_scheduler::weight::request_weight;
use sluice_scheduler::{
    AccountId, AccountSpec, ConversationKey, CredentialKind, Decision, Lease, Outcome, Pool,
    PoolConfig, RequestInfo, Strategy, Ticket, Timestamp, TokenTotals,
};

use crate::metrics::{Metrics, Report};
use crate::upstream::SimUpstream;
use crate::workload::Scenario;

/// Monday 2026-01-05 00:00 UTC: every run starts at the beginning of a working week.
pub const START: Timestamp = Timestamp::from_secs(1_767_571_200);

/// Output cap a Claude Code request carries.
const CLIENT_MAX_TOKENS: u64 = 32_000;
/// Shortest and longest a refused client waits before sending the turn again.
const MIN_CLIENT_RETRY: Duration = Duration::from_secs(5);
const MAX_CLIENT_RETRY: Duration = Duration::from_secs(6 * 60 * 60);
/// What a refused client waits when the refusal gave no `retry-after`.
const DEFAULT_CLIENT_RETRY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Send the conversation's next turn.
    Send(usize),
    /// The conversation's request in flight has finished.
    Finish(usize),
    /// Ask again for a queued request (its wait hint or hold deadline); the number is the
    /// conversation's wait epoch, so stale polls are ignored.
    Poll(usize, u64),
    /// Something changed in the pool: give every queued request a look.
    PollAll,
}

struct InFlight {
    lease: Lease,
    upstream: usize,
    tokens: TokenTotals,
}

struct Conv {
    key: ConversationKey,
    next_turn: usize,
    context: u64,
    last_account: Option<usize>,
    moved: bool,
    excluded: Vec<AccountId>,
    ticket: Option<Ticket>,
    wait_started: Option<Timestamp>,
    hold_deadline: Timestamp,
    wait_epoch: u64,
    in_flight: Option<InFlight>,
    turn_queued: bool,
    turn_refused: bool,
}

pub struct Engine<'a> {
    scenario: &'a Scenario,
    strategy: Strategy,
    pool: Pool,
    ids: Vec<AccountId>,
    upstreams: Vec<SimUpstream>,
    convs: Vec<Conv>,
    events: BinaryHeap<Reverse<(Timestamp, u64, Event)>>,
    seq: u64,
    poll_all_pending: bool,
    metrics: Metrics,
}

impl<'a> Engine<'a> {
    pub fn new(scenario: &'a Scenario, strategy: Strategy, config: PoolConfig) -> Self {
        let mut pool = Pool::new(PoolConfig { strategy, ..config });
        let ids = scenario
            .accounts
            .iter()
            .map(|plan| {
                pool.upsert_account(AccountSpec {
                    name: plan.name.clone(),
                    provider: "anthropic".to_owned(),
                    kind: CredentialKind::OAuth,
                    priority: plan.priority,
                    weight: plan.tier.weight(),
                    enabled: true,
                })
            })
            .collect();
        let upstreams = scenario
            .accounts
            .iter()
            .map(|plan| SimUpstream::new(plan, START))
            .collect();
        let convs = scenario
            .conversations
            .iter()
            .map(|c| Conv {
                key: ConversationKey::from_raw(&c.id),
                next_turn: 0,
                context: c.context,
                last_account: None,
                moved: false,
                excluded: Vec::new(),
                ticket: None,
                wait_started: None,
                hold_deadline: START,
                wait_epoch: 0,
                in_flight: None,
                turn_queued: false,
                turn_refused: false,
            })
            .collect();
        let mut engine = Engine {
            scenario,
            strategy,
            pool,
            ids,
            upstreams,
            convs,
            events: BinaryHeap::new(),
            seq: 0,
            poll_all_pending: false,
            metrics: Metrics {
                served_by_account: vec![0; scenario.accounts.len()],
                ..Metrics::default()
            },
        };
        for (index, c) in scenario.conversations.iter().enumerate() {
            let first = c.arrival_s + c.turns[0].think_s;
            engine.schedule(START + Duration::from_secs_f64(first), Event::Send(index));
        }
        engine
    }

    /// Run to the horizon and report.
    pub fn run(mut self) -> Report {
        let end = START + self.scenario.horizon;
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            if at > end {
                break;
            }
            match event {
                Event::Send(c) => {
                    let conv = &mut self.convs[c];
                    conv.excluded.clear();
                    self.attempt(c, at);
                }
                Event::Finish(c) => self.finish(c, at),
                Event::Poll(c, epoch) => {
                    let conv = &self.convs[c];
                    if conv.ticket.is_some() && conv.wait_epoch == epoch {
                        self.attempt(c, at);
                    }
                }
                Event::PollAll => {
                    self.poll_all_pending = false;
                    let mut waiting: Vec<(Ticket, usize)> = self
                        .convs
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| c.ticket.map(|t| (t, i)))
                        .collect();
                    waiting.sort_unstable();
                    for (_, c) in waiting {
                        if self.convs[c].ticket.is_some() {
                            self.attempt(c, at);
                        }
                    }
                }
            }
        }
        for upstream in &mut self.upstreams {
            upstream.roll(end);
        }
        let leftovers = self
            .upstreams
            .iter()
            .map(|u| u.leftovers)
            .collect::<Vec<_>>();
        self.metrics
            .report(self.strategy, self.scenario, &leftovers)
    }

    fn schedule(&mut self, at: Timestamp, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    fn changed(&mut self, at: Timestamp) {
        if !self.poll_all_pending {
            self.poll_all_pending = true;
            self.schedule(at, Event::PollAll);
        }
    }

    /// Ask the pool for the conversation's current turn and carry the decision out.
    fn attempt(&mut self, c: usize, now: Timestamp) {
        let spec = &self.scenario.conversations[c];
        let turn = spec.turns[self.convs[c].next_turn];
        let context = self.convs[c].context;
        let prompt_bytes = (context + turn.input) * 4;
        let request_base = RequestInfo {
            conversation: Some(self.convs[c].key),
            weight: request_weight(prompt_bytes, Some(CLIENT_MAX_TOKENS), None),
            ticket: None,
        };
        loop {
            let request = RequestInfo {
                ticket: self.convs[c].ticket,
                ..request_base.clone()
            };
            self.metrics.decisions += 1;
            let decision = self.pool.acquire(&request, &self.convs[c].excluded, now);
            if !matches!(decision, Decision::Wait { .. }) && self.convs[c].ticket.is_some() {
                self.stop_waiting(c, now);
            }
            match decision {
                Decision::Route(lease) => {
                    let upstream = self
                        .ids
                        .iter()
                        .position(|id| *id == lease.account)
                        .expect("the pool only knows the scenario's accounts");
                    let served =
                        self.upstreams[upstream].serve(now, c, context, turn.input, turn.output);
                    match served {
                        Ok((served, headers)) => {
                            let observation = parse_anthropic_headers(
                                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                                now,
                            );
                            self.pool.observe_quota(lease.account, &observation, now);
                            let conv = &mut self.convs[c];
                            if conv.last_account.is_some_and(|a| a != upstream) {
                                self.metrics.moves += 1;
                                if !conv.moved {
                                    conv.moved = true;
                                    self.metrics.conversations_moved += 1;
                                }
                            }
                            conv.last_account = Some(upstream);
                            self.metrics.cache_read += served.cache_read;
                            self.metrics.cache_write += served.cache_write;
                            self.metrics.units += served.units;
                            let busy = service_time(context + turn.input, turn.output);
                            conv.in_flight = Some(InFlight {
                                lease,
                                upstream,
                                tokens: TokenTotals {
                                    input: 0,
                                    output: served.output,
                                    cache_creation: served.cache_write,
                                    cache_read: served.cache_read,
                                },
                            });
                            self.schedule(now + busy, Event::Finish(c));
                            return;
                        }
                        Err((headers, retry_after)) => {
                            let observation = parse_anthropic_headers(
                                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                                now,
                            );
                            self.pool.observe_quota(lease.account, &observation, now);
                            let account = lease.account;
                            self.pool.release(
                                lease,
                                Outcome::RateLimited {
                                    status: 429,
                                    retry_after: Some(retry_after.clamp(
                                        sluice_scheduler::headers::MIN_RETRY_AFTER,
                                        sluice_scheduler::headers::MAX_RETRY_AFTER,
                                    )),
                                },
                                now,
                            );
                            self.metrics.upstream_429 += 1;
                            self.convs[c].excluded.push(account);
                            self.changed(now);
                            // Fail over: ask again without that account.
                        }
                    }
                }
                Decision::Wait { until, ticket, .. } => {
                    let max_wait = self.pool.config().max_wait;
                    let conv = &mut self.convs[c];
                    if conv.ticket.is_none() {
                        conv.wait_started = Some(now);
                        conv.hold_deadline = now + max_wait;
                        if !conv.turn_queued {
                            conv.turn_queued = true;
                            self.metrics.queued_requests += 1;
                        }
                    }
                    conv.ticket = Some(ticket);
                    if now >= conv.hold_deadline {
                        self.pool.leave_queue(ticket);
                        self.stop_waiting(c, now);
                        self.changed(now);
                        self.refuse(c, now, until.map(|u| now.until(u)));
                        return;
                    }
                    let wake = until.map_or(conv.hold_deadline, |u| u.min(conv.hold_deadline));
                    let epoch = conv.wait_epoch;
                    self.schedule(wake.max(now), Event::Poll(c, epoch));
                    return;
                }
                Decision::Reject { retry_after, .. } => {
                    self.refuse(c, now, retry_after);
                    return;
                }
            }
        }
    }

    /// The conversation's request left the queue (placed, refused or given up).
    fn stop_waiting(&mut self, c: usize, now: Timestamp) {
        let conv = &mut self.convs[c];
        conv.ticket = None;
        conv.wait_epoch += 1;
        if let Some(started) = conv.wait_started.take() {
            self.metrics.queue_wait += now.since(started);
        }
        // Whoever is next in line may go now.
        self.changed(now);
    }

    fn refuse(&mut self, c: usize, now: Timestamp, retry_after: Option<Duration>) {
        if self.metrics.first_refusal.is_none() {
            let (used, weights) = self
                .upstreams
                .iter_mut()
                .zip(&self.scenario.accounts)
                .map(|(u, plan)| {
                    u.roll(now);
                    let weight = f64::from(plan.tier.weight());
                    (weight * u.binding_use(), weight)
                })
                .fold((0.0, 0.0), |(u, w), (x, y)| (u + x, w + y));
            self.metrics.first_refusal = Some((now, self.metrics.served, used / weights));
        }
        if !self.convs[c].turn_refused {
            self.convs[c].turn_refused = true;
            self.metrics.refused_requests += 1;
        }
        let wait = retry_after
            .unwrap_or(DEFAULT_CLIENT_RETRY)
            .clamp(MIN_CLIENT_RETRY, MAX_CLIENT_RETRY);
        self.schedule(now + wait, Event::Send(c));
    }

    fn finish(&mut self, c: usize, now: Timestamp) {
        let Some(done) = self.convs[c].in_flight.take() else {
            return;
        };
        self.pool.release(
            done.lease,
            Outcome::Success {
                tokens: done.tokens,
            },
            now,
        );
        self.metrics.served += 1;
        self.metrics.served_by_account[done.upstream] += 1;
        let spec = &self.scenario.conversations[c];
        let conv = &mut self.convs[c];
        let turn = spec.turns[conv.next_turn];
        conv.turn_queued = false;
        conv.turn_refused = false;
        conv.context += turn.input + turn.output;
        conv.next_turn += 1;
        if let Some(next) = spec.turns.get(conv.next_turn) {
            let at = now + Duration::from_secs_f64(next.think_s);
            self.schedule(at, Event::Send(c));
        }
        self.changed(now);
    }
}

/// How long the upstream takes to answer: time to first token, prompt processing, output.
fn service_time(prompt_tokens: u64, output_tokens: u64) -> Duration {
    Duration::from_secs_f64(0.8 + prompt_tokens as f64 / 40_000.0 + output_tokens as f64 / 60.0)
}
