//! sluice's durable state, behind the [`Store`] trait.
//!
//! The store holds what the config file cannot: accounts added from the command line with
//! their credentials, the current tokens of every subscription account (config-declared
//! ones too — a rotated refresh token must outlive the file's stale one), whether an account
//! needs a new login, and the quota sluice has learned. The rest of sluice names no database:
//! [`SqliteStore`] is the one backend today (an embedded, bundled SQLite in
//! `data_dir/sluice.db`); a server database for a multi-instance deployment is another
//! implementation of the same trait.
//!
//! The trait is synchronous: every call is a short transaction. Async callers (the server's
//! background tasks) run it on a blocking thread; the request path never calls it.
//!
//! It also keeps the request log (one row per proxied request, written in batches by a
//! background task) and sums it up for `sluice usage` and the dashboard.
//!
//! [`DataDirLock`] makes sure only one sluice serves from a data directory: two would
//! refresh the same rotating tokens and kill them.

mod error;
mod lock;
mod migrations;
mod model;
mod request_log;
mod sqlite;
mod sqlite_log;

pub use error::StoreError;
pub use lock::{DataDirLock, LOCK_FILE, LockError, RunningServer};
pub use model::{
    AccountChange, DeclaredOAuth, Login, LoginSaved, NewAccount, OAuthTokens, Origin, Profile,
    QuotaRecord, Removal, SaveOutcome, StoreId, StoredAccount, StoredCredential, fingerprint,
};
pub use request_log::{RequestLogRow, UsageKey, UsageQuery, UsageRow};
pub use sqlite::{DATABASE_FILE, SqliteStore};

/// Everything sluice keeps across restarts.
///
/// Writes that matter for correctness are conditional: refreshed tokens commit only if the
/// credential they replace is still the current one ([`Store::save_refreshed`]), so a login
/// made while a refresh was in flight is never overwritten.
pub trait Store: Send + Sync + 'static {
    /// Every account, in the order they were added.
    fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError>;

    /// The account called `name`.
    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError>;

    /// Add an account from the command line; its name must be free.
    fn add_account(&self, account: NewAccount) -> Result<StoredAccount, StoreError>;

    /// Store a login: update the account it belongs to (the one named `login.name`, else the
    /// one with the same provider user id, else the same email) or create one.
    fn save_login(&self, login: Login) -> Result<LoginSaved, StoreError>;

    /// Change settings of a command-line account.
    fn update_account(
        &self,
        name: &str,
        change: AccountChange,
    ) -> Result<StoredAccount, StoreError>;

    /// Rename a command-line account.
    fn rename_account(&self, from: &str, to: &str) -> Result<StoredAccount, StoreError>;

    /// Delete an account and its credential. `false` if it was already gone.
    fn delete_account(&self, id: StoreId) -> Result<bool, StoreError>;

    /// Ask a running sluice to remove the account once it is idle (it answers by deleting it
    /// or by [`Store::refuse_removal`]).
    fn request_removal(&self, name: &str) -> Result<StoredAccount, StoreError>;

    /// Record that a removal was refused because of requests in flight.
    fn refuse_removal(&self, id: StoreId, in_flight: u32) -> Result<(), StoreError>;

    /// Note durably that a refresh of the credential at `generation` is about to reach the
    /// token server, so that a crash in the middle is visible on the next start.
    fn begin_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError>;

    /// A refresh ended without rotating anything (the token server refused before acting,
    /// or could not be reached): clear the mark of [`Store::begin_refresh`].
    fn settle_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError>;

    /// Commit refreshed tokens, durably, if the credential is still at `generation`.
    fn save_refreshed(
        &self,
        id: StoreId,
        generation: i64,
        tokens: &OAuthTokens,
    ) -> Result<SaveOutcome, StoreError>;

    /// The refresh token of the credential at `generation` is dead. `false` if the
    /// credential changed meanwhile (and the new one is not known to be dead).
    fn mark_needs_relogin(
        &self,
        id: StoreId,
        generation: i64,
        reason: &str,
    ) -> Result<bool, StoreError>;

    /// Bring the stored tokens of config-declared subscription accounts in line with the
    /// file: keep what the store learned while the file declares the same tokens as when the
    /// store took them over, take the file's tokens when they changed, and adopt a renamed
    /// account's row by its tokens. Returns the rows of the declared accounts.
    fn reconcile_config(
        &self,
        declared: &[DeclaredOAuth],
    ) -> Result<Vec<StoredAccount>, StoreError>;

    /// Remember the project an account's setup discovered (Gemini Code Assist).
    fn remember_project(&self, id: StoreId, project: &str) -> Result<(), StoreError>;

    /// Replace the learned quota of the given accounts.
    fn save_quota(&self, records: &[QuotaRecord]) -> Result<(), StoreError>;

    /// All learned quota.
    fn quota(&self) -> Result<Vec<QuotaRecord>, StoreError>;

    /// Append rows to the request log, all in one transaction.
    fn log_requests(&self, rows: &[RequestLogRow]) -> Result<(), StoreError>;

    /// Delete up to `limit` request-log rows from before `before_ms`; returns how many were
    /// deleted (call again while it returns `limit`, so no single call holds the store long).
    fn prune_requests(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;

    /// The newest request-log rows, newest first.
    fn recent_requests(&self, limit: u32) -> Result<Vec<RequestLogRow>, StoreError>;

    /// Request-log sums grouped as `query` says (always split by model too).
    fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;

    /// A number that changes whenever another process (or connection) committed a change.
    /// Cheap enough to poll every second.
    fn change_marker(&self) -> Result<u64, StoreError>;

    /// Make everything written so far as durable and compact as the backend can (called on
    /// shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}
