//! Turning the raw file into a [`Config`]: applies defaults, resolves `*_env`
//! secrets, and enforces every rule, reporting the first broken one with the
//! key path and the line it sits on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::error::{ConfigError, ErrorKind};
use crate::locate::SourceMap;
use crate::model::{
    AccountConfig, AccountOptions, AuthStyle, COMPATIBLE_DEFAULT_PRIORITY, Config, Credential,
    KNOWN_STRATEGIES, ProviderKind, Providers, quoted_list,
};
use crate::prices::{PriceOverride, PriceTable};
use crate::raw::{RawAccount, RawByteSize, RawConfig, RawDuration, RawPrice, RawProviders};
use crate::secret::Secret;
use crate::units::{parse_byte_size, parse_duration};

const MAX_ACCOUNT_NAME_CHARS: usize = 64;

/// Builds errors that point into one particular source text.
pub(crate) struct Checker<'a> {
    pub map: &'a SourceMap<'a>,
    pub file: Option<&'a Path>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A secret as the file gives it: inline, or the name of a variable holding it.
enum SecretSource {
    Inline(Secret<String>),
    Variable(String),
}

/// A secret plus the key it was given under, for errors about it.
struct GivenSecret {
    key: String,
    source: SecretSource,
}

impl Checker<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(ErrorKind::Invalid, message)
            .with_key(key)
            .with_file(self.file.map(Path::to_path_buf))
            .with_position(self.map.position_of_key(key))
    }

    fn line_of(&self, key: &str) -> Option<usize> {
        self.map.position_of_key(key).map(|position| position.line)
    }

    pub(crate) fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut config = Config::defaults_with_env(self.env);

        if let Some(text) = raw.listen {
            config.listen = text.trim().parse::<SocketAddr>().map_err(|_| {
                self.error(
                    "listen",
                    format!(
                        "invalid address {text:?}; expected IP:port such as \"127.0.0.1:8787\""
                    ),
                )
            })?;
        }
        if let Some(dir) = raw.data_dir {
            if dir.trim().is_empty() {
                return Err(self.error("data_dir", "must not be empty"));
            }
            config.data_dir = PathBuf::from(dir);
        }
        config.client_keys = raw
            .client_keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| self.inline_secret(&format!("client_keys[{index}]"), key))
            .collect::<Result<_, _>>()?;
        config.admin_key = raw
            .admin_key
            .map(|key| self.inline_secret("admin_key", key))
            .transpose()?;

        for (index, account) in raw.accounts.into_iter().enumerate() {
            let account = self.account(index, account, &config.accounts)?;
            config.accounts.push(account);
        }

        self.providers(raw.providers, &mut config.providers)?;

        if let Some(size) = raw.limits.max_request_body {
            config.limits.max_request_body = self.byte_size("limits.max_request_body", size)?;
        }

        let upstream = raw.upstream;
        let settings = &mut config.upstream;
        self.positive_duration(
            "upstream.connect_timeout",
            upstream.connect_timeout,
            &mut settings.connect_timeout,
        )?;
        self.positive_duration(
            "upstream.response_timeout",
            upstream.response_timeout,
            &mut settings.response_timeout,
        )?;
        self.positive_duration(
            "upstream.idle_timeout",
            upstream.idle_timeout,
            &mut settings.idle_timeout,
        )?;
        self.duration(
            "upstream.pool_idle_timeout",
            upstream.pool_idle_timeout,
            &mut settings.pool_idle_timeout,
        )?;
        if let Some(idle) = upstream.pool_max_idle_per_host {
            settings.pool_max_idle_per_host = idle;
        }

        if let Some(max_attempts) = raw.retry.max_attempts {
            config.retry.max_attempts = max_attempts;
        }
        self.at_least_one(
            "retry.attempts_per_account",
            raw.retry.attempts_per_account,
            &mut config.retry.attempts_per_account,
        )?;

        self.duration(
            "queue.max_wait",
            raw.queue.max_wait,
            &mut config.queue.max_wait,
        )?;
        self.positive_duration(
            "queue.keepalive",
            raw.queue.keepalive,
            &mut config.queue.keepalive,
        )?;

        self.scheduler(raw.scheduler, &mut config.scheduler)?;

        self.positive_duration(
            "oauth.refresh_margin",
            raw.oauth.refresh_margin,
            &mut config.oauth.refresh_margin,
        )?;
        self.duration(
            "oauth.usage_probe_interval",
            raw.oauth.usage_probe_interval,
            &mut config.oauth.usage_probe_interval,
        )?;
        self.duration(
            "shutdown.drain",
            raw.shutdown.drain,
            &mut config.shutdown.drain,
        )?;

        if let Some(level) = raw.log.level {
            if level.trim().is_empty() {
                return Err(self.error(
                    "log.level",
                    "must not be empty; use e.g. \"info\" or \"info,sluice=debug\"",
                ));
            }
            config.log.level = level;
        }
        if let Some(requests) = raw.log.requests {
            config.log.requests = requests;
        }
        self.positive_duration(
            "log.retention",
            raw.log.retention,
            &mut config.log.retention,
        )?;
        config.prices = self.prices(raw.prices)?;

        Ok(config)
    }

    fn account(
        &self,
        index: usize,
        mut raw: RawAccount,
        earlier: &[AccountConfig],
    ) -> Result<AccountConfig, ConfigError> {
        let path = format!("accounts[{index}]");
        let key = |field: &str| format!("{path}.{field}");

        let name = raw.name.take().ok_or_else(|| {
            self.error(&path, "missing `name`; every account needs a unique name")
        })?;
        self.account_name(&key("name"), &name)?;
        if let Some(first) = earlier.iter().position(|account| account.name == name) {
            let first_key = format!("accounts[{first}].name");
            let where_first = self.line_of(&first_key).map_or(first_key.clone(), |line| {
                format!("{first_key}, line {line}")
            });
            return Err(self.error(
                &key("name"),
                format!("duplicate account name {name:?} (first used by {where_first})"),
            ));
        }

        let provider = match raw.provider.take() {
            None => ProviderKind::Anthropic,
            Some(text) => text
                .parse::<ProviderKind>()
                .map_err(|unknown| self.error(&key("provider"), unknown.to_string()))?,
        };

        let api_key =
            self.given_secret(&path, "api_key", raw.api_key.take(), raw.api_key_env.take())?;
        let access_token = self.given_secret(
            &path,
            "access_token",
            raw.access_token.take(),
            raw.access_token_env.take(),
        )?;
        let refresh_token = self.given_secret(
            &path,
            "refresh_token",
            raw.refresh_token.take(),
            raw.refresh_token_env.take(),
        )?;

        // Where the credential was given, for errors about the kind of credential.
        let credential_key = api_key
            .as_ref()
            .or(access_token.as_ref())
            .map_or_else(|| path.clone(), |given| given.key.clone());
        let credential = match (api_key, access_token) {
            (Some(_), Some(access)) => {
                return Err(self.error(
                    &access.key,
                    "an account uses either api_key (API key) or access_token (subscription), not both",
                ));
            }
            (None, None) => {
                return Err(self.error(
                    &path,
                    format!(
                        "account {name:?} has no credential; set api_key (or api_key_env) for an API key, \
                         or access_token (or access_token_env) for a subscription"
                    ),
                ));
            }
            (Some(api_key), None) => {
                if let Some(refresh) = refresh_token {
                    return Err(self.error(
                        &refresh.key,
                        "only subscription accounts (access_token) have a refresh token; remove it or use access_token instead of api_key",
                    ));
                }
                if raw.expires_at.is_some() {
                    return Err(self.error(
                        &key("expires_at"),
                        "only subscription accounts (access_token) expire; remove it or use access_token instead of api_key",
                    ));
                }
                Credential::ApiKey(self.resolve_secret(api_key)?)
            }
            (None, Some(access)) => Credential::OAuth {
                access_token: self.resolve_secret(access)?,
                refresh_token: refresh_token
                    .map(|refresh| self.resolve_secret(refresh))
                    .transpose()?,
                expires_at_ms: raw.expires_at,
            },
        };

        let options = self.account_options(
            &path,
            &name,
            provider,
            &credential,
            &credential_key,
            &mut raw,
        )?;
        let upstream = match (provider, raw.upstream) {
            (ProviderKind::AnthropicCompatible, Some(_)) => {
                return Err(self.error(
                    &key("upstream"),
                    "an anthropic-compatible account names its endpoint with base_url",
                ));
            }
            (ProviderKind::AnthropicCompatible, None) => {
                let text = raw.base_url.take().ok_or_else(|| {
                    self.error(
                        &path,
                        format!(
                            "anthropic-compatible account {name:?} needs base_url (the third party's Messages API, e.g. \"https://open.bigmodel.cn/api/anthropic\")"
                        ),
                    )
                })?;
                Some(self.http_url(&key("base_url"), &text)?)
            }
            (_, upstream) => upstream
                .map(|text| self.http_url(&key("upstream"), &text))
                .transpose()?,
        };

        let mut weight = 1;
        self.at_least_one(&key("weight"), raw.weight, &mut weight)?;
        let default_priority = match provider {
            ProviderKind::AnthropicCompatible => COMPATIBLE_DEFAULT_PRIORITY,
            _ => 0,
        };

        Ok(AccountConfig {
            name,
            provider,
            credential,
            upstream,
            priority: raw.priority.unwrap_or(default_priority),
            weight,
            enabled: raw.enabled.unwrap_or(true),
            options,
        })
    }

    /// The rules that differ by provider: which credential it takes, and the settings only
    /// some providers have.
    fn account_options(
        &self,
        path: &str,
        name: &str,
        provider: ProviderKind,
        credential: &Credential,
        credential_key: &str,
        raw: &mut RawAccount,
    ) -> Result<AccountOptions, ConfigError> {
        let key = |field: &str| format!("{path}.{field}");
        let (api_key_field, access_field) = (credential_key, credential_key);
        match (provider, credential) {
            (ProviderKind::Codex, Credential::ApiKey(_)) => {
                return Err(self.error(
                    api_key_field,
                    "codex accounts are ChatGPT logins: give access_token, refresh_token and account_id \
                     (`sluice import codex` or `sluice login --provider codex` does it for you); \
                     for an OpenAI API key use provider = \"openai\"",
                ));
            }
            (ProviderKind::OpenAI, Credential::OAuth { .. }) => {
                return Err(self.error(
                    access_field,
                    "openai accounts are API keys (api_key); a ChatGPT login is provider = \"codex\"",
                ));
            }
            (ProviderKind::AnthropicCompatible, Credential::OAuth { .. }) => {
                return Err(self.error(
                    access_field,
                    "anthropic-compatible accounts use the third party's API key (api_key)",
                ));
            }
            _ => {}
        }
        let only_for = |field: &str, who: &str| {
            self.error(&key(field), format!("{field} is only for {who} accounts"))
        };
        let mut options = AccountOptions::default();

        if let Some(account_id) = raw.account_id.take() {
            if provider != ProviderKind::Codex {
                return Err(only_for("account_id", "codex"));
            }
            if account_id.is_empty() || has_stray_characters(&account_id) {
                return Err(self.error(
                    &key("account_id"),
                    "must be the ChatGPT account id, without whitespace",
                ));
            }
            options.account_id = Some(account_id);
        } else if provider == ProviderKind::Codex {
            return Err(self.error(
                path,
                format!(
                    "codex account {name:?} needs account_id (the ChatGPT account id, a claim of the login's id_token; \
                     `sluice import codex` reads it from ~/.codex/auth.json)"
                ),
            ));
        }

        if let Some(project) = raw.project.take() {
            match (provider, credential) {
                (ProviderKind::Gemini, Credential::OAuth { .. }) => {}
                (ProviderKind::Gemini, Credential::ApiKey(_)) => {
                    return Err(self.error(
                        &key("project"),
                        "only Google-login accounts (access_token) have a Code Assist project",
                    ));
                }
                _ => return Err(only_for("project", "gemini")),
            }
            if project.is_empty() || has_stray_characters(&project) {
                return Err(self.error(&key("project"), "must be a project id, without whitespace"));
            }
            options.project = Some(project);
        }

        let compatible = provider == ProviderKind::AnthropicCompatible;
        if raw.base_url.is_some() && !compatible {
            return Err(self.error(
                &key("base_url"),
                "base_url is only for anthropic-compatible accounts; to send one account elsewhere use upstream",
            ));
        }
        if let Some(auth) = raw.auth.take() {
            if !compatible {
                return Err(only_for("auth", "anthropic-compatible"));
            }
            options.auth = match auth.trim().to_ascii_lowercase().as_str() {
                "x-api-key" => AuthStyle::XApiKey,
                "bearer" => AuthStyle::Bearer,
                _ => {
                    return Err(self.error(
                        &key("auth"),
                        format!("unknown auth style {auth:?}; accepted values: \"x-api-key\", \"bearer\""),
                    ));
                }
            };
        }
        if let Some(map) = raw.model_map.take() {
            if !compatible {
                return Err(only_for("model_map", "anthropic-compatible"));
            }
            options.model_map = self.model_map(&key("model_map"), map)?;
        }
        Ok(options)
    }

    /// The model map in the order it is consulted: exact names, then `prefix*` patterns
    /// longest first (the most specific wins), then a lone `*`.
    fn model_map(
        &self,
        key: &str,
        map: std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        for (from, to) in &map {
            if from.trim().is_empty() || to.trim().is_empty() {
                return Err(self.error(
                    key,
                    "model names must not be empty (map \"claude-name\" = \"their-name\"; \"claude-*\" and \"*\" are patterns)",
                ));
            }
        }
        let mut entries: Vec<(String, String)> = map.into_iter().collect();
        let rank = |from: &str| match from.strip_suffix('*') {
            None => (0, 0),
            Some("") => (2, 0),
            Some(prefix) => (1, usize::MAX - prefix.len()),
        };
        entries.sort_by_key(|(from, _)| rank(from));
        Ok(entries)
    }

    fn account_name(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        check_account_name(name).map_err(|message| self.error(key, message))
    }

    /// Picks between `field` and `field_env`, refusing both at once.
    fn given_secret(
        &self,
        account: &str,
        field: &str,
        inline: Option<Secret<String>>,
        variable: Option<String>,
    ) -> Result<Option<GivenSecret>, ConfigError> {
        let inline_key = format!("{account}.{field}");
        let variable_key = format!("{account}.{field}_env");
        match (inline, variable) {
            (Some(_), Some(_)) => Err(self.error(
                &variable_key,
                format!("give either {field} or {field}_env, not both"),
            )),
            (Some(secret), None) => Ok(Some(GivenSecret {
                key: inline_key,
                source: SecretSource::Inline(secret),
            })),
            (None, Some(name)) => Ok(Some(GivenSecret {
                key: variable_key,
                source: SecretSource::Variable(name),
            })),
            (None, None) => Ok(None),
        }
    }

    /// Reads a `*_env` variable if needed. Messages name the variable, never its value.
    fn resolve_secret(&self, given: GivenSecret) -> Result<Secret<String>, ConfigError> {
        match given.source {
            SecretSource::Inline(secret) => self.inline_secret(&given.key, secret),
            SecretSource::Variable(name) => {
                if name.trim().is_empty() {
                    return Err(self.error(&given.key, "must name an environment variable"));
                }
                let value = (self.env)(&name).ok_or_else(|| {
                    self.error(
                        &given.key,
                        format!("environment variable {name} is not set"),
                    )
                })?;
                if value.is_empty() {
                    return Err(
                        self.error(&given.key, format!("environment variable {name} is empty"))
                    );
                }
                if has_stray_characters(&value) {
                    return Err(self.error(
                        &given.key,
                        format!(
                            "environment variable {name} contains whitespace or control characters"
                        ),
                    ));
                }
                Ok(Secret::new(value))
            }
        }
    }

    /// Secrets end up in HTTP headers, where stray whitespace (often a trailing
    /// newline pasted along) breaks authentication in confusing ways.
    fn inline_secret(
        &self,
        key: &str,
        secret: Secret<String>,
    ) -> Result<Secret<String>, ConfigError> {
        if secret.expose().is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        if has_stray_characters(secret.expose()) {
            return Err(self.error(key, "contains whitespace or control characters"));
        }
        Ok(secret)
    }

    fn providers(&self, raw: RawProviders, providers: &mut Providers) -> Result<(), ConfigError> {
        let RawProviders {
            anthropic: raw_anthropic,
            codex: raw_codex,
            gemini: raw_gemini,
            openai: raw_openai,
        } = raw;

        let endpoints = &mut providers.anthropic;
        self.urls(
            "anthropic",
            [
                ("base_url", raw_anthropic.base_url, &mut endpoints.base_url),
                (
                    "token_url",
                    raw_anthropic.token_url,
                    &mut endpoints.token_url,
                ),
                (
                    "usage_url",
                    raw_anthropic.usage_url,
                    &mut endpoints.usage_url,
                ),
                (
                    "profile_url",
                    raw_anthropic.profile_url,
                    &mut endpoints.profile_url,
                ),
                (
                    "authorize_url",
                    raw_anthropic.authorize_url,
                    &mut endpoints.authorize_url,
                ),
                (
                    "manual_redirect_url",
                    raw_anthropic.manual_redirect_url,
                    &mut endpoints.manual_redirect_url,
                ),
            ],
        )?;
        self.client_id(
            "providers.anthropic.client_id",
            raw_anthropic.client_id,
            &mut endpoints.client_id,
        )?;
        self.at_least_one(
            "providers.anthropic.chat_default_max_tokens",
            raw_anthropic.chat_default_max_tokens,
            &mut endpoints.chat_default_max_tokens,
        )?;

        let endpoints = &mut providers.codex;
        self.urls(
            "codex",
            [
                ("base_url", raw_codex.base_url, &mut endpoints.base_url),
                ("usage_url", raw_codex.usage_url, &mut endpoints.usage_url),
                ("token_url", raw_codex.token_url, &mut endpoints.token_url),
                (
                    "authorize_url",
                    raw_codex.authorize_url,
                    &mut endpoints.authorize_url,
                ),
                (
                    "redirect_uri",
                    raw_codex.redirect_uri,
                    &mut endpoints.redirect_uri,
                ),
            ],
        )?;
        if endpoints.redirect_uri.scheme() != "http"
            || endpoints.redirect_uri.port_or_known_default().is_none()
        {
            return Err(self.error(
                "providers.codex.redirect_uri",
                "must be a local http:// address (sluice login listens there)",
            ));
        }
        self.client_id(
            "providers.codex.client_id",
            raw_codex.client_id,
            &mut endpoints.client_id,
        )?;

        let endpoints = &mut providers.gemini;
        self.urls(
            "gemini",
            [
                (
                    "code_assist_url",
                    raw_gemini.code_assist_url,
                    &mut endpoints.code_assist_url,
                ),
                ("api_url", raw_gemini.api_url, &mut endpoints.api_url),
                ("token_url", raw_gemini.token_url, &mut endpoints.token_url),
                (
                    "authorize_url",
                    raw_gemini.authorize_url,
                    &mut endpoints.authorize_url,
                ),
                (
                    "userinfo_url",
                    raw_gemini.userinfo_url,
                    &mut endpoints.userinfo_url,
                ),
                (
                    "manual_redirect_url",
                    raw_gemini.manual_redirect_url,
                    &mut endpoints.manual_redirect_url,
                ),
            ],
        )?;
        self.client_id(
            "providers.gemini.client_id",
            raw_gemini.client_id,
            &mut endpoints.client_id,
        )?;
        if let Some(secret) = raw_gemini.client_secret {
            endpoints.client_secret =
                self.inline_secret("providers.gemini.client_secret", secret)?;
        }

        let endpoints = &mut providers.openai;
        self.urls(
            "openai",
            [("base_url", raw_openai.base_url, &mut endpoints.base_url)],
        )?;
        Ok(())
    }

    /// Parse every given URL of `[providers.<provider>]` into its target.
    fn urls<const N: usize>(
        &self,
        provider: &str,
        urls: [(&str, Option<String>, &mut Url); N],
    ) -> Result<(), ConfigError> {
        for (field, text, target) in urls {
            if let Some(text) = text {
                *target = self.http_url(&format!("providers.{provider}.{field}"), &text)?;
            }
        }
        Ok(())
    }

    fn client_id(
        &self,
        key: &str,
        raw: Option<String>,
        target: &mut String,
    ) -> Result<(), ConfigError> {
        if let Some(client_id) = raw {
            if client_id.trim().is_empty() {
                return Err(self.error(key, "must not be empty"));
            }
            *target = client_id;
        }
        Ok(())
    }

    /// Messages show the scheme at most: URLs may carry credentials.
    fn http_url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text.trim()).map_err(|error| {
            self.error(
                key,
                format!("not a valid URL ({error}); expected e.g. \"https://host\""),
            )
        })?;
        match url.scheme() {
            "http" | "https" => Ok(url),
            other => Err(self.error(
                key,
                format!("must be an http:// or https:// URL, not {other}://"),
            )),
        }
    }

    fn prices(&self, raw: BTreeMap<String, RawPrice>) -> Result<PriceTable, ConfigError> {
        let mut overrides = BTreeMap::new();
        for (prefix, price) in raw {
            let key = format!("prices.{prefix}");
            if prefix.trim().is_empty() {
                return Err(self.error(&key, "the model prefix must not be empty"));
            }
            let fields = [
                ("input", price.input),
                ("output", price.output),
                ("cache_write", price.cache_write),
                ("cache_read", price.cache_read),
            ];
            for (field, value) in fields {
                if let Some(value) = value
                    && !(value.is_finite() && value >= 0.0)
                {
                    return Err(self.error(
                        &format!("{key}.{field}"),
                        format!("must be a price in US dollars per million tokens, 0 or more, not {value}"),
                    ));
                }
            }
            overrides.insert(
                prefix,
                PriceOverride {
                    input: price.input,
                    output: price.output,
                    cache_write: price.cache_write,
                    cache_read: price.cache_read,
                },
            );
        }
        PriceTable::with_overrides(overrides)
            .map_err(|error| self.error(&format!("prices.{}", error.prefix), error.to_string()))
    }

    fn byte_size(&self, key: &str, size: RawByteSize) -> Result<u64, ConfigError> {
        let bytes = match size {
            RawByteSize::Bytes(bytes) => {
                u64::try_from(bytes).map_err(|_| self.error(key, "must not be negative"))?
            }
            RawByteSize::Text(text) => {
                parse_byte_size(&text).map_err(|message| self.error(key, message))?
            }
        };
        if bytes == 0 {
            return Err(self.error(key, "must be at least 1 byte"));
        }
        Ok(bytes)
    }

    fn duration(
        &self,
        key: &str,
        raw: Option<RawDuration>,
        target: &mut Duration,
    ) -> Result<(), ConfigError> {
        if let Some(RawDuration(text)) = raw {
            *target = parse_duration(&text).map_err(|message| self.error(key, message))?;
        }
        Ok(())
    }

    fn positive_duration(
        &self,
        key: &str,
        raw: Option<RawDuration>,
        target: &mut Duration,
    ) -> Result<(), ConfigError> {
        self.duration(key, raw, target)?;
        if target.is_zero() {
            return Err(self.error(key, "must be longer than zero"));
        }
        Ok(())
    }

    fn at_least_one(
        &self,
        key: &str,
        raw: Option<u32>,
        target: &mut u32,
    ) -> Result<(), ConfigError> {
        if let Some(value) = raw {
            if value == 0 {
                return Err(self.error(key, "must be at least 1"));
            }
            *target = value;
        }
        Ok(())
    }

    fn scheduler(
        &self,
        raw: crate::raw::RawScheduler,
        settings: &mut crate::model::SchedulerSettings,
    ) -> Result<(), ConfigError> {
        if let Some(strategy) = raw.strategy {
            if !KNOWN_STRATEGIES.contains(&strategy.as_str()) {
                return Err(self.error(
                    "scheduler.strategy",
                    format!(
                        "unknown strategy {strategy:?}; accepted values: {}",
                        quoted_list(KNOWN_STRATEGIES.iter().copied())
                    ),
                ));
            }
            settings.strategy = strategy;
        }
        if let Some(threshold) = raw.switch_threshold {
            // Written so that NaN fails too.
            if !(threshold > 0.0 && threshold <= 1.0) {
                return Err(self.error(
                    "scheduler.switch_threshold",
                    format!("must be greater than 0 and at most 1, got {threshold}"),
                ));
            }
            settings.switch_threshold = threshold;
        }
        self.at_least_one(
            "scheduler.max_in_flight_per_account",
            raw.max_in_flight_per_account,
            &mut settings.max_in_flight_per_account,
        )?;
        self.at_least_one(
            "scheduler.max_in_flight_total",
            raw.max_in_flight_total,
            &mut settings.max_in_flight_total,
        )?;
        let cooldown_given = raw.cooldown.is_some();
        self.positive_duration("scheduler.cooldown", raw.cooldown, &mut settings.cooldown)?;
        self.duration(
            "scheduler.max_cooldown",
            raw.max_cooldown,
            &mut settings.max_cooldown,
        )?;
        if settings.cooldown > settings.max_cooldown {
            // Blame whichever of the two the user actually wrote.
            let key = if cooldown_given {
                "scheduler.cooldown"
            } else {
                "scheduler.max_cooldown"
            };
            return Err(self.error(
                key,
                format!(
                    "cooldown ({}) must not exceed max_cooldown ({})",
                    crate::units::format_duration(settings.cooldown),
                    crate::units::format_duration(settings.max_cooldown)
                ),
            ));
        }
        Ok(())
    }
}

/// Whether `name` is acceptable as an account name (`[A-Za-z0-9._@+-]{1,64}`); the error
/// says what is wrong. Shared by the config file and the accounts the CLI adds.
pub fn check_account_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let length = name.chars().count();
    if length > MAX_ACCOUNT_NAME_CHARS {
        return Err(format!(
            "is {length} characters long; the limit is {MAX_ACCOUNT_NAME_CHARS}"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-');
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{name:?} contains {bad:?}; names may use only letters, digits and . _ @ + -"
        ));
    }
    Ok(())
}

fn has_stray_characters(value: &str) -> bool {
    value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use url::Url;

    use crate::test_support::{error_in, parse};
    use crate::{AuthStyle, COMPATIBLE_DEFAULT_PRIORITY, Credential, ErrorKind, ProviderKind};

    /// Asserts that `source` fails at `key` on `line`, with a message containing `needle`.
    fn assert_fails(source: &str, key: &str, line: usize, needle: &str) {
        let error = error_in(source);
        assert_eq!(error.key.as_deref(), Some(key), "wrong key for: {error}");
        assert_eq!(error.line(), Some(line), "wrong line for: {error}");
        assert!(
            error.message.contains(needle),
            "message lacks {needle:?}: {error}"
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").expect("empty config is valid");
        assert!(config.accounts.is_empty());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(
            config.data_dir.to_str(),
            Some("/home/tester/.local/share/sluice")
        );
        assert_eq!(config.limits.max_request_body, 32 << 20);
    }

    #[test]
    fn several_mistakes_each_point_at_their_own_line() {
        let good = "listen = \"127.0.0.1:9000\"\n\n[[accounts]]\nname = \"a\"\napi_key = \"k1\"\n\n[[accounts]]\nname = \"b\"\napi_key = \"k2\"\nweight = 2\n\n[scheduler]\ncooldown = \"1s\"\n";
        parse(good).expect("baseline is valid");

        let cases = [
            (
                "weight = 2",
                "weight = 0",
                "accounts[1].weight",
                10,
                "at least 1",
            ),
            (
                "listen = \"127.0.0.1:9000\"",
                "listen = \"nope\"",
                "listen",
                1,
                "invalid address",
            ),
            (
                "name = \"b\"",
                "name = \"a\"",
                "accounts[1].name",
                8,
                "duplicate",
            ),
            (
                "cooldown = \"1s\"",
                "cooldown = \"1 fortnight\"",
                "scheduler.cooldown",
                13,
                "invalid duration",
            ),
            (
                "api_key = \"k1\"",
                "api_key_env = \"UNSET_VAR\"",
                "accounts[0].api_key_env",
                5,
                "UNSET_VAR",
            ),
        ];
        for (from, to, key, line, needle) in cases {
            assert_fails(&good.replacen(from, to, 1), key, line, needle);
        }
    }

    #[test]
    fn inline_and_dotted_forms_are_located_too() {
        assert_fails(
            "\naccounts = [\n  { name = \"a\", api_key = \"k\" },\n  { name = \"b\", api_key = \"k\", weight = 0 },\n]\n",
            "accounts[1].weight",
            4,
            "at least 1",
        );
        assert_fails(
            "scheduler.cooldown = \"0s\"\n",
            "scheduler.cooldown",
            1,
            "longer than zero",
        );
        assert_fails(
            "providers = { anthropic = { client_id = \"\" } }\n",
            "providers.anthropic.client_id",
            1,
            "empty",
        );
    }

    #[test]
    fn error_display_has_file_line_column() {
        let error = error_in("[[accounts]]\nname = \"a\"\napi_key = \"k\"\n   weight = 0\n");
        assert_eq!(
            error.to_string(),
            "/etc/sluice/config.toml:4:4: accounts[0].weight: must be at least 1"
        );
        assert_eq!(error.kind, ErrorKind::Invalid);
    }

    #[test]
    fn duplicate_name_points_at_second_and_mentions_first() {
        let source = "[[accounts]]\nname = \"x\"\napi_key = \"k\"\n\n[[accounts]]\nname = \"x\"\napi_key = \"k\"\n";
        assert_fails(
            source,
            "accounts[1].name",
            6,
            "first used by accounts[0].name, line 2",
        );
    }

    #[test]
    fn account_names_are_checked() {
        assert_fails(
            "[[accounts]]\nname = \"has space\"\napi_key = \"k\"\n",
            "accounts[0].name",
            2,
            "' '",
        );
        assert_fails(
            "[[accounts]]\nname = \"\"\napi_key = \"k\"\n",
            "accounts[0].name",
            2,
            "empty",
        );
        let long = format!(
            "[[accounts]]\nname = \"{}\"\napi_key = \"k\"\n",
            "n".repeat(65)
        );
        assert_fails(&long, "accounts[0].name", 2, "limit is 64");
        assert_fails(
            "[[accounts]]\napi_key = \"k\"\n",
            "accounts[0]",
            1,
            "missing `name`",
        );
        let ok = format!(
            "[[accounts]]\nname = \"{}\"\napi_key = \"k\"\n",
            "a.b_c@d+e-F9".repeat(5)
        );
        parse(&ok).expect("allowed characters, 60 long");
    }

    #[test]
    fn exactly_one_credential_kind() {
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key = \"k\"\naccess_token = \"t\"\n",
            "accounts[0].access_token",
            4,
            "not both",
        );
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key_env = \"API\"\naccess_token_env = \"TOKEN\"\n",
            "accounts[0].access_token_env",
            4,
            "not both",
        );
        assert_fails(
            "listen = \"127.0.0.1:1\"\n\n[[accounts]]\nname = \"a\"\nweight = 1\n",
            "accounts[0]",
            3,
            "no credential",
        );
    }

    #[test]
    fn oauth_only_keys_are_rejected_for_api_keys() {
        let base = "[[accounts]]\nname = \"a\"\napi_key = \"k\"\n";
        assert_fails(
            &format!("{base}refresh_token = \"r\"\n"),
            "accounts[0].refresh_token",
            4,
            "refresh token",
        );
        assert_fails(
            &format!("{base}refresh_token_env = \"REFRESH\"\n"),
            "accounts[0].refresh_token_env",
            4,
            "refresh token",
        );
        assert_fails(
            &format!("{base}expires_at = 1\n"),
            "accounts[0].expires_at",
            4,
            "expire",
        );
    }

    #[test]
    fn inline_and_env_twins_conflict() {
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key = \"k\"\napi_key_env = \"API\"\n",
            "accounts[0].api_key_env",
            4,
            "either api_key or api_key_env",
        );
        assert_fails(
            "[[accounts]]\nname = \"a\"\naccess_token = \"t\"\nrefresh_token = \"r\"\nrefresh_token_env = \"REFRESH\"\n",
            "accounts[0].refresh_token_env",
            5,
            "not both",
        );
    }

    #[test]
    fn env_secrets_must_be_set_and_non_empty() {
        let source = "[[accounts]]\nname = \"a\"\naccess_token_env = \"MISSING_TOKEN\"\n";
        assert_fails(
            source,
            "accounts[0].access_token_env",
            3,
            "MISSING_TOKEN is not set",
        );

        let source = "[[accounts]]\nname = \"a\"\naccess_token_env = \"EMPTY\"\n";
        assert_fails(source, "accounts[0].access_token_env", 3, "EMPTY is empty");

        let source = "[[accounts]]\nname = \"a\"\napi_key_env = \"NEWLINE_KEY\"\n";
        let error = error_in(source);
        assert!(error.message.contains("NEWLINE_KEY"), "{error}");
        assert!(
            !error.message.contains("sk-env-newline"),
            "leaked value: {error}"
        );

        let source = "[[accounts]]\nname = \"a\"\naccess_token_env = \"TOKEN\"\nrefresh_token_env = \"REFRESH\"\nexpires_at = 5\n";
        let config = parse(source).expect("variables are set");
        match &config.accounts[0].credential {
            Credential::OAuth {
                access_token,
                refresh_token,
                expires_at_ms,
            } => {
                assert_eq!(access_token.expose(), "sk-env-token");
                assert_eq!(
                    refresh_token.as_ref().map(|r| r.expose().as_str()),
                    Some("sk-env-refresh")
                );
                assert_eq!(*expires_at_ms, Some(5));
            }
            other => panic!("expected OAuth, got {other:?}"),
        }
    }

    #[test]
    fn inline_secrets_must_be_clean() {
        assert_fails(
            "client_keys = [\"ok\", \"\"]\n",
            "client_keys[1]",
            1,
            "empty",
        );
        assert_fails("admin_key = \"has space\"\n", "admin_key", 1, "whitespace");
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key = \"\"\n",
            "accounts[0].api_key",
            3,
            "empty",
        );
    }

    #[test]
    fn numeric_rules() {
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key = \"k\"\nweight = 0\n",
            "accounts[0].weight",
            4,
            "at least 1",
        );
        assert_fails(
            "[retry]\nattempts_per_account = 0\n",
            "retry.attempts_per_account",
            2,
            "at least 1",
        );
        assert_fails(
            "[scheduler]\nmax_in_flight_total = 0\n",
            "scheduler.max_in_flight_total",
            2,
            "at least 1",
        );
        assert_fails(
            "[scheduler]\nmax_in_flight_per_account = 0\n",
            "scheduler.max_in_flight_per_account",
            2,
            "at least 1",
        );
        for bad in ["0", "0.0", "1.01", "-0.5", "nan"] {
            assert_fails(
                &format!("[scheduler]\n\nswitch_threshold = {bad}\n"),
                "scheduler.switch_threshold",
                3,
                "greater than 0 and at most 1",
            );
        }
        let config = parse("[scheduler]\nswitch_threshold = 1\n").expect("1 is allowed");
        assert_eq!(config.scheduler.switch_threshold, 1.0);
    }

    #[test]
    fn request_log_settings() {
        let config = parse("").expect("valid");
        assert!(config.log.requests);
        assert_eq!(config.log.retention.as_secs(), 30 * 24 * 3600);
        let config = parse("[log]\nrequests = false\nretention = \"7d\"\n").expect("valid");
        assert!(!config.log.requests);
        assert_eq!(config.log.retention.as_secs(), 7 * 24 * 3600);
        assert_fails(
            "[log]\nretention = \"0s\"\n",
            "log.retention",
            2,
            "longer than zero",
        );
    }

    #[test]
    fn price_rules() {
        let config = parse(
            "[prices.\"claude-sonnet-4\"]\ninput = 2.5\n\n[prices.glm-4]\ninput = 0.6\noutput = 2.2\n",
        )
        .expect("valid");
        let (_, sonnet) = config.prices.lookup("claude-sonnet-4-5").unwrap();
        assert_eq!((sonnet.input, sonnet.output), (2.5, 15.0));
        assert_eq!(config.prices.family("glm-4.6"), "glm-4");
        assert_fails(
            "[prices.mystery]\ninput = 1.0\n",
            "prices.mystery",
            1,
            "needs both `input` and `output`",
        );
        assert_fails(
            "[prices.gpt-5]\n\noutput = -1.0\n",
            "prices.gpt-5.output",
            3,
            "0 or more",
        );
        assert_fails(
            "[prices.gpt-5]\nrate = 1.0\n",
            "prices.gpt-5.rate",
            2,
            "unknown key `rate`",
        );
    }

    #[test]
    fn duration_rules() {
        assert_fails(
            "[queue]\nkeepalive = \"0s\"\n",
            "queue.keepalive",
            2,
            "longer than zero",
        );
        assert_fails(
            "[upstream]\nconnect_timeout = \"0ms\"\n",
            "upstream.connect_timeout",
            2,
            "longer than zero",
        );
        assert_fails(
            "[scheduler]\ncooldown = \"10m\"\nmax_cooldown = \"5m\"\n",
            "scheduler.cooldown",
            2,
            "must not exceed max_cooldown (5m)",
        );
        assert_fails(
            "[scheduler]\nmax_cooldown = \"1s\"\n",
            "scheduler.max_cooldown",
            2,
            "cooldown (5s)",
        );
        let config =
            parse("[queue]\nmax_wait = \"0s\"\n[upstream]\npool_idle_timeout = \"1h 30m\"\n")
                .expect("valid");
        assert!(config.queue.max_wait.is_zero());
        assert_eq!(config.upstream.pool_idle_timeout.as_secs(), 5400);
    }

    #[test]
    fn account_upkeep_and_shutdown_settings() {
        assert_fails(
            "[oauth]\nrefresh_margin = \"0s\"\n",
            "oauth.refresh_margin",
            2,
            "longer than zero",
        );
        assert_fails(
            "[shutdown]\ndrain = \"soon\"\n",
            "shutdown.drain",
            2,
            "invalid duration",
        );
        assert_fails(
            "[providers.anthropic]\nmanual_redirect_url = \"ftp://x\"\n",
            "providers.anthropic.manual_redirect_url",
            2,
            "http",
        );
        let config = parse(
            "[oauth]\nrefresh_margin = \"10m\"\nusage_probe_interval = \"0s\"\n[shutdown]\ndrain = \"2s\"\n",
        )
        .expect("valid");
        assert_eq!(config.oauth.refresh_margin.as_secs(), 600);
        assert!(
            config.oauth.usage_probe_interval.is_zero(),
            "0s turns probing off"
        );
        assert_eq!(config.shutdown.drain.as_secs(), 2);
        assert_eq!(crate::check_account_name("a@b.example"), Ok(()));
        assert!(crate::check_account_name("a b").is_err());
    }

    #[test]
    fn url_rules() {
        assert_fails(
            "[providers.anthropic]\nbase_url = \"ftp://example.com\"\n",
            "providers.anthropic.base_url",
            2,
            "http:// or https://",
        );
        assert_fails(
            "[providers.anthropic]\ntoken_url = \"not a url\"\n",
            "providers.anthropic.token_url",
            2,
            "not a valid URL",
        );
        assert_fails(
            "[[accounts]]\nname = \"a\"\napi_key = \"k\"\nupstream = \"file:///tmp/x\"\n",
            "accounts[0].upstream",
            4,
            "not file://",
        );
        let config = parse(
            "[[accounts]]\nname = \"a\"\napi_key = \"k\"\nupstream = \"http://127.0.0.1:18080\"\n",
        )
        .expect("http is fine");
        assert_eq!(
            config.accounts[0].upstream.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:18080/")
        );
    }

    #[test]
    fn each_provider_takes_its_own_credential_and_settings() {
        // Codex: a ChatGPT login with its account id.
        let codex = "[[accounts]]\nname = \"c\"\nprovider = \"codex\"\naccess_token = \"t\"\n";
        assert_fails(codex, "accounts[0]", 1, "needs account_id");
        let config = parse(&format!(
            "{codex}account_id = \"acct-1\"\nrefresh_token = \"r\"\n"
        ))
        .expect("a complete codex account");
        assert_eq!(config.accounts[0].provider, ProviderKind::Codex);
        assert_eq!(
            config.accounts[0].options.account_id.as_deref(),
            Some("acct-1")
        );
        assert_fails(
            "[[accounts]]\nname = \"c\"\nprovider = \"codex\"\napi_key_env = \"API\"\naccount_id = \"a\"\n",
            "accounts[0].api_key_env",
            4,
            "provider = \"openai\"",
        );
        assert_fails(
            &format!("{codex}account_id = \"has space\"\n"),
            "accounts[0].account_id",
            5,
            "without whitespace",
        );

        // OpenAI: keys only.
        assert_fails(
            "[[accounts]]\nname = \"o\"\nprovider = \"openai\"\naccess_token = \"t\"\n",
            "accounts[0].access_token",
            4,
            "provider = \"codex\"",
        );

        // Gemini: a Google login (with an optional project) or a key (without one).
        let config = parse(
            "[[accounts]]\nname = \"g\"\nprovider = \"gemini\"\naccess_token = \"t\"\nproject = \"p-1\"\n\n\
             [[accounts]]\nname = \"k\"\nprovider = \"gemini\"\napi_key = \"AIza\"\n",
        )
        .expect("both gemini kinds");
        assert_eq!(config.accounts[0].options.project.as_deref(), Some("p-1"));
        assert_eq!(
            config.accounts[1].credential.kind(),
            crate::CredentialKind::ApiKey
        );
        assert_fails(
            "[[accounts]]\nname = \"k\"\nprovider = \"gemini\"\napi_key = \"AIza\"\nproject = \"p\"\n",
            "accounts[0].project",
            5,
            "Google-login",
        );

        // Settings belong to their provider.
        let anthropic = "[[accounts]]\nname = \"a\"\napi_key = \"k\"\n";
        for (line, key, needle) in [
            (
                "account_id = \"x\"",
                "accounts[0].account_id",
                "only for codex",
            ),
            ("project = \"x\"", "accounts[0].project", "only for gemini"),
            (
                "auth = \"bearer\"",
                "accounts[0].auth",
                "only for anthropic-compatible",
            ),
            (
                "model_map = { \"*\" = \"x\" }",
                "accounts[0].model_map",
                "only for anthropic-compatible",
            ),
            (
                "base_url = \"https://x\"",
                "accounts[0].base_url",
                "use upstream",
            ),
        ] {
            assert_fails(&format!("{anthropic}{line}\n"), key, 4, needle);
        }
    }

    #[test]
    fn anthropic_compatible_accounts_are_fallbacks_with_a_model_map() {
        let base =
            "[[accounts]]\nname = \"glm\"\nprovider = \"anthropic-compatible\"\napi_key = \"k\"\n";
        assert_fails(base, "accounts[0]", 1, "needs base_url");
        let config = parse(&format!(
            "{base}base_url = \"https://glm.example/api/anthropic\"\n\
             model_map = {{ \"*\" = \"glm-air\", \"claude-opus-4-5\" = \"glm-big\", \"claude-*\" = \"glm-mid\", \"claude-opus-*\" = \"glm-4.6\" }}\n"
        ))
        .expect("valid");
        let account = &config.accounts[0];
        assert_eq!(account.provider.pool(), ProviderKind::Anthropic);
        assert_eq!(
            account.priority, COMPATIBLE_DEFAULT_PRIORITY,
            "a fallback by default"
        );
        assert_eq!(account.options.auth, AuthStyle::XApiKey);
        assert_eq!(
            account.upstream.as_ref().map(Url::as_str),
            Some("https://glm.example/api/anthropic")
        );
        let order: Vec<&str> = account
            .options
            .model_map
            .iter()
            .map(|(from, _)| from.as_str())
            .collect();
        assert_eq!(
            order,
            ["claude-opus-4-5", "claude-opus-*", "claude-*", "*"],
            "exact, then the longest prefix, then the catch-all"
        );
        let rendered = config.to_masked_toml();
        let reparsed = crate::parse_str(&rendered, None, &|_| None).expect("renders back");
        assert_eq!(reparsed.accounts[0].options, account.options);
        assert_eq!(reparsed.accounts[0].upstream, account.upstream);

        let explicit = parse(&format!(
            "{base}base_url = \"https://glm.example\"\npriority = 3\nauth = \"Bearer\"\n"
        ))
        .expect("valid");
        assert_eq!(explicit.accounts[0].priority, 3);
        assert_eq!(explicit.accounts[0].options.auth, AuthStyle::Bearer);
        assert_fails(
            &format!("{base}base_url = \"https://glm.example\"\nauth = \"cookie\"\n"),
            "accounts[0].auth",
            6,
            "accepted values",
        );
        assert_fails(
            &format!("{base}upstream = \"https://glm.example\"\n"),
            "accounts[0].upstream",
            5,
            "base_url",
        );
        assert_fails(
            "[[accounts]]\nname = \"glm\"\nprovider = \"anthropic-compatible\"\naccess_token = \"t\"\nbase_url = \"https://x\"\n",
            "accounts[0].access_token",
            4,
            "api_key",
        );
        assert_fails(
            &format!("{base}base_url = \"https://x\"\nmodel_map = {{ \"claude-x\" = \"\" }}\n"),
            "accounts[0].model_map",
            6,
            "must not be empty",
        );
    }

    #[test]
    fn every_provider_endpoint_is_overridable() {
        let config = parse(
            "[providers.codex]\nbase_url = \"http://127.0.0.1:1/backend-api/codex\"\nusage_url = \"http://127.0.0.1:1/u\"\n\
             token_url = \"http://127.0.0.1:1/t\"\nredirect_uri = \"http://localhost:9/auth/callback\"\n\
             [providers.gemini]\ncode_assist_url = \"http://127.0.0.1:2\"\napi_url = \"http://127.0.0.1:3\"\n\
             token_url = \"http://127.0.0.1:2/token\"\nclient_secret = \"private\"\n\
             [providers.openai]\nbase_url = \"http://127.0.0.1:4\"\n\
             [providers.anthropic]\nchat_default_max_tokens = 1024\n",
        )
        .expect("valid");
        let providers = &config.providers;
        assert_eq!(providers.codex.usage_url.as_str(), "http://127.0.0.1:1/u");
        assert_eq!(providers.codex.redirect_uri.port(), Some(9));
        assert_eq!(providers.gemini.api_url.as_str(), "http://127.0.0.1:3/");
        assert!(!providers.gemini.has_default_client_secret());
        assert_eq!(providers.openai.base_url.as_str(), "http://127.0.0.1:4/");
        assert_eq!(providers.anthropic.chat_default_max_tokens, 1024);
        assert_eq!(
            providers
                .base_url_for(ProviderKind::Gemini, crate::CredentialKind::ApiKey)
                .as_str(),
            "http://127.0.0.1:3/"
        );
        let rendered = config.to_masked_toml();
        assert!(!rendered.contains("private"), "{rendered}");
        assert!(rendered.contains("client_secret = \"****\""), "{rendered}");
        assert_fails(
            "[providers.codex]\nredirect_uri = \"https://localhost/cb\"\n",
            "providers.codex.redirect_uri",
            2,
            "local http://",
        );
        assert_fails(
            "[providers.anthropic]\nchat_default_max_tokens = 0\n",
            "providers.anthropic.chat_default_max_tokens",
            2,
            "at least 1",
        );
    }

    #[test]
    fn unknown_names_list_accepted_values() {
        assert_fails(
            "[scheduler]\nstrategy = \"random\"\n",
            "scheduler.strategy",
            2,
            "accepted values: \"adaptive\", \"sticky\", \"round-robin\"",
        );
        assert_fails(
            "[[accounts]]\nname = \"a\"\nprovider = \"mistral\"\napi_key = \"k\"\n",
            "accounts[0].provider",
            3,
            "accepted values: \"anthropic\", \"anthropic-compatible\", \"codex\", \"gemini\", \"openai\"",
        );
    }

    #[test]
    fn other_value_rules() {
        assert_fails("data_dir = \"\"\n", "data_dir", 1, "empty");
        assert_fails("[log]\nlevel = \" \"\n", "log.level", 2, "empty");
        assert_fails(
            "[limits]\nmax_request_body = \"10TB\"\n",
            "limits.max_request_body",
            2,
            "unknown unit",
        );
        assert_fails(
            "[limits]\nmax_request_body = 0\n",
            "limits.max_request_body",
            2,
            "at least 1 byte",
        );
        assert_fails(
            "[limits]\nmax_request_body = -5\n",
            "limits.max_request_body",
            2,
            "negative",
        );
        let config = parse("[limits]\nmax_request_body = 1048576\n").expect("plain bytes");
        assert_eq!(config.limits.max_request_body, 1 << 20);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let error = error_in("listen = \"127.0.0.1:1\"\nlisten_port = 1\n");
        assert_eq!(error.kind, ErrorKind::Schema);
        assert_eq!(error.key.as_deref(), Some("listen_port"));
        assert_eq!(error.line(), Some(2));
        assert!(
            error.message.starts_with("unknown key `listen_port`"),
            "{error}"
        );
        assert!(
            error.message.contains("`listen`"),
            "lists accepted keys: {error}"
        );

        let error =
            error_in("[[accounts]]\nname = \"a\"\n\n[[accounts]]\nname = \"b\"\napikey = \"k\"\n");
        assert_eq!(error.key.as_deref(), Some("accounts[1].apikey"));
        assert_eq!(error.line(), Some(6));

        let error = error_in("[upstream]\nconnect_timout = \"1s\"\n");
        assert_eq!(error.key.as_deref(), Some("upstream.connect_timout"));
        assert_eq!(error.line(), Some(2));

        let error = error_in("[providers.mistral]\nbase_url = \"https://x\"\n");
        assert_eq!(error.key.as_deref(), Some("providers.mistral"));
        assert_eq!(error.line(), Some(1));

        let error = error_in("[providers.codex]\nbase_uri = \"https://x\"\n");
        assert_eq!(error.key.as_deref(), Some("providers.codex.base_uri"));
        assert_eq!(error.line(), Some(2));
    }

    #[test]
    fn type_errors_are_named_and_hide_strings() {
        let error = error_in("[[accounts]]\nname = \"a\"\napi_key = \"k\"\nweight = -1\n");
        assert_eq!(error.kind, ErrorKind::Schema);
        assert_eq!(error.key.as_deref(), Some("accounts[0].weight"));
        assert_eq!(error.line(), Some(4));
        assert_eq!(error.column(), Some(10));

        let error = error_in("[[accounts]]\nname = \"a\"\npriority = \"sk-ant-api03-secret\"\n");
        assert_eq!(error.key.as_deref(), Some("accounts[0].priority"));
        assert!(
            !error.to_string().contains("sk-ant-api03-secret"),
            "{error}"
        );

        let error = error_in("[upstream]\nconnect_timeout = 10\n");
        assert_eq!(error.key.as_deref(), Some("upstream.connect_timeout"));
        assert!(error.message.contains("\"10s\""), "{error}");

        let error = error_in("client_keys = \"single\"\n");
        assert_eq!(error.key.as_deref(), Some("client_keys"));
    }

    #[test]
    fn syntax_errors_have_line_and_best_guess_key() {
        let error = error_in("[[accounts]]\nname = \"a\"\nweight = \n");
        assert_eq!(error.kind, ErrorKind::Syntax);
        assert_eq!(error.line(), Some(3));
        assert_eq!(error.key.as_deref(), Some("accounts[0].weight"));
        assert!(error.message.starts_with("invalid TOML"), "{error}");

        let error = error_in("listen = \"a\"\nlisten = \"b\"\n");
        assert_eq!(error.kind, ErrorKind::Syntax);
        assert_eq!(error.line(), Some(2));
    }
}
