//! OpenAI-style clients through sluice: Chat Completions routed by model (a Claude model to
//! the Anthropic pool through the translator, streaming and not; any other to OpenAI keys),
//! Responses from a client that is not Codex to OpenAI keys, the pooled key in place of the
//! client's, `x-ratelimit-*` quota learned, and failover between keys.

mod common;

use common::pools::{Captured, Pools, data_events, key};
use serde_json::{Value, json};
use sluice_config::ProviderKind;
use sluice_fake::{ApiReply, Reply};

fn chat(model: &str, stream: bool) -> (Captured, Value) {
    let captured = Captured::load("openai_python_chat.json");
    let mut body = captured.body.clone();
    body["model"] = json!(model);
    body["stream"] = json!(stream);
    (captured, body)
}

async fn send(pools: &Pools, (captured, body): (Captured, Value)) -> reqwest::Response {
    captured
        .request(&pools.client, &pools.url, Some(&body))
        .header("openai-organization", "org-of-the-client")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn chat_completions_for_other_models_go_to_openai_keys() {
    let pools = Pools::start(|up| {
        up.openai.add_key("sk-one");
        up.openai.add_key("sk-two");
        up.openai
            .set_default("sk-one", ApiReply::status(429).retry_after(30));
        up.openai
            .set_default("sk-two", ApiReply::ok().text(["po", "ng"]).tokens(20, 3));
        up.anthropic.add_account("sk-ant-unused");
        vec![
            key("one", ProviderKind::OpenAI, "sk-one"),
            key("two", ProviderKind::OpenAI, "sk-two"),
            key("claude", ProviderKind::Anthropic, "sk-ant-unused"),
        ]
    })
    .await;
    for _ in 0..3 {
        let response = send(&pools, chat("gpt-4o-mini", true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-sluice-account"], "two");
        let body = response.bytes().await.unwrap();
        assert!(body.ends_with(b"data: [DONE]\n\n"));
        let content: String = data_events(&body)
            .iter()
            .filter_map(|c| {
                c["choices"].get(0)?["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(content, "pong");
    }
    assert_eq!(pools.up.anthropic.request_count(), 0);
    for recorded in pools.up.openai.requests() {
        assert_eq!(recorded.path, "/v1/chat/completions");
        assert!(matches!(
            recorded.credential.as_deref(),
            Some("sk-one" | "sk-two")
        ));
        assert_eq!(
            recorded.header("openai-organization"),
            None,
            "scoped to the client"
        );
    }
    assert_eq!(pools.account("one").await["state"], "rate_limited");
    let two = pools.account("two").await;
    assert_eq!(two["provider"], "openai");
    assert_eq!(
        two["quota"]["requests"]["limit"], 500,
        "x-ratelimit-* learned"
    );
    assert_eq!(two["tokens"]["output"], 9);

    // The OpenAI SDK's Responses call is OpenAI's too (it is not Codex).
    let responses = Captured::load("openai_python_responses.json");
    let response = responses
        .request(&pools.client, &pools.url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "two");
    let body = response.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("event: response.completed"));
    assert_eq!(pools.up.codex.request_count(), 0);
    pools.stop().await;
}

#[tokio::test]
async fn chat_completions_for_claude_models_are_served_by_the_anthropic_pool() {
    let pools = Pools::start(|up| {
        up.anthropic.add_account("sk-ant-api03-pooled");
        up.anthropic.set_default(
            "sk-ant-api03-pooled",
            Reply::ok().deltas(["po", "ng"]).tokens(10, 5),
        );
        vec![key(
            "claude",
            ProviderKind::Anthropic,
            "sk-ant-api03-pooled",
        )]
    })
    .await;

    // Streaming: each Messages event becomes Chat Completions chunks as it arrives.
    let response = send(&pools, chat("claude-sonnet-4-5", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "claude");
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("event: "),
        "no Anthropic event names reach the client"
    );
    let chunks = data_events(&body);
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"].get(0)?["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "pong");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let usage = chunks.last().unwrap();
    assert_eq!(
        usage["usage"]["prompt_tokens"], 10,
        "include_usage was asked for"
    );
    assert_eq!(usage["usage"]["completion_tokens"], 5);

    let recorded = &pools.up.anthropic.requests()[0];
    assert_eq!(recorded.path_only(), "/v1/messages");
    assert_eq!(recorded.credential.as_deref(), Some("sk-ant-api03-pooled"));
    assert_eq!(recorded.header("openai-organization"), None);
    let sent = recorded.json().unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["max_tokens"], 8192);

    // Not streaming: one Chat Completions object.
    let response = send(&pools, chat("claude-sonnet-4-5", false)).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], "pong");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["total_tokens"], 15);

    // The upstream's refusal of the client's request comes back as an OpenAI error.
    pools.up.anthropic.script(
        "sk-ant-api03-pooled",
        [Reply::status(400).message("max_tokens: too large")],
    );
    let response = send(&pools, chat("claude-sonnet-4-5", false)).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["message"], "max_tokens: too large");

    // A request the translation cannot express is the client's mistake: no upstream call.
    let before = pools.up.anthropic.request_count();
    let (captured, mut body) = chat("claude-sonnet-4-5", false);
    body["n"] = json!(3);
    let response = send(&pools, (captured, body)).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(pools.up.anthropic.request_count(), before);
    assert_eq!(pools.account("claude").await["failed"], 0);
    pools.stop().await;
}
