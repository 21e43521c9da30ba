//! The request log's way to the store, off the request path.
//!
//! A finished request offers its row to a bounded channel and moves on: if the channel is
//! full (the disk is slow, or the writer is not running) the row is dropped and counted —
//! a request never waits for the log. The `request-log` task takes rows off the channel,
//! lingers a moment so that rows arriving together are written together, and appends each
//! batch in one transaction on a blocking thread. At shutdown it writes what is still queued.
//! The `request-log-prune` task deletes rows older than `log.retention`, hourly, in chunks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sluice_store::{RequestLogRow, Store, StoreId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, now};

/// Rows that may wait for the writer before new ones are dropped.
const QUEUE_ROWS: usize = 8192;
/// Most rows written in one transaction.
const MAX_BATCH: usize = 1024;
/// How long the writer waits after a first row for others to join its batch.
const LINGER: Duration = Duration::from_millis(250);
/// Rows deleted per pruning transaction.
const PRUNE_CHUNK: u32 = 5_000;
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

pub struct RequestLog {
    sender: Option<mpsc::Sender<Arc<RequestLogRow>>>,
    /// Taken by the writer task when it starts.
    receiver: Mutex<Option<mpsc::Receiver<Arc<RequestLogRow>>>>,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl RequestLog {
    /// A log with somewhere to go (`enabled`: sluice runs with a store), or one that keeps
    /// nothing.
    pub fn new(enabled: bool) -> RequestLog {
        let (sender, receiver) = if enabled {
            let (sender, receiver) = mpsc::channel(QUEUE_ROWS);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        RequestLog {
            sender,
            receiver: Mutex::new(receiver),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Hand a row to the writer without waiting. `false` if it was dropped.
    pub(crate) fn offer(&self, row: Arc<RequestLogRow>) -> bool {
        let Some(sender) = &self.sender else {
            return true;
        };
        if sender.try_send(row).is_ok() {
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Whether rows go anywhere.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Rows dropped because the writer fell behind (or was not running).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Rows written to the store.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// The `request-log` task.
pub(crate) async fn writer(app: AppState, cancel: CancellationToken) {
    let Some(store) = app.accounts().store().cloned() else {
        return;
    };
    let Some(mut receiver) = app.telemetry().log().receiver.lock().take() else {
        return;
    };
    let mut failing = false;
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => break,
            row = receiver.recv() => match row {
                Some(row) => row,
                None => return,
            },
        };
        let mut batch = vec![first];
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(LINGER) => {}
        }
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        failing = !write(&app, &store, batch, failing).await;
    }
    // Shutting down: nothing new gets in; write what is queued.
    receiver.close();
    loop {
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        failing = !write(&app, &store, batch, failing).await;
    }
}

/// Write one batch; `false` if the store refused it (the rows count as dropped). An error is
/// logged when writing starts to fail, not for every batch after.
async fn write(
    app: &AppState,
    store: &Arc<dyn Store>,
    batch: Vec<Arc<RequestLogRow>>,
    was_failing: bool,
) -> bool {
    if !app.config().log.requests {
        return true;
    }
    let ids = store_ids(app);
    let rows: Vec<RequestLogRow> = batch
        .into_iter()
        .map(|row| {
            let mut row = Arc::unwrap_or_clone(row);
            row.account_id = row
                .account
                .as_deref()
                .and_then(|name| ids.get(name))
                .and_then(|of| of.iter().find(|(p, _)| *p == row.provider))
                .map(|(_, id)| *id);
            row
        })
        .collect();
    let count = rows.len() as u64;
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || store.log_requests(&rows)).await;
    let telemetry = app.telemetry();
    match written {
        Ok(Ok(())) => {
            telemetry.log().written.fetch_add(count, Ordering::Relaxed);
            telemetry.metrics().log_written(count);
            if was_failing {
                tracing::info!("the request log is being written again");
            }
            true
        }
        outcome => {
            telemetry.log().dropped.fetch_add(count, Ordering::Relaxed);
            for _ in 0..count {
                telemetry.metrics().log_dropped();
            }
            if !was_failing {
                match outcome {
                    Ok(Err(error)) => {
                        tracing::warn!(%error, rows = count, "could not write the request log; its rows are dropped until it works again");
                    }
                    _ => tracing::warn!(
                        rows = count,
                        "the request-log write panicked; its rows are dropped"
                    ),
                }
            }
            false
        }
    }
}

/// Every account's store row, by name and provider (for rows that survive renames).
fn store_ids(app: &AppState) -> HashMap<String, Vec<(&'static str, StoreId)>> {
    let mut ids: HashMap<String, Vec<(&'static str, StoreId)>> = HashMap::new();
    for account in app.directory().iter() {
        if let Some(id) = account.origin.store_id {
            ids.entry(account.name.clone())
                .or_default()
                .push((account.provider.as_str(), id));
        }
    }
    ids
}

/// The `request-log-prune` task: at start, then hourly.
pub(crate) async fn pruner(app: AppState, cancel: CancellationToken) {
    let Some(store) = app.accounts().store().cloned() else {
        return;
    };
    loop {
        let retention = app.config().log.retention;
        let before = (now() - retention).as_millis();
        let mut deleted = 0;
        loop {
            let store = store.clone();
            let chunk =
                tokio::task::spawn_blocking(move || store.prune_requests(before, PRUNE_CHUNK))
                    .await;
            match chunk {
                Ok(Ok(n)) => {
                    deleted += n;
                    if n < u64::from(PRUNE_CHUNK) || cancel.is_cancelled() {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not prune the request log");
                    break;
                }
                Err(_) => break,
            }
        }
        if deleted > 0 {
            tracing::info!(
                rows = deleted,
                retention = %humantime_days(retention),
                "pruned the request log"
            );
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

fn humantime_days(retention: Duration) -> String {
    let days = retention.as_secs_f64() / 86_400.0;
    if days >= 1.0 {
        format!("{days:.0}d")
    } else {
        format!("{}s", retention.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let log = RequestLog::new(true);
        let row = Arc::new(RequestLogRow::default());
        for _ in 0..QUEUE_ROWS {
            assert!(log.offer(row.clone()));
        }
        assert!(
            !log.offer(row.clone()),
            "the writer is not running: no room"
        );
        assert!(!log.offer(row));
        assert_eq!(log.dropped(), 2);
    }

    #[test]
    fn without_a_store_nothing_is_kept_or_dropped() {
        let log = RequestLog::new(false);
        assert!(!log.enabled());
        assert!(log.offer(Arc::new(RequestLogRow::default())));
        assert_eq!(log.dropped(), 0);
    }
}
