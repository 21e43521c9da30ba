//! Bringing the running pools in line with what the config file and the store declare.
//!
//! [`desired`] merges the two into one list of accounts; [`apply`] makes the pools and the
//! directory match it without disturbing anything in flight: an account that stays keeps
//! everything learned about it (quota, health, conversations), a renamed one keeps its pool
//! id, one that leaves while busy is disabled at once and removed when its last request ends.
//! Applying takes only the pools' short locks; every store read and write happens before or
//! after, off the request path.
//!
//! The store watcher ([`watch_store`]) polls the store's change marker every second and
//! applies what other processes (the CLI) changed, including removals the CLI asked for:
//! carried out when the account is idle, refused (and recorded as refused) when it is not.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sluice_config::{AccountConfig, Config, Credential, ProviderKind};
use sluice_scheduler::{AccountId, AccountSpec, CredentialKind, RemoveError, SavedQuota};
use sluice_store::{
    DeclaredOAuth, OAuthTokens, Origin, QuotaRecord, Removal, Store, StoreError, StoreId,
    StoredAccount, StoredCredential,
};
use tokio_util::sync::CancellationToken;

use super::auth::{AccountAuth, AccountOrigin};
use crate::provider::{Provider, UpstreamIdentity, adapter_for};
use crate::state::{AppState, Directory, UpstreamAccount, base_url, identity_of, now};

/// How often the store watcher looks for changes made by other processes.
pub(crate) const STORE_POLL: Duration = Duration::from_secs(1);

/// One account as it should be.
pub(crate) struct DesiredAccount {
    name: String,
    provider: ProviderKind,
    base_url: url::Url,
    credential: Credential,
    identity: UpstreamIdentity,
    adapter: Option<Arc<dyn Provider>>,
    priority: i32,
    weight: u32,
    enabled: bool,
    origin: AccountOrigin,
    /// The store generation of `credential` (0 when it is not from the store).
    generation: i64,
    needs_relogin: bool,
    relogin_reason: Option<String>,
    in_doubt: bool,
    removal_requested: bool,
}

impl DesiredAccount {
    fn spec(&self) -> AccountSpec {
        AccountSpec {
            name: self.name.clone(),
            provider: self.provider.to_string(),
            kind: match self.credential {
                Credential::ApiKey(_) => CredentialKind::ApiKey,
                Credential::OAuth { .. } => CredentialKind::OAuth,
            },
            priority: self.priority,
            weight: self.weight,
            enabled: self.enabled,
        }
    }
}

fn credential_of(stored: &StoredCredential) -> Credential {
    match stored {
        StoredCredential::ApiKey(key) => Credential::ApiKey(key.clone()),
        StoredCredential::OAuth(tokens) => Credential::OAuth {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at_ms: tokens.expires_at_ms,
        },
    }
}

/// The subscription accounts the config file declares, as the store reconciles them.
pub(crate) fn declared_oauth(config: &Config) -> Vec<DeclaredOAuth> {
    config
        .accounts
        .iter()
        .filter_map(|account| match &account.credential {
            Credential::OAuth {
                access_token,
                refresh_token,
                expires_at_ms,
            } => {
                let tokens = OAuthTokens {
                    access_token: access_token.clone(),
                    refresh_token: refresh_token.clone(),
                    expires_at_ms: *expires_at_ms,
                };
                Some(DeclaredOAuth {
                    name: account.name.clone(),
                    provider: account.provider.to_string(),
                    fingerprint: sluice_store::fingerprint(&tokens),
                    tokens,
                })
            }
            Credential::ApiKey(_) => None,
        })
        .collect()
}

/// Every account the config file and the store declare. A config account keeps the file's
/// settings and takes its tokens from the store when the store has learned newer ones.
/// Command-line accounts come from the store; one that has the name of a config account is
/// left out (the store refuses to create such a pair, so this only happens when the file
/// gains a name the CLI already used: `reconcile_config` reports it).
pub(crate) fn desired(config: &Config, rows: &[StoredAccount]) -> Vec<DesiredAccount> {
    let mut accounts = Vec::with_capacity(config.accounts.len() + rows.len());
    for account in &config.accounts {
        accounts.push(from_config(config, account, rows));
    }
    for row in rows.iter().filter(|r| r.origin == Origin::Cli) {
        if config.accounts.iter().any(|a| a.name == row.name) {
            continue;
        }
        let Ok(provider) = row.provider.parse::<ProviderKind>() else {
            tracing::warn!(account = %row.name, provider = %row.provider, "skipping an account of a provider this sluice does not know");
            continue;
        };
        let credential = credential_of(&row.credential);
        accounts.push(DesiredAccount {
            name: row.name.clone(),
            provider,
            base_url: config
                .providers
                .base_url_for(provider, credential.kind())
                .clone(),
            credential,
            identity: UpstreamIdentity {
                chatgpt_account_id: row.profile.upstream_account.clone(),
                project: row.profile.project.clone(),
            },
            // Command-line accounts are never third parties: those live in the config file.
            adapter: None,
            priority: row.priority,
            weight: row.weight,
            enabled: row.enabled,
            origin: AccountOrigin {
                source: Origin::Cli,
                store_id: Some(row.id),
                plan: row.profile.plan.clone(),
                config_digest: None,
            },
            generation: row.generation,
            needs_relogin: row.needs_relogin,
            relogin_reason: row.relogin_reason.clone(),
            in_doubt: row.refresh_started_at_ms.is_some(),
            removal_requested: matches!(row.removal, Removal::Requested { .. }),
        });
    }
    accounts
}

fn from_config(config: &Config, account: &AccountConfig, rows: &[StoredAccount]) -> DesiredAccount {
    let stored = match account.credential {
        Credential::OAuth { .. } => rows.iter().find(|r| {
            r.origin == Origin::Config
                && r.name == account.name
                && r.provider == account.provider.as_str()
                && r.oauth().is_some()
        }),
        Credential::ApiKey(_) => None,
    };
    let mut desired = DesiredAccount {
        name: account.name.clone(),
        provider: account.provider,
        base_url: base_url(config, account),
        credential: account.credential.clone(),
        identity: identity_of(&account.options),
        adapter: adapter_for(account.provider, &account.options),
        priority: account.priority,
        weight: account.weight,
        enabled: account.enabled,
        origin: AccountOrigin::config(&account.credential),
        generation: 0,
        needs_relogin: false,
        relogin_reason: None,
        in_doubt: false,
        removal_requested: false,
    };
    if let Some(row) = stored {
        desired.credential = credential_of(&row.credential);
        // A project the file does not name may have been discovered and remembered.
        if desired.identity.project.is_none() {
            desired.identity.project.clone_from(&row.profile.project);
        }
        desired.origin = AccountOrigin {
            source: Origin::Config,
            store_id: Some(row.id),
            plan: row.profile.plan.clone(),
            config_digest: None,
        };
        desired.generation = row.generation;
        desired.needs_relogin = row.needs_relogin;
        desired.relogin_reason = row.relogin_reason.clone();
        desired.in_doubt = row.refresh_started_at_ms.is_some();
    }
    desired
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub(crate) struct ApplyReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Accounts that left but still have requests in flight: disabled, removed later.
    pub draining: usize,
    /// Removals the CLI asked for that were carried out: delete these rows.
    pub deleted: Vec<(StoreId, String)>,
    /// Removals the CLI asked for that were refused, with the requests in flight.
    pub refused: Vec<(StoreId, String, u32)>,
}

fn credential_changed(current: &UpstreamAccount, desired: &DesiredAccount) -> bool {
    match (desired.origin.store_id, &desired.origin.config_digest) {
        // Generations only move forward: a stale read of the store never puts back a token
        // that a refresh has since replaced (and killed).
        (Some(_), _) => desired.generation > current.auth.generation(),
        (None, Some(digest)) => current.origin.config_digest.as_ref() != Some(digest),
        (None, None) => false,
    }
}

/// Make the pools and the directory match `desired`.
pub(crate) fn apply(app: &AppState, desired: Vec<DesiredAccount>) -> ApplyReport {
    let now = now();
    let old = app.directory();
    let mut report = ApplyReport::default();
    let mut next: Vec<Arc<UpstreamAccount>> = Vec::with_capacity(desired.len());
    let mut kept: HashSet<(ProviderKind, AccountId)> = HashSet::new();

    for wanted in desired {
        let pool = app.pool(wanted.provider);
        let unclaimed = |u: &&Arc<UpstreamAccount>| {
            u.pool() == wanted.provider.pool() && !kept.contains(&(u.pool(), u.id))
        };
        let existing = old
            .iter()
            .filter(unclaimed)
            .find(|u| {
                wanted.origin.store_id.is_some() && u.origin.store_id == wanted.origin.store_id
            })
            .or_else(|| old.iter().filter(unclaimed).find(|u| u.name == wanted.name))
            .cloned();

        if wanted.removal_requested
            && let Some(store_id) = wanted.origin.store_id
        {
            let removal = match &existing {
                Some(current) => pool.update(|p| p.remove_account(current.id)),
                None => Err(RemoveError::Unknown),
            };
            match removal {
                Ok(_) | Err(RemoveError::Unknown) => {
                    if let Some(current) = &existing {
                        kept.insert((current.pool(), current.id));
                    }
                    report.deleted.push((store_id, wanted.name));
                    continue;
                }
                Err(RemoveError::Busy { in_flight }) => {
                    report
                        .refused
                        .push((store_id, wanted.name.clone(), in_flight));
                }
            }
        }

        let spec = wanted.spec();
        let (id, credential, identity, auth) = match existing {
            Some(current) => {
                kept.insert((current.pool(), current.id));
                if current.name != wanted.name
                    && !pool.with(|p| p.rename_account(current.id, wanted.name.clone()))
                {
                    tracing::warn!(from = %current.name, to = %wanted.name, "cannot rename: the new name is in use; keeping the old");
                    next.push(current);
                    continue;
                }
                pool.with(|p| p.upsert_account(spec));
                if credential_changed(&current, &wanted) {
                    current.auth.advance_generation(wanted.generation);
                    current.credential.store(Arc::new(wanted.credential));
                    current.auth.update(|s| {
                        s.needs_relogin = wanted.needs_relogin;
                        s.relogin_reason = wanted.relogin_reason.clone();
                        s.in_doubt = wanted.in_doubt;
                        s.retry_refresh_at = None;
                        s.refresh_failures = 0;
                        s.last_refresh_error = None;
                        s.retry_probe_at = None;
                    });
                    *current.auth.unsaved.lock() = None;
                    pool.with(|p| p.credential_changed(current.id));
                    report.changed.push(wanted.name.clone());
                } else if wanted.needs_relogin {
                    current.auth.update(|s| {
                        s.needs_relogin = true;
                        s.relogin_reason = wanted.relogin_reason.clone();
                    });
                }
                // What the store or the file says wins; a project discovered since the
                // last read (and not saved yet) is kept.
                let mut identity = wanted.identity.clone();
                if identity.project.is_none() {
                    identity
                        .project
                        .clone_from(&current.identity.load().project);
                }
                if **current.identity.load() != identity {
                    current.identity.store(Arc::new(identity));
                }
                (
                    current.id,
                    current.credential.clone(),
                    current.identity.clone(),
                    current.auth.clone(),
                )
            }
            None => {
                let id = pool.with(|p| p.upsert_account(spec));
                let auth = Arc::new(AccountAuth::with_generation(wanted.generation));
                auth.update(|s| {
                    s.needs_relogin = wanted.needs_relogin;
                    s.relogin_reason = wanted.relogin_reason.clone();
                    s.in_doubt = wanted.in_doubt;
                });
                // A slot left behind by an earlier removal of the same name is reused.
                pool.with(|p| p.credential_changed(id));
                report.added.push(wanted.name.clone());
                (
                    id,
                    Arc::new(ArcSwap::from_pointee(wanted.credential)),
                    Arc::new(ArcSwap::from_pointee(wanted.identity)),
                    auth,
                )
            }
        };
        if auth.state().needs_relogin
            && pool.with(|p| p.state(id).is_some_and(|s| !s.needs_relogin))
        {
            pool.with(|p| p.mark_needs_relogin(id, now));
        }
        next.push(Arc::new(UpstreamAccount {
            id,
            name: wanted.name,
            provider: wanted.provider,
            base_url: wanted.base_url,
            credential,
            identity,
            adapter: wanted.adapter,
            origin: wanted.origin,
            auth,
        }));
    }

    let live: HashSet<(ProviderKind, AccountId)> = next.iter().map(|a| (a.pool(), a.id)).collect();
    for leaving in old.iter().filter(|u| !kept.contains(&(u.pool(), u.id))) {
        report.removed.push(leaving.name.clone());
    }
    // Every pool slot no account refers to any more leaves now, or as soon as it is idle.
    for pool in app.pools() {
        let orphans: Vec<AccountId> = pool.with(|p| {
            p.ids()
                .filter(|id| !live.contains(&(pool.provider, *id)))
                .collect()
        });
        for id in orphans {
            let outcome = pool.with(|p| p.remove_account(id));
            if let Err(RemoveError::Busy { .. }) = outcome {
                pool.with(|p| p.set_enabled(id, false));
                report.draining += 1;
            }
        }
    }
    app.set_directory(Directory::from_accounts(next));
    for pool in app.pools() {
        pool.changed.notify_waiters();
    }
    report
}

fn log_report(report: &ApplyReport, why: &str) {
    if report.added.is_empty()
        && report.changed.is_empty()
        && report.removed.is_empty()
        && report.refused.is_empty()
    {
        return;
    }
    tracing::info!(
        added = ?report.added,
        changed = ?report.changed,
        removed = ?report.removed,
        draining = report.draining,
        "accounts updated ({why})"
    );
}

/// Run a blocking store call off the async threads.
pub(crate) async fn blocking<R: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Corrupt("a store task panicked".to_owned())),
    }
}

/// At start: reconcile the config's subscriptions with the store, load every stored
/// account and the quota learned by the last run. Blocking (the server is not serving yet).
pub(crate) fn load_at_start(app: &AppState) -> Result<(), StoreError> {
    let Some(store) = app.accounts().store().cloned() else {
        return Ok(());
    };
    let config = app.config();
    store.reconcile_config(&declared_oauth(&config))?;
    let rows = store.accounts()?;
    for row in &rows {
        if row.refresh_started_at_ms.is_some() && !row.needs_relogin {
            tracing::warn!(
                account = %row.name,
                "a token refresh was under way when sluice last stopped; its refresh token may be dead. \
                 It is tried once the access token expires; if that fails, log in again"
            );
        }
        if row.needs_relogin {
            tracing::warn!(account = %row.name, "account needs a new login (sluice login --name {})", row.name);
        }
    }
    let report = apply(app, desired(&config, &rows));
    log_report(&report, "start");
    let now = now();
    for pool in app.pools() {
        let saved: Vec<SavedQuota> = store
            .quota()?
            .into_iter()
            .filter(|r| r.provider == pool.provider.as_str())
            .filter_map(|r| {
                Some(SavedQuota {
                    name: r.name,
                    quota: serde_json::from_str(&r.quota_json).ok()?,
                })
            })
            .collect();
        pool.with(|p| p.restore_quota(&saved, now));
    }
    Ok(())
}

/// Read the store and apply it; carry out (or refuse) the removals the CLI asked for.
pub(crate) async fn sync_from_store(app: &AppState) -> Option<ApplyReport> {
    let store = app.accounts().store().cloned()?;
    let rows = match blocking(&store, |s| s.accounts()).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "could not read the accounts from the store");
            return None;
        }
    };
    let report = {
        let _one_at_a_time = app.accounts().applying.lock().await;
        let config = app.config();
        apply(app, desired(&config, &rows))
    };
    for (id, name) in &report.deleted {
        let id = *id;
        match blocking(&store, move |s| s.delete_account(id)).await {
            Ok(_) => tracing::info!(account = %name, "account removed"),
            Err(error) => {
                tracing::error!(account = %name, %error, "could not delete the account from the store")
            }
        }
    }
    for (id, name, in_flight) in &report.refused {
        let (id, in_flight) = (*id, *in_flight);
        if let Err(error) = blocking(&store, move |s| s.refuse_removal(id, in_flight)).await {
            tracing::error!(account = %name, %error, "could not record a refused removal");
        } else {
            tracing::info!(account = %name, in_flight, "removal refused: the account has requests in flight");
        }
    }
    log_report(&report, "store changed");
    Some(report)
}

/// The store watcher task.
pub(crate) async fn watch_store(app: AppState, cancel: CancellationToken) {
    let store = app.accounts().store().cloned();
    // Unknown at first, so the first look applies whatever changed since the start.
    let mut last: Option<u64> = None;
    let mut draining = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(STORE_POLL) => {}
        }
        let Some(store) = &store else {
            // Without a store only the slots of accounts that left while busy need a look.
            retry_draining(&app);
            continue;
        };
        let marker = blocking(store, |s| s.change_marker()).await.ok();
        let changed = marker.is_some() && marker != last;
        if !changed && !draining {
            continue;
        }
        last = marker;
        draining = sync_from_store(&app)
            .await
            .is_some_and(|report| report.draining > 0);
    }
}

/// Without a store: only the slots of accounts that left while busy need another look.
fn retry_draining(app: &AppState) -> bool {
    let directory = app.directory();
    let mut draining = false;
    for pool in app.pools() {
        let orphans: Vec<AccountId> = pool.with(|p| {
            p.ids()
                .filter(|id| directory.get(pool.provider, *id).is_none())
                .collect()
        });
        for id in orphans {
            if let Err(RemoveError::Busy { .. }) = pool.with(|p| p.remove_account(id)) {
                draining = true;
            }
        }
    }
    draining
}

/// Save the quota every pool has learned, so the next run starts from it.
pub(crate) async fn save_quota(app: &AppState) {
    let Some(store) = app.accounts().store().cloned() else {
        return;
    };
    let now = now().as_millis();
    let records: Vec<QuotaRecord> = app
        .pools()
        .flat_map(|pool| {
            let provider = pool.provider.as_str().to_owned();
            pool.with(|p| p.export_quota())
                .into_iter()
                .filter_map(move |saved| {
                    Some(QuotaRecord {
                        provider: provider.clone(),
                        name: saved.name,
                        quota_json: serde_json::to_string(&saved.quota).ok()?,
                        updated_at_ms: now,
                    })
                })
        })
        .collect();
    if let Err(error) = blocking(&store, move |s| s.save_quota(&records)).await {
        tracing::warn!(%error, "could not save the learned quota");
    }
}

/// The quota saver task: every minute, and once more at shutdown (by the caller).
pub(crate) async fn quota_saver(app: AppState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        save_quota(&app).await;
    }
}

#[cfg(test)]
mod tests {
    use sluice_config::Secret;
    use sluice_scheduler::{Decision, Outcome, RequestInfo};

    use super::*;

    fn app() -> AppState {
        AppState::new(Config::default()).expect("state builds")
    }

    fn stored(name: &str, id: i64, generation: i64, access: &str) -> DesiredAccount {
        DesiredAccount {
            name: name.to_owned(),
            provider: ProviderKind::Anthropic,
            base_url: "http://127.0.0.1:9".parse().unwrap(),
            credential: Credential::OAuth {
                access_token: Secret::from(access),
                refresh_token: Some(Secret::from("r")),
                expires_at_ms: None,
            },
            identity: UpstreamIdentity::default(),
            adapter: None,
            priority: 0,
            weight: 1,
            enabled: true,
            origin: AccountOrigin {
                source: Origin::Cli,
                store_id: Some(StoreId(id)),
                plan: None,
                config_digest: None,
            },
            generation,
            needs_relogin: false,
            relogin_reason: None,
            in_doubt: false,
            removal_requested: false,
        }
    }

    fn access_of(app: &AppState, name: &str) -> String {
        let directory = app.directory();
        let account = directory.iter().find(|a| a.name == name).expect("listed");
        match &**account.credential.load() {
            Credential::OAuth { access_token, .. } => access_token.expose().clone(),
            Credential::ApiKey(key) => key.expose().clone(),
        }
    }

    #[test]
    fn a_stale_read_of_the_store_never_puts_back_a_replaced_token() {
        let app = app();
        apply(&app, vec![stored("a", 1, 5, "g5")]);
        assert_eq!(access_of(&app, "a"), "g5");
        // A read from before the last refresh committed arrives late.
        let report = apply(&app, vec![stored("a", 1, 3, "g3")]);
        assert!(report.changed.is_empty());
        assert_eq!(access_of(&app, "a"), "g5");
        apply(&app, vec![stored("a", 1, 6, "g6")]);
        assert_eq!(access_of(&app, "a"), "g6");
    }

    #[test]
    fn a_rename_keeps_the_pool_id_and_what_was_learned() {
        let app = app();
        apply(&app, vec![stored("a", 1, 1, "t")]);
        let pool = app.pool(ProviderKind::Anthropic);
        let id = pool.with(|p| p.id_of("a")).unwrap();
        let Decision::Route(lease) = pool.with(|p| p.acquire(&RequestInfo::default(), &[], now()))
        else {
            panic!("routes")
        };
        pool.with(|p| {
            p.release(
                lease,
                Outcome::Success {
                    tokens: Default::default(),
                },
                now(),
            )
        });
        apply(&app, vec![stored("b", 1, 1, "t")]);
        assert_eq!(pool.with(|p| p.id_of("b")), Some(id));
        assert_eq!(pool.with(|p| p.id_of("a")), None);
        assert_eq!(pool.with(|p| p.state(id).unwrap().completed), 1);
        assert_eq!(app.directory().iter().count(), 1);
    }

    #[test]
    fn an_account_that_leaves_while_busy_takes_no_new_work_and_goes_when_idle() {
        let app = app();
        apply(&app, vec![stored("a", 1, 1, "t"), stored("b", 2, 1, "u")]);
        let pool = app.pool(ProviderKind::Anthropic);
        let a = pool.with(|p| p.id_of("a")).unwrap();
        let request = RequestInfo::default();
        let lease = loop {
            match pool.with(|p| p.acquire(&request, &[], now())) {
                Decision::Route(lease) if lease.account == a => break lease,
                Decision::Route(other) => pool.with(|p| p.release(other, Outcome::Neutral, now())),
                other => panic!("{other:?}"),
            }
        };
        let report = apply(&app, vec![stored("b", 2, 1, "u")]);
        assert_eq!(report.removed, ["a"]);
        assert_eq!(report.draining, 1);
        assert!(app.directory().iter().all(|u| u.name == "b"));
        for _ in 0..4 {
            let Decision::Route(lease) = pool.with(|p| p.acquire(&request, &[], now())) else {
                panic!("b serves")
            };
            assert_ne!(lease.account, a, "a leaving account got new work");
            pool.with(|p| p.release(lease, Outcome::Neutral, now()));
        }
        pool.with(|p| p.release(lease, Outcome::Neutral, now()));
        let report = apply(&app, vec![stored("b", 2, 1, "u")]);
        assert_eq!(report.draining, 0);
        assert_eq!(pool.with(|p| p.len()), 1);
    }
}
