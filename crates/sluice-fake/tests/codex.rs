//! `FakeCodex` over real sockets: the Responses stream and body, authentication by token and
//! account id, quota headers and the usage endpoint, usage-limit 429s, broken streams, and
//! the rotating OAuth token endpoint.

mod api_common;

use std::time::Duration;

use api_common::{body_text, client, events, header};
use base64::Engine;
use serde_json::{Value, json};
use sluice_fake::{ApiReply, CodexQuota, FakeCodex, FakeCodexConfig};

fn responses_body(stream: bool) -> Value {
    json!({"model": "gpt-5", "stream": stream, "store": false, "input": "say pong", "prompt_cache_key": "s-1"})
}

async fn call(
    fake: &FakeCodex,
    token: &str,
    account: Option<&str>,
    stream: bool,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/responses", fake.base_url()))
        .bearer_auth(token)
        .json(&responses_body(stream));
    if let Some(account) = account {
        request = request.header("chatgpt-account-id", account);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_stream_is_real_responses_sse_with_quota_headers() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.set_quota("acct-1", CodexQuota::used(42.0, 10.0));
    fake.set_default(
        "acct-1",
        ApiReply::ok().text(["po", "ng"]).tokens(100, 7).cached(60),
    );

    let response = call(&fake, "at-1", Some("acct-1"), true).await;
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(
        header(&response, "x-codex-primary-used-percent"),
        Some("42")
    );
    assert_eq!(
        header(&response, "x-codex-primary-window-minutes"),
        Some("300")
    );
    assert_eq!(
        header(&response, "x-codex-secondary-window-minutes"),
        Some("10080")
    );
    assert_eq!(
        header(&response, "x-codex-primary-reset-after-seconds"),
        Some("3600")
    );
    let reset_at: u64 = header(&response, "x-codex-secondary-reset-at")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset_at, fake.clock().epoch_secs() + 86_400);
    let (body, broken) = body_text(response).await;
    assert!(!broken);
    let events = events(&body);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(data["type"], event.name.as_deref().unwrap());
        assert_eq!(data["sequence_number"], i);
    }
    let completed = events.last().unwrap().json();
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(completed["response"]["model"], "gpt-5");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 100);
    assert_eq!(
        completed["response"]["usage"]["input_tokens_details"]["cached_tokens"],
        60
    );
    assert_eq!(completed["response"]["usage"]["output_tokens"], 7);
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "pong"
    );

    let recorded = fake.requests_for("acct-1");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/backend-api/codex/responses");
    assert_eq!(recorded[0].credential.as_deref(), Some("at-1"));
    assert_eq!(recorded[0].json().unwrap()["prompt_cache_key"], "s-1");
}

#[tokio::test]
async fn a_non_streamed_request_gets_the_response_object() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    let response = call(&fake, "at-1", Some("acct-1"), false).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["usage"]["input_tokens"], 25);
}

#[tokio::test]
async fn the_token_and_the_account_id_must_match() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.add_account("acct-2", "at-2");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(call(&fake, "nope", Some("acct-1"), true).await), 401);
    assert_eq!(status(call(&fake, "at-1", None, true).await), 403);
    assert_eq!(status(call(&fake, "at-1", Some("acct-2"), true).await), 403);
    let no_token = client()
        .post(format!("{}/responses", fake.base_url()))
        .json(&responses_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(status(call(&fake, "at-2", Some("acct-2"), true).await), 200);
}

#[tokio::test]
async fn a_usage_limit_says_when_it_resets() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.set_plan("acct-1", "pro");
    fake.set_quota("acct-1", CodexQuota::used(100.0, 60.0));
    fake.script(
        "acct-1",
        [
            ApiReply::status(429).retry_after(900),
            ApiReply::status(503),
        ],
    );
    let response = call(&fake, "at-1", Some("acct-1"), true).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("900"));
    assert_eq!(
        header(&response, "x-codex-primary-used-percent"),
        Some("100")
    );
    let now = fake.clock().epoch_secs();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "usage_limit_reached");
    assert_eq!(body["error"]["plan_type"], "pro");
    assert_eq!(body["error"]["resets_in_seconds"], 900);
    let resets_at = body["error"]["resets_at"].as_u64().unwrap();
    assert!((now + 899..=now + 901).contains(&resets_at));

    let overloaded = call(&fake, "at-1", Some("acct-1"), true).await;
    assert_eq!(overloaded.status(), 503);
    let body: Value = overloaded.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_is_overloaded");
    // The script is used up: back to the default success.
    assert_eq!(
        call(&fake, "at-1", Some("acct-1"), true).await.status(),
        200
    );
}

#[tokio::test]
async fn streams_break_as_scripted() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.script(
        "acct-1",
        [
            ApiReply::ok().events(4).drop_after(3),
            ApiReply::ok()
                .events(4)
                .code("rate_limit_exceeded")
                .fail_after(2),
        ],
    );
    let (body, broken) = body_text(call(&fake, "at-1", Some("acct-1"), true).await).await;
    assert!(broken, "the connection is cut");
    assert_eq!(events(&body).len(), 3);

    let (body, broken) = body_text(call(&fake, "at-1", Some("acct-1"), true).await).await;
    assert!(!broken);
    let events = events(&body);
    assert_eq!(events.len(), 3);
    let failed = &events[2];
    assert_eq!(failed.name.as_deref(), Some("response.failed"));
    assert_eq!(
        failed.json()["response"]["error"]["code"],
        "rate_limit_exceeded"
    );
}

#[tokio::test]
async fn a_hanging_reply_holds_until_the_client_gives_up() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.script("acct-1", [ApiReply::hang()]);
    let result = client()
        .post(format!("{}/responses", fake.base_url()))
        .bearer_auth("at-1")
        .header("chatgpt-account-id", "acct-1")
        .timeout(Duration::from_millis(300))
        .json(&responses_body(true))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
}

#[tokio::test]
async fn the_usage_endpoint_reports_the_windows() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.set_quota("acct-1", CodexQuota::used(35.4, 100.0));
    let response = client()
        .get(fake.usage_url())
        .bearer_auth("at-1")
        .header("chatgpt-account-id", "acct-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let usage: Value = response.json().await.unwrap();
    assert_eq!(usage["plan_type"], "plus");
    assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 35);
    assert_eq!(
        usage["rate_limit"]["primary_window"]["limit_window_seconds"],
        18_000
    );
    assert_eq!(
        usage["rate_limit"]["secondary_window"]["limit_window_seconds"],
        604_800
    );
    assert_eq!(usage["rate_limit"]["limit_reached"], true);
    assert_eq!(usage["rate_limit"]["allowed"], false);
    let refused = client()
        .get(fake.usage_url())
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn the_base_path_is_configurable() {
    let fake = FakeCodex::start(FakeCodexConfig {
        base_path: "/v1".into(),
        ..FakeCodexConfig::default()
    })
    .unwrap();
    fake.add_account("acct-1", "at-1");
    assert!(fake.base_url().ends_with("/v1"));
    assert_eq!(
        call(&fake, "at-1", Some("acct-1"), true).await.status(),
        200
    );
    let elsewhere = client()
        .post(format!("{}/backend-api/codex/responses", fake.origin()))
        .bearer_auth("at-1")
        .header("chatgpt-account-id", "acct-1")
        .json(&responses_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
}

async fn refresh(fake: &FakeCodex, token: &str) -> reqwest::Response {
    client()
        .post(fake.token_url())
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token, "client_id": "app_EMoamEEZ73f0CkXaXp7hrann"}))
        .send()
        .await
        .unwrap()
}

fn claims(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_kills_the_family() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-1", "at-1");
    fake.set_plan("acct-1", "pro");
    fake.set_refresh_token("acct-1", "rt-0");

    let first = refresh(&fake, "rt-0").await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await.unwrap();
    let new_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let new_access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, "rt-0", "refresh tokens rotate");
    assert!(tokens["expires_in"].as_u64().unwrap() > 0);
    let claims = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        claims["https://api.openai.com/auth"]["chatgpt_account_id"],
        "acct-1"
    );
    assert_eq!(
        claims["https://api.openai.com/auth"]["chatgpt_plan_type"],
        "pro"
    );
    assert_eq!(
        fake.live_refresh_token("acct-1").as_deref(),
        Some(new_refresh.as_str())
    );
    assert_eq!(fake.refreshes(), 1);
    // The new access token works.
    assert_eq!(
        call(&fake, &new_access, Some("acct-1"), true)
            .await
            .status(),
        200
    );

    // A transient failure rotates nothing.
    fake.fail_refreshes([503]);
    assert_eq!(refresh(&fake, &new_refresh).await.status(), 503);
    assert_eq!(
        fake.live_refresh_token("acct-1").as_deref(),
        Some(new_refresh.as_str())
    );

    // Reusing the spent token: refresh_token_reused, and the family is dead.
    let reused = refresh(&fake, "rt-0").await;
    assert_eq!(reused.status(), 401);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "refresh_token_reused");
    assert_eq!(fake.live_refresh_token("acct-1"), None);
    let revoked = refresh(&fake, &new_refresh).await;
    assert_eq!(revoked.status(), 401);
    let body: Value = revoked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "refresh_token_invalidated");

    let unknown = refresh(&fake, "never-issued").await;
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let wrong_grant = client()
        .post(fake.token_url())
        .json(&json!({"grant_type": "authorization_code", "code": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), 400);
}
