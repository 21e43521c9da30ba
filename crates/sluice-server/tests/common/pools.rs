//! A harness for the multi-provider proxy: the real server (with a real SQLite store in a
//! temporary data directory and its background tasks) in front of every fake upstream at
//! once — Anthropic, Codex, Gemini and OpenAI — with every provider URL pointing at its fake.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_config::{AccountConfig, AccountOptions, Config, Credential, ProviderKind};
use sluice_fake::{FakeAnthropic, FakeCodex, FakeConfig, FakeGemini, FakeOpenAI};
use sluice_server::AppState;
use sluice_server::accounts::Tasks;
use sluice_store::{SqliteStore, Store};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Serving, get_json, http_client, serve, status_of};

/// Every fake upstream.
pub struct Upstreams {
    pub anthropic: FakeAnthropic,
    pub codex: FakeCodex,
    pub gemini: FakeGemini,
    pub openai: FakeOpenAI,
}

impl Upstreams {
    pub fn start() -> Upstreams {
        Upstreams {
            anthropic: FakeAnthropic::start(FakeConfig::default()).expect("anthropic fake"),
            codex: FakeCodex::new().expect("codex fake"),
            gemini: FakeGemini::new().expect("gemini fake"),
            openai: FakeOpenAI::new().expect("openai fake"),
        }
    }

    /// Point every provider of `config` at its fake.
    pub fn configure(&self, config: &mut Config) {
        let url = |text: String| -> url::Url { text.parse().unwrap() };
        let anthropic = &mut config.providers.anthropic;
        anthropic.base_url = url(self.anthropic.base_url());
        anthropic.token_url = url(format!("{}/v1/oauth/token", self.anthropic.base_url()));
        anthropic.usage_url = url(format!("{}/api/oauth/usage", self.anthropic.base_url()));
        let codex = &mut config.providers.codex;
        codex.base_url = url(self.codex.base_url());
        codex.usage_url = url(self.codex.usage_url());
        codex.token_url = url(self.codex.token_url());
        codex.authorize_url = url(self.codex.authorize_url());
        let gemini = &mut config.providers.gemini;
        gemini.code_assist_url = url(self.gemini.base_url());
        gemini.api_url = url(self.gemini.base_url());
        gemini.token_url = url(self.gemini.token_url());
        gemini.authorize_url = url(self.gemini.authorize_url());
        gemini.userinfo_url = url(self.gemini.userinfo_url());
        config.providers.openai.base_url = url(self.openai.base_url());
    }
}

/// The running proxy in front of [`Upstreams`].
pub struct Pools {
    pub up: Upstreams,
    pub url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    _data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    tasks: Option<Tasks>,
}

impl Pools {
    /// Start with the accounts `accounts` declares against the fakes (set the fakes up in it).
    pub async fn start(accounts: impl FnOnce(&Upstreams) -> Vec<AccountConfig>) -> Pools {
        Pools::start_with(accounts, |_| {}).await
    }

    /// [`Pools::start`] with the config adjusted by `tune`.
    pub async fn start_with(
        accounts: impl FnOnce(&Upstreams) -> Vec<AccountConfig>,
        tune: impl FnOnce(&mut Config),
    ) -> Pools {
        let up = Upstreams::start();
        let data = tempfile::tempdir().unwrap();
        let mut config = test_config(data.path());
        up.configure(&mut config);
        config.accounts = accounts(&up);
        tune(&mut config);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data.path()).expect("store"));
        let listen = config.listen;
        let state = AppState::with_store(config, store.clone()).expect("state builds");
        let tasks = sluice_server::accounts::spawn_tasks(&state, CancellationToken::new());
        let Serving { url, stop, task } = serve(&state, listen, Duration::from_secs(5)).await;
        let client = http_client(16)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Pools {
            up,
            url,
            state,
            client,
            store,
            _data: data,
            stop: Some(stop),
            task: Some(task),
            tasks: Some(tasks),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        get_json(&self.client, &self.url(path)).await
    }

    pub async fn status(&self) -> Value {
        status_of(&self.client, &self.url).await
    }

    /// One account's entry in `/status`.
    pub async fn account(&self, name: &str) -> Value {
        self.status().await["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no account {name} in status"))
    }

    /// Poll `/status` until `pred` holds (or panic after `timeout`).
    pub async fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if pred(&status) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; status: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.state).await;
        }
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Short timeouts, probing off (tests that probe turn it on).
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.upstream.connect_timeout = Duration::from_secs(2);
    config.upstream.response_timeout = Duration::from_secs(10);
    config.upstream.idle_timeout = Duration::from_secs(10);
    config.queue.max_wait = Duration::from_secs(3);
    config.queue.keepalive = Duration::from_millis(200);
    config.oauth.usage_probe_interval = Duration::ZERO;
    config
}

/// An account of `provider` with `credential`.
pub fn account(
    name: &str,
    provider: ProviderKind,
    credential: Credential,
    options: AccountOptions,
) -> AccountConfig {
    AccountConfig {
        name: name.to_owned(),
        provider,
        credential,
        upstream: None,
        priority: if provider == ProviderKind::AnthropicCompatible {
            sluice_config::COMPATIBLE_DEFAULT_PRIORITY
        } else {
            0
        },
        weight: 1,
        enabled: true,
        options,
    }
}

/// An API-key account.
pub fn key(name: &str, provider: ProviderKind, key: &str) -> AccountConfig {
    account(
        name,
        provider,
        Credential::ApiKey(key.to_owned().into()),
        AccountOptions::default(),
    )
}

/// A login (OAuth) account.
pub fn login(
    name: &str,
    provider: ProviderKind,
    access: &str,
    refresh: Option<&str>,
    expires_at_ms: Option<i64>,
    options: AccountOptions,
) -> AccountConfig {
    account(
        name,
        provider,
        Credential::OAuth {
            access_token: access.to_owned().into(),
            refresh_token: refresh.map(|r| r.to_owned().into()),
            expires_at_ms,
        },
        options,
    )
}

/// A Codex account acting for ChatGPT account `account_id`.
pub fn codex(name: &str, access: &str, account_id: &str) -> AccountConfig {
    login(
        name,
        ProviderKind::Codex,
        access,
        None,
        None,
        AccountOptions {
            account_id: Some(account_id.to_owned()),
            ..AccountOptions::default()
        },
    )
}

/// A captured client request from `fixtures/client-requests/`: method, path, headers (as
/// sent, secrets redacted) and JSON body.
pub struct Captured {
    pub method: http::Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Captured {
    pub fn load(name: &str) -> Captured {
        let text = std::fs::read_to_string(format!(
            "{}/../../fixtures/client-requests/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        Captured {
            method: value["method"].as_str().unwrap().parse().unwrap(),
            path: value["path"].as_str().unwrap().to_owned(),
            headers: value["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap().to_ascii_lowercase(),
                        pair[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
            body: value["body"].clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request against sluice at `base`, headers as captured (minus the connection's
    /// own: host, length, connection), with `body` in place of the captured one.
    pub fn request(
        &self,
        client: &reqwest::Client,
        base: &str,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let mut request = client.request(self.method.clone(), format!("{base}{}", self.path));
        for (name, value) in &self.headers {
            if matches!(
                name.as_str(),
                "host" | "content-length" | "connection" | "accept-encoding"
            ) {
                continue;
            }
            request = request.header(name, value);
        }
        match body.or(Some(&self.body)).filter(|b| !b.is_null()) {
            Some(body) => request.body(body.to_string()),
            None => request,
        }
    }
}

/// The `data:` payloads of an SSE body, as JSON.
pub fn data_events(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .filter(|d| d.trim() != "[DONE]")
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// The `event:` names of an SSE body, in order.
pub fn event_names(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("event: ").map(str::to_owned))
        .collect()
}
