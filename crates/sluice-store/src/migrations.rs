//! The SQLite schema, as an ordered list of migrations. The database's `user_version` is the
//! number of migrations applied; each runs in its own transaction, so a crash leaves the
//! schema at a whole version. Add a migration by appending to [`MIGRATIONS`]; never edit one
//! that has shipped.
//!
//! Accounts are referred to by `accounts.id` (never reused: `AUTOINCREMENT`), not by name,
//! so that a later table — a request log, usage history — can reference an account with
//! `REFERENCES accounts(id)` and survive renames. Credentials sit in their own table so that
//! listing accounts never has to read a secret.

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: accounts, their credentials, learned quota.
    r#"
    CREATE TABLE accounts (
        id                        INTEGER PRIMARY KEY AUTOINCREMENT,
        name                      TEXT    NOT NULL UNIQUE,
        provider                  TEXT    NOT NULL,
        origin                    TEXT    NOT NULL CHECK (origin IN ('cli', 'config')),
        kind                      TEXT    NOT NULL CHECK (kind IN ('api_key', 'oauth')),
        priority                  INTEGER NOT NULL DEFAULT 0,
        weight                    INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 1),
        enabled                   INTEGER NOT NULL DEFAULT 1,
        email                     TEXT,
        plan                      TEXT,
        account_uuid              TEXT,
        organization_uuid         TEXT,
        remove_requested_at       INTEGER,
        remove_refused_in_flight  INTEGER,
        created_at                INTEGER NOT NULL,
        updated_at                INTEGER NOT NULL
    );
    CREATE INDEX accounts_by_account_uuid ON accounts (provider, account_uuid);

    CREATE TABLE credentials (
        account_id          INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        api_key             TEXT,
        access_token        TEXT,
        refresh_token       TEXT,
        expires_at          INTEGER,
        generation          INTEGER NOT NULL DEFAULT 1,
        config_fingerprint  TEXT,
        needs_relogin       INTEGER NOT NULL DEFAULT 0,
        relogin_reason      TEXT,
        refresh_started_at  INTEGER,
        refreshed_at        INTEGER,
        updated_at          INTEGER NOT NULL,
        CHECK ((api_key IS NULL) <> (access_token IS NULL))
    );

    CREATE TABLE learned_quota (
        provider    TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        quota       TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (provider, name)
    );
    "#,
    // 2: what Codex and Gemini accounts need besides their tokens: the ChatGPT account
    // (workspace) a token acts for, and the Code Assist project, discovered and remembered.
    r#"
    ALTER TABLE accounts ADD COLUMN upstream_account TEXT;
    ALTER TABLE accounts ADD COLUMN project TEXT;
    "#,
    // 3: the request log, one row per proxied request. `account_id` is the account's row
    // when it has one (not a foreign key: a row outlives its account, and a write must never
    // fail because the account was removed meanwhile); `account` is its name at the time.
    r#"
    CREATE TABLE request_log (
        id                     INTEGER PRIMARY KEY,
        at_ms                  INTEGER NOT NULL,
        provider               TEXT    NOT NULL,
        account_id             INTEGER,
        account                TEXT,
        client                 TEXT,
        conversation           INTEGER,
        model                  TEXT,
        method                 TEXT    NOT NULL,
        path                   TEXT    NOT NULL,
        status                 INTEGER NOT NULL,
        attempts               INTEGER NOT NULL,
        failovers              TEXT,
        latency_ms             REAL    NOT NULL,
        ttfb_ms                REAL,
        input_tokens           INTEGER NOT NULL DEFAULT 0,
        output_tokens          INTEGER NOT NULL DEFAULT 0,
        cache_creation_tokens  INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens      INTEGER NOT NULL DEFAULT 0,
        error                  TEXT
    );
    CREATE INDEX request_log_by_time ON request_log (at_ms);
    "#,
];
