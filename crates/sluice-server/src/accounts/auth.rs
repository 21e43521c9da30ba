//! What sluice knows about one account's credential beyond the credential itself: where the
//! account comes from, which stored generation the credential in use is, whether a refresh
//! is running, what the last one did, and when its usage was last probed.
//!
//! Shared (behind `Arc`) by every directory entry of the same account, so that a rename or a
//! settings change never separates an account from its refresh state.

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use sluice_config::Credential;
use sluice_scheduler::Timestamp;
use sluice_store::{OAuthTokens, Origin, StoreId};
use tokio::sync::watch;

use super::refresh::RefreshResult;

/// Where an account was declared and what is known about its owner. No secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountOrigin {
    pub source: Origin,
    /// The account's row in the store, when it has one (every CLI account, and config
    /// subscriptions once a store is in use).
    pub store_id: Option<StoreId>,
    pub plan: Option<String>,
    /// For a credential taken straight from the config file: a digest of it, to notice
    /// when the file changes it.
    pub(crate) config_digest: Option<String>,
}

impl AccountOrigin {
    /// An account declared in the config file, not (yet) backed by the store.
    pub(crate) fn config(credential: &Credential) -> AccountOrigin {
        AccountOrigin {
            source: Origin::Config,
            store_id: None,
            plan: None,
            config_digest: Some(credential_digest(credential)),
        }
    }
}

/// A digest of a credential (never the credential), to compare two without keeping both.
pub(crate) fn credential_digest(credential: &Credential) -> String {
    match credential {
        Credential::ApiKey(key) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, key.expose().as_bytes());
            digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
        }
        Credential::OAuth {
            access_token,
            refresh_token,
            expires_at_ms,
        } => sluice_store::fingerprint(&sluice_store::OAuthTokens {
            access_token: access_token.clone(),
            refresh_token: refresh_token.clone(),
            expires_at_ms: *expires_at_ms,
        }),
    }
}

/// The upkeep state of one account's credential.
#[derive(Default)]
pub struct AccountAuth {
    /// The store generation of the credential in use (0: not from the store). Only ever
    /// moves forward, so a stale read of the store never puts an old token back.
    generation: AtomicI64,
    /// The refresh running now, if any; everyone who needs one waits on it (single flight).
    pub(crate) inflight: Mutex<Option<watch::Receiver<Option<RefreshResult>>>>,
    /// Rotated tokens the store refused to save (with the generation they replace), in use
    /// anyway because the old refresh token is dead; saving is retried.
    pub(crate) unsaved: Mutex<Option<(i64, OAuthTokens)>>,
    /// Held while the account is being set up (Gemini's project discovery): one at a time.
    pub(crate) setup: tokio::sync::Mutex<()>,
    state: Mutex<AuthState>,
}

/// What the last refreshes and probes of an account did. Safe to show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuthState {
    /// The refresh token is dead; nothing refreshes it until a new login.
    pub needs_relogin: bool,
    pub relogin_reason: Option<String>,
    /// A refresh reached the token server and no answer came back (or sluice stopped in
    /// the middle of one): the refresh token may be dead. It is tried again only once the
    /// access token has expired or been refused.
    pub in_doubt: bool,
    pub refreshed_at: Option<Timestamp>,
    pub refreshes: u64,
    pub last_refresh_error: Option<String>,
    pub refresh_failures: u32,
    /// No proactive refresh before this.
    pub retry_refresh_at: Option<Timestamp>,
    pub probed_at: Option<Timestamp>,
    pub probe_failures: u32,
    /// No probe before this.
    pub retry_probe_at: Option<Timestamp>,
}

impl AccountAuth {
    pub(crate) fn with_generation(generation: i64) -> AccountAuth {
        let auth = AccountAuth::default();
        auth.generation.store(generation, Ordering::SeqCst);
        auth
    }

    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Move to `generation` if it is newer; true if it was.
    pub(crate) fn advance_generation(&self, generation: i64) -> bool {
        self.generation.fetch_max(generation, Ordering::SeqCst) < generation
    }

    pub fn state(&self) -> AuthState {
        self.state.lock().clone()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut AuthState) -> R) -> R {
        f(&mut self.state.lock())
    }
}
