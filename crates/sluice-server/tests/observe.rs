//! Seeing the pool, end to end over real sockets: every request lands in the request log
//! (written off the request path, in the real SQLite store) and in `/metrics`, with bounded,
//! secret-free labels; `usage` and `series` read the log back.

mod common;

use std::time::Duration;

use common::upkeep::{Upkeep, key_account};
use sluice_fake::{ErrorKind, Reply};
use sluice_store::{RequestLogRow, Store};

const KEY_A: &str = "sk-ant-api03-observe-a";
const KEY_B: &str = "sk-ant-api03-observe-b";
const CLIENT_KEY: &str = "sk-sluice-client-observed";

fn body(model: &str, session: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": serde_json::json!({"session_id": session}).to_string()},
    })
}

async fn start(dir: &std::path::Path) -> Upkeep {
    Upkeep::start(dir, |config, fake| {
        fake.add_account(KEY_A);
        fake.add_account(KEY_B);
        let mut a = key_account("alpha", KEY_A);
        a.priority = 0;
        let mut b = key_account("beta", KEY_B);
        b.priority = 1;
        config.accounts.push(a);
        config.accounts.push(b);
        config.client_keys = vec![CLIENT_KEY.to_owned().into()];
    })
    .await
}

/// A Messages request from a client presenting the client key.
fn keyed(h: &Upkeep, body: &serde_json::Value) -> reqwest::RequestBuilder {
    h.client
        .post(h.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", CLIENT_KEY)
        .body(body.to_string())
}

/// Wait until the store holds at least `n` request-log rows.
async fn rows(store: &dyn Store, n: usize) -> Vec<RequestLogRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = store.recent_requests(100).unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} rows were written",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_request_reaches_the_request_log_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    // alpha is rate limited once: the request fails over to beta.
    h.fake.script(KEY_A, [Reply::error(ErrorKind::RateLimit)]);
    h.fake
        .set_default(KEY_B, Reply::ok().tokens(120, 30).cache_tokens(7, 900));
    let response = keyed(&h, &body("claude-sonnet-4-5-20250929", "conversation-one"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    // A client mistake passes through and is logged as one.
    h.fake
        .script(KEY_A, [Reply::error(ErrorKind::InvalidRequest)]);
    h.fake
        .script(KEY_B, [Reply::error(ErrorKind::InvalidRequest)]);
    let refused = keyed(&h, &body("claude-haiku-4-5", "conversation-two"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    refused.bytes().await.unwrap();

    let rows = rows(h.store.as_ref(), 2).await;
    let failed = &rows[0];
    let served = &rows[1];
    assert_eq!(served.account.as_deref(), Some("beta"));
    assert_eq!(served.provider, "anthropic");
    assert_eq!(served.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(served.path, "/v1/messages");
    assert_eq!(served.status, 200);
    assert_eq!(served.attempts, 2);
    assert_eq!(served.failovers, ["rate_limited"]);
    assert_eq!(
        (
            served.input_tokens,
            served.output_tokens,
            served.cache_creation_tokens,
            served.cache_read_tokens
        ),
        (120, 30, 7, 900)
    );
    assert!(served.latency_ms > 0.0);
    assert!(served.ttfb_ms.is_some_and(|t| t <= served.latency_ms));
    assert_eq!(served.error, None);
    let client = served.client.as_deref().expect("the client is identified");
    assert!(client.starts_with("key-"), "{client}");
    assert!(served.conversation.is_some());
    assert_ne!(served.conversation, failed.conversation);

    assert_eq!(failed.status, 400);
    assert_eq!(failed.error.as_deref(), Some("client_error"));
    assert!(failed.account.is_some());

    // Nothing secret anywhere in the database file or its WAL.
    let mut bytes = std::fs::read(dir.path().join("sluice.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("sluice.db-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    for secret in [CLIENT_KEY, "conversation-one", "sk-ant-client"] {
        assert!(!text.contains(secret), "{secret} reached the database");
    }

    // The usage report reads it back, priced.
    let usage: serde_json::Value = h.get_json("/api/usage?since=1h&by=account").await;
    let beta = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "beta")
        .expect("beta has usage");
    assert_eq!(beta["input_tokens"], 120);
    let cost = beta["cost_usd"].as_f64().unwrap();
    // Sonnet: 120 × 3 + 30 × 15 + 7 × 3.75 + 900 × 0.30, per million.
    assert!((cost - 0.001_106_25).abs() < 1e-9, "{cost}");
    assert_eq!(usage["total"]["requests"], 2);

    let series: serde_json::Value = h.get_json("/api/series?range=hour").await;
    assert_eq!(series["buckets"].as_array().unwrap().len(), 60);
    let accounts = series["accounts"].as_array().unwrap();
    let requests: u64 = accounts
        .iter()
        .flat_map(|a| a["requests"].as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(requests, 2);
    let beta = accounts
        .iter()
        .find(|a| a["account"] == "beta")
        .expect("beta has a series");
    assert_eq!(beta["tokens"].as_array().unwrap().last().unwrap(), 1057);
    h.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_with_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    h.fake.script(KEY_A, [Reply::error(ErrorKind::Overloaded)]);
    for model in [
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5",
        "my-own-model-123",
    ] {
        let response = keyed(&h, &body(model, "c")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let unauthenticated = h.client.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401, "metrics need a client key");
    let response = h
        .client
        .get(h.url("/metrics"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|line| line.starts_with(needle));
    // Models are reduced to families; an unknown one is `other`.
    let count = |model: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("sluice_requests_total{")
                    && l.contains("status=\"200\"")
                    && l.contains(&format!("model=\"{model}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(count("claude-sonnet-4"), 2.0, "{text}");
    assert_eq!(count("other"), 1.0, "{text}");
    assert!(text.contains("model=\"other\""), "{text}");
    assert!(!text.contains("my-own-model"), "raw model names stay out");
    assert!(has(
        "sluice_failovers_total{provider=\"anthropic\",reason=\"overloaded\"} 1"
    ));
    assert!(has("sluice_tokens_total{provider=\"anthropic\",account="));
    for family in [
        "sluice_upstream_duration_seconds_bucket",
        "sluice_overhead_seconds_bucket",
        "sluice_request_duration_seconds_count",
        "sluice_time_to_first_token_seconds_sum",
    ] {
        assert!(has(family), "{family} missing:\n{text}");
    }
    assert!(has(
        "sluice_account_state{provider=\"anthropic\",account=\"beta\",state=\"available\"} 1"
    ));
    assert!(has(
        "sluice_account_state{provider=\"anthropic\",account=\"beta\",state=\"disabled\"} 0"
    ));
    assert!(has(
        "sluice_in_flight{provider=\"anthropic\",account=\"beta\"} 0"
    ));
    assert!(has("sluice_queue_length{provider=\"anthropic\"} 0"));
    // Every sample line is `name{labels} value` or `name value`, with a number.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    for secret in [CLIENT_KEY, KEY_A, KEY_B, "session"] {
        assert!(!text.contains(secret), "{secret} in metrics");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_subscription_reports_its_windows_as_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let h = Upkeep::start(dir.path(), |config, fake| {
        fake.add_account(KEY_A);
        fake.set_oauth(KEY_A, true);
        config.accounts.push(sluice_config::AccountConfig {
            credential: sluice_config::Credential::OAuth {
                access_token: KEY_A.to_owned().into(),
                refresh_token: None,
                expires_at_ms: None,
            },
            ..key_account("max", KEY_A)
        });
    })
    .await;
    let now = sluice_fake::epoch_secs(std::time::SystemTime::now());
    h.fake.set_quota_headers(
        KEY_A,
        sluice_fake::QuotaHeaders::unified(0.42, now + 3 * 3600, 0.17, now + 4 * 86_400),
    );
    let response = h
        .messages(&body("claude-opus-4-1", "s"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let text = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "sluice_account_utilization{provider=\"anthropic\",account=\"max\",window=\"5h\"} 0.42"
        ),
        "{text}"
    );
    assert!(text.contains(
        "sluice_account_utilization{provider=\"anthropic\",account=\"max\",window=\"7d\"} 0.17"
    ));
    h.stop().await;
}

#[tokio::test]
async fn rows_still_queued_at_shutdown_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    for _ in 0..20 {
        let response = keyed(&h, &body("claude-sonnet-4-5", "s"))
            .send()
            .await
            .unwrap();
        response.bytes().await.unwrap();
    }
    let store = h.store.clone();
    h.stop().await;
    assert_eq!(store.recent_requests(100).unwrap().len(), 20);
}
