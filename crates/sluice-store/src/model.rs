//! The records the store keeps and the changes it accepts. Plain data: no database type
//! appears here, so every backend speaks the same language.
//!
//! Secrets (API keys, tokens) travel as [`Secret`], which prints `****` wherever it is
//! formatted; only the backend that writes them and the proxy that sends them upstream ever
//! look inside.

use std::fmt;

use serde::{Deserialize, Serialize};
use sluice_config::Secret;

/// An account's stable identity in the store. Never reused, and unchanged by a rename, so
/// that other records (a request log, usage history) can refer to an account by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreId(pub i64);

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where an account was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Added from the command line (`sluice login`, `import`, `accounts add-key`): the store
    /// owns everything about it.
    Cli,
    /// Declared in the config file: the file owns its settings, the store keeps the tokens
    /// sluice has learned since (a rotated refresh token must outlive the file's stale one).
    Config,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Config => "config",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Origin> {
        match text {
            "cli" => Some(Origin::Cli),
            "config" => Some(Origin::Config),
            _ => None,
        }
    }
}

/// A subscription's OAuth tokens.
#[derive(Clone, Debug)]
pub struct OAuthTokens {
    pub access_token: Secret<String>,
    pub refresh_token: Option<Secret<String>>,
    /// When `access_token` expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
}

/// How an account authenticates upstream.
#[derive(Clone, Debug)]
pub enum StoredCredential {
    ApiKey(Secret<String>),
    OAuth(OAuthTokens),
}

impl StoredCredential {
    /// `"api_key"` or `"oauth"`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredCredential::ApiKey(_) => "api_key",
            StoredCredential::OAuth(_) => "oauth",
        }
    }

    pub fn oauth(&self) -> Option<&OAuthTokens> {
        match self {
            StoredCredential::OAuth(tokens) => Some(tokens),
            StoredCredential::ApiKey(_) => None,
        }
    }
}

/// Who an account belongs to, as its provider describes it. Never a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub email: Option<String>,
    /// The subscription: `"max"`, `"pro"`, `"team"`, …
    pub plan: Option<String>,
    /// The provider's id for the user; a second login of the same user matches on it.
    /// (Codex: user and ChatGPT workspace, since quota is per user per workspace.)
    pub account_uuid: Option<String>,
    pub organization_uuid: Option<String>,
    /// The account a request is addressed to besides the token: Codex's ChatGPT account
    /// (workspace) id, sent as `chatgpt-account-id`.
    pub upstream_account: Option<String>,
    /// Gemini Code Assist: the account's project, discovered with `loadCodeAssist` and
    /// remembered so it is not asked again.
    pub project: Option<String>,
}

/// A pending or refused removal of an account (see [`crate::Store::request_removal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "removal", rename_all = "snake_case")]
pub enum Removal {
    None,
    /// The CLI asked a running sluice to remove the account once it is idle.
    Requested {
        at_ms: i64,
    },
    /// The running sluice refused: the account had requests in flight.
    Refused {
        in_flight: u32,
    },
}

/// One account as stored.
#[derive(Clone, Debug)]
pub struct StoredAccount {
    pub id: StoreId,
    pub name: String,
    pub provider: String,
    pub origin: Origin,
    pub credential: StoredCredential,
    /// Bumped by every write of the credential (login, refresh, config change). A refresh
    /// commits only if the generation it started from is still current.
    pub generation: i64,
    pub priority: i32,
    pub weight: u32,
    pub enabled: bool,
    pub profile: Profile,
    /// The refresh token was refused for good; only a new login (or new tokens in the config)
    /// revives the account.
    pub needs_relogin: bool,
    /// Why, in words safe to show (never a token).
    pub relogin_reason: Option<String>,
    /// A refresh was started and never settled: the process died while the token server had
    /// the request. The refresh token may have been rotated away.
    pub refresh_started_at_ms: Option<i64>,
    pub refreshed_at_ms: Option<i64>,
    /// For config-declared accounts: a digest of the tokens the config declared when the
    /// store took them over (see [`fingerprint`]). A different digest means the file now
    /// declares new tokens, which then win over the learned ones.
    pub config_fingerprint: Option<String>,
    pub removal: Removal,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl StoredAccount {
    pub fn oauth(&self) -> Option<&OAuthTokens> {
        self.credential.oauth()
    }
}

/// An account to add from the command line.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub name: String,
    pub provider: String,
    pub credential: StoredCredential,
    pub priority: i32,
    pub weight: u32,
    pub enabled: bool,
    pub profile: Profile,
}

/// The result of a completed OAuth login (or an import), to be stored.
#[derive(Clone, Debug)]
pub struct Login {
    pub provider: String,
    /// The name the user asked for (`--name`); the account stored under it is updated.
    pub name: Option<String>,
    /// The name for a new account when none was asked for (the email).
    pub default_name: String,
    pub tokens: OAuthTokens,
    pub profile: Profile,
    /// Weight for a new account (from the plan's tier); an existing account keeps its own.
    pub weight: u32,
    /// Set when `name` is declared in the config file: the digest of the file's tokens, so
    /// the store's (newer) tokens win over the file's until the file changes.
    pub config_fingerprint: Option<String>,
}

/// What [`crate::Store::save_login`] did.
#[derive(Clone, Debug)]
pub struct LoginSaved {
    pub account: StoredAccount,
    /// A new account was created (rather than an existing one updated).
    pub created: bool,
}

/// Settings to change on an account; `None` leaves a setting alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub enabled: Option<bool>,
    pub priority: Option<i32>,
    pub weight: Option<u32>,
}

/// The outcome of committing refreshed tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Committed durably; the credential's generation is now this.
    Saved { generation: i64 },
    /// The credential changed since the refresh started (a new login or config edit): the
    /// newer credential stays and the refreshed tokens are dropped.
    Superseded,
    /// The account no longer exists.
    Gone,
}

/// A subscription account declared in the config file, as the store reconciles it.
#[derive(Clone, Debug)]
pub struct DeclaredOAuth {
    pub name: String,
    pub provider: String,
    /// [`fingerprint`] of `tokens`.
    pub fingerprint: String,
    pub tokens: OAuthTokens,
}

/// Quota sluice has learned for one account (an opaque JSON document the scheduler wrote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaRecord {
    pub provider: String,
    pub name: String,
    pub quota_json: String,
    pub updated_at_ms: i64,
}

/// A digest of OAuth tokens, to notice that a config file declares different tokens
/// without keeping a second copy of them. SHA-256, hex.
pub fn fingerprint(tokens: &OAuthTokens) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"sluice-oauth-v1\0");
    context.update(tokens.access_token.expose().as_bytes());
    context.update(b"\0");
    if let Some(refresh) = &tokens.refresh_token {
        context.update(refresh.expose().as_bytes());
    }
    context.update(b"\0");
    if let Some(expires) = tokens.expires_at_ms {
        context.update(expires.to_string().as_bytes());
    }
    let digest = context.finish();
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: &str, refresh: Option<&str>, expires: Option<i64>) -> OAuthTokens {
        OAuthTokens {
            access_token: Secret::from(access),
            refresh_token: refresh.map(Secret::from),
            expires_at_ms: expires,
        }
    }

    #[test]
    fn fingerprints_tell_token_sets_apart_and_hide_them() {
        let a = fingerprint(&tokens("at", Some("rt"), Some(1)));
        assert_eq!(a, fingerprint(&tokens("at", Some("rt"), Some(1))));
        assert_ne!(a, fingerprint(&tokens("at", Some("rt2"), Some(1))));
        assert_ne!(a, fingerprint(&tokens("at", None, Some(1))));
        assert_ne!(a, fingerprint(&tokens("at", Some("rt"), None)));
        // The separator keeps "a"+"tb" and "at"+"b" apart.
        assert_ne!(
            fingerprint(&tokens("a", Some("tb"), None)),
            fingerprint(&tokens("at", Some("b"), None))
        );
        assert_eq!(a.len(), 64);
        assert!(!a.contains("rt"));
    }
}
