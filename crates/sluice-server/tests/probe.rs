//! Idle-account usage probes: subscriptions nobody is using have their quota read from the
//! usage endpoint (spending none of it), so the scheduler knows them before sending work.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::plain_body;
use common::upkeep::*;
use sluice_fake::{FakeAnthropic, FakeConfig, OAuthUser, UsageFault};

fn quota_of(status: &serde_json::Value, name: &str) -> Option<f64> {
    status["accounts"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)?["quota"]["session"]["utilization"]
        .as_f64()
}

#[tokio::test]
async fn idle_subscriptions_are_probed_and_their_quota_steers_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
    fake.add_oauth_user(OAuthUser::max("busy@example.com"));
    fake.add_oauth_user(OAuthUser::max("idle@example.com"));
    fake.update_oauth_user("busy@example.com", |u| {
        u.five_hour_percent = 95.0;
        u.seven_day_percent = 40.0;
    });
    fake.update_oauth_user("idle@example.com", |u| u.five_hour_percent = 10.0);
    let busy = fake.issue_tokens("busy@example.com");
    let idle = fake.issue_tokens("idle@example.com");
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("busy", &busy));
        c.accounts.push(oauth_account("idle", &idle));
        c.oauth.usage_probe_interval = Duration::from_millis(600);
    })
    .await;
    let status = h
        .wait_for_status(Duration::from_secs(10), "both accounts probed", |s| {
            quota_of(s, "busy").is_some() && quota_of(s, "idle").is_some()
        })
        .await;
    assert_eq!(quota_of(&status, "busy"), Some(0.95));
    assert_eq!(quota_of(&status, "idle"), Some(0.10));
    let busy_status = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "busy")
        .unwrap();
    assert_eq!(
        busy_status["state"], "over_threshold",
        "95 % is past the 0.90 switch threshold"
    );
    assert_eq!(busy_status["quota"]["weekly"]["utilization"], 0.4);
    assert!(busy_status["credential"]["usage_probed_at"].is_i64());
    // Before any of them carried a request, work goes where the quota is.
    for _ in 0..4 {
        let response = h.messages(&plain_body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-sluice-account"], "idle");
    }
    // The probe spends no quota: it never touched the Messages API.
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.path_only() == "/v1/messages")
            .all(|r| r.credential.as_deref() == Some(idle.access_token.as_str()))
    );
    h.stop().await;
}

#[tokio::test]
async fn a_rate_limited_probe_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
    fake.add_oauth_user(OAuthUser::pro("p@example.com"));
    fake.script_usage_faults([UsageFault::RateLimited {
        retry_after_secs: 120,
    }]);
    let tokens = fake.issue_tokens("p@example.com");
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("p", &tokens));
        c.oauth.usage_probe_interval = Duration::from_millis(200);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.usage_requests("p@example.com") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never probed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Many probe intervals later, the 429's retry-after still holds it back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.usage_requests("p@example.com"), 1);
    let status = h.status().await;
    assert!(status["accounts"][0]["credential"]["usage_probed_at"].is_null());
    h.stop().await;
}

#[tokio::test]
async fn accounts_carrying_traffic_are_not_probed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
    fake.add_oauth_user(OAuthUser::max("m@example.com"));
    let tokens = fake.issue_tokens("m@example.com");
    let h = Upkeep::start_on(fake.clone(), dir.path(), |c, _| {
        c.accounts.push(oauth_account("m", &tokens));
        c.oauth.usage_probe_interval = Duration::from_secs(2);
    })
    .await;
    // Busy for well over one probe interval.
    for _ in 0..25 {
        let response = h.messages(&plain_body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        fake.usage_requests("m@example.com"),
        0,
        "its quota is learned from its own responses"
    );
    h.stop().await;
}
