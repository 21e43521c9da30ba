//! The shared harness: the real sluice server on `127.0.0.1:0` in front of the fake
//! Anthropic upstream, and a real HTTP client.

#![allow(dead_code)]

pub mod pools;
pub mod upkeep;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_config::{AccountConfig, Config, Credential, ProviderKind};
use sluice_fake::{FakeAnthropic, FakeConfig};
use sluice_server::AppState;
use tokio::sync::oneshot;

/// A sluice serving on an ephemeral loopback port until `stop` is sent.
pub struct Serving {
    pub url: String,
    pub stop: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Bind `listen` and serve `state` there, draining for at most `drain` once stopped.
pub async fn serve(state: &AppState, listen: std::net::SocketAddr, drain: Duration) -> Serving {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sluice_server::serve_with_drain(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
        drain,
    ));
    Serving { url, stop, task }
}

/// The tests' HTTP client, keeping up to `max_idle` connections to sluice open.
pub fn http_client(max_idle: usize) -> reqwest::ClientBuilder {
    sluice_server::upstream::install_crypto_provider();
    reqwest::Client::builder().pool_max_idle_per_host(max_idle)
}

/// A Messages request as Claude Code sends it (its own dummy credential included).
pub fn messages_request(
    client: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219")
        .header("x-api-key", "sk-ant-client-own-key")
        .body(body.to_string())
}

/// `GET url`, answered with JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// `GET /status`, as JSON.
pub async fn status_of(client: &reqwest::Client, base: &str) -> serde_json::Value {
    get_json(client, &format!("{base}/status")).await
}

/// An account of the test pool: its name and how it authenticates.
#[derive(Clone)]
pub struct TestAccount {
    pub name: &'static str,
    pub key: &'static str,
    pub oauth: bool,
    pub priority: i32,
}

pub fn api(name: &'static str, key: &'static str) -> TestAccount {
    TestAccount {
        name,
        key,
        oauth: false,
        priority: 0,
    }
}

pub fn oauth(name: &'static str, token: &'static str) -> TestAccount {
    TestAccount {
        name,
        key: token,
        oauth: true,
        priority: 0,
    }
}

pub struct Harness {
    pub fake: FakeAnthropic,
    pub url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub async fn start(accounts: &[TestAccount]) -> Harness {
        Harness::start_with(accounts, |_| {}).await
    }

    /// Start with a config adjusted by `tune` (timeouts, limits, client keys…).
    pub async fn start_with(accounts: &[TestAccount], tune: impl FnOnce(&mut Config)) -> Harness {
        Harness::start_inner(accounts, None, tune).await
    }

    /// Start backed by the SQLite store in `data_dir`, as `sluice serve` runs.
    pub async fn start_with_store(accounts: &[TestAccount], data_dir: &std::path::Path) -> Harness {
        Harness::start_inner(accounts, Some(data_dir), |_| {}).await
    }

    async fn start_inner(
        accounts: &[TestAccount],
        data_dir: Option<&std::path::Path>,
        tune: impl FnOnce(&mut Config),
    ) -> Harness {
        let fake = FakeAnthropic::start(FakeConfig::default()).expect("fake upstream starts");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.upstream.connect_timeout = Duration::from_secs(2);
        config.upstream.response_timeout = Duration::from_secs(5);
        config.upstream.idle_timeout = Duration::from_secs(5);
        config.queue.max_wait = Duration::from_secs(5);
        config.queue.keepalive = Duration::from_millis(200);
        for account in accounts {
            fake.add_account(account.key);
            fake.set_oauth(account.key, account.oauth);
            config
                .accounts
                .push(account_config(account, &fake.base_url()));
        }
        tune(&mut config);
        let listen = config.listen;
        let state = match data_dir {
            Some(dir) => {
                config.data_dir = dir.to_owned();
                let store = sluice_store::SqliteStore::open(dir).expect("store opens");
                AppState::with_store(config, std::sync::Arc::new(store)).expect("state builds")
            }
            None => AppState::new(config).expect("state builds"),
        };
        let Serving { url, stop, task } = serve(&state, listen, Duration::from_secs(2)).await;
        let client = http_client(16).build().unwrap();
        Harness {
            fake,
            url,
            state,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        get_json(&self.client, &self.url(path)).await
    }

    /// POST a Messages request as Claude Code would (its own dummy credential included).
    pub fn messages(&self, body: &serde_json::Value) -> reqwest::RequestBuilder {
        messages_request(&self.client, &self.url, body)
    }

    pub async fn status(&self) -> serde_json::Value {
        status_of(&self.client, &self.url).await
    }

    /// One account's entry in `/status`.
    pub async fn account_status(&self, name: &str) -> serde_json::Value {
        let status = self.status().await;
        status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no account {name} in status"))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn account_config(account: &TestAccount, base_url: &str) -> AccountConfig {
    AccountConfig {
        name: account.name.to_owned(),
        provider: ProviderKind::Anthropic,
        credential: if account.oauth {
            Credential::OAuth {
                access_token: account.key.to_owned().into(),
                refresh_token: None,
                expires_at_ms: None,
            }
        } else {
            Credential::ApiKey(account.key.to_owned().into())
        },
        upstream: Some(base_url.parse().unwrap()),
        priority: account.priority,
        weight: 1,
        enabled: true,
        options: Default::default(),
    }
}

pub fn stream_body(session: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    });
    if let Some(session) = session {
        let user_id =
            serde_json::json!({"device_id": "d", "account_uuid": "", "session_id": session});
        body["metadata"] = serde_json::json!({ "user_id": user_id.to_string() });
    }
    body
}

pub fn plain_body() -> serde_json::Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "ping"}],
    })
}

/// Read a response body frame by frame, keeping each frame as received.
pub async fn frames(response: reqwest::Response) -> (Vec<bytes::Bytes>, Option<String>) {
    let mut response = response;
    let mut frames = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => frames.push(chunk),
            Ok(None) => return (frames, None),
            Err(error) => return (frames, Some(error.to_string())),
        }
    }
}

pub fn concat(frames: &[bytes::Bytes]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.iter().copied()).collect()
}

/// The `event:` names of an SSE body, in order.
pub fn event_names(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("event: ").map(str::to_owned))
        .collect()
}

/// A tracing writer that keeps everything logged, for "no secret in any log line" checks.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}
