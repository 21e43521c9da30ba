//! `FakeAnthropic`: the listening server (accept loop, HTTP/1.1 keep-alive or h2c, `TCP_NODELAY`) and
//! the test-facing handle that scripts accounts and reads the request log.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::handler::{Shared, handle};
use crate::listen::{Running, handler};
use crate::oauth::{IssuedTokens, OAuthCounts, OAuthServer, OAuthUser, TokenFault, UsageFault};
use crate::quota::QuotaHeaders;
use crate::record::{RecordedRequest, RequestLog};
use crate::reply::Reply;
use crate::sim::{SimAccount, SimState, SimUsage};

/// Models `GET /v1/models` lists unless configured otherwise.
pub const DEFAULT_MODELS: &[&str] = &["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"];

/// How to start a [`FakeAnthropic`].
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Where to listen (default `127.0.0.1:0`, an ephemeral port).
    pub addr: SocketAddr,
    /// Credentials known from the start (more are added by any account-configuring call).
    pub accounts: Vec<String>,
    /// Accept any credential (unknown ones get a fresh default account) instead of answering 401.
    pub allow_any_credential: bool,
    /// Larger request bodies are answered 413 `request_too_large` (default 32 MiB).
    pub max_body_bytes: usize,
    /// Clock of the quota simulation and the recorded `received_at`.
    pub clock: Clock,
    /// Model ids `GET /v1/models` lists.
    pub models: Vec<String>,
    /// How many of the most recent requests the log keeps (0 keeps none; counting goes on). Default
    /// [`DEFAULT_MAX_RECORDED_REQUESTS`]; lower it for long demos with large bodies.
    pub max_recorded_requests: usize,
}

/// Requests the log keeps unless configured otherwise.
pub const DEFAULT_MAX_RECORDED_REQUESTS: usize = 1_000;

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: Vec::new(),
            allow_any_credential: false,
            max_body_bytes: 32 << 20,
            clock: Clock::system(),
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            max_recorded_requests: DEFAULT_MAX_RECORDED_REQUESTS,
        }
    }
}

impl FakeConfig {
    /// Know credential `key` from the start.
    pub fn account(mut self, key: impl Into<String>) -> Self {
        self.accounts.push(key.into());
        self
    }

    /// Accept any credential.
    pub fn allow_any_credential(mut self) -> Self {
        self.allow_any_credential = true;
        self
    }

    /// Listen on `addr`.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Use `clock` (e.g. [`Clock::manual_now`]) for the quota simulation.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// A fake Anthropic API server running on the current tokio runtime. Dropping it (or [`shutdown`])
/// stops accepting and aborts every open connection.
///
/// Accounts are identified by the credential a request carries (`x-api-key: K` or
/// `authorization: Bearer K`). A credential is known once it is in [`FakeConfig::accounts`] or any of
/// `add_account`, `script`, `set_default`, `set_quota_headers`, `set_sim`, `set_oauth` named it.
///
/// [`shutdown`]: FakeAnthropic::shutdown
#[derive(Debug)]
pub struct FakeAnthropic {
    running: Running,
    shared: Arc<Shared>,
}

impl FakeAnthropic {
    /// Bind and start serving. Must be called from within a tokio runtime.
    pub fn start(config: FakeConfig) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            accounts: Accounts::default(),
            log: RequestLog::new(config.max_recorded_requests),
            clock: config.clock,
            allow_any_credential: AtomicBool::new(config.allow_any_credential),
            max_body_bytes: config.max_body_bytes,
            models: config.models,
            cancel: CancellationToken::new(),
            oauth: OAuthServer::default(),
        });
        for key in &config.accounts {
            shared.accounts.upsert(key, |_| ());
        }
        let handler = handler(shared.clone(), |shared, req| async move {
            handle(&shared, req).await
        });
        let running = Running::start(config.addr, shared.cancel.clone(), handler, "anthropic")?;
        Ok(Self { running, shared })
    }

    /// Start with [`FakeConfig::default`] plus the given known credentials.
    pub fn with_accounts<I, S>(keys: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut config = FakeConfig::default();
        config.accounts.extend(keys.into_iter().map(Into::into));
        Self::start(config)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// `base_url() + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The clock the quota simulation runs on.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Stop accepting and abort all connections (hanging requests are cut).
    pub fn shutdown(&self) {
        self.running.shutdown();
    }

    /// Whether [`FakeAnthropic::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Make credential `key` known (its default reply is [`Reply::ok`]).
    pub fn add_account(&self, key: &str) {
        self.shared.accounts.upsert(key, |_| ());
    }

    /// Forget credential `key` (it will get 401 again); true if it was known.
    pub fn remove_account(&self, key: &str) -> bool {
        self.shared.accounts.remove(key)
    }

    /// The known credentials, sorted.
    pub fn accounts(&self) -> Vec<String> {
        self.shared.accounts.keys()
    }

    /// Accept any credential (true) or answer unknown ones 401 (false).
    pub fn set_allow_any_credential(&self, allow: bool) {
        self.shared
            .allow_any_credential
            .store(allow, Ordering::Relaxed);
    }

    /// Append replies to the FIFO script of `key`; each `/v1/messages` request consumes one.
    pub fn script<I: IntoIterator<Item = Reply>>(&self, key: &str, replies: I) {
        self.shared
            .accounts
            .upsert(key, |a| a.script.extend(replies));
    }

    /// Drop the unconsumed script of `key`.
    pub fn clear_script(&self, key: &str) {
        self.shared.accounts.upsert(key, |a| a.script.clear());
    }

    /// How many scripted replies of `key` are left.
    pub fn script_len(&self, key: &str) -> usize {
        self.shared
            .accounts
            .with(key, false, |a| a.script.len())
            .unwrap_or(0)
    }

    /// The reply used when the script of `key` is empty (and no simulation is set).
    pub fn set_default(&self, key: &str, reply: Reply) {
        self.shared.accounts.upsert(key, |a| a.default = reply);
    }

    /// Static quota headers on every response of `key` (a simulation's own headers take precedence).
    pub fn set_quota_headers(&self, key: &str, quota: impl Into<QuotaHeaders>) {
        let quota = quota.into();
        self.shared.accounts.upsert(key, |a| a.quota = Some(quota));
    }

    /// No more static quota headers for `key`.
    pub fn clear_quota_headers(&self, key: &str) {
        self.shared.accounts.upsert(key, |a| a.quota = None);
    }

    /// Simulate the quota of `key` (fresh windows); replaces the default reply while set.
    pub fn set_sim(&self, key: &str, sim: SimAccount) {
        let state = SimState::new(key, sim);
        self.shared.accounts.upsert(key, |a| a.sim = Some(state));
    }

    /// Stop simulating `key`.
    pub fn clear_sim(&self, key: &str) {
        self.shared.accounts.upsert(key, |a| a.sim = None);
    }

    /// The simulated usage of `key`, if it is simulated.
    pub fn sim_usage(&self, key: &str) -> Option<SimUsage> {
        let now = self.shared.clock.now();
        self.shared
            .accounts
            .with(key, false, |a| a.sim.as_mut().map(|s| s.usage(now)))
            .flatten()
    }

    /// Treat `key` as an OAuth access token: requests must send it as `authorization: Bearer` with
    /// `anthropic-beta` containing `oauth-2025-04-20`, else 401 `authentication_error`.
    pub fn set_oauth(&self, key: &str, oauth: bool) {
        self.shared
            .accounts
            .upsert(key, |a| a.require_oauth_beta = oauth);
    }

    /// The recorded requests (the most recent [`FakeConfig::max_recorded_requests`]), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// The requests that carried credential `key`.
    pub fn requests_for(&self, key: &str) -> Vec<RecordedRequest> {
        self.shared.log.for_credential(key)
    }

    /// How many requests were received since the start or the last [`FakeAnthropic::clear_requests`]
    /// (including any the log no longer keeps).
    pub fn request_count(&self) -> usize {
        self.shared.log.total()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Wait until [`FakeAnthropic::request_count`] reaches `n`; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared.log.wait_for(n, timeout).await
    }

    // ----- the OAuth side (see the `oauth` module) ---------------------------------------

    /// Add (or replace) a subscription user. The first user added is the one the login page
    /// logs in until [`FakeAnthropic::set_login_user`] says otherwise.
    pub fn add_oauth_user(&self, user: OAuthUser) {
        self.shared.oauth.add_user(user);
    }

    /// Change a user (e.g. the utilization its usage endpoint reports).
    pub fn update_oauth_user(&self, email: &str, f: impl FnOnce(&mut OAuthUser)) {
        self.shared.oauth.update_user(email, f);
    }

    /// Whom the login page logs in next.
    pub fn set_login_user(&self, email: &str) {
        self.shared.oauth.set_login_user(email);
    }

    /// Issue a token pair for `email` as if the user had logged in earlier; the access token
    /// works on the Messages API at once.
    pub fn issue_tokens(&self, email: &str) -> IssuedTokens {
        self.shared
            .oauth
            .issue(email, &self.shared.accounts, &self.shared.clock)
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        *self.shared.oauth.access_lifetime.lock() = lifetime;
    }

    /// The client id the OAuth endpoints accept.
    pub fn set_oauth_client_id(&self, client_id: &str) {
        *self.shared.oauth.client_id.lock() = client_id.to_owned();
    }

    /// Make the next refresh requests fail, in order.
    pub fn script_token_faults<I: IntoIterator<Item = TokenFault>>(&self, faults: I) {
        self.shared.oauth.push_token_faults(faults);
    }

    /// Make the next usage requests fail, in order.
    pub fn script_usage_faults<I: IntoIterator<Item = UsageFault>>(&self, faults: I) {
        self.shared.oauth.push_usage_faults(faults);
    }

    /// What the token, profile and login endpoints have seen.
    pub fn oauth_counts(&self) -> OAuthCounts {
        self.shared.oauth.counts()
    }

    /// Usage requests made for `email`.
    pub fn usage_requests(&self, email: &str) -> usize {
        self.shared.oauth.usage_requests(email)
    }

    /// Whether `token` is a refresh token that would still be accepted.
    pub fn is_refresh_token_live(&self, token: &str) -> bool {
        self.shared.oauth.is_refresh_token_live(token)
    }

    /// Wait until the OAuth counters satisfy `pred`; false on timeout.
    pub async fn wait_for_oauth(
        &self,
        timeout: Duration,
        pred: impl Fn(&OAuthCounts) -> bool,
    ) -> bool {
        self.shared.oauth.wait_for(timeout, pred).await
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.shutdown();
    }
}
