//! Account upkeep as seen in the logs: no token — old, new, access or refresh — in any log
//! line at any level, and a dead refresh token reported once, not once per request. Its own
//! test binary, so the whole process logs into one capture.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upkeep::*;
use common::{LogCapture, plain_body};
use sluice_fake::{FakeAnthropic, FakeConfig, OAuthUser};

#[test]
fn no_token_is_logged_and_a_dead_login_is_reported_once() {
    let capture = LogCapture::default();
    // Everything sluice (and its libraries) logs, at every level; the fake upstream's own
    // lines are its business (it logs the credentials it receives, as a server may).
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,sluice_fake=off"))
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let secrets = runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
        fake.add_oauth_user(OAuthUser::max("live@example.com"));
        fake.add_oauth_user(OAuthUser::max("dead@example.com"));
        let mut live = fake.issue_tokens("live@example.com");
        live.expires_at_ms = now_ms() - 1;
        let mut dead = fake.issue_tokens("dead@example.com");
        dead.expires_at_ms = now_ms() - 1;
        // Kill "dead"'s refresh token by refreshing it elsewhere.
        sluice_server::upstream::install_crypto_provider();
        let rotated: serde_json::Value = reqwest::Client::new()
            .post(fake.url("/v1/oauth/token"))
            .json(&serde_json::json!({
                "grant_type": "refresh_token",
                "refresh_token": dead.refresh_token,
                "client_id": sluice_fake::DEFAULT_CLIENT_ID,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
            let mut dead_account = oauth_account("dead", &dead);
            dead_account.priority = -1; // tried first every time
            c.accounts.push(dead_account);
            c.accounts.push(oauth_account("live", &live));
            c.oauth.usage_probe_interval = Duration::from_millis(300);
        })
        .await;
        for _ in 0..6 {
            let response = h.messages(&plain_body()).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-sluice-account"], "live");
        }
        let status = h.status().await.to_string();
        tokio::time::sleep(Duration::from_millis(700)).await; // let a probe or two run
        h.stop().await;
        let mut secrets = vec![
            live.access_token,
            live.refresh_token,
            dead.access_token,
            dead.refresh_token,
        ];
        for key in ["access_token", "refresh_token"] {
            secrets.push(rotated[key].as_str().unwrap().to_owned());
        }
        let stored = sluice_store::SqliteStore::open(dir.path()).unwrap();
        let row = sluice_store::Store::account(&stored, "live")
            .unwrap()
            .unwrap();
        let tokens = row.oauth().unwrap();
        secrets.push(tokens.access_token.expose().clone());
        secrets.push(tokens.refresh_token.as_ref().unwrap().expose().clone());
        for secret in &secrets {
            assert!(!status.contains(secret.as_str()), "a token in /status");
        }
        secrets
    });
    let logs = capture.text();
    assert!(logs.contains("access token refreshed"), "{logs}");
    for secret in &secrets {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "a token was logged: {leaks:#?}");
    }
    assert!(!logs.contains("sk-ant-oat01-fake") && !logs.contains("sk-ant-ort01-fake"));
    assert_eq!(
        logs.matches("account needs a new login").count(),
        1,
        "reported once: {logs}"
    );
}
