//! Token refresh that never loses a token.
//!
//! Refresh tokens rotate: every refresh kills the token it used. So:
//!
//! - **One refresh per account at a time.** Everyone who needs one (the background task, 50
//!   requests that found the token expired, a 401) waits on the same one.
//! - **Committed before used.** The new tokens are written to the store in a transaction
//!   that is on disk when it returns, and only then put in front of requests. A crash at any
//!   point after that loses nothing.
//! - **Marked before sent.** Before the refresh token leaves, the store notes that a refresh
//!   is under way; if the process dies before the answer is committed, the next start knows
//!   the token is in doubt instead of finding out by surprise.
//! - **Sent again only when it provably never arrived** (connect errors). An answer the
//!   server gave without acting (429, 5xx) waits a backoff; a request that may have arrived
//!   with no usable answer leaves the token in doubt, tried again only once the access token
//!   has expired or been refused, when nothing is left to lose.
//! - **`invalid_grant` and kin are final**: the account is marked as needing a new login, in
//!   the store and the pool, logged once, and never refreshed again until a new login.
//! - The refresh itself runs in a task of its own, so a caller that goes away (a client
//!   disconnecting) never interrupts it between the token server's answer and the commit.

use std::sync::Arc;
use std::time::Duration;

use sluice_config::Credential;
use sluice_scheduler::Timestamp;
use sluice_store::{OAuthTokens, SaveOutcome, Store, StoreId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::oauth::{self, TokenError, TokenServer};
use crate::state::{AppState, UpstreamAccount, now};

/// What a refresh came to.
pub type RefreshResult = Result<(), RefreshError>;

/// Why a refresh did not produce a new token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("the account has no refresh token")]
    NotRefreshable,
    #[error("sluice runs without a store, so a rotated token could not be saved; refresh is off")]
    NoStore,
    #[error("the account needs a new login")]
    NeedsRelogin,
    #[error("not trying again yet")]
    Deferred,
    #[error("{0}")]
    Token(TokenError),
    #[error("could not use the store: {0}")]
    Store(String),
    #[error("the refresh task ended without an answer")]
    Lost,
}

/// Why a refresh is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Ahead of expiry, from the background task.
    Proactive,
    /// A request (or the background task) found the access token expired.
    Expired,
    /// The upstream refused the access token (401).
    Rejected,
}

impl Trigger {
    /// The access token is unusable already, so even a refresh token in doubt is worth a try.
    fn last_chance(self) -> bool {
        !matches!(self, Trigger::Proactive)
    }
}

/// A token expiring sooner than this is treated as expired: it could lapse in flight.
const EXPIRY_SKEW: Duration = Duration::from_secs(5);
/// Sends of a refresh that never reached the token server.
const CONNECT_ATTEMPTS: u32 = 3;
/// Backoff after the token server answered an error, doubling up to the cap.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
const MAX_REFUSED_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The background task looks at every account at least this often…
const MAX_REFRESH_TICK: Duration = Duration::from_secs(15);
/// …and at most this often.
const MIN_REFRESH_TICK: Duration = Duration::from_millis(50);
/// Attempts to commit rotated tokens before using them unsaved (see [`commit`]).
const COMMIT_ATTEMPTS: u32 = 5;

/// Refresh `account`'s credential, unless `seen` is no longer the credential in use (someone
/// refreshed already). Joins the refresh under way, if any.
pub async fn refresh(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    seen: &Arc<Credential>,
    trigger: Trigger,
) -> RefreshResult {
    let mut receiver = match start(app, account, seen, trigger) {
        Started::Done(result) => return result,
        Started::Running(receiver) => receiver,
    };
    loop {
        if let Some(result) = receiver.borrow_and_update().clone() {
            return result;
        }
        if receiver.changed().await.is_err() {
            return receiver.borrow().clone().unwrap_or(Err(RefreshError::Lost));
        }
    }
}

enum Started {
    Done(RefreshResult),
    Running(watch::Receiver<Option<RefreshResult>>),
}

/// Begin (or join) a refresh without waiting for it.
fn start(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    seen: &Arc<Credential>,
    trigger: Trigger,
) -> Started {
    let mut inflight = account.auth.inflight.lock();
    if !Arc::ptr_eq(&account.credential.load_full(), seen) {
        return Started::Done(Ok(()));
    }
    // (A refresh task that died without answering leaves a closed channel: start anew.)
    if let Some(receiver) = inflight.as_ref().filter(|r| r.has_changed().is_ok()) {
        return Started::Running(receiver.clone());
    }
    if let Err(refused) = preflight(app, account, seen, trigger) {
        return Started::Done(Err(refused));
    }
    let (sender, receiver) = watch::channel(None);
    *inflight = Some(receiver.clone());
    drop(inflight);
    let task_app = app.clone();
    let account = account.clone();
    app.accounts().track(async move {
        let result = run(&task_app, &account, trigger).await;
        task_app.telemetry().metrics().token_refresh(
            account.provider.as_str(),
            &account.name,
            result.is_ok(),
        );
        // Clear the slot before announcing, so a late caller sees the new credential (or
        // the backoff) rather than a finished refresh to wait on.
        *account.auth.inflight.lock() = None;
        let _ = sender.send(Some(result));
        // The background task plans its next look around this account's new state.
        task_app.accounts().kick_refresh();
    });
    Started::Running(receiver)
}

/// The checks that need no I/O: is there anything to refresh, and may it be tried now?
fn preflight(
    app: &AppState,
    account: &UpstreamAccount,
    seen: &Credential,
    trigger: Trigger,
) -> RefreshResult {
    let Credential::OAuth {
        refresh_token: Some(_),
        ..
    } = seen
    else {
        return Err(RefreshError::NotRefreshable);
    };
    if app.accounts().store().is_none() {
        return Err(RefreshError::NoStore);
    }
    if account.origin.store_id.is_none()
        || TokenServer::of(&app.config(), account.provider).is_none()
    {
        return Err(RefreshError::NotRefreshable);
    }
    let state = account.auth.state();
    if state.needs_relogin {
        return Err(RefreshError::NeedsRelogin);
    }
    if state.retry_refresh_at.is_some_and(|at| at > now()) {
        return Err(RefreshError::Deferred);
    }
    if state.in_doubt && !trigger.last_chance() {
        return Err(RefreshError::Deferred);
    }
    Ok(())
}

/// Run a blocking store call off the async threads.
async fn blocking<R: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<R, sluice_store::StoreError> + Send + 'static,
) -> Result<R, RefreshError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| RefreshError::Store("the store task panicked".to_owned()))?
        .map_err(|error| RefreshError::Store(error.to_string()))
}

async fn run(app: &AppState, account: &Arc<UpstreamAccount>, trigger: Trigger) -> RefreshResult {
    let (Some(store), Some(store_id)) = (app.accounts().store().cloned(), account.origin.store_id)
    else {
        return Err(RefreshError::NoStore);
    };
    let credential = account.credential.load_full();
    let Credential::OAuth {
        refresh_token: Some(refresh_token),
        ..
    } = &*credential
    else {
        return Err(RefreshError::NotRefreshable);
    };
    let generation = account.auth.generation();
    // Never send a refresh token whose successor could not be saved.
    if let Err(error) = blocking(&store, move |s| s.begin_refresh(store_id, generation)).await {
        tracing::error!(account = %account.name, %error, "not refreshing: the store cannot be written");
        return Err(error);
    }
    tracing::debug!(account = %account.name, ?trigger, "refreshing the access token");
    let Some(server) = TokenServer::of(&app.config(), account.provider) else {
        let _ = blocking(&store, move |s| s.settle_refresh(store_id, generation)).await;
        return Err(RefreshError::NotRefreshable);
    };
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    let answer = loop {
        match oauth::refresh_with(app.client(), &server, refresh_token).await {
            Err(TokenError::Unreached) if attempt < CONNECT_ATTEMPTS => {
                // Nothing was sent: the token is as good as before.
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            answer => break answer,
        }
    };
    match answer {
        Ok(grant) => {
            let mut tokens = grant.into_tokens(now(), Some(refresh_token));
            // A grant without `expires_in` may still carry the expiry in a JWT access token.
            if tokens.expires_at_ms.is_none() {
                tokens.expires_at_ms = super::chatgpt::token_expiry_ms(&tokens.access_token);
            }
            commit(app, account, &store, store_id, generation, tokens).await
        }
        Err(TokenError::Dead { code }) => {
            mark_needs_relogin(app, account, &store, store_id, generation, &code).await;
            Err(RefreshError::Token(TokenError::Dead { code }))
        }
        Err(error @ (TokenError::Refused { .. } | TokenError::Unreached)) => {
            // The token server did not act: the refresh token is still good. Back off.
            let _ = blocking(&store, move |s| s.settle_refresh(store_id, generation)).await;
            let hinted = match &error {
                TokenError::Refused { retry_after, .. } => *retry_after,
                _ => None,
            };
            let failures = account.auth.update(|s| {
                s.refresh_failures += 1;
                s.last_refresh_error = Some(error.to_string());
                let backoff = hinted.unwrap_or_else(|| {
                    let exponent = s.refresh_failures.saturating_sub(1).min(8);
                    REFUSED_BACKOFF.saturating_mul(1 << exponent)
                });
                s.retry_refresh_at = Some(now() + backoff.min(MAX_REFUSED_BACKOFF));
                s.refresh_failures
            });
            tracing::warn!(account = %account.name, %error, failures, "token refresh failed; the refresh token is unaffected and will be tried again");
            Err(RefreshError::Token(error))
        }
        Err(error @ TokenError::Ambiguous(_)) => {
            // The store keeps its "refresh under way" mark: the outcome is unknown.
            account.auth.update(|s| {
                s.in_doubt = true;
                s.refresh_failures += 1;
                s.last_refresh_error = Some(error.to_string());
            });
            tracing::warn!(
                account = %account.name, %error,
                "token refresh has an unknown outcome: the token server may have rotated the refresh token; \
                 it is tried again only once the access token expires or is refused"
            );
            Err(RefreshError::Token(error))
        }
    }
}

/// Save the rotated tokens durably, then put them in front of requests.
///
/// If the store refuses the write for every attempt, the tokens are used anyway for the
/// rest of this run: the old refresh token is already dead, so they are the account's only
/// future. Saving is retried by the refresh loop; a crash before it succeeds would lose the
/// account. This is logged as an error every time.
async fn commit(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    store: &Arc<dyn Store>,
    store_id: StoreId,
    generation: i64,
    tokens: OAuthTokens,
) -> RefreshResult {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=COMMIT_ATTEMPTS {
        let to_save = tokens.clone();
        let saved = blocking(store, move |s| {
            s.save_refreshed(store_id, generation, &to_save)
        })
        .await;
        match saved {
            Ok(SaveOutcome::Saved { generation }) => {
                install(app, account, tokens, generation);
                tracing::info!(account = %account.name, "access token refreshed");
                return Ok(());
            }
            Ok(SaveOutcome::Superseded) => {
                // A login (or a config edit) replaced the credential while this refresh ran;
                // the newer credential wins and these tokens are dropped. The store watcher
                // brings the new one in; nudge it by reading it now.
                tracing::info!(account = %account.name, "credential replaced during a refresh; keeping the newer one");
                super::sync::sync_from_store(app).await;
                return Ok(());
            }
            Ok(SaveOutcome::Gone) => return Ok(()),
            Err(error) => {
                tracing::error!(account = %account.name, %error, attempt, "could not save the rotated refresh token; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(
        account = %account.name,
        "could not save the rotated refresh token: using it unsaved for now; if sluice stops before it is saved, the account needs a new login"
    );
    *account.auth.unsaved.lock() = Some((generation, tokens.clone()));
    install(app, account, tokens, generation);
    Ok(())
}

/// Put committed tokens in front of requests.
fn install(app: &AppState, account: &UpstreamAccount, tokens: OAuthTokens, generation: i64) {
    account.auth.advance_generation(generation);
    account.credential.store(Arc::new(Credential::OAuth {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at_ms: tokens.expires_at_ms,
    }));
    account.auth.update(|s| {
        s.refreshed_at = Some(now());
        s.refreshes += 1;
        s.last_refresh_error = None;
        s.refresh_failures = 0;
        s.retry_refresh_at = None;
        s.in_doubt = false;
    });
    app.pool(account.provider)
        .update(|pool| pool.credential_changed(account.id));
}

async fn mark_needs_relogin(
    app: &AppState,
    account: &UpstreamAccount,
    store: &Arc<dyn Store>,
    store_id: StoreId,
    generation: i64,
    code: &str,
) {
    let reason = format!("the token server refused the refresh token ({code})");
    let stored_reason = reason.clone();
    if let Err(error) = blocking(store, move |s| {
        s.mark_needs_relogin(store_id, generation, &stored_reason)
    })
    .await
    {
        tracing::error!(account = %account.name, %error, "could not record that the account needs a new login");
    }
    let first = account.auth.update(|s| {
        let first = !s.needs_relogin;
        s.needs_relogin = true;
        s.relogin_reason = Some(reason);
        s.in_doubt = false;
        s.last_refresh_error = Some(format!("refused: {code}"));
        first
    });
    app.pool(account.provider)
        .update(|pool| pool.mark_needs_relogin(account.id, now()));
    if first {
        tracing::warn!(
            account = %account.name, code,
            "account needs a new login: the token server refused its refresh token; run `sluice login --name {}`",
            account.name
        );
    }
}

/// The credential to send on `account` now: refreshed first (waiting for it) if it has
/// expired; the background refresh is nudged when it is merely close to expiring.
pub async fn usable_credential(app: &AppState, account: &Arc<UpstreamAccount>) -> Arc<Credential> {
    let credential = account.credential.load_full();
    if let Credential::OAuth {
        refresh_token: Some(_),
        expires_at_ms: Some(expires_at),
        ..
    } = &*credential
    {
        let now = now();
        if *expires_at <= (now + EXPIRY_SKEW).as_millis() {
            let _ = refresh(app, account, &credential, Trigger::Expired).await;
            return account.credential.load_full();
        }
        let margin = app.config().oauth.refresh_margin;
        if *expires_at <= (now + margin).as_millis() {
            app.accounts().kick_refresh();
        }
    }
    credential
}

/// Whether `credential` is a refreshable token that has expired anyway (its refresh failed
/// or was not allowed): not worth sending.
pub fn expired_beyond_refresh(credential: &Credential) -> bool {
    matches!(
        credential,
        Credential::OAuth {
            refresh_token: Some(_),
            expires_at_ms: Some(expires_at),
            ..
        } if *expires_at <= now().as_millis()
    )
}

/// The upstream refused `seen` (401): refresh once. True if a different credential is now
/// in use, so the request is worth sending again on the same account.
pub async fn refresh_after_rejection(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    seen: &Arc<Credential>,
) -> bool {
    if !matches!(
        &**seen,
        Credential::OAuth {
            refresh_token: Some(_),
            ..
        }
    ) {
        return false;
    }
    let _ = refresh(app, account, seen, Trigger::Rejected).await;
    !Arc::ptr_eq(&account.credential.load_full(), seen)
}

/// Whether `account` should be refreshed now by the background task, and why.
fn due(account: &UpstreamAccount, margin: Duration, now: Timestamp) -> Option<Trigger> {
    account.origin.store_id?;
    let credential = account.credential.load();
    let Credential::OAuth {
        refresh_token: Some(_),
        expires_at_ms: Some(expires_at),
        ..
    } = &**credential
    else {
        return None;
    };
    let state = account.auth.state();
    if state.needs_relogin || state.retry_refresh_at.is_some_and(|at| at > now) {
        return None;
    }
    let expired = *expires_at <= (now + EXPIRY_SKEW).as_millis();
    if expired {
        return Some(Trigger::Expired);
    }
    (!state.in_doubt && *expires_at <= (now + margin).as_millis()).then_some(Trigger::Proactive)
}

/// The background task: refresh every subscription a margin before its access token
/// expires, whatever the pool thinks of the account (benched for quota, disabled), so it is
/// ready the moment it is wanted.
pub(crate) async fn refresh_loop(app: AppState, cancel: CancellationToken) {
    loop {
        retry_unsaved(&app).await;
        let margin = app.config().oauth.refresh_margin;
        let now = now();
        // Sleep until the soonest account falls due (or a backoff ends), at most this long.
        let mut next_due = now + MAX_REFRESH_TICK;
        {
            let directory = app.directory();
            for account in directory.iter() {
                if let Some(trigger) = due(account, margin, now) {
                    let seen = account.credential.load_full();
                    // Started, not awaited: one slow token server must not hold up the others.
                    let _ = start(&app, account, &seen, trigger);
                } else if let Some(at) = next_check(account, margin) {
                    next_due = next_due.min(at);
                }
            }
        }
        let wait = now.until(next_due).max(MIN_REFRESH_TICK);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = app.accounts().refresh_wanted() => {}
        }
    }
}

/// When the background task should look at `account` again.
fn next_check(account: &UpstreamAccount, margin: Duration) -> Option<Timestamp> {
    account.origin.store_id?;
    let credential = account.credential.load();
    let Credential::OAuth {
        refresh_token: Some(_),
        expires_at_ms: Some(expires_at),
        ..
    } = &**credential
    else {
        return None;
    };
    let state = account.auth.state();
    if state.needs_relogin {
        return None;
    }
    let expires_at = Timestamp::from_millis(*expires_at);
    let due_at = if state.in_doubt {
        Timestamp::from_millis(expires_at.as_millis() - EXPIRY_SKEW.as_millis() as i64)
    } else {
        Timestamp::from_millis(expires_at.as_millis() - margin.as_millis() as i64)
    };
    Some(match state.retry_refresh_at {
        Some(retry) => due_at.max(retry),
        None => due_at,
    })
}

/// Try again to save tokens that were rotated but could not be saved.
async fn retry_unsaved(app: &AppState) {
    let Some(store) = app.accounts().store().cloned() else {
        return;
    };
    let directory = app.directory();
    for account in directory.iter() {
        let (Some(store_id), Some((generation, tokens))) =
            (account.origin.store_id, account.auth.unsaved.lock().clone())
        else {
            continue;
        };
        let to_save = tokens.clone();
        match blocking(&store, move |s| {
            s.save_refreshed(store_id, generation, &to_save)
        })
        .await
        {
            Ok(SaveOutcome::Saved { generation }) => {
                account.auth.advance_generation(generation);
                *account.auth.unsaved.lock() = None;
                tracing::info!(account = %account.name, "the rotated refresh token is saved now");
            }
            Ok(SaveOutcome::Superseded | SaveOutcome::Gone) => {
                *account.auth.unsaved.lock() = None;
            }
            Err(error) => {
                tracing::error!(account = %account.name, %error, "still cannot save the rotated refresh token");
            }
        }
    }
}
