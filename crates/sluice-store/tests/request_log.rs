//! The request log against a real database file: rows written in a batch read back, sums
//! group as asked and follow an account across a rename, pruning deletes only old rows.

use sluice_config::Secret;
use sluice_store::{
    NewAccount, Profile, RequestLogRow, SqliteStore, Store, StoredCredential, UsageKey, UsageQuery,
};

const HOUR_MS: i64 = 3_600_000;

fn row(at_ms: i64, account: &str, model: &str, input: u64, output: u64) -> RequestLogRow {
    RequestLogRow {
        at_ms,
        provider: "anthropic".into(),
        account: Some(account.into()),
        model: Some(model.into()),
        method: "POST".into(),
        path: "/v1/messages".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100.0,
        ttfb_ms: Some(20.0),
        input_tokens: input,
        output_tokens: output,
        ..RequestLogRow::default()
    }
}

fn all(by: UsageKey) -> UsageQuery {
    UsageQuery {
        since_ms: 0,
        until_ms: None,
        by,
        bucket_ms: None,
    }
}

#[test]
fn rows_read_back_as_written_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut failed = row(2_000, "b", "claude-opus-4-1", 0, 0);
    failed.status = 429;
    failed.attempts = 3;
    failed.failovers = vec!["rate_limited".into(), "overloaded".into()];
    failed.error = Some("rate_limited".into());
    failed.client = Some("c-0123abcd".into());
    failed.conversation = Some(u64::MAX - 5);
    failed.ttfb_ms = None;
    store
        .log_requests(&[row(1_000, "a", "claude-sonnet-4-5", 10, 20), failed.clone()])
        .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    let recent = store.recent_requests(10).unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(
        recent[0], failed,
        "every column survives, the hash's bits too"
    );
    assert_eq!(recent[1].account.as_deref(), Some("a"));
    assert_eq!(store.recent_requests(1).unwrap().len(), 1);
}

#[test]
fn usage_groups_by_key_and_model_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut error = row(3 * HOUR_MS + 5, "b", "claude-sonnet-4-5", 1, 0);
    error.error = Some("server_error".into());
    store
        .log_requests(&[
            row(10, "a", "claude-sonnet-4-5", 100, 10),
            row(20, "a", "claude-sonnet-4-5", 50, 5),
            row(HOUR_MS + 1, "a", "claude-haiku-4-5", 7, 1),
            row(2 * HOUR_MS, "b", "claude-sonnet-4-5", 1000, 100),
            error,
        ])
        .unwrap();

    let by_account = store.usage(&all(UsageKey::Account)).unwrap();
    assert_eq!(by_account.len(), 3, "{by_account:#?}");
    let a_sonnet = &by_account[1];
    assert_eq!(a_sonnet.key.as_deref(), Some("a"));
    assert_eq!(a_sonnet.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(
        (
            a_sonnet.requests,
            a_sonnet.input_tokens,
            a_sonnet.output_tokens
        ),
        (2, 150, 15)
    );
    let b = &by_account[2];
    assert_eq!((b.requests, b.failed, b.input_tokens), (2, 1, 1001));

    let total = store.usage(&all(UsageKey::Total)).unwrap();
    assert_eq!(total.iter().map(|r| r.requests).sum::<u64>(), 5);
    assert!(total.iter().all(|r| r.key.is_none()));

    let hourly = store
        .usage(&UsageQuery {
            since_ms: HOUR_MS,
            until_ms: Some(3 * HOUR_MS),
            by: UsageKey::Total,
            bucket_ms: Some(HOUR_MS),
        })
        .unwrap();
    let buckets: Vec<_> = hourly.iter().map(|r| (r.bucket_ms, r.requests)).collect();
    assert_eq!(buckets, [(Some(HOUR_MS), 1), (Some(2 * HOUR_MS), 1)]);

    let by_model = store.usage(&all(UsageKey::Model)).unwrap();
    assert_eq!(by_model.len(), 2);
}

#[test]
fn usage_follows_an_account_across_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let account = store
        .add_account(NewAccount {
            name: "old".into(),
            provider: "anthropic".into(),
            credential: StoredCredential::ApiKey(Secret::from("sk-ant-x")),
            priority: 0,
            weight: 1,
            enabled: true,
            profile: Profile::default(),
        })
        .unwrap();
    let mut before = row(1, "old", "claude-sonnet-4-5", 1, 1);
    before.account_id = Some(account.id);
    store.log_requests(&[before]).unwrap();
    store.rename_account("old", "new").unwrap();
    let mut after = row(2, "new", "claude-sonnet-4-5", 1, 1);
    after.account_id = Some(account.id);
    store.log_requests(&[after]).unwrap();
    let usage = store.usage(&all(UsageKey::Account)).unwrap();
    assert_eq!(usage.len(), 1, "{usage:#?}");
    assert_eq!(usage[0].key.as_deref(), Some("new"));
    assert_eq!(usage[0].requests, 2);

    // A deleted account's rows keep the name they were logged under.
    store.delete_account(account.id).unwrap();
    let usage = store.usage(&all(UsageKey::Account)).unwrap();
    let names: Vec<_> = usage.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(names, ["new", "old"]);
}

#[test]
fn pruning_deletes_old_rows_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let rows: Vec<_> = (0..25).map(|i| row(i, "a", "m", 1, 1)).collect();
    store.log_requests(&rows).unwrap();
    assert_eq!(store.prune_requests(20, 8).unwrap(), 8);
    assert_eq!(store.prune_requests(20, 8).unwrap(), 8);
    assert_eq!(store.prune_requests(20, 8).unwrap(), 4);
    assert_eq!(store.prune_requests(20, 8).unwrap(), 0);
    let left = store.recent_requests(100).unwrap();
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|r| r.at_ms >= 20));
}

#[test]
fn writing_the_log_does_not_look_like_an_account_change() {
    // The server's store watcher polls the change marker; its own log writes must not make
    // it re-read every account once a second.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let marker = store.change_marker().unwrap();
    store.log_requests(&[row(1, "a", "m", 1, 1)]).unwrap();
    assert_eq!(store.change_marker().unwrap(), marker);
}

#[test]
fn a_row_serializes_as_the_api_shows_it() {
    let mut served = row(HOUR_MS, "work", "claude-sonnet-4-5", 10, 20);
    served.conversation = Some(0x00ab_cdef_0123_4567);
    served.account_id = Some(sluice_store::StoreId(7));
    let json = serde_json::to_value(&served).unwrap();
    // JavaScript numbers lose a 64-bit hash; the store's own row id is none of a client's business.
    assert_eq!(json["conversation"], "00abcdef01234567");
    assert!(json.get("account_id").is_none(), "{json}");
    assert_eq!(json["account"], "work");
    assert_eq!(json["input_tokens"], 10);

    let anonymous = row(HOUR_MS, "work", "claude-sonnet-4-5", 0, 0);
    assert!(serde_json::to_value(&anonymous).unwrap()["conversation"].is_null());
}
