//! A request's place in its pool's admission queue, given up when the request is.
//!
//! While no account can serve, the pool queues the request and hands out a ticket; the
//! attempt loop asks again with it. If the client goes away (the handler future or the held
//! stream's task is dropped) or the request stops waiting, the place is left so the requests
//! behind it move up at once.

use std::sync::Arc;

use sluice_scheduler::Ticket;

use crate::state::PoolHandle;

pub struct QueuePlace {
    pool: Arc<PoolHandle>,
    ticket: Option<Ticket>,
}

impl QueuePlace {
    pub fn new(pool: Arc<PoolHandle>) -> Self {
        QueuePlace { pool, ticket: None }
    }

    pub fn ticket(&self) -> Option<Ticket> {
        self.ticket
    }

    /// The pool queued the request under `ticket`.
    pub fn hold(&mut self, ticket: Ticket) {
        self.ticket = Some(ticket);
    }

    /// The pool took the request out of the queue itself (placed or refused).
    pub fn left(&mut self) {
        self.ticket = None;
    }

    /// Give the place up and let the next in line go.
    pub fn leave(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.pool.update(|pool| pool.leave_queue(ticket));
        }
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.leave();
    }
}
