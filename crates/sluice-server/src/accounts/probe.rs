//! Usage probes: learning the quota of subscriptions that carry no traffic.
//!
//! Quota is normally learned from response headers, so an account nobody has used lately is
//! a blank to the scheduler. This task asks the provider's usage endpoint — which spends no
//! quota — about such accounts (Anthropic's `/api/oauth/usage`, Codex's
//! `/backend-api/wham/usage`, Code Assist's `retrieveUserQuota`, which needs the account's
//! project and so sets the account up first): one account per step, steps spread evenly over the probe
//! interval so the probes never come in a burst, each account at most once per interval and
//! only while it has had no traffic for that long. A 429 backs that account off (honouring
//! `retry-after`) and pauses all probing for a while, since the limit is likely the client's.

use std::sync::Arc;
use std::time::Duration;

use sluice_config::{Credential, ProviderKind, Secret};
use sluice_scheduler::{QuotaObservation, Timestamp};
use tokio_util::sync::CancellationToken;

use super::oauth::{self, InfoError};
use super::{chatgpt, google, setup};
use crate::state::{AppState, UpstreamAccount, now};

/// Shortest pause between two probes, however many accounts there are.
const MIN_STEP: Duration = Duration::from_millis(100);
/// Longest backoff of one account.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// How long all probing pauses after a 429 that names no time.
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// Subscriptions (logins) of the providers that can tell their usage.
fn is_subscription(account: &UpstreamAccount) -> bool {
    matches!(
        account.provider,
        ProviderKind::Anthropic | ProviderKind::Codex | ProviderKind::Gemini
    ) && matches!(&**account.credential.load(), Credential::OAuth { .. })
}

/// Whether `account` is idle and due for a probe.
fn due(app: &AppState, account: &UpstreamAccount, interval: Duration, now: Timestamp) -> bool {
    let credential = account.credential.load();
    let Credential::OAuth { expires_at_ms, .. } = &**credential else {
        return false;
    };
    if expires_at_ms.is_some_and(|at| at <= now.as_millis()) {
        return false; // nothing to probe with until the refresh task has done its part
    }
    let state = account.auth.state();
    if state.needs_relogin
        || state.retry_probe_at.is_some_and(|at| at > now)
        || state.probed_at.is_some_and(|at| now.since(at) < interval)
    {
        return false;
    }
    app.pool(account.provider).with(|pool| {
        let enabled = pool.spec(account.id).is_some_and(|s| s.enabled);
        let idle = pool
            .state(account.id)
            .and_then(|s| s.last_used_at)
            .is_none_or(|at| now.since(at) >= interval);
        enabled && idle
    })
}

/// Probe one account and feed what it says to the scheduler. Returns how long all probing
/// should pause (after a 429).
async fn probe(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    interval: Duration,
) -> Option<Duration> {
    let credential = account.credential.load_full();
    let Credential::OAuth { access_token, .. } = &*credential else {
        return None;
    };
    let result = usage(app, account, &credential, access_token).await;
    let now = now();
    match result {
        Ok(observation) => {
            app.pool(account.provider)
                .update(|pool| pool.observe_quota(account.id, &observation, now));
            account.auth.update(|s| {
                s.probed_at = Some(now);
                s.probe_failures = 0;
                s.retry_probe_at = None;
            });
            tracing::debug!(account = %account.name, "usage probed");
            None
        }
        Err(error) => {
            let hinted = match error {
                InfoError::RateLimited { retry_after } => retry_after,
                _ => None,
            };
            let failures = account.auth.update(|s| {
                s.probe_failures += 1;
                let exponent = s.probe_failures.saturating_sub(1).min(6);
                let backoff = hinted
                    .unwrap_or_else(|| interval.saturating_mul(1 << exponent))
                    .min(MAX_BACKOFF);
                s.retry_probe_at = Some(now + backoff);
                s.probe_failures
            });
            tracing::info!(account = %account.name, %error, failures, "usage probe failed; backing off");
            matches!(error, InfoError::RateLimited { .. }).then(|| hinted.unwrap_or(DEFAULT_PAUSE))
        }
    }
}

/// Ask `account`'s provider for its usage.
async fn usage(
    app: &AppState,
    account: &Arc<UpstreamAccount>,
    credential: &Credential,
    access_token: &Secret<String>,
) -> Result<QuotaObservation, InfoError> {
    match account.provider {
        ProviderKind::Codex => {
            let endpoints = app.config().providers.codex.clone();
            let account_id = account.identity.load().chatgpt_account_id.clone();
            chatgpt::usage(
                app.client(),
                &endpoints,
                access_token,
                account_id.as_deref(),
                now(),
            )
            .await
        }
        ProviderKind::Gemini => {
            if let Err(not_ready) = setup::ensure_ready(app, account, credential).await {
                tracing::debug!(account = %account.name, message = %not_ready.message, "cannot probe yet");
                return Err(InfoError::Unreadable);
            }
            let Some(project) = account.identity.load().project.clone() else {
                return Err(InfoError::Unreadable);
            };
            google::user_quota(
                app.client(),
                &account.base_url,
                access_token,
                &project,
                now(),
            )
            .await
        }
        _ => {
            let endpoints = app.config().providers.anthropic.clone();
            oauth::usage(app.client(), &endpoints, access_token, now()).await
        }
    }
}

/// The probe task.
pub(crate) async fn probe_loop(app: AppState, cancel: CancellationToken) {
    let mut cursor = 0usize;
    let mut paused_until: Option<tokio::time::Instant> = None;
    loop {
        let interval = app.config().oauth.usage_probe_interval;
        let subscriptions: Vec<Arc<UpstreamAccount>> = {
            let directory = app.directory();
            let mut list: Vec<_> = directory
                .iter()
                .filter(|a| is_subscription(a))
                .cloned()
                .collect();
            list.sort_by_key(|a| (a.provider.as_str(), a.id));
            list
        };
        let step = if interval.is_zero() || subscriptions.is_empty() {
            // Probing is off or there is nothing to probe: look again later (a reload or a
            // login may change that).
            Duration::from_secs(1)
        } else {
            (interval / subscriptions.len() as u32).max(MIN_STEP)
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(step) => {}
        }
        if interval.is_zero() || subscriptions.is_empty() {
            continue;
        }
        if paused_until.is_some_and(|until| tokio::time::Instant::now() < until) {
            continue;
        }
        let now = now();
        let count = subscriptions.len();
        let next = (0..count)
            .map(|k| (cursor + k) % count)
            .find(|i| due(&app, &subscriptions[*i], interval, now));
        if let Some(index) = next {
            cursor = index + 1;
            if let Some(pause) = probe(&app, &subscriptions[index], interval).await {
                paused_until = Some(tokio::time::Instant::now() + pause);
            }
        }
    }
}
