//! Hot reload: applying an edited config file without a restart and without dropping a
//! request.
//!
//! A reload (from the file watcher, SIGHUP or `sluice reload`) reads and validates the file
//! first; a file with a mistake is refused with its error (key and line) and the running
//! configuration keeps serving untouched. A good file is reconciled with the store (a config
//! name that clashes with a command-line account is refused there too), then swapped in:
//! settings, client keys and pool tunables at once, accounts through [`super::sync::apply`],
//! which leaves requests in flight alone. A few settings are fixed for the life of the
//! process (the listening address, the data directory, the upstream connection pool); a
//! change to them is reported as needing a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_config::{Config, ConfigError};
use tokio_util::sync::CancellationToken;

use super::sync::{apply, blocking, declared_oauth, desired};
use crate::state::AppState;

/// How long the file watcher waits for an editor to finish writing before reading.
const SETTLE: Duration = Duration::from_millis(300);

/// Why a reload was refused. The running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(
        "refusing a config that serves {0} without client_keys: anyone who can reach it could spend your accounts"
    )]
    Exposed(std::net::SocketAddr),
    #[error("{0}")]
    Store(#[from] sluice_store::StoreError),
    #[error("the reload task failed")]
    Task,
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Settings that changed in the file but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Read the config file again and apply it.
pub async fn reload(app: &AppState) -> Result<ReloadSummary, ReloadError> {
    let runtime = app.accounts();
    let _one_at_a_time = runtime.reloading.lock().await;
    let path = runtime.config_path();
    let mut config = tokio::task::spawn_blocking(move || sluice_config::load(path.as_deref()))
        .await
        .map_err(|_| ReloadError::Task)??;

    let mut needs_restart = Vec::new();
    {
        let running = app.config();
        let fixed = runtime.fixed_settings(&config);
        if fixed.listen {
            needs_restart.push("listen");
        }
        if fixed.data_dir {
            needs_restart.push("data_dir");
        }
        if fixed.upstream_pool {
            needs_restart
                .push("upstream.connect_timeout / pool_idle_timeout / pool_max_idle_per_host");
        }
        // The process keeps the address it is bound to and the directory it has locked.
        config.listen = running.listen;
        config.data_dir.clone_from(&running.data_dir);
    }
    if !config.is_loopback_listen() && config.client_keys.is_empty() {
        return Err(ReloadError::Exposed(config.listen));
    }

    let rows = match runtime.store().cloned() {
        Some(store) => {
            let declared = declared_oauth(&config);
            blocking(&store, move |s| s.reconcile_config(&declared)).await?;
            blocking(&store, |s| s.accounts()).await?
        }
        None => Vec::new(),
    };
    let report = {
        let _applying = runtime.applying.lock().await;
        let wanted = desired(&config, &rows);
        app.set_config(config);
        apply(app, wanted)
    };
    let summary = ReloadSummary {
        added: report.added,
        changed: report.changed,
        removed: report.removed,
        needs_restart,
    };
    tracing::info!(
        added = ?summary.added,
        changed = ?summary.changed,
        removed = ?summary.removed,
        draining = report.draining,
        "configuration reloaded"
    );
    for setting in &summary.needs_restart {
        tracing::warn!(
            setting,
            "this setting changed in the file but takes effect only after a restart"
        );
    }
    Ok(summary)
}

/// Reload, logging the outcome; for the signal handler and the file watcher.
pub async fn reload_and_log(app: &AppState, why: &str) {
    match reload(app).await {
        Ok(_) => {}
        Err(error) => {
            tracing::error!(
                trigger = why,
                "config reload refused; the running configuration keeps serving:\n{error}"
            );
        }
    }
}

/// Watch the config file and reload when it is written. Editors often write a new file and
/// rename it over the old one, so the directory is watched, not the file.
pub(crate) fn watch_config(
    app: &AppState,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = app.accounts().config_path()?;
    let directory = path.parent().filter(|d| d.is_dir())?.to_path_buf();
    let file_name = path.file_name()?.to_os_string();
    // The digest of the file as it is now, taken before watching begins and before this
    // function returns: taken later (inside the task), a save that lands in between would
    // become the baseline and never be applied.
    let mut last = digest_of(std::fs::read(&path).ok());
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !is_write(&event.kind) {
                return;
            }
            if event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file_name.as_os_str()))
            {
                let _ = sender.send(());
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the config file; reload with SIGHUP or `sluice reload`");
            return None;
        }
    };
    if let Err(error) = notify::Watcher::watch(
        &mut watcher,
        &directory,
        notify::RecursiveMode::NonRecursive,
    ) {
        tracing::warn!(%error, path = %directory.display(), "cannot watch the config directory; reload with SIGHUP or `sluice reload`");
        return None;
    }
    let app = app.clone();
    Some(tokio::spawn(async move {
        let _watcher = watcher; // lives as long as the task
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                event = events.recv() => if event.is_none() { return },
            }
            // Let the editor finish; one reload for a burst of events.
            tokio::time::sleep(SETTLE).await;
            while events.try_recv().is_ok() {}
            let digest = file_digest(&path).await;
            if digest.is_none() || digest == last {
                continue; // deleted (for now), or touched without a change
            }
            last = digest;
            reload_and_log(&app, "config file changed").await;
        }
    }))
}

fn is_write(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

async fn file_digest(path: &Path) -> Option<Vec<u8>> {
    digest_of(tokio::fs::read(path).await.ok())
}

fn digest_of(bytes: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let bytes = bytes?;
    Some(
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
    )
}

/// The settings a running process cannot change, as the file last declared them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FixedSettings {
    pub listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub upstream_pool: (Duration, Duration, usize),
}

impl FixedSettings {
    pub(crate) fn of(config: &Config) -> FixedSettings {
        FixedSettings {
            listen: config.listen,
            data_dir: config.data_dir.clone(),
            upstream_pool: (
                config.upstream.connect_timeout,
                config.upstream.pool_idle_timeout,
                config.upstream.pool_max_idle_per_host,
            ),
        }
    }
}

/// Which fixed settings a new file changes (compared with the file as last read).
pub(crate) struct FixedChanges {
    pub listen: bool,
    pub data_dir: bool,
    pub upstream_pool: bool,
}

pub(crate) fn compare(last: &FixedSettings, new: &FixedSettings) -> FixedChanges {
    FixedChanges {
        listen: last.listen != new.listen,
        data_dir: last.data_dir != new.data_dir,
        upstream_pool: last.upstream_pool != new.upstream_pool,
    }
}
