//! A harness for account upkeep: the real server with a real SQLite store in a temporary
//! data directory, its background tasks running, in front of the fake Anthropic API whose
//! OAuth side issues, rotates and checks tokens. Every provider URL points at the fake.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_config::{AccountConfig, Config, Credential, ProviderKind};
use sluice_fake::{FakeAnthropic, FakeConfig, IssuedTokens};
use sluice_server::AppState;
use sluice_server::accounts::Tasks;
use sluice_store::{SqliteStore, Store};
use tokio::sync::oneshot;

use super::{Serving, get_json, http_client, messages_request, serve, status_of};
use tokio_util::sync::CancellationToken;

pub struct Upkeep {
    pub fake: Arc<FakeAnthropic>,
    pub url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    tasks: Option<Tasks>,
    observe: Option<sluice_server::observe::Tasks>,
    cancel: CancellationToken,
}

/// A config whose every provider URL is the fake's, with short timeouts, probing off.
pub fn test_config(fake: &FakeAnthropic, data_dir: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    let base: url::Url = fake.base_url().parse().unwrap();
    let endpoints = &mut config.providers.anthropic;
    endpoints.base_url = base.clone();
    endpoints.token_url = base.join("/v1/oauth/token").unwrap();
    endpoints.usage_url = base.join("/api/oauth/usage").unwrap();
    endpoints.profile_url = base.join("/api/oauth/profile").unwrap();
    endpoints.authorize_url = base.join("/oauth/authorize").unwrap();
    endpoints.manual_redirect_url = base.join("/oauth/code/callback").unwrap();
    config.upstream.connect_timeout = Duration::from_secs(2);
    config.upstream.response_timeout = Duration::from_secs(10);
    config.upstream.idle_timeout = Duration::from_secs(10);
    config.queue.max_wait = Duration::from_secs(5);
    config.queue.keepalive = Duration::from_millis(200);
    config.oauth.usage_probe_interval = Duration::ZERO;
    config
}

/// The config file text that matches [`test_config`]: every provider URL the fake's.
pub fn config_text(fake: &FakeAnthropic, data_dir: &Path, rest: &str) -> String {
    let base = fake.base_url();
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{rest}\n\
         [providers.anthropic]\nbase_url = \"{base}\"\ntoken_url = \"{base}/v1/oauth/token\"\n\
         usage_url = \"{base}/api/oauth/usage\"\nprofile_url = \"{base}/api/oauth/profile\"\n\
         authorize_url = \"{base}/oauth/authorize\"\n\
         [upstream]\nconnect_timeout = \"2s\"\nresponse_timeout = \"10s\"\nidle_timeout = \"10s\"\n\
         [queue]\nmax_wait = \"5s\"\nkeepalive = \"200ms\"\n\
         [oauth]\nusage_probe_interval = \"0s\"\n",
        data_dir.display()
    )
}

/// A config-declared subscription account with these tokens.
pub fn oauth_account(name: &str, tokens: &IssuedTokens) -> AccountConfig {
    AccountConfig {
        name: name.to_owned(),
        provider: ProviderKind::Anthropic,
        credential: Credential::OAuth {
            access_token: tokens.access_token.clone().into(),
            refresh_token: Some(tokens.refresh_token.clone().into()),
            expires_at_ms: Some(tokens.expires_at_ms),
        },
        upstream: None,
        priority: 0,
        weight: 1,
        enabled: true,
        options: Default::default(),
    }
}

/// A config-declared API-key account (the fake must know the key).
pub fn key_account(name: &str, key: &str) -> AccountConfig {
    AccountConfig {
        name: name.to_owned(),
        provider: ProviderKind::Anthropic,
        credential: Credential::ApiKey(key.to_owned().into()),
        upstream: None,
        priority: 0,
        weight: 1,
        enabled: true,
        options: Default::default(),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Upkeep {
    /// Start sluice on a fresh fake and data directory, with `config` built by `configure`.
    pub async fn start(
        data_dir: &Path,
        configure: impl FnOnce(&mut Config, &FakeAnthropic),
    ) -> Upkeep {
        let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).expect("fake starts"));
        Upkeep::start_on(fake, data_dir, |config, fake| configure(config, fake)).await
    }

    /// Start sluice against an existing fake (for restarts).
    pub async fn start_on(
        fake: Arc<FakeAnthropic>,
        data_dir: &Path,
        configure: impl FnOnce(&mut Config, &FakeAnthropic),
    ) -> Upkeep {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data_dir).expect("store opens"));
        Upkeep::start_with_store(fake, data_dir, store, configure).await
    }

    pub async fn start_with_store(
        fake: Arc<FakeAnthropic>,
        data_dir: &Path,
        store: Arc<dyn Store>,
        configure: impl FnOnce(&mut Config, &FakeAnthropic),
    ) -> Upkeep {
        let mut config = test_config(&fake, data_dir);
        configure(&mut config, &fake);
        Upkeep::start_with_config(fake, data_dir, store, config).await
    }

    /// Start from a config file, as `sluice serve --config PATH` does (reloads read it).
    pub async fn start_from_file(fake: Arc<FakeAnthropic>, data_dir: &Path, path: &Path) -> Upkeep {
        let config = sluice_config::load(Some(path)).expect("the config file is valid");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data_dir).expect("store opens"));
        Upkeep::start_with_config(fake, data_dir, store, config).await
    }

    async fn start_with_config(
        fake: Arc<FakeAnthropic>,
        data_dir: &Path,
        store: Arc<dyn Store>,
        config: Config,
    ) -> Upkeep {
        let listen = config.listen;
        let state = AppState::with_store(config, store.clone()).expect("state builds");
        let cancel = CancellationToken::new();
        let tasks = sluice_server::accounts::spawn_tasks(&state, cancel.clone());
        let observe = sluice_server::observe::spawn_tasks(&state, cancel.clone());
        let Serving { url, stop, task } = serve(&state, listen, Duration::from_secs(5)).await;
        let client = http_client(64).build().unwrap();
        Upkeep {
            fake,
            url,
            state,
            client,
            store,
            data_dir: data_dir.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
            tasks: Some(tasks),
            observe: Some(observe),
            cancel,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        get_json(&self.client, &self.url(path)).await
    }

    /// POST a Messages request as Claude Code would.
    pub fn messages(&self, body: &serde_json::Value) -> reqwest::RequestBuilder {
        messages_request(&self.client, &self.url, body)
    }

    pub async fn status(&self) -> serde_json::Value {
        status_of(&self.client, &self.url).await
    }

    pub async fn account_status(&self, name: &str) -> Option<serde_json::Value> {
        let status = self.status().await;
        status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
    }

    /// Poll `/status` until `pred` holds for it (or panic after `timeout`).
    pub async fn wait_for_status(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if pred(&status) {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {what}; status: {status:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop serving (draining), stop the background tasks, flush.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.cancel.cancel();
        if let Some(observe) = self.observe.take() {
            observe.shutdown().await;
        }
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.state).await;
        }
    }
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The refresh token the store holds for `name`.
pub fn stored_refresh_token(store: &dyn Store, name: &str) -> Option<String> {
    store
        .account(name)
        .unwrap()?
        .oauth()?
        .refresh_token
        .as_ref()
        .map(|t| t.expose().clone())
}
