//! Anthropic-compatible third parties as fallbacks inside the Anthropic pool: used only
//! when no Anthropic account can serve, with their own auth style and model names, never for
//! a conversation that carries Anthropic-signed thinking, and reachable from Chat
//! Completions clients too (translated, then adapted).

mod common;

use common::pools::{Pools, account, key};
use serde_json::{Value, json};
use sluice_config::{AccountOptions, AuthStyle, Credential, ProviderKind};
use sluice_fake::Reply;

fn third_party(base: &str) -> sluice_config::AccountConfig {
    let mut glm = account(
        "glm",
        ProviderKind::AnthropicCompatible,
        Credential::ApiKey("glm-key".to_owned().into()),
        AccountOptions {
            auth: AuthStyle::Bearer,
            model_map: vec![
                ("claude-opus-*".into(), "glm-4.6".into()),
                ("*".into(), "glm-4.5-air".into()),
            ],
            ..AccountOptions::default()
        },
    );
    glm.upstream = Some(base.parse().unwrap());
    glm
}

async fn messages(pools: &Pools, body: &Value) -> reqwest::Response {
    pools
        .client
        .post(pools.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-ant-client-own-key")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn plain(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
}

/// A second turn whose history holds thinking Anthropic signed.
fn with_signed_thinking() -> Value {
    json!({
        "model": "claude-opus-4-5",
        "max_tokens": 64,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "EqQBCkgIARABGAIiQ…"},
                {"type": "text", "text": "Hello."}
            ]},
            {"role": "user", "content": "and now?"}
        ]
    })
}

#[tokio::test]
async fn a_third_party_serves_only_when_no_anthropic_account_can() {
    let pools = Pools::start(|up| {
        up.anthropic.add_account("sk-ant-first");
        up.anthropic.add_account("glm-key");
        vec![
            key("first", ProviderKind::Anthropic, "sk-ant-first"),
            third_party(&up.anthropic.base_url()),
        ]
    })
    .await;
    for _ in 0..4 {
        let response = messages(&pools, &plain("claude-opus-4-5")).await;
        assert_eq!(response.headers()["x-sluice-account"], "first");
        response.bytes().await.unwrap();
    }
    assert!(pools.up.anthropic.requests_for("glm-key").is_empty());
    let glm = pools.account("glm").await;
    assert_eq!(glm["provider"], "anthropic-compatible");
    assert_eq!(glm["priority"], 100);

    // The Anthropic account is limited: the third party takes the request, in its terms.
    pools
        .up
        .anthropic
        .script("sk-ant-first", [Reply::status(429).retry_after(600)]);
    let response = messages(&pools, &plain("claude-opus-4-5")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "glm");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    let recorded = pools.up.anthropic.requests_for("glm-key").pop().unwrap();
    assert_eq!(recorded.header("authorization"), Some("Bearer glm-key"));
    assert_eq!(
        recorded.header("x-api-key"),
        None,
        "the client's key is gone"
    );
    assert_eq!(recorded.json().unwrap()["model"], "glm-4.6");
    pools.stop().await;
}

#[tokio::test]
async fn a_conversation_with_signed_thinking_never_moves_to_a_third_party() {
    let pools = Pools::start(|up| {
        up.anthropic.add_account("sk-ant-first");
        up.anthropic.add_account("glm-key");
        up.anthropic
            .set_default("sk-ant-first", Reply::status(429).retry_after(600));
        vec![
            key("first", ProviderKind::Anthropic, "sk-ant-first"),
            third_party(&up.anthropic.base_url()),
        ]
    })
    .await;
    let response = messages(&pools, &with_signed_thinking()).await;
    assert_eq!(
        response.status(),
        429,
        "the client sees the Anthropic account's refusal"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert!(
        pools.up.anthropic.requests_for("glm-key").is_empty(),
        "the third party would reject Anthropic's signatures"
    );

    // Without signed thinking the same pool falls back as usual.
    let response = messages(&pools, &plain("claude-sonnet-4-5")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "glm");
    let sent = pools.up.anthropic.requests_for("glm-key").pop().unwrap();
    assert_eq!(
        sent.json().unwrap()["model"],
        "glm-4.5-air",
        "the catch-all entry"
    );
    pools.stop().await;
}

#[tokio::test]
async fn chat_completions_reach_a_third_party_translated_and_adapted() {
    let pools = Pools::start(|up| {
        up.anthropic.add_account("glm-key");
        up.anthropic
            .set_default("glm-key", Reply::ok().deltas(["po", "ng"]).tokens(7, 2));
        vec![third_party(&up.anthropic.base_url())]
    })
    .await;
    let response = pools
        .client
        .post(pools.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-the-clients-own")
        .body(
            json!({"model": "claude-opus-4-5", "messages": [{"role": "user", "content": "say pong"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "pong");
    let recorded = &pools.up.anthropic.requests()[0];
    assert_eq!(recorded.path_only(), "/v1/messages");
    assert_eq!(recorded.header("authorization"), Some("Bearer glm-key"));
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
    let sent = recorded.json().unwrap();
    assert_eq!(sent["model"], "glm-4.6");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "say pong");
    pools.stop().await;
}
