//! One pooled account as the scheduler sees it: what the operator declared (`AccountSpec`)
//! and what sluice has learned since (`AccountState`). No credentials live here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::burn::{BurnRate, Decaying};
use crate::incident::Fingerprint;
use crate::load::LoadHistory;
use crate::quota::QuotaState;
use crate::time::Timestamp;

/// A pool-local handle for an account. Stable for the account's lifetime in the pool,
/// including across renames; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u32);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How the account authenticates upstream. Subscriptions report unified 5h/7d windows;
/// API keys report request/token buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ApiKey,
    #[serde(rename = "oauth")]
    OAuth,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OAuth => "oauth",
        }
    }
}

/// What the operator declared about an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountSpec {
    pub name: String,
    /// The provider's name, for display ("anthropic"); the pool itself is per provider.
    pub provider: String,
    pub kind: CredentialKind,
    /// Lower is preferred.
    pub priority: i32,
    /// Relative capacity (Pro 1, Max 5x 5, Max 20x 20); at least 1.
    pub weight: u32,
    pub enabled: bool,
}

/// Why the last failure happened, as a bounded set of classes (safe for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    RateLimited,
    Overloaded,
    ServerError,
    Connect,
    Timeout,
    StreamBroken,
    AuthRejected,
    TokenRefresh,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::StreamBroken => "stream_broken",
            ErrorClass::AuthRejected => "auth_rejected",
            ErrorClass::TokenRefresh => "token_refresh",
        }
    }
}

/// The most recent failure on an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub class: ErrorClass,
    /// Upstream HTTP status, when there was one.
    pub status: Option<u16>,
    pub at: Timestamp,
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.class.as_str()),
            None => f.write_str(self.class.as_str()),
        }
    }
}

/// Token counts an account has served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

impl TokenTotals {
    pub fn add(&mut self, other: &TokenTotals) {
        self.input += other.input;
        self.output += other.output;
        self.cache_creation += other.cache_creation;
        self.cache_read += other.cache_read;
    }
}

/// What sluice has learned about an account since it joined the pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub in_flight: u32,
    /// Sum of the weights of the requests in flight.
    pub active_weight: u64,
    pub completed: u64,
    pub failed: u64,
    pub consecutive_failures: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<LastError>,
    pub last_success_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// Benched by a rate limit until then.
    pub rate_limited_until: Option<Timestamp>,
    /// Set when the bench came from a 429 with no evidence of the account's own quota: lifted
    /// early if the same 429 shows up on another account.
    pub rate_limit_fingerprint: Option<Fingerprint>,
    /// Short, growing backoff after a transport failure (connect, timeout, broken stream).
    pub cooldown_until: Option<Timestamp>,
    /// Provisional exclusion after a 529/5xx, lifted early when the same failure shows up on
    /// another account (then it was the upstream's, not this account's).
    pub provisional_until: Option<Timestamp>,
    pub provisional_fingerprint: Option<Fingerprint>,
    /// Upstream rejected the credential; cleared when the credential changes.
    pub auth_failed: bool,
    /// The credential can no longer be refreshed; only a new login revives the account.
    pub needs_relogin: bool,
    /// When the account last came back from a bench or cooldown.
    pub recovered_at: Option<Timestamp>,
    pub load: LoadHistory,
    pub quota: QuotaState,
    /// How fast the 5-hour window is being spent (window-fractions per hour).
    #[serde(default)]
    pub session_burn: BurnRate,
    /// How fast the weekly window is being spent.
    #[serde(default)]
    pub weekly_burn: BurnRate,
    /// Conversations that recently started here (or moved here), fading over
    /// [`crate::burn::ARRIVAL_TIME_CONSTANT`]: load the burn rates cannot show yet.
    #[serde(default)]
    pub arrivals: Decaying,
    pub tokens: TokenTotals,
}

impl AccountState {
    /// Lift benches and cooldowns whose time has come, noting the recovery instant. Returns
    /// whether the account just came back from one.
    pub(crate) fn settle(&mut self, now: Timestamp) -> bool {
        let mut recovered = false;
        if self.rate_limited_until.is_some_and(|until| until <= now) {
            self.rate_limited_until = None;
            self.rate_limit_fingerprint = None;
            recovered = true;
        }
        if self.cooldown_until.is_some_and(|until| until <= now) {
            self.cooldown_until = None;
            recovered = true;
        }
        if self.provisional_until.is_some_and(|until| until <= now) {
            self.provisional_until = None;
            self.provisional_fingerprint = None;
            recovered = true;
        }
        if recovered {
            self.recovered_at = Some(now);
        }
        self.quota.clear_expired(now);
        recovered
    }

    /// The later of the transport cooldown and the provisional exclusion, if either is on.
    pub fn cooling_until(&self) -> Option<Timestamp> {
        self.cooldown_until.max(self.provisional_until)
    }

    pub(crate) fn record_error(&mut self, class: ErrorClass, status: Option<u16>, now: Timestamp) {
        self.failed += 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_status = status.or(self.last_status);
        self.last_error = Some(LastError {
            class,
            status,
            at: now,
        });
    }

    /// Exponential backoff after the `consecutive_failures`-th transient failure.
    pub(crate) fn cooldown_for(&self, base: Duration, max: Duration) -> Duration {
        let exponent = self.consecutive_failures.saturating_sub(1).min(16);
        base.saturating_mul(1u32 << exponent).min(max)
    }
}
