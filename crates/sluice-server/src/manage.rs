//! Changing accounts from inside a running sluice: what the terminal dashboard's accounts
//! menu and the web dashboard's buttons do.
//!
//! The store stays the one place account settings live: an action writes it (as `sluice
//! accounts …` would) and then applies the store to the pools at once, instead of waiting
//! for the store watcher's next look. Accounts declared in the config file are the file's,
//! so they are refused with a pointer to the file, exactly like the CLI refuses them.
//! Removal is for idle accounts only: one with requests in flight is refused, and nothing
//! changes.

use serde::Serialize;
use sluice_store::{AccountChange, Origin, StoreError};

use crate::accounts::sync_from_store;
use crate::state::AppState;

/// What can be done to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountAction {
    Enable,
    Disable,
    Rename(String),
    Priority(i32),
    Remove,
}

impl AccountAction {
    /// Whether the action changes which requests the account takes (asks y/n in the TUI).
    pub fn changes_state(&self) -> bool {
        matches!(self, AccountAction::Disable | AccountAction::Remove)
    }
}

/// Why an action was refused. Messages name accounts and settings, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("there is no account named {0:?}")]
    NoSuchAccount(String),
    #[error(
        "account {name:?} is declared in the config file{path}; change it there (sluice applies the file when it is saved)"
    )]
    DeclaredInConfig { name: String, path: String },
    #[error("sluice runs without a store here, so accounts can only be changed in the config file")]
    NoStore,
    #[error("account {name:?} has {in_flight} request(s) in flight; remove it once it is idle")]
    Busy { name: String, in_flight: u32 },
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What an action did, in words for a status line.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    pub account: String,
    pub message: String,
}

/// Carry out `action` on the account called `name`.
pub async fn apply(app: &AppState, name: &str, action: AccountAction) -> Result<Done, ManageError> {
    let account = app
        .directory()
        .iter()
        .find(|a| a.name == name)
        .cloned()
        .ok_or_else(|| ManageError::NoSuchAccount(name.to_owned()))?;
    if account.origin.source == Origin::Config {
        let path = app
            .accounts()
            .config_path()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default();
        return Err(ManageError::DeclaredInConfig {
            name: name.to_owned(),
            path,
        });
    }
    let Some(store) = app.accounts().store().cloned() else {
        return Err(ManageError::NoStore);
    };
    let owned = name.to_owned();
    let message = match action {
        AccountAction::Enable | AccountAction::Disable | AccountAction::Priority(_) => {
            let change = match action {
                AccountAction::Enable => AccountChange {
                    enabled: Some(true),
                    ..AccountChange::default()
                },
                AccountAction::Disable => AccountChange {
                    enabled: Some(false),
                    ..AccountChange::default()
                },
                AccountAction::Priority(priority) => AccountChange {
                    priority: Some(priority),
                    ..AccountChange::default()
                },
                _ => unreachable!("matched above"),
            };
            blocking(&store, move |s| s.update_account(&owned, change)).await?;
            match action {
                AccountAction::Enable => format!("{name} enabled"),
                AccountAction::Disable => format!("{name} disabled: it takes no new requests"),
                AccountAction::Priority(priority) => format!("{name} now has priority {priority}"),
                _ => unreachable!("matched above"),
            }
        }
        AccountAction::Rename(to) => {
            let to = to.trim().to_owned();
            sluice_config::check_account_name(&to).map_err(ManageError::InvalidName)?;
            let new = to.clone();
            blocking(&store, move |s| s.rename_account(&owned, &new)).await?;
            format!("{name} renamed to {to}")
        }
        AccountAction::Remove => {
            let in_flight = app
                .pool(account.provider)
                .with(|p| p.snapshot(crate::state::now()))
                .accounts
                .iter()
                .find(|a| a.id == account.id)
                .map_or(0, |a| a.in_flight);
            if in_flight > 0 {
                return Err(ManageError::Busy {
                    name: name.to_owned(),
                    in_flight,
                });
            }
            // The same path as `sluice accounts remove` with sluice running: sluice carries
            // the removal out itself, refusing it if a request arrived meanwhile.
            blocking(&store, move |s| s.request_removal(&owned)).await?;
            let report = sync_from_store(app).await;
            if let Some((_, _, in_flight)) = report
                .as_ref()
                .and_then(|r| r.refused.iter().find(|(_, refused, _)| refused == name))
            {
                return Err(ManageError::Busy {
                    name: name.to_owned(),
                    in_flight: *in_flight,
                });
            }
            tracing::info!(account = %name, "account removed from the dashboard");
            return Ok(Done {
                account: name.to_owned(),
                message: format!("{name} removed"),
            });
        }
    };
    sync_from_store(app).await;
    tracing::info!(account = %name, change = %message, "account changed from the dashboard");
    Ok(Done {
        account: name.to_owned(),
        message,
    })
}

async fn blocking<R: Send + 'static>(
    store: &std::sync::Arc<dyn sluice_store::Store>,
    f: impl FnOnce(&dyn sluice_store::Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ManageError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ManageError::Store(StoreError::Corrupt(
            "a store task panicked".to_owned(),
        ))),
    }
}
