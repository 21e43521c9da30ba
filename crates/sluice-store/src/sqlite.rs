//! The SQLite backend: one database file, `data_dir/sluice.db`, created readable by its owner
//! only, in WAL mode with `synchronous = FULL` so that a commit is on disk when it returns —
//! the guarantee a rotated refresh token needs. Several processes (a running `sluice serve`
//! and the CLI) share the file; SQLite's locking and a busy timeout serialize their writes.

use std::fs::{self, DirBuilder, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use sluice_config::Secret;

use crate::Store;
use crate::error::StoreError;
use crate::migrations::MIGRATIONS;
use crate::model::{
    AccountChange, DeclaredOAuth, Login, LoginSaved, NewAccount, OAuthTokens, Origin, Profile,
    QuotaRecord, Removal, SaveOutcome, StoreId, StoredAccount, StoredCredential,
};
use crate::request_log::{RequestLogRow, UsageQuery, UsageRow};
use crate::sqlite_log;

/// The database's file name inside the data directory.
pub const DATABASE_FILE: &str = "sluice.db";

/// How long a write waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The store in an SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const SELECT_ACCOUNT: &str = "SELECT a.id, a.name, a.provider, a.origin, a.kind, a.priority,
        a.weight, a.enabled, a.email, a.plan, a.account_uuid, a.organization_uuid,
        a.remove_requested_at, a.remove_refused_in_flight, a.created_at, a.updated_at,
        c.api_key, c.access_token, c.refresh_token, c.expires_at, c.generation,
        c.config_fingerprint, c.needs_relogin, c.relogin_reason, c.refresh_started_at,
        c.refreshed_at, a.upstream_account, a.project
    FROM accounts a JOIN credentials c ON c.account_id = a.id";

impl SqliteStore {
    /// Open (creating if needed) the database in `data_dir`, bringing its schema up to date.
    /// The directory is created readable by its owner only; so is the database file.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        prepare_data_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        create_private_file(&path)?;
        let open_error = |error: rusqlite::Error| StoreError::Open {
            path: path.clone(),
            message: error.to_string(),
        };
        let mut connection = Connection::open(&path).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;",
            )
            .map_err(open_error)?;
        migrate(&mut connection, &path)?;
        // SQLite gives the WAL and shared-memory files the database's mode; make sure anyway,
        // since the WAL holds recently written tokens.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            restrict_if_present(Path::new(&side));
        }
        Ok(SqliteStore {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (rusqlite rolls back on drop), so the connection is still good.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `f` in an immediate (write-locking) transaction and commit.
    fn write<R>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = f(&transaction)?;
        transaction.commit()?;
        Ok(result)
    }
}

fn prepare_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    let error = |source| StoreError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    if data_dir.is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(data_dir).map_err(error)
}

/// Create `path` with mode 0600 if it does not exist, and narrow it to 0600 if it does:
/// the file holds credentials.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| StoreError::DataDir {
        path: path.to_path_buf(),
        source,
    })?;
    restrict_if_present(path);
    Ok(())
}

fn restrict_if_present(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        transaction.execute_batch(MIGRATIONS[version as usize])?;
        transaction.pragma_update(None, "user_version", version + 1)?;
        transaction.commit()?;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read_account(row: &Row<'_>) -> rusqlite::Result<Result<StoredAccount, StoreError>> {
    let name: String = row.get(1)?;
    let origin: String = row.get(3)?;
    let kind: String = row.get(4)?;
    let weight: i64 = row.get(6)?;
    let api_key: Option<String> = row.get(16)?;
    let access_token: Option<String> = row.get(17)?;
    let refresh_token: Option<String> = row.get(18)?;
    let corrupt = |what: &str| Err(StoreError::Corrupt(format!("account {name:?}: {what}")));
    let Some(origin) = Origin::parse(&origin) else {
        return Ok(corrupt("unknown origin"));
    };
    let credential = match (kind.as_str(), api_key, access_token) {
        ("api_key", Some(key), None) => StoredCredential::ApiKey(Secret::new(key)),
        ("oauth", None, Some(access)) => StoredCredential::OAuth(OAuthTokens {
            access_token: Secret::new(access),
            refresh_token: refresh_token.map(Secret::new),
            expires_at_ms: row.get(19)?,
        }),
        _ => return Ok(corrupt("credential does not match its kind")),
    };
    let removal = match (
        row.get::<_, Option<i64>>(12)?,
        row.get::<_, Option<i64>>(13)?,
    ) {
        (Some(at_ms), _) => Removal::Requested { at_ms },
        (None, Some(in_flight)) => Removal::Refused {
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
        },
        (None, None) => Removal::None,
    };
    Ok(Ok(StoredAccount {
        id: StoreId(row.get(0)?),
        name,
        provider: row.get(2)?,
        origin,
        credential,
        generation: row.get(20)?,
        priority: i32::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        weight: u32::try_from(weight).unwrap_or(1).max(1),
        enabled: row.get(7)?,
        profile: Profile {
            email: row.get(8)?,
            plan: row.get(9)?,
            account_uuid: row.get(10)?,
            organization_uuid: row.get(11)?,
            upstream_account: row.get(26)?,
            project: row.get(27)?,
        },
        needs_relogin: row.get(22)?,
        relogin_reason: row.get(23)?,
        refresh_started_at_ms: row.get(24)?,
        refreshed_at_ms: row.get(25)?,
        config_fingerprint: row.get(21)?,
        removal,
        created_at_ms: row.get(14)?,
        updated_at_ms: row.get(15)?,
    }))
}

fn query_accounts(
    connection: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredAccount>, StoreError> {
    let sql = format!("{SELECT_ACCOUNT} {filter} ORDER BY a.id");
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params, read_account)?;
    let mut accounts = Vec::new();
    for row in rows {
        accounts.push(row??);
    }
    Ok(accounts)
}

fn by_name(connection: &Connection, name: &str) -> Result<Option<StoredAccount>, StoreError> {
    Ok(query_accounts(connection, "WHERE a.name = ?1", [name])?
        .into_iter()
        .next())
}

fn by_id(connection: &Connection, id: StoreId) -> Result<Option<StoredAccount>, StoreError> {
    Ok(query_accounts(connection, "WHERE a.id = ?1", [id.0])?
        .into_iter()
        .next())
}

fn existing(connection: &Connection, name: &str) -> Result<StoredAccount, StoreError> {
    by_name(connection, name)?.ok_or_else(|| StoreError::NoSuchAccount(name.to_owned()))
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn insert_account(
    transaction: &Transaction<'_>,
    account: &NewAccount,
    origin: Origin,
    config_fingerprint: Option<&str>,
) -> Result<StoreId, StoreError> {
    let now = now_ms();
    let inserted = transaction.execute(
        "INSERT INTO accounts (name, provider, origin, kind, priority, weight, enabled, email,
            plan, account_uuid, organization_uuid, upstream_account, project, created_at,
            updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
        params![
            account.name,
            account.provider,
            origin.as_str(),
            account.credential.kind(),
            account.priority,
            account.weight.max(1),
            account.enabled,
            account.profile.email,
            account.profile.plan,
            account.profile.account_uuid,
            account.profile.organization_uuid,
            account.profile.upstream_account,
            account.profile.project,
            now,
        ],
    );
    match inserted {
        Err(error) if is_unique_violation(&error) => {
            return Err(StoreError::NameTaken(account.name.clone()));
        }
        other => {
            other?;
        }
    }
    let id = StoreId(transaction.last_insert_rowid());
    let (api_key, access, refresh, expires) = credential_columns(&account.credential);
    transaction.execute(
        "INSERT INTO credentials (account_id, api_key, access_token, refresh_token, expires_at,
            generation, config_fingerprint, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
        params![
            id.0,
            api_key,
            access,
            refresh,
            expires,
            config_fingerprint,
            now
        ],
    )?;
    Ok(id)
}

type CredentialColumns<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
);

fn credential_columns(credential: &StoredCredential) -> CredentialColumns<'_> {
    match credential {
        StoredCredential::ApiKey(key) => (Some(key.expose().as_str()), None, None, None),
        StoredCredential::OAuth(tokens) => (
            None,
            Some(tokens.access_token.expose().as_str()),
            tokens.refresh_token.as_ref().map(|t| t.expose().as_str()),
            tokens.expires_at_ms,
        ),
    }
}

/// Replace an account's credential with new OAuth tokens from outside (a login, the config
/// file): a new generation that needs no re-login and has no refresh pending.
fn replace_tokens(
    transaction: &Transaction<'_>,
    id: StoreId,
    tokens: &OAuthTokens,
    config_fingerprint: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    transaction.execute(
        "UPDATE credentials SET api_key = NULL, access_token = ?2, refresh_token = ?3,
            expires_at = ?4, generation = generation + 1,
            config_fingerprint = COALESCE(?5, config_fingerprint),
            needs_relogin = 0, relogin_reason = NULL, refresh_started_at = NULL, updated_at = ?6
         WHERE account_id = ?1",
        params![
            id.0,
            tokens.access_token.expose(),
            tokens.refresh_token.as_ref().map(|t| t.expose()),
            tokens.expires_at_ms,
            config_fingerprint,
            now,
        ],
    )?;
    transaction.execute(
        "UPDATE accounts SET kind = 'oauth', updated_at = ?2 WHERE id = ?1",
        params![id.0, now],
    )?;
    Ok(())
}

fn rename_quota(
    transaction: &Transaction<'_>,
    provider: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    transaction.execute(
        "DELETE FROM learned_quota WHERE provider = ?1 AND name = ?2",
        params![provider, to],
    )?;
    transaction.execute(
        "UPDATE learned_quota SET name = ?3 WHERE provider = ?1 AND name = ?2",
        params![provider, from, to],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        query_accounts(&self.connection(), "", [])
    }

    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        by_name(&self.connection(), name)
    }

    fn add_account(&self, account: NewAccount) -> Result<StoredAccount, StoreError> {
        self.write(|transaction| {
            let id = insert_account(transaction, &account, Origin::Cli, None)?;
            by_id(transaction, id)?.ok_or_else(|| StoreError::NoSuchAccount(account.name.clone()))
        })
    }

    fn save_login(&self, login: Login) -> Result<LoginSaved, StoreError> {
        self.write(|transaction| {
            let found = match &login.name {
                Some(name) => by_name(transaction, name)?,
                None => {
                    let by_user = match &login.profile.account_uuid {
                        Some(uuid) => query_accounts(
                            transaction,
                            "WHERE a.provider = ?1 AND a.account_uuid = ?2 AND a.kind = 'oauth'",
                            params![login.provider, uuid],
                        )?
                        .into_iter()
                        .next(),
                        None => None,
                    };
                    match (by_user, &login.profile.email) {
                        (Some(account), _) => Some(account),
                        (None, Some(email)) => query_accounts(
                            transaction,
                            "WHERE a.provider = ?1 AND a.email = ?2 AND a.kind = 'oauth'
                               AND (a.account_uuid IS NULL OR ?3 IS NULL OR a.account_uuid = ?3)",
                            params![login.provider, email, login.profile.account_uuid],
                        )?
                        .into_iter()
                        .next(),
                        (None, None) => None,
                    }
                }
            };
            if let Some(account) = found {
                if account.provider != login.provider {
                    return Err(StoreError::NameTaken(account.name));
                }
                if account.oauth().is_none() {
                    return Err(StoreError::NotOAuth {
                        name: account.name,
                        kind: account.credential.kind(),
                    });
                }
                replace_tokens(
                    transaction,
                    account.id,
                    &login.tokens,
                    login.config_fingerprint.as_deref(),
                )?;
                let profile = &login.profile;
                transaction.execute(
                    "UPDATE accounts SET email = COALESCE(?2, email), plan = COALESCE(?3, plan),
                        account_uuid = COALESCE(?4, account_uuid),
                        organization_uuid = COALESCE(?5, organization_uuid),
                        upstream_account = COALESCE(?6, upstream_account),
                        project = COALESCE(?7, project),
                        remove_refused_in_flight = NULL
                     WHERE id = ?1",
                    params![
                        account.id.0,
                        profile.email,
                        profile.plan,
                        profile.account_uuid,
                        profile.organization_uuid,
                        profile.upstream_account,
                        profile.project
                    ],
                )?;
                let account = by_id(transaction, account.id)?
                    .ok_or_else(|| StoreError::NoSuchAccount(account.name.clone()))?;
                return Ok(LoginSaved {
                    account,
                    created: false,
                });
            }
            let name = login.name.clone().unwrap_or(login.default_name.clone());
            let origin = if login.config_fingerprint.is_some() {
                Origin::Config
            } else {
                Origin::Cli
            };
            let new = NewAccount {
                name: name.clone(),
                provider: login.provider.clone(),
                credential: StoredCredential::OAuth(login.tokens.clone()),
                priority: 0,
                weight: login.weight.max(1),
                enabled: true,
                profile: login.profile.clone(),
            };
            let id = insert_account(
                transaction,
                &new,
                origin,
                login.config_fingerprint.as_deref(),
            )?;
            let account = by_id(transaction, id)?.ok_or(StoreError::NoSuchAccount(name))?;
            Ok(LoginSaved {
                account,
                created: true,
            })
        })
    }

    fn update_account(
        &self,
        name: &str,
        change: AccountChange,
    ) -> Result<StoredAccount, StoreError> {
        self.write(|transaction| {
            let account = existing(transaction, name)?;
            if account.origin == Origin::Config {
                return Err(StoreError::DeclaredInConfig {
                    name: name.to_owned(),
                });
            }
            transaction.execute(
                "UPDATE accounts SET enabled = COALESCE(?2, enabled),
                    priority = COALESCE(?3, priority), weight = COALESCE(?4, weight),
                    updated_at = ?5
                 WHERE id = ?1",
                params![
                    account.id.0,
                    change.enabled,
                    change.priority,
                    change.weight.map(|w| w.max(1)),
                    now_ms()
                ],
            )?;
            by_id(transaction, account.id)?
                .ok_or_else(|| StoreError::NoSuchAccount(name.to_owned()))
        })
    }

    fn rename_account(&self, from: &str, to: &str) -> Result<StoredAccount, StoreError> {
        self.write(|transaction| {
            let account = existing(transaction, from)?;
            if account.origin == Origin::Config {
                return Err(StoreError::DeclaredInConfig {
                    name: from.to_owned(),
                });
            }
            if from == to {
                return Ok(account);
            }
            let renamed = transaction.execute(
                "UPDATE accounts SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![account.id.0, to, now_ms()],
            );
            match renamed {
                Err(error) if is_unique_violation(&error) => {
                    return Err(StoreError::NameTaken(to.to_owned()));
                }
                other => {
                    other?;
                }
            }
            rename_quota(transaction, &account.provider, from, to)?;
            by_id(transaction, account.id)?.ok_or_else(|| StoreError::NoSuchAccount(to.to_owned()))
        })
    }

    fn delete_account(&self, id: StoreId) -> Result<bool, StoreError> {
        self.write(|transaction| {
            let Some(account) = by_id(transaction, id)? else {
                return Ok(false);
            };
            transaction.execute("DELETE FROM accounts WHERE id = ?1", [id.0])?;
            transaction.execute(
                "DELETE FROM learned_quota WHERE provider = ?1 AND name = ?2",
                params![account.provider, account.name],
            )?;
            Ok(true)
        })
    }

    fn request_removal(&self, name: &str) -> Result<StoredAccount, StoreError> {
        self.write(|transaction| {
            let account = existing(transaction, name)?;
            if account.origin == Origin::Config {
                return Err(StoreError::DeclaredInConfig {
                    name: name.to_owned(),
                });
            }
            transaction.execute(
                "UPDATE accounts SET remove_requested_at = ?2, remove_refused_in_flight = NULL
                 WHERE id = ?1",
                params![account.id.0, now_ms()],
            )?;
            by_id(transaction, account.id)?
                .ok_or_else(|| StoreError::NoSuchAccount(name.to_owned()))
        })
    }

    fn refuse_removal(&self, id: StoreId, in_flight: u32) -> Result<(), StoreError> {
        self.write(|transaction| {
            transaction.execute(
                "UPDATE accounts SET remove_requested_at = NULL, remove_refused_in_flight = ?2
                 WHERE id = ?1",
                params![id.0, in_flight],
            )?;
            Ok(())
        })
    }

    fn begin_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError> {
        self.write(|transaction| {
            transaction.execute(
                "UPDATE credentials SET refresh_started_at = ?3
                 WHERE account_id = ?1 AND generation = ?2",
                params![id.0, generation, now_ms()],
            )?;
            Ok(())
        })
    }

    fn settle_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError> {
        self.write(|transaction| {
            transaction.execute(
                "UPDATE credentials SET refresh_started_at = NULL
                 WHERE account_id = ?1 AND generation = ?2",
                params![id.0, generation],
            )?;
            Ok(())
        })
    }

    fn save_refreshed(
        &self,
        id: StoreId,
        generation: i64,
        tokens: &OAuthTokens,
    ) -> Result<SaveOutcome, StoreError> {
        self.write(|transaction| {
            let now = now_ms();
            let changed = transaction.execute(
                "UPDATE credentials SET access_token = ?3, refresh_token = ?4, expires_at = ?5,
                    generation = generation + 1, refresh_started_at = NULL, refreshed_at = ?6,
                    updated_at = ?6
                 WHERE account_id = ?1 AND generation = ?2 AND access_token IS NOT NULL",
                params![
                    id.0,
                    generation,
                    tokens.access_token.expose(),
                    tokens.refresh_token.as_ref().map(|t| t.expose()),
                    tokens.expires_at_ms,
                    now,
                ],
            )?;
            if changed == 1 {
                return Ok(SaveOutcome::Saved {
                    generation: generation + 1,
                });
            }
            Ok(match by_id(transaction, id)? {
                Some(_) => SaveOutcome::Superseded,
                None => SaveOutcome::Gone,
            })
        })
    }

    fn mark_needs_relogin(
        &self,
        id: StoreId,
        generation: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.write(|transaction| {
            let changed = transaction.execute(
                "UPDATE credentials SET needs_relogin = 1, relogin_reason = ?3,
                    refresh_started_at = NULL, updated_at = ?4
                 WHERE account_id = ?1 AND generation = ?2",
                params![id.0, generation, reason, now_ms()],
            )?;
            Ok(changed == 1)
        })
    }

    fn reconcile_config(
        &self,
        declared: &[DeclaredOAuth],
    ) -> Result<Vec<StoredAccount>, StoreError> {
        self.write(|transaction| {
            let mut rows = Vec::with_capacity(declared.len());
            for account in declared {
                let id = match by_name(transaction, &account.name)? {
                    Some(row) if row.origin == Origin::Cli => {
                        return Err(StoreError::NameConflict {
                            name: account.name.clone(),
                        });
                    }
                    Some(row) => {
                        if row.config_fingerprint.as_deref() != Some(account.fingerprint.as_str())
                            || row.oauth().is_none()
                        {
                            // The file declares new tokens (a fresh login pasted in): they win.
                            replace_tokens(
                                transaction,
                                row.id,
                                &account.tokens,
                                Some(&account.fingerprint),
                            )?;
                        }
                        row.id
                    }
                    None => {
                        // The same tokens under a name the file no longer declares: the
                        // account was renamed in the file. Keep what was learned.
                        let renamed = query_accounts(
                            transaction,
                            "WHERE a.origin = 'config' AND a.provider = ?1
                               AND c.config_fingerprint = ?2",
                            params![account.provider, account.fingerprint],
                        )?
                        .into_iter()
                        .find(|row| !declared.iter().any(|d| d.name == row.name));
                        match renamed {
                            Some(row) => {
                                transaction.execute(
                                    "UPDATE accounts SET name = ?2, updated_at = ?3 WHERE id = ?1",
                                    params![row.id.0, account.name, now_ms()],
                                )?;
                                rename_quota(
                                    transaction,
                                    &account.provider,
                                    &row.name,
                                    &account.name,
                                )?;
                                row.id
                            }
                            None => insert_account(
                                transaction,
                                &NewAccount {
                                    name: account.name.clone(),
                                    provider: account.provider.clone(),
                                    credential: StoredCredential::OAuth(account.tokens.clone()),
                                    priority: 0,
                                    weight: 1,
                                    enabled: true,
                                    profile: Profile::default(),
                                },
                                Origin::Config,
                                Some(&account.fingerprint),
                            )?,
                        }
                    }
                };
                rows.push(
                    by_id(transaction, id)?
                        .ok_or_else(|| StoreError::NoSuchAccount(account.name.clone()))?,
                );
            }
            Ok(rows)
        })
    }

    fn remember_project(&self, id: StoreId, project: &str) -> Result<(), StoreError> {
        self.write(|transaction| {
            transaction.execute(
                "UPDATE accounts SET project = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.0, project, now_ms()],
            )?;
            Ok(())
        })
    }

    fn save_quota(&self, records: &[QuotaRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "INSERT INTO learned_quota (provider, name, quota, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (provider, name) DO UPDATE
                    SET quota = excluded.quota, updated_at = excluded.updated_at",
            )?;
            for record in records {
                statement.execute(params![
                    record.provider,
                    record.name,
                    record.quota_json,
                    record.updated_at_ms
                ])?;
            }
            Ok(())
        })
    }

    fn quota(&self) -> Result<Vec<QuotaRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT provider, name, quota, updated_at FROM learned_quota ORDER BY provider, name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(QuotaRecord {
                provider: row.get(0)?,
                name: row.get(1)?,
                quota_json: row.get(2)?,
                updated_at_ms: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn log_requests(&self, rows: &[RequestLogRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(|transaction| sqlite_log::insert(transaction, rows))
    }

    fn prune_requests(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.write(|transaction| sqlite_log::prune(transaction, before_ms, limit))
    }

    fn recent_requests(&self, limit: u32) -> Result<Vec<RequestLogRow>, StoreError> {
        sqlite_log::recent(&self.connection(), limit)
    }

    fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        sqlite_log::usage(&self.connection(), query)
    }

    fn change_marker(&self) -> Result<u64, StoreError> {
        let version: i64 = self
            .connection()
            .query_row("PRAGMA data_version", [], |row| row.get(0))?;
        Ok(version as u64)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.connection()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(MIGRATIONS[0]).unwrap();
            connection.pragma_update(None, "user_version", 1).unwrap();
            connection
                .execute(
                    "INSERT INTO accounts (name, provider, origin, kind, created_at, updated_at)
                     VALUES ('old', 'anthropic', 'cli', 'api_key', 1, 1)",
                    [],
                )
                .unwrap();
            connection
                .execute(
                    "INSERT INTO credentials (account_id, api_key, updated_at) VALUES (1, 'k', 1)",
                    [],
                )
                .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let version: i64 = store
            .connection()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let old = store.account("old").unwrap().unwrap();
        assert_eq!(old.profile.project, None);
        assert_eq!(old.profile.upstream_account, None);
        store.remember_project(old.id, "p").unwrap();
        assert_eq!(
            store
                .account("old")
                .unwrap()
                .unwrap()
                .profile
                .project
                .as_deref(),
            Some("p")
        );
    }
}
