//! What an account needs before its first request besides a credential.
//!
//! A Google-login Gemini account must name its own Code Assist project in every request.
//! When neither the config nor the store knows it, it is discovered with `loadCodeAssist`
//! (onboarding the account if it has none yet) the first time the account is used — once:
//! concurrent requests wait for the same discovery — put in front of requests at once, and
//! remembered in the store by a background task, so no later start asks again and the
//! request path never waits on disk.

use std::sync::Arc;

use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::Outcome;

use super::google::{self, SetupError};
use super::oauth::InfoError;
use crate::provider::UpstreamIdentity;
use crate::state::{AppState, UpstreamAccount};

/// Why an account could not be made ready: what it means for the account, and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    pub outcome: Outcome,
    pub message: String,
}

/// Whether `account` still needs setting up before it can serve.
pub fn needs_setup(account: &UpstreamAccount, credential: &Credential) -> bool {
    account.provider == ProviderKind::Gemini
        && matches!(credential, Credential::OAuth { .. })
        && account.identity.load().project.is_none()
}

/// Make `account` ready to serve with `credential`: for a Google login without a known
/// project, discover it (one discovery per account at a time).
pub async fn ensure_ready(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    credential: &Credential,
) -> Result<(), NotReady> {
    if !needs_setup(account, credential) {
        return Ok(());
    }
    let _one_at_a_time = account.auth.setup.lock().await;
    if account.identity.load().project.is_some() {
        return Ok(());
    }
    let Credential::OAuth { access_token, .. } = credential else {
        return Ok(());
    };
    let discovered = google::discover_project(app.client(), &account.base_url, access_token).await;
    let setup = discovered.map_err(|error| not_ready(&account.name, &error))?;
    let Some(project) = setup.project else {
        return Err(not_ready(&account.name, &SetupError::NoProject));
    };
    let current = account.identity.load_full();
    account.identity.store(Arc::new(UpstreamIdentity {
        project: Some(project.clone()),
        ..(*current).clone()
    }));
    tracing::info!(account = %account.name, tier = setup.tier.as_deref().unwrap_or("-"), "Code Assist project discovered");
    remember(app, account, project);
    Ok(())
}

/// Save a discovered project in the background (shutdown waits for it).
fn remember(app: &AppState, account: &UpstreamAccount, project: String) {
    let (Some(store), Some(store_id)) = (app.accounts().store().cloned(), account.origin.store_id)
    else {
        return;
    };
    let name = account.name.clone();
    app.accounts().track(async move {
        let saved = tokio::task::spawn_blocking(move || store.remember_project(store_id, &project))
            .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(account = %name, %error, "could not remember the Code Assist project; it is discovered again next time")
            }
            Err(_) => tracing::warn!(account = %name, "the store task panicked"),
        }
    });
}

fn not_ready(account: &str, error: &SetupError) -> NotReady {
    let outcome = match error {
        SetupError::Call(InfoError::RateLimited { retry_after }) => Outcome::RateLimited {
            status: 429,
            retry_after: *retry_after,
        },
        SetupError::Call(InfoError::Status(status @ (401 | 403))) => {
            Outcome::AuthRejected { status: *status }
        }
        SetupError::Call(InfoError::Status(status)) if *status >= 500 => {
            Outcome::ServerError { status: *status }
        }
        SetupError::Call(InfoError::Transport) => Outcome::Connect,
        // An account Code Assist will not set up cannot serve until someone looks at it.
        SetupError::Call(_) | SetupError::NoProject => Outcome::AuthRejected { status: 403 },
    };
    NotReady {
        outcome,
        message: format!("account {account} is not ready: {error}"),
    }
}
