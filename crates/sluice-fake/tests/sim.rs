//! The quota simulation and the load generator over real sockets, on a manual clock.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{client, header, messages, read_all};
use sluice_fake::{Clock, FakeAnthropic, FakeConfig, LoadGen, LoadGenConfig, SimAccount, SimStyle};
use tokio_util::sync::CancellationToken;

fn tiny() -> SimAccount {
    SimAccount {
        capacity_5h_tokens: 2_000,
        capacity_7d_tokens: 10_000,
        window_5h: Duration::from_secs(300),
        window_7d: Duration::from_secs(2100),
        latency: (Duration::ZERO, Duration::ZERO),
        event_delay: Duration::ZERO,
        output_tokens: (100, 100),
        prompt_cache: false,
        ..SimAccount::default()
    }
}

fn util(resp: &reqwest::Response, window: &str) -> f64 {
    header(
        resp,
        &format!("anthropic-ratelimit-unified-{window}-utilization"),
    )
    .unwrap()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn utilization_grows_rejects_and_resets() {
    let clock = Clock::manual_now();
    let fake = FakeAnthropic::start(FakeConfig::default().clock(clock.clone())).unwrap();
    fake.set_sim("sub", tiny());
    let c = client();
    let base = fake.base_url();

    let mut last = 0.0;
    let mut warned = false;
    let mut rejected = None;
    for _ in 0..30 {
        let resp = messages(&c, &base, "sub", true).await;
        if resp.status() == 429 {
            rejected = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 200);
        let u = util(&resp, "5h");
        assert!(u > last, "utilization grows: {u} after {last}");
        last = u;
        let status = header(&resp, "anthropic-ratelimit-unified-status")
            .unwrap()
            .to_owned();
        warned |= status == "allowed_warning";
        assert_eq!(
            status,
            if u >= 0.8 {
                "allowed_warning"
            } else {
                "allowed"
            }
        );
        assert!(read_all(resp).await.error.is_none());
        clock.advance(Duration::from_secs(10));
    }
    assert!(warned);
    let resp = rejected.expect("the window fills up");
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-status"),
        Some("rejected")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-5h-status"),
        Some("rejected")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-representative-claim"),
        Some("five_hour")
    );
    let reset: u64 = header(&resp, "anthropic-ratelimit-unified-5h-reset")
        .unwrap()
        .parse()
        .unwrap();
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert_eq!(reset, clock.epoch_secs() + retry);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let usage = fake.sim_usage("sub").unwrap();
    assert!(usage.used_5h >= usage.capacity_5h);
    assert_eq!(usage.rejected, 1);

    clock.advance(Duration::from_secs(retry));
    let resp = messages(&c, &base, "sub", true).await;
    assert_eq!(resp.status(), 200);
    assert!(util(&resp, "5h") < 0.2, "the 5h window reset");
    assert!(util(&resp, "7d") > 0.2, "the 7d window did not");
}

#[tokio::test]
async fn random_faults_use_their_probabilities() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.set_sim(
        "always-529",
        SimAccount {
            fail_529_probability: 1.0,
            ..tiny()
        },
    );
    fake.set_sim(
        "always-500",
        SimAccount {
            fail_500_probability: 1.0,
            ..tiny()
        },
    );
    let c = client();
    let resp = messages(&c, &fake.base_url(), "always-529", true).await;
    assert_eq!(resp.status(), 529);
    assert!(header(&resp, "retry-after").is_some());
    assert!(header(&resp, "anthropic-ratelimit-unified-status").is_some());
    assert_eq!(
        messages(&c, &fake.base_url(), "always-500", true)
            .await
            .status(),
        500
    );
    assert_eq!(fake.sim_usage("always-529").unwrap().used_5h, 0);
}

#[tokio::test]
async fn api_key_style_sim_reports_token_limits() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.set_sim(
        "api",
        SimAccount {
            style: SimStyle::ApiKey,
            ..tiny()
        },
    );
    let resp = messages(&client(), &fake.base_url(), "api", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "anthropic-ratelimit-tokens-limit"),
        Some("2000")
    );
    let remaining: u64 = header(&resp, "anthropic-ratelimit-tokens-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 2000);
    assert!(
        header(&resp, "anthropic-ratelimit-tokens-reset")
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn loadgen_sends_claude_code_like_conversations() {
    let fake = FakeAnthropic::start(FakeConfig::default().allow_any_credential()).unwrap();
    fake.set_sim(
        "sk-load",
        SimAccount {
            latency: (Duration::ZERO, Duration::from_millis(5)),
            event_delay: Duration::from_millis(1),
            ..SimAccount::default()
        },
    );
    let shutdown = CancellationToken::new();
    let config = LoadGenConfig {
        rps: 100.0,
        conversations: 3,
        api_key: Some("sk-load".into()),
        system_prompt_bytes: 2048,
        ..LoadGenConfig::default()
    };
    let handle = LoadGen::spawn(&fake.base_url(), config, shutdown.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.snapshot().ok < 12 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    let stats = handle.join().await;
    assert!(stats.ok >= 12, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.sent, stats.ok + stats.aborted);
    assert_eq!(stats.status(200), stats.ok);
    assert!(stats.mean_latency().is_some());

    let requests = fake.requests_for("sk-load");
    let mut sessions: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        assert_eq!(r.path, "/v1/messages?beta=true");
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert!(
            r.header("anthropic-beta")
                .unwrap()
                .contains("claude-code-20250219")
        );
        let body = r.json().unwrap();
        assert_eq!(body["stream"], true);
        let session = r.header("x-claude-code-session-id").unwrap().to_owned();
        let user_id: serde_json::Value =
            serde_json::from_str(body["metadata"]["user_id"].as_str().unwrap()).unwrap();
        assert_eq!(user_id["session_id"], session.as_str());
        *sessions.entry(session).or_default() += 1;
    }
    assert!(sessions.len() <= 3);
    assert!(sessions.values().any(|&n| n >= 2), "conversations repeat");
    assert!(fake.sim_usage("sk-load").unwrap().served >= 12);
}

#[tokio::test]
async fn loadgen_counts_failures() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.script(
        "sk-f",
        [
            sluice_fake::Reply::status(529),
            sluice_fake::Reply::ok().drop_after(2),
        ],
    );
    fake.set_default(
        "sk-f",
        sluice_fake::Reply::error_event_first(sluice_fake::ErrorKind::Overloaded),
    );
    let config = LoadGenConfig {
        rps: 50.0,
        api_key: Some("sk-f".into()),
        ..LoadGenConfig::default()
    };
    let handle = LoadGen::spawn(&fake.base_url(), config, CancellationToken::new()).unwrap();
    assert!(fake.wait_for_requests(4, Duration::from_secs(3)).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = handle.stop_and_join().await;
    assert_eq!(stats.ok, 0);
    assert_eq!(stats.error_statuses, 1);
    assert_eq!(stats.truncated, 1);
    assert!(stats.stream_errors >= 1);
    assert_eq!(stats.status(529), 1);
    assert_eq!(stats.failed, stats.sent - stats.aborted);
}
