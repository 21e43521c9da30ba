//! The SQLite store against a real database file: what is written is what is read back, by
//! this process or another connection, across reopenings; conditional writes hold.

use sluice_config::Secret;
use sluice_store::{
    AccountChange, DeclaredOAuth, Login, NewAccount, OAuthTokens, Origin, Profile, QuotaRecord,
    Removal, SaveOutcome, SqliteStore, Store, StoreError, StoredCredential, fingerprint,
};

fn tokens(access: &str, refresh: &str, expires: i64) -> OAuthTokens {
    OAuthTokens {
        access_token: Secret::from(access),
        refresh_token: Some(Secret::from(refresh)),
        expires_at_ms: Some(expires),
    }
}

fn access_of(store: &SqliteStore, name: &str) -> String {
    let account = store.account(name).unwrap().expect("account exists");
    account.oauth().unwrap().access_token.expose().clone()
}

fn refresh_of(store: &SqliteStore, name: &str) -> String {
    let account = store.account(name).unwrap().expect("account exists");
    account
        .oauth()
        .unwrap()
        .refresh_token
        .as_ref()
        .unwrap()
        .expose()
        .clone()
}

fn login(name: Option<&str>, email: &str, uuid: &str, t: OAuthTokens) -> Login {
    Login {
        provider: "anthropic".into(),
        name: name.map(str::to_owned),
        default_name: email.to_owned(),
        tokens: t,
        profile: Profile {
            email: Some(email.to_owned()),
            plan: Some("max".into()),
            account_uuid: Some(uuid.to_owned()),
            ..Profile::default()
        },
        weight: 5,
        config_fingerprint: None,
    }
}

fn api_account(name: &str, key: &str) -> NewAccount {
    NewAccount {
        name: name.into(),
        provider: "anthropic".into(),
        credential: StoredCredential::ApiKey(Secret::from(key)),
        priority: 0,
        weight: 1,
        enabled: true,
        profile: Profile::default(),
    }
}

#[cfg(unix)]
#[test]
fn the_database_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("fresh");
    let store = SqliteStore::open(&data_dir).unwrap();
    store.add_account(api_account("k", "sk-secret")).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(&data_dir), 0o700);
    for side in ["sluice.db-wal", "sluice.db-shm"] {
        let path = data_dir.join(side);
        if path.exists() {
            assert_eq!(mode(&path) & 0o077, 0, "{side} is readable by others");
        }
    }
}

#[cfg(unix)]
#[test]
fn an_existing_database_readable_by_others_is_narrowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    SqliteStore::open(dir.path()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn accounts_survive_reopening_and_settings_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .add_account(api_account("work", "sk-ant-api03-W"))
            .unwrap();
        let saved = store
            .save_login(login(
                None,
                "a@example.com",
                "uuid-a",
                tokens("at1", "rt1", 10),
            ))
            .unwrap();
        assert!(saved.created);
        assert_eq!(saved.account.name, "a@example.com");
        assert_eq!(saved.account.weight, 5);
        store
            .update_account(
                "work",
                AccountChange {
                    enabled: Some(false),
                    priority: Some(3),
                    weight: Some(7),
                },
            )
            .unwrap();
        store.rename_account("a@example.com", "alice").unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let accounts = store.accounts().unwrap();
    let names: Vec<_> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["work", "alice"]);
    let work = &accounts[0];
    assert!(!work.enabled);
    assert_eq!((work.priority, work.weight), (3, 7));
    match &work.credential {
        StoredCredential::ApiKey(key) => assert_eq!(key.expose(), "sk-ant-api03-W"),
        other => panic!("expected an API key, got {other:?}"),
    }
    let alice = &accounts[1];
    assert_eq!(alice.origin, Origin::Cli);
    assert_eq!(alice.profile.plan.as_deref(), Some("max"));
    assert_eq!(alice.oauth().unwrap().expires_at_ms, Some(10));
    assert_eq!(access_of(&store, "alice"), "at1");
    assert!(format!("{alice:?}").contains("****"));
    assert!(
        !format!("{alice:?}").contains("at1"),
        "debug output shows a token"
    );
}

#[test]
fn logging_in_again_updates_the_same_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let first = store
        .save_login(login(
            None,
            "a@example.com",
            "uuid-a",
            tokens("at1", "rt1", 10),
        ))
        .unwrap();
    store.rename_account("a@example.com", "alice").unwrap();
    store
        .mark_needs_relogin(first.account.id, first.account.generation, "invalid_grant")
        .unwrap();
    assert!(store.account("alice").unwrap().unwrap().needs_relogin);

    // Same user, found by the provider's user id despite the rename.
    let again = store
        .save_login(login(
            None,
            "a@example.com",
            "uuid-a",
            tokens("at2", "rt2", 20),
        ))
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.account.name, "alice");
    assert_eq!(again.account.id, first.account.id);
    assert!(
        !again.account.needs_relogin,
        "a new login revives the account"
    );
    assert!(again.account.generation > first.account.generation);
    assert_eq!(access_of(&store, "alice"), "at2");
    assert_eq!(store.accounts().unwrap().len(), 1);

    // A different user gets a new account; an explicit name that exists is updated.
    let other = store
        .save_login(login(
            None,
            "b@example.com",
            "uuid-b",
            tokens("bt", "brt", 30),
        ))
        .unwrap();
    assert!(other.created);
    let named = store
        .save_login(login(
            Some("alice"),
            "a@example.com",
            "uuid-a",
            tokens("at3", "rt3", 40),
        ))
        .unwrap();
    assert!(!named.created);
    assert_eq!(access_of(&store, "alice"), "at3");
    assert_eq!(store.accounts().unwrap().len(), 2);
}

#[test]
fn a_login_cannot_take_over_an_api_key_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_account(api_account("work", "sk")).unwrap();
    let error = store
        .save_login(login(
            Some("work"),
            "a@example.com",
            "u",
            tokens("a", "r", 1),
        ))
        .unwrap_err();
    assert!(matches!(error, StoreError::NotOAuth { .. }), "{error}");
}

#[test]
fn names_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_account(api_account("a", "k1")).unwrap();
    store.add_account(api_account("b", "k2")).unwrap();
    assert!(matches!(
        store.add_account(api_account("a", "k3")),
        Err(StoreError::NameTaken(name)) if name == "a"
    ));
    assert!(matches!(
        store.rename_account("b", "a"),
        Err(StoreError::NameTaken(_))
    ));
    assert!(matches!(
        store.update_account("nope", AccountChange::default()),
        Err(StoreError::NoSuchAccount(_))
    ));
}

#[test]
fn refreshed_tokens_commit_only_over_the_generation_they_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let account = store
        .save_login(login(None, "a@example.com", "u", tokens("at1", "rt1", 10)))
        .unwrap()
        .account;
    let g = account.generation;

    store.begin_refresh(account.id, g).unwrap();
    assert!(
        store
            .account("a@example.com")
            .unwrap()
            .unwrap()
            .refresh_started_at_ms
            .is_some()
    );
    let outcome = store
        .save_refreshed(account.id, g, &tokens("at2", "rt2", 20))
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved { generation: g + 1 });
    let row = store.account("a@example.com").unwrap().unwrap();
    assert_eq!(row.refresh_started_at_ms, None);
    assert!(row.refreshed_at_ms.is_some());
    assert_eq!(refresh_of(&store, "a@example.com"), "rt2");

    // A refresh that started from the old generation loses to the committed one.
    assert_eq!(
        store
            .save_refreshed(account.id, g, &tokens("at-stale", "rt-stale", 30))
            .unwrap(),
        SaveOutcome::Superseded
    );
    assert_eq!(refresh_of(&store, "a@example.com"), "rt2");
    // And cannot mark the newer credential dead.
    assert!(
        !store
            .mark_needs_relogin(account.id, g, "invalid_grant")
            .unwrap()
    );
    assert!(
        !store
            .account("a@example.com")
            .unwrap()
            .unwrap()
            .needs_relogin
    );
    assert!(
        store
            .mark_needs_relogin(account.id, g + 1, "invalid_grant")
            .unwrap()
    );
    let dead = store.account("a@example.com").unwrap().unwrap();
    assert!(dead.needs_relogin);
    assert_eq!(dead.relogin_reason.as_deref(), Some("invalid_grant"));

    store.delete_account(account.id).unwrap();
    assert_eq!(
        store
            .save_refreshed(account.id, g + 1, &tokens("x", "y", 1))
            .unwrap(),
        SaveOutcome::Gone
    );
}

#[test]
fn a_refresh_mark_survives_a_crash_and_a_settled_one_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let account = store
            .save_login(login(None, "a@example.com", "u", tokens("at1", "rt1", 10)))
            .unwrap()
            .account;
        id = account.id;
        store.begin_refresh(id, account.generation).unwrap();
        // The process dies here: no settle, no save.
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let row = store.account("a@example.com").unwrap().unwrap();
    assert!(row.refresh_started_at_ms.is_some());
    store.settle_refresh(id, row.generation).unwrap();
    assert!(
        store
            .account("a@example.com")
            .unwrap()
            .unwrap()
            .refresh_started_at_ms
            .is_none()
    );
}

fn declared(name: &str, t: OAuthTokens) -> DeclaredOAuth {
    DeclaredOAuth {
        name: name.into(),
        provider: "anthropic".into(),
        fingerprint: fingerprint(&t),
        tokens: t,
    }
}

#[test]
fn config_accounts_keep_learned_tokens_until_the_file_changes_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let file_tokens = tokens("at-file", "rt-file", 10);

    let rows = store
        .reconcile_config(&[declared("max", file_tokens.clone())])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].origin, Origin::Config);
    assert_eq!(access_of(&store, "max"), "at-file");

    // sluice refreshes: the store now holds newer tokens than the file.
    let outcome = store
        .save_refreshed(
            rows[0].id,
            rows[0].generation,
            &tokens("at-new", "rt-new", 20),
        )
        .unwrap();
    assert!(matches!(outcome, SaveOutcome::Saved { .. }));

    // The same file again (a restart, a reload): the learned tokens stay.
    store
        .reconcile_config(&[declared("max", file_tokens.clone())])
        .unwrap();
    assert_eq!(refresh_of(&store, "max"), "rt-new");

    // Settings of a config account belong to the file.
    assert!(matches!(
        store.update_account("max", AccountChange::default()),
        Err(StoreError::DeclaredInConfig { .. })
    ));

    // Renamed in the file, same tokens: the row follows, learned tokens kept.
    let rows = store
        .reconcile_config(&[declared("max-renamed", file_tokens.clone())])
        .unwrap();
    assert_eq!(rows[0].name, "max-renamed");
    assert_eq!(refresh_of(&store, "max-renamed"), "rt-new");
    assert!(store.account("max").unwrap().is_none());

    // New tokens pasted into the file: they win, and clear a needs-relogin mark.
    let row = store.account("max-renamed").unwrap().unwrap();
    store
        .mark_needs_relogin(row.id, row.generation, "invalid_grant")
        .unwrap();
    let rows = store
        .reconcile_config(&[declared(
            "max-renamed",
            tokens("at-pasted", "rt-pasted", 30),
        )])
        .unwrap();
    assert_eq!(refresh_of(&store, "max-renamed"), "rt-pasted");
    assert!(!rows[0].needs_relogin);
}

#[test]
fn a_config_name_taken_by_a_cli_account_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store
        .save_login(login(
            Some("max"),
            "a@example.com",
            "u",
            tokens("a", "r", 1),
        ))
        .unwrap();
    let error = store
        .reconcile_config(&[declared("max", tokens("b", "s", 2))])
        .unwrap_err();
    assert!(matches!(error, StoreError::NameConflict { .. }), "{error}");
    assert!(error.to_string().contains("sluice accounts rename max"));
}

#[test]
fn removal_requests_and_refusals_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let account = store.add_account(api_account("a", "k")).unwrap();
    assert_eq!(account.removal, Removal::None);
    let requested = store.request_removal("a").unwrap();
    assert!(matches!(requested.removal, Removal::Requested { .. }));
    store.refuse_removal(account.id, 3).unwrap();
    assert_eq!(
        store.account("a").unwrap().unwrap().removal,
        Removal::Refused { in_flight: 3 }
    );
    assert!(store.delete_account(account.id).unwrap());
    assert!(!store.delete_account(account.id).unwrap());
    assert!(store.account("a").unwrap().is_none());
}

#[test]
fn quota_is_kept_by_name_and_follows_renames() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_account(api_account("a", "k")).unwrap();
    let record = |name: &str, json: &str| QuotaRecord {
        provider: "anthropic".into(),
        name: name.into(),
        quota_json: json.into(),
        updated_at_ms: 5,
    };
    store.save_quota(&[record("a", "{\"x\":1}")]).unwrap();
    store.save_quota(&[record("a", "{\"x\":2}")]).unwrap();
    store.rename_account("a", "b").unwrap();
    assert_eq!(store.quota().unwrap(), vec![record("b", "{\"x\":2}")]);
    let id = store.account("b").unwrap().unwrap().id;
    store.delete_account(id).unwrap();
    assert!(store.quota().unwrap().is_empty());
}

#[test]
fn another_connections_commit_changes_the_marker_and_our_own_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = SqliteStore::open(dir.path()).unwrap();
    let cli = SqliteStore::open(dir.path()).unwrap();
    let before = server.change_marker().unwrap();
    server.add_account(api_account("own", "k")).unwrap();
    assert_eq!(server.change_marker().unwrap(), before);
    cli.add_account(api_account("theirs", "k2")).unwrap();
    assert_ne!(server.change_marker().unwrap(), before);
    assert_eq!(server.accounts().unwrap().len(), 2);
    server.flush().unwrap();
}

#[test]
fn codex_and_gemini_logins_keep_their_account_id_and_remembered_project() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let codex = store
        .save_login(Login {
            provider: "codex".into(),
            name: None,
            default_name: "dev@example.com".into(),
            tokens: tokens("codex-at", "codex-rt", 1),
            profile: Profile {
                email: Some("dev@example.com".into()),
                plan: Some("plus".into()),
                account_uuid: Some("user-1/acct-1".into()),
                upstream_account: Some("acct-1".into()),
                ..Profile::default()
            },
            weight: 1,
            config_fingerprint: None,
        })
        .unwrap();
    assert!(codex.created);
    assert_eq!(codex.account.provider, "codex");
    assert_eq!(
        codex.account.profile.upstream_account.as_deref(),
        Some("acct-1")
    );

    let gemini = store
        .save_login(Login {
            provider: "gemini".into(),
            name: None,
            default_name: "me@gmail.com".into(),
            tokens: tokens("ya29.a", "1//r", 2),
            profile: Profile {
                email: Some("me@gmail.com".into()),
                ..Profile::default()
            },
            weight: 1,
            config_fingerprint: None,
        })
        .unwrap();
    assert_eq!(gemini.account.profile.project, None, "not discovered yet");
    store
        .remember_project(gemini.account.id, "proj-123")
        .unwrap();
    // A later login of the same Google account keeps the remembered project.
    let again = store
        .save_login(Login {
            provider: "gemini".into(),
            name: None,
            default_name: "me@gmail.com".into(),
            tokens: tokens("ya29.b", "1//r", 3),
            profile: Profile {
                email: Some("me@gmail.com".into()),
                ..Profile::default()
            },
            weight: 1,
            config_fingerprint: None,
        })
        .unwrap();
    assert!(!again.created);
    drop(store);
    let reopened = SqliteStore::open(dir.path()).unwrap();
    let row = reopened.account("me@gmail.com").unwrap().unwrap();
    assert_eq!(row.profile.project.as_deref(), Some("proj-123"));
    assert_eq!(row.oauth().unwrap().access_token.expose(), "ya29.b");
    let row = reopened.account("dev@example.com").unwrap().unwrap();
    assert_eq!(row.profile.upstream_account.as_deref(), Some("acct-1"));
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).unwrap();
    let connection = rusqlite_connection(&dir.path().join("sluice.db"));
    connection.pragma_update(None, "user_version", 999).unwrap();
    drop(connection);
    let error = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found: 999, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("newer sluice"));
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
