//! The validated configuration: plain types whose values have already passed
//! every rule, plus the built-in defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::prices::PriceTable;
use crate::secret::{MaskedUrl, Secret};

/// Scheduler strategies the server knows how to run, the default first. Adding a
/// strategy means adding its name here (and implementing it in the scheduler, whose
/// `Strategy` names must match these).
pub const KNOWN_STRATEGIES: &[&str] = &[
    "adaptive",
    "sticky",
    "round-robin",
    "least-requests",
    "weighted",
    "fill-first",
    "drain-soonest",
    "maxpool",
];

/// The fully validated sluice configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the proxy listens on.
    pub listen: SocketAddr,
    /// Where sluice keeps its state.
    pub data_dir: PathBuf,
    /// Keys clients must present; empty means no client authentication.
    pub client_keys: Vec<Secret<String>>,
    /// Key for the admin API; `None` disables it.
    pub admin_key: Option<Secret<String>>,
    /// Upstream accounts, in file order.
    pub accounts: Vec<AccountConfig>,
    /// Per-provider endpoints.
    pub providers: Providers,
    /// Request size limits.
    pub limits: Limits,
    /// Timeouts and pooling for upstream connections.
    pub upstream: UpstreamSettings,
    /// Retry policy across accounts.
    pub retry: RetrySettings,
    /// Holding requests while every account is busy or cooling down.
    pub queue: QueueSettings,
    /// Account selection.
    pub scheduler: SchedulerSettings,
    /// Logging and the request log.
    pub log: LogSettings,
    /// What tokens cost, for usage estimates (built-in list prices plus `[prices]`).
    pub prices: PriceTable,
    /// Upkeep of subscription (OAuth) accounts: token refresh and idle usage probes.
    pub oauth: OAuthSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Where this configuration came from.
    pub source: ConfigSource,
}

impl Config {
    /// The built-in defaults (zero accounts), taking `data_dir` from `env`.
    pub fn defaults_with_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: crate::paths::default_data_dir(env),
            client_keys: Vec::new(),
            admin_key: None,
            accounts: Vec::new(),
            providers: Providers::default(),
            limits: Limits::default(),
            upstream: UpstreamSettings::default(),
            retry: RetrySettings::default(),
            queue: QueueSettings::default(),
            scheduler: SchedulerSettings::default(),
            log: LogSettings::default(),
            prices: PriceTable::default(),
            oauth: OAuthSettings::default(),
            shutdown: ShutdownSettings::default(),
            source: ConfigSource::Default,
        }
    }

    /// Whether the listen address only accepts local connections.
    pub fn is_loopback_listen(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// The effective configuration as TOML with every secret shown as `"****"`.
    pub fn to_masked_toml(&self) -> String {
        crate::render::masked_toml(self)
    }
}

impl Default for Config {
    /// The built-in defaults, with `data_dir` derived from the process environment.
    fn default() -> Self {
        Self::defaults_with_env(&crate::process_env)
    }
}

/// Where a [`Config`] was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: built-in defaults (plus environment overrides), or text parsed
    /// without a path.
    Default,
    /// This file.
    File(PathBuf),
}

/// One upstream account.
#[derive(Clone)]
pub struct AccountConfig {
    /// Unique name, `[A-Za-z0-9._@+-]{1,64}`.
    pub name: String,
    /// Which provider's API this account talks to.
    pub provider: ProviderKind,
    /// How the account authenticates.
    pub credential: Credential,
    /// Base URL replacing the provider's for this account.
    pub upstream: Option<Url>,
    /// Lower is preferred.
    pub priority: i32,
    /// Relative capacity, at least 1.
    pub weight: u32,
    /// Disabled accounts are loaded but never scheduled.
    pub enabled: bool,
    /// What some providers need besides the credential (Codex's account id, Gemini's
    /// project, a third party's auth style and model names).
    pub options: AccountOptions,
}

/// Per-provider account settings beyond the credential. None of them is secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountOptions {
    /// Codex: the ChatGPT account (workspace) id the token acts for, sent as
    /// `chatgpt-account-id`.
    pub account_id: Option<String>,
    /// Gemini Google-login accounts: the Code Assist project. Discovered with
    /// `loadCodeAssist` (and remembered) when not given.
    pub project: Option<String>,
    /// Anthropic-compatible accounts: how the key is sent.
    pub auth: AuthStyle,
    /// Anthropic-compatible accounts: Claude model names → the third party's, exact names
    /// first, then `prefix*` patterns longest first, then a lone `*`.
    pub model_map: Vec<(String, String)>,
}

/// How an Anthropic-compatible third party wants its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthStyle {
    /// `x-api-key: <key>`, as Anthropic.
    #[default]
    XApiKey,
    /// `authorization: Bearer <key>`.
    Bearer,
}

impl AuthStyle {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStyle::XApiKey => "x-api-key",
            AuthStyle::Bearer => "bearer",
        }
    }
}

/// The default `priority` of an Anthropic-compatible account: a fallback, used only when
/// no Anthropic account (default priority 0) can serve.
pub const COMPATIBLE_DEFAULT_PRIORITY: i32 = 100;

/// By hand so that a password inside `upstream` stays hidden.
impl fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountConfig")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("credential", &self.credential)
            .field("upstream", &self.upstream.as_ref().map(MaskedUrl))
            .field("priority", &self.priority)
            .field("weight", &self.weight)
            .field("enabled", &self.enabled)
            .field("options", &self.options)
            .finish()
    }
}

/// An upstream provider: which API an account speaks and how it authenticates.
///
/// Each provider's accounts form one scheduler pool, except `anthropic-compatible`
/// accounts (third parties speaking the Messages API), which join the Anthropic pool as
/// fallbacks: see [`ProviderKind::pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Anthropic (Claude API keys and Claude Code subscriptions).
    Anthropic,
    /// A third party speaking the Anthropic Messages API (GLM, Kimi, …) with an API key.
    AnthropicCompatible,
    /// OpenAI Codex with ChatGPT-subscription (OAuth) accounts.
    Codex,
    /// Google Gemini: Google-login (Code Assist) accounts and Gemini API keys.
    Gemini,
    /// The OpenAI API with API keys.
    OpenAI,
}

impl ProviderKind {
    /// Every provider, in the order they are listed in messages.
    pub const ALL: &'static [ProviderKind] = &[
        ProviderKind::Anthropic,
        ProviderKind::AnthropicCompatible,
        ProviderKind::Codex,
        ProviderKind::Gemini,
        ProviderKind::OpenAI,
    ];

    /// The scheduler pools: every provider whose accounts form a pool of their own.
    pub const POOLS: &'static [ProviderKind] = &[
        ProviderKind::Anthropic,
        ProviderKind::Codex,
        ProviderKind::Gemini,
        ProviderKind::OpenAI,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::AnthropicCompatible => "anthropic-compatible",
            ProviderKind::Codex => "codex",
            ProviderKind::Gemini => "gemini",
            ProviderKind::OpenAI => "openai",
        }
    }

    /// The pool this provider's accounts are scheduled in: their own, except that
    /// Anthropic-compatible third parties back up the Anthropic pool.
    pub fn pool(self) -> ProviderKind {
        match self {
            ProviderKind::AnthropicCompatible => ProviderKind::Anthropic,
            other => other,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that is not one of [`ProviderKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {name:?}; accepted values: {}", quoted_list(ProviderKind::ALL.iter().map(|p| p.as_str())))]
pub struct UnknownProvider {
    /// The name that was given.
    pub name: String,
}

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .iter()
            .copied()
            .find(|provider| provider.as_str() == name)
            .ok_or_else(|| UnknownProvider {
                name: name.to_owned(),
            })
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// `"a", "b"` — how accepted values are listed in error messages.
pub(crate) fn quoted_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .map(|value| format!("{value:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an account authenticates upstream.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A provider API key (`x-api-key`).
    ApiKey(Secret<String>),
    /// A subscription OAuth token, refreshable when a refresh token is known.
    OAuth {
        /// Bearer token sent upstream.
        access_token: Secret<String>,
        /// Token used to obtain a new access token.
        refresh_token: Option<Secret<String>>,
        /// When `access_token` expires, in milliseconds since the Unix epoch.
        expires_at_ms: Option<i64>,
    },
}

impl Credential {
    /// Which kind of credential this is.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::ApiKey(_) => CredentialKind::ApiKey,
            Credential::OAuth { .. } => CredentialKind::OAuth,
        }
    }
}

/// The kind of a [`Credential`], without the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// [`Credential::ApiKey`].
    ApiKey,
    /// [`Credential::OAuth`].
    OAuth,
}

impl CredentialKind {
    /// `"api_key"` or `"oauth"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OAuth => "oauth",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CredentialKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Endpoints of every provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Providers {
    /// `[providers.anthropic]`.
    pub anthropic: AnthropicEndpoints,
    /// `[providers.codex]`.
    pub codex: CodexEndpoints,
    /// `[providers.gemini]`.
    pub gemini: GeminiEndpoints,
    /// `[providers.openai]`.
    pub openai: OpenAIEndpoints,
}

/// Anthropic API and OAuth endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct AnthropicEndpoints {
    /// Messages API base URL.
    pub base_url: Url,
    /// OAuth token (and refresh) endpoint.
    pub token_url: Url,
    /// Subscription usage endpoint.
    pub usage_url: Url,
    /// Subscription profile endpoint.
    pub profile_url: Url,
    /// OAuth authorization page for logging in.
    pub authorize_url: Url,
    /// Where the authorization page sends a login that cannot reach a local callback; it
    /// shows the `code#state` to paste into `sluice login`.
    pub manual_redirect_url: Url,
    /// OAuth client id.
    pub client_id: String,
    /// `max_tokens` for a Chat Completions request to a Claude model that names none
    /// (the Messages API requires one).
    pub chat_default_max_tokens: u32,
}

/// By hand so that a password inside a URL stays hidden.
impl fmt::Debug for AnthropicEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicEndpoints")
            .field("base_url", &MaskedUrl(&self.base_url))
            .field("token_url", &MaskedUrl(&self.token_url))
            .field("usage_url", &MaskedUrl(&self.usage_url))
            .field("profile_url", &MaskedUrl(&self.profile_url))
            .field("authorize_url", &MaskedUrl(&self.authorize_url))
            .field("manual_redirect_url", &MaskedUrl(&self.manual_redirect_url))
            .field("client_id", &self.client_id)
            .field("chat_default_max_tokens", &self.chat_default_max_tokens)
            .finish()
    }
}

impl AnthropicEndpoints {
    pub(crate) const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    pub(crate) const DEFAULT_TOKEN_URL: &'static str = "https://platform.claude.com/v1/oauth/token";
    pub(crate) const DEFAULT_USAGE_URL: &'static str = "https://api.anthropic.com/api/oauth/usage";
    pub(crate) const DEFAULT_PROFILE_URL: &'static str =
        "https://api.anthropic.com/api/oauth/profile";
    pub(crate) const DEFAULT_AUTHORIZE_URL: &'static str = "https://claude.ai/oauth/authorize";
    pub(crate) const DEFAULT_MANUAL_REDIRECT_URL: &'static str =
        "https://platform.claude.com/oauth/code/callback";
    pub(crate) const DEFAULT_CLIENT_ID: &'static str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
    pub(crate) const DEFAULT_CHAT_MAX_TOKENS: u32 = 8192;
}

impl Default for AnthropicEndpoints {
    fn default() -> Self {
        Self {
            base_url: builtin_url(Self::DEFAULT_BASE_URL),
            token_url: builtin_url(Self::DEFAULT_TOKEN_URL),
            usage_url: builtin_url(Self::DEFAULT_USAGE_URL),
            profile_url: builtin_url(Self::DEFAULT_PROFILE_URL),
            authorize_url: builtin_url(Self::DEFAULT_AUTHORIZE_URL),
            manual_redirect_url: builtin_url(Self::DEFAULT_MANUAL_REDIRECT_URL),
            client_id: Self::DEFAULT_CLIENT_ID.to_owned(),
            chat_default_max_tokens: Self::DEFAULT_CHAT_MAX_TOKENS,
        }
    }
}

/// Codex (ChatGPT backend) and OpenAI-auth endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct CodexEndpoints {
    /// The Codex Responses base; requests go to `{base_url}/responses`.
    pub base_url: Url,
    /// An account's usage, without spending it (`/backend-api/wham/usage`).
    pub usage_url: Url,
    /// OAuth token (and refresh) endpoint.
    pub token_url: Url,
    /// OAuth authorization page for logging in.
    pub authorize_url: Url,
    /// Where the login returns: the Codex client is registered for
    /// `http://localhost:1455/auth/callback`, so `sluice login` listens there.
    pub redirect_uri: Url,
    /// OAuth client id.
    pub client_id: String,
}

impl fmt::Debug for CodexEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodexEndpoints")
            .field("base_url", &MaskedUrl(&self.base_url))
            .field("usage_url", &MaskedUrl(&self.usage_url))
            .field("token_url", &MaskedUrl(&self.token_url))
            .field("authorize_url", &MaskedUrl(&self.authorize_url))
            .field("redirect_uri", &MaskedUrl(&self.redirect_uri))
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl CodexEndpoints {
    pub(crate) const DEFAULT_BASE_URL: &'static str = "https://chatgpt.com/backend-api/codex";
    pub(crate) const DEFAULT_USAGE_URL: &'static str = "https://chatgpt.com/backend-api/wham/usage";
    pub(crate) const DEFAULT_TOKEN_URL: &'static str = "https://auth.openai.com/oauth/token";
    pub(crate) const DEFAULT_AUTHORIZE_URL: &'static str =
        "https://auth.openai.com/oauth/authorize";
    pub(crate) const DEFAULT_REDIRECT_URI: &'static str = "http://localhost:1455/auth/callback";
    pub(crate) const DEFAULT_CLIENT_ID: &'static str = "app_EMoamEEZ73f0CkXaXp7hrann";
}

impl Default for CodexEndpoints {
    fn default() -> Self {
        Self {
            base_url: builtin_url(Self::DEFAULT_BASE_URL),
            usage_url: builtin_url(Self::DEFAULT_USAGE_URL),
            token_url: builtin_url(Self::DEFAULT_TOKEN_URL),
            authorize_url: builtin_url(Self::DEFAULT_AUTHORIZE_URL),
            redirect_uri: builtin_url(Self::DEFAULT_REDIRECT_URI),
            client_id: Self::DEFAULT_CLIENT_ID.to_owned(),
        }
    }
}

/// Google endpoints for Gemini: Code Assist, the Gemini API and Google's OAuth.
#[derive(Clone)]
pub struct GeminiEndpoints {
    /// Code Assist (`CODE_ASSIST_ENDPOINT`), for Google-login accounts.
    pub code_assist_url: Url,
    /// The Gemini API (`GOOGLE_GEMINI_BASE_URL`), for API keys.
    pub api_url: Url,
    /// Google's OAuth token endpoint (form-encoded; refresh tokens do not rotate).
    pub token_url: Url,
    /// Google's OAuth authorization page.
    pub authorize_url: Url,
    /// Who a token belongs to (the email that names a new account).
    pub userinfo_url: Url,
    /// Where a login that cannot reach a local listener is sent; it shows the code to paste.
    pub manual_redirect_url: Url,
    /// OAuth client id (Gemini CLI's installed-app client, which issued its logins).
    pub client_id: String,
    /// The client's secret. For an installed app it is public (Google ships it in the
    /// client), but masked anyway in case a private client is configured.
    pub client_secret: Secret<String>,
}

impl PartialEq for GeminiEndpoints {
    fn eq(&self, other: &Self) -> bool {
        self.code_assist_url == other.code_assist_url
            && self.api_url == other.api_url
            && self.token_url == other.token_url
            && self.authorize_url == other.authorize_url
            && self.userinfo_url == other.userinfo_url
            && self.manual_redirect_url == other.manual_redirect_url
            && self.client_id == other.client_id
            // Configuration, not an authentication check: timing does not matter here.
            && self.client_secret.expose() == other.client_secret.expose()
    }
}

impl Eq for GeminiEndpoints {}

impl fmt::Debug for GeminiEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiEndpoints")
            .field("code_assist_url", &MaskedUrl(&self.code_assist_url))
            .field("api_url", &MaskedUrl(&self.api_url))
            .field("token_url", &MaskedUrl(&self.token_url))
            .field("authorize_url", &MaskedUrl(&self.authorize_url))
            .field("userinfo_url", &MaskedUrl(&self.userinfo_url))
            .field("manual_redirect_url", &MaskedUrl(&self.manual_redirect_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

impl GeminiEndpoints {
    pub(crate) const DEFAULT_CODE_ASSIST_URL: &'static str = "https://cloudcode-pa.googleapis.com";
    pub(crate) const DEFAULT_API_URL: &'static str = "https://generativelanguage.googleapis.com";
    pub(crate) const DEFAULT_TOKEN_URL: &'static str = "https://oauth2.googleapis.com/token";
    pub(crate) const DEFAULT_AUTHORIZE_URL: &'static str =
        "https://accounts.google.com/o/oauth2/v2/auth";
    pub(crate) const DEFAULT_USERINFO_URL: &'static str =
        "https://www.googleapis.com/oauth2/v2/userinfo";
    pub(crate) const DEFAULT_MANUAL_REDIRECT_URL: &'static str =
        "https://codeassist.google.com/authcode";
    pub(crate) const DEFAULT_CLIENT_ID: &'static str =
        "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";
    /// Gemini CLI's installed-app client secret, published in its source.
    pub(crate) const DEFAULT_CLIENT_SECRET: &'static str = "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";

    /// Whether `client_secret` is the built-in one (which needs no masking to print).
    pub fn has_default_client_secret(&self) -> bool {
        self.client_secret.expose() == Self::DEFAULT_CLIENT_SECRET
    }
}

impl Default for GeminiEndpoints {
    fn default() -> Self {
        Self {
            code_assist_url: builtin_url(Self::DEFAULT_CODE_ASSIST_URL),
            api_url: builtin_url(Self::DEFAULT_API_URL),
            token_url: builtin_url(Self::DEFAULT_TOKEN_URL),
            authorize_url: builtin_url(Self::DEFAULT_AUTHORIZE_URL),
            userinfo_url: builtin_url(Self::DEFAULT_USERINFO_URL),
            manual_redirect_url: builtin_url(Self::DEFAULT_MANUAL_REDIRECT_URL),
            client_id: Self::DEFAULT_CLIENT_ID.to_owned(),
            client_secret: Secret::new(Self::DEFAULT_CLIENT_SECRET.to_owned()),
        }
    }
}

/// The OpenAI API.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAIEndpoints {
    /// API base URL (requests keep their `/v1/...` path).
    pub base_url: Url,
}

impl fmt::Debug for OpenAIEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAIEndpoints")
            .field("base_url", &MaskedUrl(&self.base_url))
            .finish()
    }
}

impl OpenAIEndpoints {
    pub(crate) const DEFAULT_BASE_URL: &'static str = "https://api.openai.com";
}

impl Default for OpenAIEndpoints {
    fn default() -> Self {
        Self {
            base_url: builtin_url(Self::DEFAULT_BASE_URL),
        }
    }
}

impl Providers {
    /// The base URL an account of `provider` uses unless it names its own. Anthropic-
    /// compatible accounts always name theirs; this is the Anthropic one for them. Gemini
    /// accounts use Code Assist or the Gemini API by credential: see
    /// [`Providers::base_url_for`].
    pub fn base_url(&self, provider: ProviderKind) -> &Url {
        match provider {
            ProviderKind::Anthropic | ProviderKind::AnthropicCompatible => &self.anthropic.base_url,
            ProviderKind::Codex => &self.codex.base_url,
            ProviderKind::Gemini => &self.gemini.code_assist_url,
            ProviderKind::OpenAI => &self.openai.base_url,
        }
    }

    /// The base URL for an account of `provider` authenticating with `kind`: Gemini API
    /// keys go to the Gemini API, Google logins to Code Assist.
    pub fn base_url_for(&self, provider: ProviderKind, kind: CredentialKind) -> &Url {
        match (provider, kind) {
            (ProviderKind::Gemini, CredentialKind::ApiKey) => &self.gemini.api_url,
            _ => self.base_url(provider),
        }
    }
}

/// Only for the constants above; a unit test parses every one of them.
fn builtin_url(text: &str) -> Url {
    Url::parse(text).unwrap_or_else(|error| panic!("built-in URL {text} is invalid: {error}"))
}

/// Request size limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body: 32 << 20,
        }
    }
}

/// Timeouts and pooling for upstream connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP + TLS connect time limit.
    pub connect_timeout: Duration,
    /// Time allowed until response headers arrive.
    pub response_timeout: Duration,
    /// Longest silence allowed inside a streamed body.
    pub idle_timeout: Duration,
    /// How long an unused pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10 * 60),
            idle_timeout: Duration::from_secs(5 * 60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// Retry policy across accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// Total attempts per request; 0 means one attempt on each eligible account.
    pub max_attempts: u32,
    /// Attempts on one account before moving on, at least 1.
    pub attempts_per_account: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 0,
            attempts_per_account: 1,
        }
    }
}

/// Holding requests while no account can take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Hold a request when some account recovers within this window.
    pub max_wait: Duration,
    /// SSE ping interval for held streaming requests; never zero.
    pub keepalive: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(30),
            keepalive: Duration::from_secs(5),
        }
    }
}

/// Account selection.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSettings {
    /// One of [`KNOWN_STRATEGIES`].
    pub strategy: String,
    /// Utilization (0, 1] at which the scheduler moves traffic to another account.
    pub switch_threshold: f64,
    /// Concurrent requests per account, at least 1.
    pub max_in_flight_per_account: u32,
    /// Concurrent requests overall, at least 1.
    pub max_in_flight_total: u32,
    /// First cooldown after a transient failure; doubles per consecutive failure.
    pub cooldown: Duration,
    /// Cap for the doubling cooldown; never below `cooldown`.
    pub max_cooldown: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            strategy: KNOWN_STRATEGIES[0].to_owned(),
            switch_threshold: 0.90,
            max_in_flight_per_account: 50,
            max_in_flight_total: 150,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(5 * 60),
        }
    }
}

/// Logging and the request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` `EnvFilter` directive string, e.g. `"info,sluice=debug"`.
    pub level: String,
    /// Keep a row per request in the store (`sluice usage`, the dashboard's charts).
    pub requests: bool,
    /// Request-log rows older than this are deleted.
    pub retention: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            requests: true,
            retention: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// Upkeep of subscription (OAuth) accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// Refresh an access token this long before it expires.
    pub refresh_margin: Duration,
    /// Probe the usage endpoint of subscription accounts that carried no traffic for this
    /// long, about this often; zero turns probing off.
    pub usage_probe_interval: Duration,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(5 * 60),
            usage_probe_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// Longest wait for in-flight requests and streams once shutdown begins.
    pub drain: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            drain: Duration::from_secs(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn builtin_endpoints_parse() {
        let endpoints = AnthropicEndpoints::default();
        assert_eq!(endpoints.base_url.as_str(), "https://api.anthropic.com/");
        assert_eq!(endpoints.authorize_url.host_str(), Some("claude.ai"));
        let codex = CodexEndpoints::default();
        assert_eq!(codex.redirect_uri.port(), Some(1455));
        let gemini = GeminiEndpoints::default();
        assert!(gemini.has_default_client_secret());
        assert_eq!(
            OpenAIEndpoints::default().base_url.as_str(),
            "https://api.openai.com/"
        );
    }

    #[test]
    fn defaults_have_no_accounts_and_listen_locally() {
        let config = Config::defaults_with_env(&no_env);
        assert!(config.accounts.is_empty());
        assert!(config.is_loopback_listen());
        assert_eq!(config.listen.port(), 8787);
        assert_eq!(config.source, ConfigSource::Default);
        assert_eq!(config.scheduler.strategy, "adaptive");
    }

    #[test]
    fn provider_names_round_trip() {
        for provider in ProviderKind::ALL {
            assert_eq!(provider.as_str().parse::<ProviderKind>(), Ok(*provider));
            assert_eq!(provider.to_string(), provider.as_str());
        }
        let error = "mistral".parse::<ProviderKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown provider \"mistral\"; accepted values: \"anthropic\", \"anthropic-compatible\", \"codex\", \"gemini\", \"openai\""
        );
        for pool in ProviderKind::POOLS {
            assert_eq!(pool.pool(), *pool, "a pool is its own");
        }
        assert_eq!(
            ProviderKind::AnthropicCompatible.pool(),
            ProviderKind::Anthropic
        );
    }

    #[test]
    fn credential_kinds() {
        let api = Credential::ApiKey(Secret::from("k"));
        assert_eq!(api.kind(), CredentialKind::ApiKey);
        assert_eq!(api.kind().as_str(), "api_key");
        let oauth = Credential::OAuth {
            access_token: Secret::from("t"),
            refresh_token: None,
            expires_at_ms: None,
        };
        assert_eq!(oauth.kind().to_string(), "oauth");
    }
}
