//! `FakeOpenAi` over real sockets: Chat Completions streams (with and without the usage
//! chunk) and bodies, the Responses API, rate-limit headers and errors, broken streams.

mod api_common;

use api_common::{body_text, client, events, header};
use serde_json::{Value, json};
use sluice_fake::{ApiReply, FakeOpenAI, OpenAILimits};

async fn chat(fake: &FakeOpenAI, key: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", fake.base_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn captured_chat() -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/client-requests/openai_python_chat.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["body"].clone()
}

#[tokio::test]
async fn a_chat_stream_ends_with_usage_and_done() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-1");
    fake.set_default(
        "sk-1",
        ApiReply::ok().text(["po", "ng"]).tokens(20, 3).cached(8),
    );
    let response = chat(&fake, "sk-1", captured_chat()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("500"));
    assert_eq!(header(&response, "x-ratelimit-reset-tokens"), Some("2s"));
    let (text, broken) = body_text(response).await;
    assert!(!broken);
    let events = events(&text);
    assert!(
        events.iter().all(|e| e.name.is_none()),
        "chat chunks carry no event names"
    );
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "pong");
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 20);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
    assert_eq!(usage["object"], "chat.completion.chunk");

    // Without include_usage: no usage chunk, no usage fields.
    let mut plain = captured_chat();
    plain.as_object_mut().unwrap().remove("stream_options");
    let (text, _) = body_text(chat(&fake, "sk-1", plain).await).await;
    assert!(!text.contains("usage"));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_whole_chat_completion() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-1");
    let body: Value = chat(
        &fake,
        "sk-1",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["content"], "Sure here is");
    assert_eq!(body["usage"]["total_tokens"], 31);
}

#[tokio::test]
async fn the_responses_api_streams_and_answers_whole() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-1");
    let url = format!("{}/v1/responses", fake.base_url());
    let stream = client()
        .post(&url)
        .bearer_auth("sk-1")
        .json(&json!({"model": "gpt-5", "stream": true, "input": "say pong"}))
        .send()
        .await
        .unwrap();
    let (text, _) = body_text(stream).await;
    let events = events(&text);
    assert_eq!(
        events.first().unwrap().name.as_deref(),
        Some("response.created")
    );
    assert_eq!(
        events.last().unwrap().name.as_deref(),
        Some("response.completed")
    );
    let whole: Value = client()
        .post(&url)
        .bearer_auth("sk-1")
        .json(&json!({"model": "gpt-5", "input": "say pong"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["object"], "response");
    assert_eq!(whole["usage"]["output_tokens"], 6);
}

#[tokio::test]
async fn keys_limits_and_errors() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-1");
    let unknown = chat(&fake, "sk-unknown", captured_chat()).await;
    assert_eq!(unknown.status(), 401);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");

    fake.script(
        "sk-1",
        [
            ApiReply::status(429).retry_after(12),
            ApiReply::status(429).code("insufficient_quota"),
            ApiReply::status(500),
        ],
    );
    let limited = chat(&fake, "sk-1", captured_chat()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "retry-after"), Some("12"));
    assert_eq!(
        header(&limited, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    assert_eq!(header(&limited, "x-ratelimit-reset-requests"), Some("12s"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let broke = chat(&fake, "sk-1", captured_chat()).await;
    let body: Value = broke.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let failed = chat(&fake, "sk-1", captured_chat()).await;
    assert_eq!(failed.status(), 500);

    fake.set_limits(
        "sk-1",
        OpenAILimits {
            remaining_tokens: 10,
            ..OpenAILimits::default()
        },
    );
    let ok = chat(&fake, "sk-1", captured_chat()).await;
    assert_eq!(header(&ok, "x-ratelimit-remaining-tokens"), Some("10"));
    assert_eq!(fake.requests_for("sk-1").len(), 4);
}

#[tokio::test]
async fn a_chat_stream_can_fail_or_break_midway() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-1");
    fake.script(
        "sk-1",
        [
            ApiReply::ok().events(3).fail_after(2),
            ApiReply::ok().events(3).drop_after(2),
        ],
    );
    let (text, broken) = body_text(chat(&fake, "sk-1", captured_chat()).await).await;
    assert!(!broken);
    let events = events(&text);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].json()["error"]["type"], "server_error");
    let (text, broken) = body_text(chat(&fake, "sk-1", captured_chat()).await).await;
    assert!(broken);
    assert_eq!(api_common::events(&text).len(), 2);
}
