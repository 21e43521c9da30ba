//! Token refresh against a token server that rotates refresh tokens and refuses a reused one:
//! one refresh however many requests need it, committed to the store before the new token is
//! used, a forced refresh on 401, `invalid_grant` final and persisted, failures handled by
//! whether the token server can have acted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::upkeep::*;
use common::{plain_body, stream_body};
use sluice_fake::{FakeAnthropic, FakeConfig, OAuthUser, Reply, TokenFault};
use sluice_store::{
    AccountChange, DeclaredOAuth, Login, LoginSaved, NewAccount, OAuthTokens, QuotaRecord,
    RequestLogRow, SaveOutcome, SqliteStore, Store, StoreError, StoreId, StoredAccount, UsageQuery,
    UsageRow,
};

const USER: &str = "max@example.com";

fn fake_with_user() -> Arc<FakeAnthropic> {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.add_oauth_user(OAuthUser::max(USER));
    Arc::new(fake)
}

/// Tokens for `USER` whose access token has already expired (the fake still accepts it, as
/// real access tokens are accepted a little past their stated expiry; sluice must not rely
/// on that).
fn expired_tokens(fake: &FakeAnthropic) -> sluice_fake::IssuedTokens {
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() - 60_000;
    tokens
}

#[tokio::test]
async fn fifty_concurrent_requests_on_an_expired_account_cause_exactly_one_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let tokens = expired_tokens(&fake);
    let old_access = tokens.access_token.clone();
    // Slow the token server down so that every request arrives while the refresh runs.
    fake.script_token_faults([TokenFault::Delay(Duration::from_millis(300))]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
        c.scheduler.max_in_flight_per_account = 100;
        c.scheduler.max_in_flight_total = 100;
    })
    .await;

    let requests = (0..50).map(|i| {
        let request = if i % 2 == 0 {
            h.messages(&stream_body(Some(&format!("s{i}"))))
        } else {
            h.messages(&plain_body())
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            (status, body)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
    }
    let counts = fake.oauth_counts();
    assert_eq!(counts.refresh_requests, 1, "{counts:?}");
    assert_eq!(counts.refreshes, 1);
    assert_eq!(counts.reuses, 0);

    // Every request went out with the new token, none with the expired one.
    let used: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path_only() == "/v1/messages")
        .map(|r| r.credential.unwrap())
        .collect();
    assert_eq!(used.len(), 50);
    assert!(
        used.iter().all(|t| *t != old_access),
        "an expired token was sent"
    );
    // The store holds the rotated refresh token, and it is the live one.
    let stored = stored_refresh_token(h.store.as_ref(), "max").unwrap();
    assert_ne!(stored, tokens.refresh_token);
    assert!(fake.is_refresh_token_live(&stored));
    h.stop().await;
}

#[tokio::test]
async fn a_token_close_to_expiry_is_refreshed_in_the_background_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000; // inside the 5-minute margin, still valid
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    // Requests meanwhile go out at once with the current token.
    for _ in 0..5 {
        let response = h.messages(&plain_body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(
        fake.wait_for_oauth(Duration::from_secs(10), |c| c.refreshes >= 1)
            .await
    );
    let status = h
        .wait_for_status(Duration::from_secs(5), "the refreshed expiry", |s| {
            s["accounts"][0]["credential"]["expires_at"]
                .as_i64()
                .is_some_and(|at| at > now_ms() + 10 * 60_000)
        })
        .await;
    assert!(status["accounts"][0]["credential"]["refreshed_at"].is_i64());
    // Well outside the margin now: no further refresh.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.oauth_counts().refresh_requests, 1);
    h.stop().await;
}

/// A store that checks, at the moment refreshed tokens are committed, that the upstream has
/// not seen the new access token yet: the commit comes before any use.
struct Witness {
    inner: SqliteStore,
    fake: Arc<FakeAnthropic>,
    commits: AtomicUsize,
    used_before_commit: AtomicUsize,
}

impl Store for Witness {
    fn save_refreshed(
        &self,
        id: StoreId,
        generation: i64,
        tokens: &OAuthTokens,
    ) -> Result<SaveOutcome, StoreError> {
        let access = tokens.access_token.expose();
        if self
            .fake
            .requests()
            .iter()
            .any(|r| r.credential.as_deref() == Some(access.as_str()))
        {
            self.used_before_commit.fetch_add(1, Ordering::SeqCst);
        }
        let outcome = self.inner.save_refreshed(id, generation, tokens);
        self.commits.fetch_add(1, Ordering::SeqCst);
        outcome
    }
    fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        self.inner.accounts()
    }
    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        self.inner.account(name)
    }
    fn add_account(&self, account: NewAccount) -> Result<StoredAccount, StoreError> {
        self.inner.add_account(account)
    }
    fn save_login(&self, login: Login) -> Result<LoginSaved, StoreError> {
        self.inner.save_login(login)
    }
    fn update_account(&self, name: &str, c: AccountChange) -> Result<StoredAccount, StoreError> {
        self.inner.update_account(name, c)
    }
    fn rename_account(&self, from: &str, to: &str) -> Result<StoredAccount, StoreError> {
        self.inner.rename_account(from, to)
    }
    fn delete_account(&self, id: StoreId) -> Result<bool, StoreError> {
        self.inner.delete_account(id)
    }
    fn request_removal(&self, name: &str) -> Result<StoredAccount, StoreError> {
        self.inner.request_removal(name)
    }
    fn refuse_removal(&self, id: StoreId, in_flight: u32) -> Result<(), StoreError> {
        self.inner.refuse_removal(id, in_flight)
    }
    fn begin_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError> {
        self.inner.begin_refresh(id, generation)
    }
    fn settle_refresh(&self, id: StoreId, generation: i64) -> Result<(), StoreError> {
        self.inner.settle_refresh(id, generation)
    }
    fn mark_needs_relogin(&self, id: StoreId, g: i64, reason: &str) -> Result<bool, StoreError> {
        self.inner.mark_needs_relogin(id, g, reason)
    }
    fn reconcile_config(&self, d: &[DeclaredOAuth]) -> Result<Vec<StoredAccount>, StoreError> {
        self.inner.reconcile_config(d)
    }
    fn remember_project(&self, id: StoreId, project: &str) -> Result<(), StoreError> {
        self.inner.remember_project(id, project)
    }
    fn save_quota(&self, records: &[QuotaRecord]) -> Result<(), StoreError> {
        self.inner.save_quota(records)
    }
    fn quota(&self) -> Result<Vec<QuotaRecord>, StoreError> {
        self.inner.quota()
    }
    fn log_requests(&self, rows: &[RequestLogRow]) -> Result<(), StoreError> {
        self.inner.log_requests(rows)
    }
    fn prune_requests(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.inner.prune_requests(before_ms, limit)
    }
    fn recent_requests(&self, limit: u32) -> Result<Vec<RequestLogRow>, StoreError> {
        self.inner.recent_requests(limit)
    }
    fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.inner.usage(query)
    }
    fn change_marker(&self) -> Result<u64, StoreError> {
        self.inner.change_marker()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[tokio::test]
async fn a_rotated_token_is_committed_before_the_new_access_token_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000; // refreshed in the background…
    let witness = Arc::new(Witness {
        inner: SqliteStore::open(dir.path()).unwrap(),
        fake: fake.clone(),
        commits: AtomicUsize::new(0),
        used_before_commit: AtomicUsize::new(0),
    });
    let h = Upkeep::start_with_store(fake.clone(), dir.path(), witness.clone(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    // …while traffic keeps flowing, so any moment the new token were usable before its
    // commit, a request would carry it upstream.
    let mut sent = 0;
    while witness.commits.load(Ordering::SeqCst) == 0 || sent < 20 {
        let batch = (0..4).map(|_| async {
            let response = h.messages(&plain_body()).send().await.unwrap();
            assert_eq!(response.status(), 200);
        });
        futures_util::future::join_all(batch).await;
        sent += 4;
        assert!(sent < 2_000, "the background refresh never happened");
    }
    assert_eq!(witness.commits.load(Ordering::SeqCst), 1);
    assert_eq!(witness.used_before_commit.load(Ordering::SeqCst), 0);
    // And once committed, the new token is what goes out.
    let new_token_used = || {
        fake.requests().iter().any(|r| {
            r.credential
                .as_deref()
                .is_some_and(|c| c != tokens.access_token && r.path_only() == "/v1/messages")
        })
    };
    for _ in 0..200 {
        if new_token_used() {
            break;
        }
        let response = h.messages(&plain_body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(new_token_used(), "the refreshed token was used afterwards");
    assert_eq!(witness.used_before_commit.load(Ordering::SeqCst), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_401_gets_one_forced_refresh_and_a_retry_on_the_same_account() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    fake.add_account("sk-ant-api03-OTHER");
    let tokens = fake.issue_tokens(USER); // valid for hours, yet refused once below
    fake.script(&tokens.access_token, [Reply::status(401)]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        let mut max = oauth_account("max", &tokens);
        max.priority = -1; // preferred, so the first try lands here
        c.accounts.push(max);
        c.accounts.push(key_account("other", "sk-ant-api03-OTHER"));
    })
    .await;
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-sluice-account"],
        "max",
        "retried on the same account, not failed over"
    );
    assert_eq!(fake.oauth_counts().refreshes, 1);
    let credentials: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path_only() == "/v1/messages")
        .map(|r| r.credential.unwrap())
        .collect();
    assert_eq!(credentials.len(), 2);
    assert_eq!(credentials[0], tokens.access_token);
    assert_ne!(credentials[1], tokens.access_token);
    let max = h.account_status("max").await.unwrap();
    assert_eq!(max["state"], "available");
    assert_eq!(max["failed"], 0);

    // Refused again, and this time the forced refresh fails: the request fails over.
    let current = credentials[1].clone();
    fake.script(&current, [Reply::status(401)]);
    fake.script_token_faults([TokenFault::Error {
        status: 503,
        error: "temporarily_unavailable".into(),
    }]);
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "other");
    assert_eq!(fake.oauth_counts().refresh_requests, 2);
    assert_eq!(
        h.account_status("max").await.unwrap()["state"],
        "auth_failed"
    );
    h.stop().await;
}

#[tokio::test]
async fn invalid_grant_needs_a_relogin_that_survives_a_restart_and_stops_refreshing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    fake.add_account("sk-ant-api03-OTHER");
    let tokens = expired_tokens(&fake);
    // Someone else (Claude Code sharing the login) refreshed first: our token is dead.
    sluice_server::upstream::install_crypto_provider();
    let client = reqwest::Client::new();
    let rotated = client
        .post(fake.url("/v1/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": sluice_fake::DEFAULT_CLIENT_ID,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let config = |c: &mut sluice_config::Config| {
        c.accounts.push(oauth_account("max", &tokens));
        c.accounts.push(key_account("other", "sk-ant-api03-OTHER"));
    };
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| config(c)).await;
    for _ in 0..3 {
        let response = h.messages(&plain_body()).send().await.unwrap();
        assert_eq!(response.status(), 200, "served by the other account");
        assert_eq!(response.headers()["x-sluice-account"], "other");
    }
    let counts = fake.oauth_counts();
    assert_eq!(
        counts.refresh_requests, 2,
        "ours once, never again: {counts:?}"
    );
    assert_eq!(counts.reuses, 1);
    let max = h.account_status("max").await.unwrap();
    assert_eq!(max["state"], "needs_relogin");
    assert_eq!(max["credential"]["needs_relogin"], true);
    assert!(
        max["credential"]["relogin_reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );
    assert!(h.store.account("max").unwrap().unwrap().needs_relogin);
    h.stop().await;

    // Restart on the same data directory and the same (stale) config.
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| config(c)).await;
    let max = h.account_status("max").await.unwrap();
    assert_eq!(max["state"], "needs_relogin");
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.headers()["x-sluice-account"], "other");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.oauth_counts().refresh_requests,
        2,
        "still never refreshed"
    );

    // A new login revives it (as `sluice login --name max` would write it).
    let fresh = fake.issue_tokens(USER);
    let declared = h.store.account("max").unwrap().unwrap();
    h.store
        .save_login(Login {
            provider: "anthropic".into(),
            name: Some("max".into()),
            default_name: USER.into(),
            tokens: OAuthTokens {
                access_token: fresh.access_token.clone().into(),
                refresh_token: Some(fresh.refresh_token.clone().into()),
                expires_at_ms: Some(fresh.expires_at_ms),
            },
            profile: Default::default(),
            weight: 1,
            config_fingerprint: declared.config_fingerprint.clone(),
        })
        .unwrap();
    // The server's own connection made that write, so nudge the watcher the way another
    // process would: through a second connection.
    let other = SqliteStore::open(dir.path()).unwrap();
    other
        .save_quota(&[QuotaRecord {
            provider: "x".into(),
            name: "nudge".into(),
            quota_json: "{}".into(),
            updated_at_ms: 0,
        }])
        .unwrap();
    h.wait_for_status(Duration::from_secs(5), "max revived", |s| {
        s["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "max" && a["state"] == "available")
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_refresh_whose_answer_is_lost_is_not_sent_again_while_the_token_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000; // due for a proactive refresh
    fake.script_token_faults([TokenFault::DropAfterRotating]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    let status = h
        .wait_for_status(Duration::from_secs(10), "the refresh in doubt", |s| {
            s["accounts"][0]["credential"]["refresh_in_doubt"] == true
        })
        .await;
    assert!(
        status["accounts"][0]["credential"]["last_refresh_error"]
            .as_str()
            .unwrap()
            .contains("no usable answer")
    );
    // The access token still works, and the refresh is not sent again on a schedule.
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.oauth_counts().refresh_requests, 1);
    // The store remembers that the refresh never settled.
    let row = h.store.account("max").unwrap().unwrap();
    assert!(row.refresh_started_at_ms.is_some());
    h.stop().await;
}

#[tokio::test]
async fn a_refresh_in_doubt_gets_one_last_chance_when_the_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    // Due for a refresh now, expiring (by sluice's reckoning) two seconds later.
    tokens.expires_at_ms = now_ms() + 7_000;
    fake.script_token_faults([TokenFault::DropAfterRotating]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    // The lost answer had rotated the token, so the last try finds it dead: a new login is
    // needed, and sluice says so rather than failing silently.
    h.wait_for_status(Duration::from_secs(15), "needs_relogin", |s| {
        s["accounts"][0]["state"] == "needs_relogin"
    })
    .await;
    let counts = fake.oauth_counts();
    assert_eq!(
        (counts.refresh_requests, counts.reuses),
        (2, 1),
        "{counts:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_error_answer_leaves_the_token_good_and_waits_out_a_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000;
    fake.script_token_faults([TokenFault::Error {
        status: 503,
        error: "temporarily_unavailable".into(),
    }]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    let status = h
        .wait_for_status(Duration::from_secs(10), "a failed refresh", |s| {
            s["accounts"][0]["credential"]["last_refresh_error"]
                .as_str()
                .is_some_and(|e| e.contains("503"))
        })
        .await;
    assert_eq!(
        status["accounts"][0]["credential"]["refresh_in_doubt"],
        false
    );
    assert!(fake.is_refresh_token_live(&tokens.refresh_token));
    let row = h.store.account("max").unwrap().unwrap();
    assert!(
        row.refresh_started_at_ms.is_none(),
        "settled: nothing in doubt"
    );
    // Not sent again within the backoff.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.oauth_counts().refresh_requests, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_token_server_that_cannot_be_reached_leaves_the_token_good() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/v1/oauth/token", closed.local_addr().unwrap());
    drop(closed);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
        c.providers.anthropic.token_url = closed_url.parse().unwrap();
    })
    .await;
    let status = h
        .wait_for_status(
            Duration::from_secs(10),
            "an unreachable token server",
            |s| {
                s["accounts"][0]["credential"]["last_refresh_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("could not reach"))
            },
        )
        .await;
    assert_eq!(
        status["accounts"][0]["credential"]["refresh_in_doubt"],
        false
    );
    assert!(fake.is_refresh_token_live(&tokens.refresh_token));
    assert_eq!(fake.oauth_counts().refresh_requests, 0);
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the current access token keeps serving"
    );
    h.stop().await;
}

#[tokio::test]
async fn refresh_goes_on_while_the_account_is_benched_for_quota() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let mut tokens = fake.issue_tokens(USER);
    tokens.expires_at_ms = now_ms() + 60_000; // due for a refresh
    fake.script(&tokens.access_token, [Reply::status(429).retry_after(3600)]);
    // The refresh takes a moment, so the request goes out with the current token first and
    // benches the account for an hour.
    fake.script_token_faults([TokenFault::Delay(Duration::from_secs(2))]);
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("max", &tokens));
    })
    .await;
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        fake.oauth_counts().refreshes,
        0,
        "benched before the refresh completed"
    );
    assert!(
        fake.wait_for_oauth(Duration::from_secs(10), |c| c.refreshes == 1)
            .await,
        "refreshed while benched"
    );
    let max = h.account_status("max").await.unwrap();
    assert_eq!(max["state"], "rate_limited");
    h.stop().await;
}

#[tokio::test]
async fn learned_tokens_of_a_config_account_outlive_a_restart_with_the_stale_file() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_user();
    let tokens = expired_tokens(&fake);
    let config = |c: &mut sluice_config::Config| c.accounts.push(oauth_account("max", &tokens));
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| config(c)).await;
    assert_eq!(
        h.messages(&plain_body()).send().await.unwrap().status(),
        200
    );
    assert_eq!(fake.oauth_counts().refreshes, 1);
    h.stop().await;

    // The file still declares the tokens that are now dead; the store's win.
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| config(c)).await;
    assert_eq!(
        h.messages(&plain_body()).send().await.unwrap().status(),
        200
    );
    let counts = fake.oauth_counts();
    assert_eq!(
        counts.reuses, 0,
        "the dead refresh token was never presented"
    );
    assert_eq!(h.account_status("max").await.unwrap()["state"], "available");
    h.stop().await;
}
