//! The shared state of a running sluice: configuration, one scheduler pool per provider, the
//! credentials of every account, and the upstream client.
//!
//! Scheduler state lives behind a short synchronous lock per pool (decisions take
//! microseconds and never await). Credentials live apart from the scheduler, in a directory
//! swapped atomically, so the scheduler never holds a secret. Accounts from the store and
//! their upkeep (refresh, probes, reload) are [`crate::accounts`]'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use sluice_config::{AccountConfig, Config, Credential, ProviderKind};
use sluice_scheduler::{
    AccountId, AccountSpec, CredentialKind, Pool, PoolConfig, PoolSnapshot, Timestamp,
};
use tokio::sync::Notify;
use url::Url;

use crate::accounts::{AccountAuth, AccountOrigin, Runtime};
use crate::auth::ClientKeys;
use crate::observe::Telemetry;
use crate::provider::{Provider, Providers, UpstreamIdentity, adapter_for};
use crate::upstream;

/// The current wall-clock time as the scheduler wants it.
pub fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// An account as the proxy uses it to reach the upstream.
///
/// A rename or a settings change replaces the directory entry; `credential`, `identity` and
/// `auth` are shared by every entry of the same account, so a refresh (or a discovered
/// project) lands wherever it is read.
pub struct UpstreamAccount {
    pub id: AccountId,
    pub name: String,
    /// The account's own provider; its pool is `provider.pool()`.
    pub provider: ProviderKind,
    pub base_url: Url,
    pub credential: Arc<ArcSwap<Credential>>,
    /// What identifies the account upstream besides its credential (Codex's ChatGPT
    /// account id, Gemini's Code Assist project).
    pub identity: Arc<ArcSwap<UpstreamIdentity>>,
    /// Builds this account's upstream requests when its provider is not its pool's own (an
    /// Anthropic-compatible third party in the Anthropic pool): its auth style, its model
    /// names. `None`: the route's provider builds them.
    pub adapter: Option<Arc<dyn Provider>>,
    /// Where the account was declared, its row in the store and what is known about it.
    pub origin: AccountOrigin,
    /// Refresh and probe state.
    pub auth: Arc<AccountAuth>,
}

impl UpstreamAccount {
    /// The pool the account is scheduled in.
    pub fn pool(&self) -> ProviderKind {
        self.provider.pool()
    }
}

/// One provider's pool and the signal waiters listen to for capacity changes.
pub struct PoolHandle {
    pub provider: ProviderKind,
    pool: Mutex<Pool>,
    /// Notified whenever a lease is released or an account changes, so held requests look
    /// again at once instead of polling.
    pub changed: Notify,
}

impl PoolHandle {
    fn new(provider: ProviderKind, config: PoolConfig) -> Self {
        PoolHandle {
            provider,
            pool: Mutex::new(Pool::new(config)),
            changed: Notify::new(),
        }
    }

    /// Run `f` on the pool under its lock. Never call from inside `f` anything that awaits.
    pub fn with<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        f(&mut self.pool.lock())
    }

    /// Run `f` on the pool, then wake held requests.
    pub fn update<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        let result = f(&mut self.pool.lock());
        self.changed.notify_waiters();
        result
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        self.with(|pool| pool.snapshot(now()))
    }
}

/// Every account's upstream identity and credential, by pool and pool id.
#[derive(Default)]
pub struct Directory {
    accounts: HashMap<(ProviderKind, AccountId), Arc<UpstreamAccount>>,
}

impl Directory {
    pub(crate) fn from_accounts(accounts: impl IntoIterator<Item = Arc<UpstreamAccount>>) -> Self {
        Directory {
            accounts: accounts
                .into_iter()
                .map(|a| ((a.pool(), a.id), a))
                .collect(),
        }
    }

    /// The account `id` of the pool `provider` belongs to.
    pub fn get(&self, provider: ProviderKind, id: AccountId) -> Option<&Arc<UpstreamAccount>> {
        self.accounts.get(&(provider.pool(), id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<UpstreamAccount>> {
        self.accounts.values()
    }
}

/// Refuse a non-loopback `listen` without `client_keys`: anyone who could reach it could
/// spend the accounts. Checked before anything is bound or opened.
pub fn refuse_exposure(config: &Config) -> Result<(), StartError> {
    if !config.is_loopback_listen() && config.client_keys.is_empty() {
        return Err(StartError::ExposedWithoutKeys(config.listen));
    }
    Ok(())
}

/// Why a configuration could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on non-loopback address {0} without client_keys: anyone who can reach it could spend your accounts"
    )]
    ExposedWithoutKeys(std::net::SocketAddr),
    #[error("could not build the upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Store(#[from] sluice_store::StoreError),
}

struct Inner {
    config: ArcSwap<Config>,
    client_keys: ArcSwap<ClientKeys>,
    pools: HashMap<ProviderKind, Arc<PoolHandle>>,
    directory: ArcSwap<Directory>,
    client: reqwest::Client,
    providers: Providers,
    started_at: Instant,
    accounts: Runtime,
    telemetry: Arc<Telemetry>,
}

/// Cheaply cloneable handle to everything a running sluice shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Build the state for `config`: pools, credentials and the upstream client. Nothing is
    /// persisted and OAuth tokens are never refreshed (a rotated token could not be saved);
    /// [`AppState::with_store`] is what `sluice serve` runs.
    pub fn new(config: Config) -> Result<AppState, StartError> {
        AppState::build(config, None)
    }

    /// Build the state for `config` with durable state in `store`: the accounts added from
    /// the command line join the pool, config-declared subscriptions use the tokens the store
    /// learned, and token refresh commits every rotation to the store before using it.
    pub fn with_store(
        config: Config,
        store: Arc<dyn sluice_store::Store>,
    ) -> Result<AppState, StartError> {
        let state = AppState::build(config, Some(store))?;
        crate::accounts::load_at_start(&state)?;
        Ok(state)
    }

    fn build(
        config: Config,
        store: Option<Arc<dyn sluice_store::Store>>,
    ) -> Result<AppState, StartError> {
        refuse_exposure(&config)?;
        let client = upstream::build_client(&config.upstream)?;
        let pool_config = pool_config(&config);
        let mut pools = HashMap::new();
        for provider in ProviderKind::POOLS {
            pools.insert(
                *provider,
                Arc::new(PoolHandle::new(*provider, pool_config.clone())),
            );
        }
        let mut directory = Directory::default();
        for account in &config.accounts {
            let pool = &pools[&account.provider.pool()];
            let id = pool.with(|p| p.upsert_account(account_spec(account)));
            directory.accounts.insert(
                (account.provider.pool(), id),
                Arc::new(UpstreamAccount {
                    id,
                    name: account.name.clone(),
                    provider: account.provider,
                    base_url: base_url(&config, account),
                    credential: Arc::new(ArcSwap::from_pointee(account.credential.clone())),
                    identity: Arc::new(ArcSwap::from_pointee(identity_of(&account.options))),
                    adapter: adapter_for(account.provider, &account.options),
                    origin: AccountOrigin::config(&account.credential),
                    auth: Arc::new(AccountAuth::default()),
                }),
            );
        }
        let providers = Providers::new(&config);
        let config_path = match &config.source {
            sluice_config::ConfigSource::File(path) => Some(path.clone()),
            sluice_config::ConfigSource::Default => None,
        };
        Ok(AppState(Arc::new(Inner {
            client_keys: ArcSwap::from_pointee(ClientKeys::new(&config.client_keys)),
            config: ArcSwap::from_pointee(config),
            pools,
            directory: ArcSwap::from_pointee(directory),
            client,
            providers,
            started_at: Instant::now(),
            telemetry: Arc::new(Telemetry::new(store.is_some())),
            accounts: Runtime::new(store, config_path),
        })))
    }

    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.0.config.load()
    }

    pub fn client_keys(&self) -> arc_swap::Guard<Arc<ClientKeys>> {
        self.0.client_keys.load()
    }

    /// The pool `provider`'s accounts are scheduled in.
    pub fn pool(&self, provider: ProviderKind) -> &Arc<PoolHandle> {
        &self.0.pools[&provider.pool()]
    }

    /// Every pool, in [`ProviderKind::POOLS`] order.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<PoolHandle>> {
        ProviderKind::POOLS.iter().map(|p| &self.0.pools[p])
    }

    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.0.directory.load()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.0.client
    }

    pub fn providers(&self) -> &Providers {
        &self.0.providers
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.0.started_at.elapsed()
    }

    /// Account upkeep: the store, refresh, probes, reload.
    pub fn accounts(&self) -> &Runtime {
        &self.0.accounts
    }

    /// Metrics, recent requests and the request log.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.0.telemetry
    }

    /// Swap in a new directory (accounts joined, left, renamed or changed).
    pub(crate) fn set_directory(&self, directory: Directory) {
        self.0.directory.store(Arc::new(directory));
    }

    /// Swap in a reloaded configuration: settings, client keys and pool tunables.
    pub(crate) fn set_config(&self, config: Config) {
        let pool_config = pool_config(&config);
        for pool in self.pools() {
            pool.update(|p| p.set_config(pool_config.clone()));
        }
        self.0
            .client_keys
            .store(Arc::new(ClientKeys::new(&config.client_keys)));
        self.0.providers.configure(&config);
        self.0.config.store(Arc::new(config));
    }
}

pub(crate) fn pool_config(config: &Config) -> PoolConfig {
    let s = &config.scheduler;
    PoolConfig {
        // The config crate validated the name against the same list.
        strategy: s.strategy.parse().unwrap_or_default(),
        switch_threshold: s.switch_threshold,
        max_in_flight_per_account: s.max_in_flight_per_account,
        max_in_flight_total: s.max_in_flight_total,
        cooldown: s.cooldown,
        max_cooldown: s.max_cooldown,
        max_wait: config.queue.max_wait,
        ..PoolConfig::default()
    }
}

pub(crate) fn account_spec(account: &AccountConfig) -> AccountSpec {
    AccountSpec {
        name: account.name.clone(),
        provider: account.provider.to_string(),
        kind: match account.credential {
            Credential::ApiKey(_) => CredentialKind::ApiKey,
            Credential::OAuth { .. } => CredentialKind::OAuth,
        },
        priority: account.priority,
        weight: account.weight,
        enabled: account.enabled,
    }
}

pub(crate) fn base_url(config: &Config, account: &AccountConfig) -> Url {
    account.upstream.clone().unwrap_or_else(|| {
        config
            .providers
            .base_url_for(account.provider, account.credential.kind())
            .clone()
    })
}

/// What a config account declares about itself upstream.
pub(crate) fn identity_of(options: &sluice_config::AccountOptions) -> UpstreamIdentity {
    UpstreamIdentity {
        chatgpt_account_id: options.account_id.clone(),
        project: options.project.clone(),
    }
}
