//! Seeing the pool: what every finished request feeds, and the tasks that keep it.
//!
//! A request's [`crate::proxy::log::RequestRecord`] travels with it and is emitted exactly
//! once; on emission it hands its facts to [`Telemetry::finish`], which counts them in the
//! Prometheus metrics ([`metrics`]), keeps them in the recent-requests list and throughput
//! meter ([`recent`]) and offers them to the request log ([`request_log`]) — all without
//! waiting on anything but short in-memory locks.
//!
//! [`spawn_tasks`] starts the background side under the caller's cancellation token:
//! `request-log` (writes batches to the store), `request-log-prune` (retention) and
//! `metrics-upkeep` (folds histogram samples so memory stays bounded between scrapes).

pub mod metrics;
pub mod recent;
pub mod request_log;
pub mod usage;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sluice_store::RequestLogRow;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::metrics::{Metrics, RequestSample};
use self::recent::Recent;
use self::request_log::RequestLog;
use crate::state::AppState;

/// Everything a running sluice observes about its requests.
pub struct Telemetry {
    metrics: Metrics,
    recent: Recent,
    log: RequestLog,
    /// Model-family labels, interned so that a request carries one without allocating.
    families: RwLock<HashSet<Arc<str>>>,
}

/// A finished request, as [`crate::proxy::log::RequestRecord`] hands it over.
pub struct Finished<'a> {
    pub row: RequestLogRow,
    pub family: &'a str,
    pub total: Duration,
    pub upstream: Duration,
    pub queued: Duration,
    pub first_byte: Option<Duration>,
    pub failovers: &'a [&'static str],
    pub provider: &'static str,
}

impl Telemetry {
    /// `request_log`: whether rows have a store to go to.
    pub fn new(request_log: bool) -> Telemetry {
        Telemetry {
            metrics: Metrics::new(),
            recent: Recent::default(),
            log: RequestLog::new(request_log),
            families: RwLock::new(HashSet::new()),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// The interned label for a model family (the price table's families are a bounded set).
    pub fn family(&self, family: &str) -> Arc<str> {
        if let Some(found) = self.families.read().get(family) {
            return found.clone();
        }
        let mut families = self.families.write();
        if let Some(found) = families.get(family) {
            return found.clone();
        }
        let interned: Arc<str> = Arc::from(family);
        families.insert(interned.clone());
        interned
    }

    /// Count a finished request, list it, and offer it to the request log.
    pub fn finish(&self, finished: Finished<'_>) {
        let row = &finished.row;
        let tokens = sluice_scheduler::TokenTotals {
            input: row.input_tokens,
            output: row.output_tokens,
            cache_creation: row.cache_creation_tokens,
            cache_read: row.cache_read_tokens,
        };
        self.metrics.request(&RequestSample {
            provider: finished.provider,
            account: row.account.as_deref(),
            status: row.status,
            family: finished.family,
            tokens,
            total: finished.total,
            upstream: finished.upstream,
            queued: finished.queued,
            first_byte: finished.first_byte,
            failovers: finished.failovers,
        });
        let all_tokens = tokens.input + tokens.output + tokens.cache_creation + tokens.cache_read;
        let row = Arc::new(finished.row);
        self.recent.push(row.clone(), all_tokens);
        if !self.log.offer(row) {
            self.metrics.log_dropped();
        }
    }
}

/// The background tasks of observation.
pub struct Tasks {
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

/// Start `request-log`, `request-log-prune` and `metrics-upkeep`; they stop when `cancel`
/// fires (the request log writes what is queued first).
pub fn spawn_tasks(app: &AppState, cancel: CancellationToken) -> Tasks {
    let mut handles = vec![(
        "metrics-upkeep",
        tokio::spawn(metrics_upkeep(app.clone(), cancel.clone())),
    )];
    if app.telemetry().log().enabled() {
        handles.push((
            "request-log",
            tokio::spawn(request_log::writer(app.clone(), cancel.clone())),
        ));
        handles.push((
            "request-log-prune",
            tokio::spawn(request_log::pruner(app.clone(), cancel.clone())),
        ));
    }
    for (name, _) in &handles {
        tracing::debug!(task = name, "background task started");
    }
    Tasks { handles }
}

impl Tasks {
    /// Wait for the tasks to stop (cancel their token first); the request log's last rows
    /// are written by then.
    pub async fn shutdown(self) {
        for (name, handle) in self.handles {
            if let Err(error) = handle.await
                && error.is_panic()
            {
                tracing::error!(task = name, "background task panicked");
            }
        }
    }
}

async fn metrics_upkeep(app: AppState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        app.telemetry().metrics().upkeep();
    }
}
