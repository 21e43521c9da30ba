//! Successful replies over real sockets: SSE event order and content, pacing, JSON replies, the other
//! endpoints, and byte-for-byte agreement with `Reply::expected_stream_bytes*`.

mod common;

use std::time::Duration;

use common::{client, header, messages, read_all};
use serde_json::{Value, json};
use sluice_fake::{FakeAnthropic, FakeConfig, Reply, Usage};

#[tokio::test]
async fn stream_has_real_event_order_and_usage() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let reply = Reply::ok().events(4).usage(Usage {
        input_tokens: 11,
        output_tokens: 22,
        cache_creation_input_tokens: 33,
        cache_read_input_tokens: 44,
    });
    fake.set_default("k1", reply.clone());

    let resp = messages(&client(), &fake.base_url(), "k1", true).await;
    assert_eq!(resp.status(), 200);
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(header(&resp, "request-id").unwrap().starts_with("req_"));
    let got = read_all(resp).await;
    assert!(got.error.is_none());
    assert_eq!(
        got.event_names(),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = got.event_data();
    let usage = &data[0]["message"]["usage"];
    assert_eq!(usage["input_tokens"], 11);
    assert_eq!(usage["cache_creation_input_tokens"], 33);
    assert_eq!(usage["cache_read_input_tokens"], 44);
    assert!(usage["output_tokens"].is_u64());
    assert_eq!(
        data[0]["message"]["model"], "claude-test-1",
        "echoes the request model"
    );
    assert_eq!(data[3]["delta"]["type"], "text_delta");
    assert_eq!(data[8]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[8]["usage"]["output_tokens"], 22);
    for (name, d) in got.event_names().iter().zip(&data) {
        assert_eq!(d["type"], name.as_str());
    }
    assert_eq!(
        got.bytes(),
        reply.expected_stream_bytes_for_model("claude-test-1")
    );
}

#[tokio::test]
async fn events_arrive_separately_over_time() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.set_default(
        "k1",
        Reply::ok().events(4).event_delay(Duration::from_millis(50)),
    );
    let got = read_all(messages(&client(), &fake.base_url(), "k1", true).await).await;
    assert!(got.error.is_none());
    assert_eq!(got.event_names().len(), 10);
    // Each read carries a single event: nothing was batched.
    assert!(
        got.chunks.len() >= 8,
        "only {} reads for 10 events",
        got.chunks.len()
    );
    let spread = got.chunks.last().unwrap().0 - got.chunks.first().unwrap().0;
    assert!(
        spread >= Duration::from_millis(300),
        "events arrived within {spread:?}"
    );
}

#[tokio::test]
async fn expected_bytes_without_request_model() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let reply = Reply::ok()
        .model("claude-fixed")
        .deltas(["Hel", "lo"])
        .message_id("msg_x");
    fake.script("k1", [reply.clone()]);
    let got = read_all(messages(&client(), &fake.base_url(), "k1", true).await).await;
    assert_eq!(got.bytes(), reply.expected_stream_bytes());
    assert!(got.text().contains("\"text\":\"Hel\""));
}

#[tokio::test]
async fn non_streaming_request_gets_json_message() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.set_default("k1", Reply::ok().deltas(["a", "b"]).tokens(5, 6));
    let resp = messages(&client(), &fake.base_url(), "k1", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"], json!([{"type": "text", "text": "ab"}]));
    assert_eq!(v["model"], "claude-test-1");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 6);
}

#[tokio::test]
async fn count_tokens_models_and_preflight() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let c = client();
    let v: Value = c
        .post(fake.url("/v1/messages/count_tokens"))
        .header("x-api-key", "k1")
        .json(&common::body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);

    let resp = c
        .get(fake.url("/v1/models"))
        .header("authorization", "Bearer k1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "claude-sonnet-4-5")
    );
    assert_eq!(v["has_more"], false);

    let resp = c.head(fake.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        fake.script_len("k1"),
        0,
        "no endpoint but /v1/messages consumes replies"
    );
}

#[tokio::test]
async fn keep_alive_connection_serves_many_requests() {
    let fake = FakeAnthropic::start(FakeConfig::default().allow_any_credential()).unwrap();
    let c = client();
    for i in 0..5 {
        let resp = messages(&c, &fake.base_url(), &format!("any-{}", i % 2), true).await;
        assert_eq!(resp.status(), 200);
        assert!(read_all(resp).await.error.is_none());
    }
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn captured_claude_code_request_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/client-requests/claude_code_messages.json"
    );
    let capture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fake = FakeAnthropic::with_accounts(["sk-cc"]).unwrap();
    let mut req = client().post(fake.url(capture["path"].as_str().unwrap()));
    for pair in capture["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let skip = [
            "host",
            "content-length",
            "connection",
            "accept-encoding",
            "authorization",
        ];
        if !skip.contains(&name.to_ascii_lowercase().as_str()) {
            req = req.header(name, value);
        }
    }
    let resp = req
        .header("authorization", "Bearer sk-cc")
        .json(&capture["body"])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = read_all(resp).await;
    assert_eq!(
        got.event_names().last().map(String::as_str),
        Some("message_stop")
    );
    let recorded = &fake.requests_for("sk-cc")[0];
    assert_eq!(recorded.path, "/v1/messages?beta=true");
    assert_eq!(
        recorded.header("x-claude-code-session-id"),
        Some("65d2797d-c22d-4dea-b30c-191e0aefcf30")
    );
}
