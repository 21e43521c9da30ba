//! Streams pass through byte for byte, event by event, and usage is read on the way.

mod common;

use std::time::Duration;

use common::*;
use sluice_fake::{ErrorKind, Reply};

#[tokio::test]
async fn a_stream_arrives_byte_for_byte_including_pings() {
    let h = Harness::start(&[api("a", "sk-ant-api03-aaaa")]).await;
    let reply = Reply::ok().events(6).tokens(1234, 56).cache_tokens(7, 8);
    h.fake.set_default("sk-ant-api03-aaaa", reply.clone());

    let response = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let (frames, error) = frames(response).await;
    assert!(error.is_none());
    let body = concat(&frames);
    assert_eq!(
        body,
        reply
            .expected_stream_bytes_for_model("claude-sonnet-4-5")
            .to_vec()
    );
    assert!(event_names(&body).contains(&"ping".to_owned()));

    // Usage was read from message_start / message_delta as it streamed past.
    let account = h.account_status("a").await;
    assert_eq!(account["tokens"]["input"], 1234);
    assert_eq!(account["tokens"]["output"], 56);
    assert_eq!(account["tokens"]["cache_creation"], 7);
    assert_eq!(account["tokens"]["cache_read"], 8);
    assert_eq!(account["completed"], 1);
    h.stop().await;
}

#[tokio::test]
async fn events_are_forwarded_as_they_come_not_buffered() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    h.fake.set_default(
        "sk-a",
        Reply::ok().events(5).event_delay(Duration::from_millis(60)),
    );
    let response = h.messages(&stream_body(None)).send().await.unwrap();
    let (frames, _) = frames(response).await;
    // Events spaced in time upstream must reach the client as separate frames; a buffering
    // proxy would deliver one or two large ones.
    assert!(frames.len() >= 6, "got {} frames", frames.len());
    assert!(String::from_utf8_lossy(&frames[0]).starts_with("event: message_start"));
    h.stop().await;
}

#[tokio::test]
async fn an_upstream_error_event_mid_stream_is_forwarded_and_not_retried() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b")]).await;
    let reply = Reply::ok()
        .events(4)
        .error_event_after(3, ErrorKind::Overloaded);
    h.fake.set_default("sk-a", reply.clone());
    h.fake.set_default("sk-b", reply.clone());
    let response = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (frames, error) = frames(response).await;
    assert!(error.is_none(), "the stream ends cleanly");
    let body = concat(&frames);
    assert_eq!(
        body,
        reply
            .expected_stream_bytes_for_model("claude-sonnet-4-5")
            .to_vec()
    );
    assert_eq!(event_names(&body).last().map(String::as_str), Some("error"));
    assert_eq!(
        h.fake.request_count(),
        1,
        "never retried after the first byte"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_stream_dropped_mid_way_ends_with_an_error_event_and_is_not_retried() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b")]).await;
    h.fake
        .set_default("sk-a", Reply::ok().events(6).drop_after(3));
    h.fake
        .set_default("sk-b", Reply::ok().events(6).drop_after(3));
    let response = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (frames, error) = frames(response).await;
    assert!(
        error.is_none(),
        "the client sees a clean end, got {error:?}"
    );
    let body = String::from_utf8(concat(&frames)).unwrap();
    let names = event_names(body.as_bytes());
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("error"));
    assert!(body.ends_with("\n\n"), "no partial event is left dangling");
    let last_event = body.trim_end().rsplit("\n\n").next().unwrap();
    let data = last_event
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(
        h.fake.request_count(),
        1,
        "never retried after the first byte"
    );
    let served = h.status().await["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["failed"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(served, 1, "the broken stream counts against its account");
    h.stop().await;
}

#[tokio::test]
async fn non_streaming_bodies_pass_unchanged_with_usage_read() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    let reply = Reply::ok().tokens(40, 9);
    h.fake.set_default("sk-a", reply.clone());
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "a");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body,
        reply.expected_json_body_for_model("claude-sonnet-4-5")
    );
    let account = h.account_status("a").await;
    assert_eq!(account["tokens"]["input"], 40);
    assert_eq!(account["tokens"]["output"], 9);
    h.stop().await;
}

#[tokio::test]
async fn the_query_string_and_auxiliary_paths_are_forwarded() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    let _ = h
        .messages(&plain_body())
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    let counted: serde_json::Value = h
        .client
        .post(h.url("/v1/messages/count_tokens?beta=true"))
        .header("content-type", "application/json")
        .body(plain_body().to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0);
    let models = h.client.get(h.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let paths: Vec<String> = h.fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            "/v1/messages?beta=true",
            "/v1/messages/count_tokens?beta=true",
            "/v1/models"
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn head_preflight_is_answered_locally() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    let response = h
        .client
        .head(h.url("/"))
        .header("x-api-key", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.fake.request_count(), 0);
    h.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_in_the_anthropic_shape() {
    let h = Harness::start_with(&[api("a", "sk-a")], |c| c.limits.max_request_body = 1024).await;
    let big = serde_json::json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let response = h.messages(&big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "request_too_large");
    assert_eq!(h.fake.request_count(), 0);
    h.stop().await;
}

#[tokio::test]
async fn client_errors_go_back_unchanged_and_do_not_fail_over() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b")]).await;
    for key in ["sk-a", "sk-b"] {
        h.fake.set_default(
            key,
            Reply::error(ErrorKind::InvalidRequest).message("bad field"),
        );
    }
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(json["error"]["message"], "bad field");
    assert_eq!(h.fake.request_count(), 1);
    let status = h.status().await;
    assert_eq!(
        status["totals"]["failed"], 0,
        "a client mistake is not the account's failure"
    );
    h.stop().await;
}
