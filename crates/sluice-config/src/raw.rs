//! The config file as written: serde structs where every key is optional and
//! unknown keys are rejected. Values that need rules or units (durations,
//! sizes, URLs, names) stay as text here and are checked in `validate`, which
//! can then name the key and line in its errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub client_keys: Vec<Secret<String>>,
    pub admin_key: Option<Secret<String>>,
    pub accounts: Vec<RawAccount>,
    pub providers: RawProviders,
    pub limits: RawLimits,
    pub upstream: RawUpstream,
    pub retry: RawRetry,
    pub queue: RawQueue,
    pub scheduler: RawScheduler,
    pub log: RawLog,
    pub prices: BTreeMap<String, RawPrice>,
    pub oauth: RawOAuth,
    pub shutdown: RawShutdown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub api_key: Option<Secret<String>>,
    pub api_key_env: Option<String>,
    pub access_token: Option<Secret<String>>,
    pub access_token_env: Option<String>,
    pub refresh_token: Option<Secret<String>>,
    pub refresh_token_env: Option<String>,
    pub expires_at: Option<i64>,
    pub upstream: Option<String>,
    pub priority: Option<i32>,
    pub weight: Option<u32>,
    pub enabled: Option<bool>,
    /// Codex: the ChatGPT account id.
    pub account_id: Option<String>,
    /// Gemini Google login: the Code Assist project.
    pub project: Option<String>,
    /// Anthropic-compatible: the third party's base URL.
    pub base_url: Option<String>,
    /// Anthropic-compatible: `x-api-key` or `bearer`.
    pub auth: Option<String>,
    /// Anthropic-compatible: Claude model → the third party's.
    pub model_map: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawProviders {
    pub anthropic: RawAnthropic,
    pub codex: RawCodex,
    pub gemini: RawGemini,
    pub openai: RawOpenAI,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCodex {
    pub base_url: Option<String>,
    pub usage_url: Option<String>,
    pub token_url: Option<String>,
    pub authorize_url: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawGemini {
    pub code_assist_url: Option<String>,
    pub api_url: Option<String>,
    pub token_url: Option<String>,
    pub authorize_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub manual_redirect_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawOpenAI {
    pub base_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAnthropic {
    pub base_url: Option<String>,
    pub token_url: Option<String>,
    pub usage_url: Option<String>,
    pub profile_url: Option<String>,
    pub authorize_url: Option<String>,
    pub manual_redirect_url: Option<String>,
    pub client_id: Option<String>,
    pub chat_default_max_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_request_body: Option<RawByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub connect_timeout: Option<RawDuration>,
    pub response_timeout: Option<RawDuration>,
    pub idle_timeout: Option<RawDuration>,
    pub pool_idle_timeout: Option<RawDuration>,
    pub pool_max_idle_per_host: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub max_attempts: Option<u32>,
    pub attempts_per_account: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub max_wait: Option<RawDuration>,
    pub keepalive: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawScheduler {
    pub strategy: Option<String>,
    pub switch_threshold: Option<f64>,
    pub max_in_flight_per_account: Option<u32>,
    pub max_in_flight_total: Option<u32>,
    pub cooldown: Option<RawDuration>,
    pub max_cooldown: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<String>,
    pub requests: Option<bool>,
    pub retention: Option<RawDuration>,
}

/// One `[prices."model-prefix"]` table: US dollars per million tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPrice {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_write: Option<f64>,
    pub cache_read: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawOAuth {
    pub refresh_margin: Option<RawDuration>,
    pub usage_probe_interval: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawShutdown {
    pub drain: Option<RawDuration>,
}

/// Duration text, parsed later. Its own type only so that a wrong TOML type
/// (`connect_timeout = 10`) gets a message showing the expected spelling.
#[derive(Debug)]
pub(crate) struct RawDuration(pub String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = RawDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\" or \"5m\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(text.to_owned()))
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A byte count as written: a plain integer or a string with a unit.
#[derive(Debug)]
pub(crate) enum RawByteSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = RawByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size string such as \"32MiB\"")
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<RawByteSize, E> {
                Ok(RawByteSize::Bytes(bytes))
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<RawByteSize, E> {
                i64::try_from(bytes)
                    .map(RawByteSize::Bytes)
                    .map_err(|_| E::custom("size is too large"))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawByteSize, E> {
                Ok(RawByteSize::Text(text.to_owned()))
            }
        }

        deserializer.deserialize_any(ByteSizeVisitor)
    }
}
