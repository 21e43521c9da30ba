//! The Codex CLI through sluice, against the fake ChatGPT backend over real sockets: routing
//! of both its paths, the pooled account's credential in place of the client's, Responses
//! SSE forwarded, quota learned from `x-codex-*` headers and `usage_limit_reached` bodies,
//! failover (including a stream that fails at its opening), affinity by
//! `prompt_cache_key`, the WebSocket attempt refused at once, the CLI's usage queries
//! answered with the pool's figures, idle-account probes, and refresh-token rotation.

mod common;

use std::time::Duration;

use common::pools::{Captured, Pools, codex, event_names, login};
use serde_json::{Value, json};
use sluice_config::{AccountOptions, ProviderKind};
use sluice_fake::{ApiReply, CodexQuota};

/// The captured Codex turn, with a `prompt_cache_key` of our choosing.
fn turn(key: &str) -> (Captured, Value) {
    let captured = Captured::load("codex_responses.json");
    let mut body = captured.body.clone();
    body["prompt_cache_key"] = json!(key);
    (captured, body)
}

async fn send_turn(pools: &Pools, path: &str, key: &str) -> reqwest::Response {
    let (mut captured, body) = turn(key);
    captured.path = path.to_owned();
    captured
        .request(&pools.client, &pools.url, Some(&body))
        // The CLI's own login, which must never reach the upstream.
        .header("chatgpt-account-id", "acct-of-the-client")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn codex_turns_reach_the_chatgpt_backend_as_the_pooled_account() {
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a");
        up.codex.set_quota("acct-a", CodexQuota::used(42.0, 10.0));
        up.codex.set_default(
            "acct-a",
            ApiReply::ok()
                .text(["po", "ng"])
                .tokens(5000, 12)
                .cached(4096),
        );
        vec![codex("a", "at-a", "acct-a")]
    })
    .await;

    for path in ["/v1/responses", "/backend-api/codex/responses"] {
        let response = send_turn(&pools, path, "session-1").await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-sluice-account"], "a");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let body = response.bytes().await.unwrap();
        let names = event_names(&body);
        assert_eq!(names.first().map(String::as_str), Some("response.created"));
        assert_eq!(names.last().map(String::as_str), Some("response.completed"));
    }

    let (captured, body) = turn("session-1");
    for recorded in pools.up.codex.requests() {
        assert_eq!(recorded.path, "/backend-api/codex/responses");
        assert_eq!(recorded.credential.as_deref(), Some("at-a"));
        assert_eq!(
            recorded.header("chatgpt-account-id"),
            Some("acct-a"),
            "the pooled account's id replaces the client's"
        );
        for passed in [
            "session-id",
            "originator",
            "x-codex-turn-metadata",
            "x-codex-window-id",
        ] {
            assert_eq!(recorded.header(passed), captured.header(passed), "{passed}");
        }
        assert_eq!(recorded.json().unwrap(), body, "the body travels unchanged");
    }

    // Quota and usage are learned from the responses.
    let status = pools.account("a").await;
    assert_eq!(status["provider"], "codex");
    assert_eq!(status["quota"]["session"]["utilization"], 0.42);
    assert_eq!(status["quota"]["weekly"]["utilization"], 0.10);
    assert_eq!(status["completed"], 2);
    let pool = pools.status().await["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "codex")
        .cloned()
        .unwrap();
    assert_eq!(pool["accounts"], 1);
    pools.stop().await;
}

#[tokio::test]
async fn a_usage_limit_fails_over_and_benches_the_account_until_its_reset() {
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a");
        up.codex.add_account("acct-b", "at-b");
        up.codex
            .set_default("acct-a", ApiReply::status(429).retry_after(900));
        vec![codex("a", "at-a", "acct-a"), codex("b", "at-b", "acct-b")]
    })
    .await;
    for turn in 0..4 {
        let response = send_turn(&pools, "/v1/responses", &format!("conv-{turn}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-sluice-account"], "b");
        let body = response.bytes().await.unwrap();
        assert_eq!(event_names(&body).last().unwrap(), "response.completed");
    }
    assert!(
        pools.up.codex.requests_for("acct-a").len() <= 1,
        "a benched account is not asked again"
    );
    let a = pools.account("a").await;
    assert_eq!(a["state"], "rate_limited");
    let until = a["until"].as_i64().unwrap();
    let now = common::upkeep::now_ms();
    assert!(
        (until - now) > 800_000 && (until - now) <= 900_000,
        "benched until the body's reset: {a:#}"
    );
    pools.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_at_its_opening_fails_over_and_one_that_fails_later_does_not() {
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a");
        up.codex.add_account("acct-b", "at-b");
        // `response.created`, `response.in_progress`, then `response.failed`.
        up.codex.script(
            "acct-a",
            [ApiReply::ok().fail_after(2).code("rate_limit_exceeded")],
        );
        vec![codex("a", "at-a", "acct-a"), codex("b", "at-b", "acct-b")]
    })
    .await;
    // Pin the first turn to `a`.
    pools
        .client
        .put(pools.url("/api/scheduler"))
        .header("content-type", "application/json")
        .body(json!({"preferred_account": "a"}).to_string())
        .send()
        .await
        .unwrap();
    let response = send_turn(&pools, "/v1/responses", "conv-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "b");
    let body = response.bytes().await.unwrap();
    let names = event_names(&body);
    assert_eq!(
        names.iter().filter(|n| *n == "response.created").count(),
        1,
        "two streams are never spliced: {names:?}"
    );
    assert!(!names.iter().any(|n| n == "response.failed"));
    assert_eq!(pools.account("a").await["state"], "rate_limited");

    // After real output a failure belongs to the client: no retry, a clean end.
    pools
        .up
        .codex
        .script("acct-b", [ApiReply::ok().fail_after(6)]);
    pools.up.codex.clear_requests();
    let response = send_turn(&pools, "/v1/responses", "conv-2").await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let names = event_names(&body);
    assert!(names.iter().any(|n| n == "response.output_text.delta"));
    assert_eq!(names.last().map(String::as_str), Some("response.failed"));
    assert_eq!(pools.up.codex.request_count(), 1, "not retried");
    pools.stop().await;
}

#[tokio::test]
async fn a_conversation_stays_on_its_account() {
    let pools = Pools::start(|up| {
        for i in 0..3 {
            up.codex
                .add_account(&format!("acct-{i}"), &format!("at-{i}"));
        }
        (0..3)
            .map(|i| codex(&format!("c{i}"), &format!("at-{i}"), &format!("acct-{i}")))
            .collect()
    })
    .await;
    for conversation in 0..4 {
        let key = format!("0199-session-{conversation}");
        let mut served = Vec::new();
        for _ in 0..5 {
            let response = send_turn(&pools, "/v1/responses", &key).await;
            served.push(
                response.headers()["x-sluice-account"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
            response.bytes().await.unwrap();
        }
        served.dedup();
        assert_eq!(
            served.len(),
            1,
            "conversation {conversation} moved: {served:?}"
        );
    }
    pools.stop().await;
}

#[tokio::test]
async fn the_websocket_attempt_is_refused_at_once_and_never_sent_upstream() {
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a");
        vec![codex("a", "at-a", "acct-a")]
    })
    .await;
    let captured = Captured::load("codex_ws_upgrade.json");
    assert_eq!(captured.method, "GET");
    let response = captured
        .request(&pools.client, &pools.url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["connection"], "close");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "websocket_not_supported");
    assert_eq!(pools.up.codex.request_count(), 0);
    pools.stop().await;
}

#[tokio::test]
async fn idle_accounts_are_probed_and_the_clis_usage_queries_get_the_pools_figures() {
    let pools = Pools::start_with(
        |up| {
            up.codex.add_account("acct-full", "at-full");
            up.codex
                .set_quota("acct-full", CodexQuota::used(100.0, 60.0));
            up.codex.add_account("acct-roomy", "at-roomy");
            up.codex
                .set_quota("acct-roomy", CodexQuota::used(20.0, 30.0));
            vec![
                codex("full", "at-full", "acct-full"),
                codex("roomy", "at-roomy", "acct-roomy"),
            ]
        },
        |config| config.oauth.usage_probe_interval = Duration::from_millis(400),
    )
    .await;
    pools
        .wait_for(Duration::from_secs(10), "both accounts probed", |status| {
            status["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["quota"]["session"]["utilization"].is_number())
        })
        .await;
    let probes = pools
        .up
        .codex
        .requests()
        .into_iter()
        .filter(|r| r.path == "/backend-api/wham/usage")
        .count();
    assert!(probes >= 2);
    assert_eq!(pools.account("full").await["state"], "quota_exhausted");

    for path in ["/backend-api/wham/usage", "/api/codex/usage"] {
        let before = pools.up.codex.request_count();
        let usage: Value = pools
            .client
            .get(pools.url(path))
            .header("authorization", "Bearer the-clients-own")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(usage["rate_limit"]["allowed"], true, "{path}: {usage}");
        assert_eq!(usage["rate_limit"]["limit_reached"], false);
        assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 20);
        assert_eq!(usage["rate_limit"]["secondary_window"]["used_percent"], 30);
        // Probes may run meanwhile; the CLI's own query is answered locally.
        assert!(
            pools
                .up
                .codex
                .requests()
                .iter()
                .skip(before)
                .all(|r| r.credential.as_deref() != Some("the-clients-own"))
        );
    }
    pools.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_reused_refresh_token_needs_a_new_login() {
    let expired = common::upkeep::now_ms() - 60_000;
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a-old");
        up.codex.set_refresh_token("acct-a", "rt-a-1");
        up.codex.add_account("acct-b", "at-b-old");
        up.codex.set_refresh_token("acct-b", "rt-b-1");
        let options = |id: &str| AccountOptions {
            account_id: Some(id.to_owned()),
            ..AccountOptions::default()
        };
        vec![
            login(
                "a",
                ProviderKind::Codex,
                "at-a-old",
                Some("rt-a-1"),
                Some(expired),
                options("acct-a"),
            ),
            login(
                "b",
                ProviderKind::Codex,
                "at-b-old",
                Some("rt-b-1"),
                Some(expired),
                options("acct-b"),
            ),
        ]
    })
    .await;
    // `b`'s refresh token is also in the hands of the Codex CLI, which refreshes first:
    // sluice's copy is spent, and presenting it again revokes the whole family.
    let cli_refresh = pools
        .client
        .post(pools.up.codex.token_url())
        .json(&json!({"grant_type": "refresh_token", "refresh_token": "rt-b-1", "client_id": "app_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cli_refresh.status(), 200);

    pools
        .wait_for(
            Duration::from_secs(10),
            "both refreshes settled",
            |status| {
                let account = |name: &str| {
                    status["accounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|a| a["name"] == name)
                        .cloned()
                        .unwrap()
                };
                account("a")["credential"]["refreshed_at"].is_number()
                    && account("b")["credential"]["needs_relogin"] == true
            },
        )
        .await;

    // The rotated token was committed before use: the store holds the live one.
    let stored = pools.store.account("a").unwrap().unwrap();
    let refresh = stored.oauth().unwrap().refresh_token.clone().unwrap();
    assert!(pools.up.codex.is_refresh_token_live(refresh.expose()));
    assert_ne!(refresh.expose(), "rt-a-1");
    let b = pools.store.account("b").unwrap().unwrap();
    assert!(b.needs_relogin);
    assert!(
        b.relogin_reason
            .as_deref()
            .unwrap()
            .contains("refresh_token_reused"),
        "{:?}",
        b.relogin_reason
    );
    assert_eq!(pools.account("b").await["state"], "needs_relogin");

    // Every turn is served by `a` with its new token.
    for turn in 0..3 {
        let response = send_turn(&pools, "/v1/responses", &format!("t{turn}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-sluice-account"], "a");
        response.bytes().await.unwrap();
    }
    let last = pools.up.codex.requests_for("acct-a").pop().unwrap();
    assert_ne!(last.credential.as_deref(), Some("at-a-old"));
    assert!(last.credential.unwrap().starts_with("codex-at-acct-a-"));
    pools.stop().await;
}

/// A client that opens turns as the Codex CLI does (WebSocket first, falling back per its
/// policy) falls back after one handshake against sluice, and only after its whole retry
/// budget against a server that ignores the upgrade. Counted in handshakes, not timed (the
/// backoff is shortened here; `examples/codex_ws_fallback.rs` measures the real delays).
#[tokio::test]
async fn a_codex_like_client_falls_back_at_once_from_sluice_but_not_from_an_ignoring_server() {
    let pools = Pools::start(|up| {
        up.codex.add_account("acct-a", "at-a");
        vec![codex("a", "at-a", "acct-a")]
    })
    .await;
    let cli = sluice_fake::CodexTransport {
        initial_backoff: Duration::from_millis(1),
        ..sluice_fake::CodexTransport::default()
    };
    let sluice_addr = pools.url.trim_start_matches("http://").parse().unwrap();
    let against_sluice = cli.open_turn(sluice_addr).await;
    assert_eq!(against_sluice.handshakes, [Some(426)]);
    // …and the turn goes on over HTTP.
    let response = send_turn(&pools, "/v1/responses", "ws-fallback").await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let ignorer = sluice_fake::UpgradeIgnorer::start().await.unwrap();
    let against_ignorer = cli.open_turn(ignorer.addr()).await;
    assert_eq!(
        against_ignorer.handshakes,
        vec![Some(404); 6],
        "the first attempt and five retries"
    );
    println!(
        "codex fallback: sluice {:?} after {} handshake(s); ignoring server {:?} after {} (1 ms backoff)",
        against_sluice.fallback_after,
        against_sluice.handshakes.len(),
        against_ignorer.fallback_after,
        against_ignorer.handshakes.len()
    );
    pools.stop().await;
}
