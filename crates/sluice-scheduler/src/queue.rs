//! FIFO admission while nothing can serve.
//!
//! A request the pool cannot place joins the queue and gets a [`Ticket`]; it asks again with
//! its ticket whenever the pool changes or its wait hint passes. Only the earliest waiting
//! ticket may be placed, and a new arrival does not jump a non-empty queue, so requests are
//! served in the order they came and none is starved. After a recovery (an account back from
//! a bench, the upstream breaker closing) queued requests are let through a little apart for
//! a short while, so the recovered capacity is not stampeded.
//!
//! A ticket whose own exclusions (accounts it already tried) are all that stop it from being
//! served is *stalled*: it keeps its place but does not hold up the tickets behind it.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A place in the admission queue. Pass it back in [`crate::RequestInfo::ticket`] on every
/// later [`crate::Pool::acquire`]; give it up with [`crate::Pool::leave_queue`] when the
/// request is abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ticket(pub u64);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Waiting {
    ticket: Ticket,
    queued_at: Timestamp,
    stalled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionQueue {
    next: u64,
    waiting: VecDeque<Waiting>,
    last_admission: Option<Timestamp>,
    ramp_until: Option<Timestamp>,
}

impl AdmissionQueue {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How long the earliest waiting request has waited.
    pub fn oldest_wait(&self, now: Timestamp) -> Option<Duration> {
        self.waiting.front().map(|w| now.since(w.queued_at))
    }

    pub fn contains(&self, ticket: Ticket) -> bool {
        self.waiting.iter().any(|w| w.ticket == ticket)
    }

    /// Take a place at the back.
    pub fn join(&mut self, now: Timestamp) -> Ticket {
        let ticket = Ticket(self.next);
        self.next += 1;
        self.waiting.push_back(Waiting {
            ticket,
            queued_at: now,
            stalled: false,
        });
        ticket
    }

    /// Whether the holder of `ticket` (or a new arrival, `None`) may be placed now: it must
    /// be the earliest ticket that is not stalled, or stalled itself.
    pub fn may_go(&self, ticket: Option<Ticket>) -> bool {
        let head = self.waiting.iter().find(|w| !w.stalled).map(|w| w.ticket);
        match ticket {
            None => head.is_none(),
            Some(t) => head == Some(t) || self.waiting.iter().any(|w| w.ticket == t && w.stalled),
        }
    }

    /// While a ramp is on, queued requests are admitted at most one per `spacing`: the
    /// instant the next one may go, if that is later than `now`.
    pub fn spacing_until(&self, now: Timestamp, spacing: Duration) -> Option<Timestamp> {
        let ramping = self.ramp_until.is_some_and(|until| now < until);
        let next = self.last_admission? + spacing;
        (ramping && next > now).then_some(next)
    }

    /// The holder of `ticket` was placed.
    pub fn admitted(&mut self, ticket: Ticket, now: Timestamp) {
        self.leave(ticket);
        self.last_admission = Some(now);
    }

    pub fn leave(&mut self, ticket: Ticket) {
        self.waiting.retain(|w| w.ticket != ticket);
    }

    pub fn set_stalled(&mut self, ticket: Ticket, stalled: bool) {
        if let Some(w) = self.waiting.iter_mut().find(|w| w.ticket == ticket) {
            w.stalled = stalled;
        }
    }

    /// Capacity just came back: the first waiting request goes at once, the rest are spaced
    /// out for `length`.
    pub fn start_ramp(&mut self, now: Timestamp, length: Duration) {
        if !self.waiting.is_empty() {
            self.ramp_until = Some(now + length);
        }
    }

    /// Drop tickets whose holders have clearly gone (waited far longer than anyone holds).
    pub fn sweep(&mut self, now: Timestamp, max_age: Duration) {
        self.waiting.retain(|w| now.since(w.queued_at) <= max_age);
    }

    /// Tickets in order, for tests and status.
    pub fn tickets(&self) -> impl Iterator<Item = Ticket> + '_ {
        self.waiting.iter().map(|w| w.ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_head_goes_and_stalled_tickets_step_aside() {
        let mut q = AdmissionQueue::default();
        let t0 = Timestamp::from_secs(1);
        assert!(q.may_go(None));
        let a = q.join(t0);
        let b = q.join(t0);
        assert!(!q.may_go(None), "a new arrival waits behind the queue");
        assert!(q.may_go(Some(a)));
        assert!(!q.may_go(Some(b)));
        q.set_stalled(a, true);
        assert!(q.may_go(Some(b)), "a stalled head does not block");
        assert!(q.may_go(Some(a)), "a stalled ticket may still try");
        q.admitted(b, t0);
        q.admitted(a, t0);
        assert!(q.may_go(None));
    }

    #[test]
    fn a_ramp_spaces_admissions() {
        let mut q = AdmissionQueue::default();
        let t0 = Timestamp::from_secs(10);
        let spacing = Duration::from_millis(250);
        assert_eq!(q.spacing_until(t0, spacing), None);
        let a = q.join(t0);
        let b = q.join(t0);
        q.start_ramp(t0, Duration::from_secs(5));
        assert_eq!(q.spacing_until(t0, spacing), None, "the first goes at once");
        q.admitted(a, t0);
        assert_eq!(q.spacing_until(t0, spacing), Some(t0 + spacing));
        q.admitted(b, t0 + spacing);
        assert_eq!(
            q.spacing_until(t0 + spacing, spacing),
            Some(t0 + spacing * 2)
        );
        // After the ramp, no spacing.
        assert_eq!(q.spacing_until(t0 + Duration::from_secs(6), spacing), None);
    }
}
