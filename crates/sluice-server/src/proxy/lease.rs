//! A lease that cannot be forgotten: released with its outcome when the request ends, or as
//! neutral when it is dropped early (the client went away, a task was cancelled).

use std::sync::Arc;

use sluice_scheduler::{Lease, Outcome};

use crate::state::{PoolHandle, now};

pub struct LeaseGuard {
    pool: Arc<PoolHandle>,
    lease: Option<Lease>,
}

impl LeaseGuard {
    pub fn new(pool: Arc<PoolHandle>, lease: Lease) -> Self {
        LeaseGuard {
            pool,
            lease: Some(lease),
        }
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The upstream accepted the request (success status, first event in): tell the pool,
    /// which closes an open upstream breaker when this was its probe.
    pub fn accepted(&mut self) {
        if let Some(lease) = self.lease.as_mut() {
            if lease.probe {
                self.pool
                    .update(|pool| pool.upstream_accepted(lease, now()));
            } else {
                self.pool.with(|pool| pool.upstream_accepted(lease, now()));
            }
        }
    }

    /// Release with what happened; wakes held requests.
    pub fn finish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(lease) = self.lease.take() {
            self.pool.update(|pool| pool.release(lease, outcome, now()));
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.release(Outcome::Neutral);
    }
}
