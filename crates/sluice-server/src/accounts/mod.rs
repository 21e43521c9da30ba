//! Accounts that look after themselves.
//!
//! The pools hold what the config file and the store declare ([`sync`]); OAuth access
//! tokens are refreshed before they expire, once per account at a time, each rotated refresh
//! token committed to the store before it is used ([`refresh`]); idle subscriptions have
//! their quota probed ([`probe`]); the config file is applied again when it changes
//! ([`reload`]); changes the CLI makes to the store reach the running pools within a second.
//!
//! Each provider's side of it lives in its own module: [`oauth`] (the token endpoint client,
//! and Anthropic's profile and usage), [`chatgpt`] (Codex logins and usage), [`google`]
//! (Gemini logins, Code Assist setup and quota); [`setup`] readies an account for its first
//! request (a Google login's Code Assist project).
//!
//! All of it runs as named background tasks under one cancellation token ([`spawn_tasks`]),
//! off the request path. The request path touches this module at three points only, all in
//! the attempt loop: an access token that has already expired is refreshed before it is
//! sent (waiting for the refresh), an account that still needs setting up is set up (once),
//! and a 401 gets one forced refresh and a second try on the same account.

mod auth;
pub mod chatgpt;
pub mod google;
pub mod oauth;
mod probe;
pub mod refresh;
pub mod reload;
pub mod setup;
mod sync;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{AccountAuth, AccountOrigin, AuthState};
pub use refresh::{RefreshError, Trigger};
pub use reload::{ReloadError, ReloadSummary, reload, reload_and_log};

pub(crate) use sync::{load_at_start, sync_from_store};

use crate::state::AppState;

/// The account-upkeep side of a running sluice.
pub struct Runtime {
    store: Option<Arc<dyn Store>>,
    config_path: Option<PathBuf>,
    /// Refreshes under way. They are never cancelled (see [`refresh`]); shutdown waits.
    refreshes: TaskTracker,
    refresh_wanted: Notify,
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// Serializes [`sync::apply`] between the store watcher, reloads and refreshes.
    pub(crate) applying: tokio::sync::Mutex<()>,
    fixed: Mutex<Option<reload::FixedSettings>>,
}

impl Runtime {
    pub(crate) fn new(store: Option<Arc<dyn Store>>, config_path: Option<PathBuf>) -> Runtime {
        Runtime {
            store,
            config_path,
            refreshes: TaskTracker::new(),
            refresh_wanted: Notify::new(),
            reloading: tokio::sync::Mutex::new(()),
            applying: tokio::sync::Mutex::new(()),
            fixed: Mutex::new(None),
        }
    }

    /// The store, when sluice runs with one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// The config file reloads read.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_path.clone()
    }

    /// Wake the refresh task (an access token is close to expiring).
    pub fn kick_refresh(&self) {
        self.refresh_wanted.notify_one();
    }

    pub(crate) async fn refresh_wanted(&self) {
        self.refresh_wanted.notified().await;
    }

    pub(crate) fn track(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.refreshes.spawn(task);
    }

    /// Which settings a process cannot change does `config` change, compared with the file
    /// as last read? Remembers `config`'s values for next time.
    pub(crate) fn fixed_settings(&self, config: &sluice_config::Config) -> reload::FixedChanges {
        let new = reload::FixedSettings::of(config);
        let mut fixed = self.fixed.lock();
        let changes = match fixed.as_ref() {
            Some(last) => reload::compare(last, &new),
            None => reload::FixedChanges {
                listen: false,
                data_dir: false,
                upstream_pool: false,
            },
        };
        *fixed = Some(new);
        changes
    }
}

/// The background tasks of account upkeep.
pub struct Tasks {
    cancel: CancellationToken,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

/// Start the background tasks: `token-refresh`, `usage-probe`, `store-watch`, `quota-save`
/// and, when the config came from a file, `config-watch`. They stop when `cancel` fires.
pub fn spawn_tasks(app: &AppState, cancel: CancellationToken) -> Tasks {
    app.accounts().fixed_settings(&app.config());
    let mut handles = vec![
        (
            "token-refresh",
            tokio::spawn(refresh::refresh_loop(app.clone(), cancel.clone())),
        ),
        (
            "usage-probe",
            tokio::spawn(probe::probe_loop(app.clone(), cancel.clone())),
        ),
        (
            "store-watch",
            tokio::spawn(sync::watch_store(app.clone(), cancel.clone())),
        ),
        (
            "quota-save",
            tokio::spawn(sync::quota_saver(app.clone(), cancel.clone())),
        ),
    ];
    if let Some(watcher) = reload::watch_config(app, cancel.clone()) {
        handles.push(("config-watch", watcher));
    }
    for (name, _) in &handles {
        tracing::debug!(task = name, "background task started");
    }
    Tasks { cancel, handles }
}

impl Tasks {
    /// Stop the tasks, let refreshes under way finish (each commits or fails on its own; none
    /// is cut between the token server's answer and the commit), then save what was learned
    /// and flush the store.
    pub async fn shutdown(self, app: &AppState) {
        self.cancel.cancel();
        for (name, handle) in self.handles {
            if let Err(error) = handle.await
                && error.is_panic()
            {
                tracing::error!(task = name, "background task panicked");
            }
        }
        let refreshes = &app.accounts().refreshes;
        refreshes.close();
        if tokio::time::timeout(Duration::from_secs(45), refreshes.wait())
            .await
            .is_err()
        {
            tracing::warn!("a token refresh did not finish in time");
        }
        sync::save_quota(app).await;
        if let Some(store) = app.accounts().store().cloned()
            && let Err(error) = sync::blocking(&store, |s| s.flush()).await
        {
            tracing::warn!(%error, "could not flush the store");
        }
    }
}
