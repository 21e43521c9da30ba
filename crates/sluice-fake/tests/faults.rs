//! Replies that misbehave, over real sockets: connection dropped mid-stream, error events, slow and
//! hanging replies, and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{client, messages, read_all};
use sluice_fake::{ErrorKind, FakeAnthropic, Reply};

#[tokio::test]
async fn drop_mid_stream_gives_the_client_a_body_error() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let reply = Reply::ok().events(5).drop_after(4);
    fake.script("k1", [reply.clone(), Reply::ok()]);
    let c = client();
    let resp = messages(&c, &fake.base_url(), "k1", true).await;
    assert_eq!(resp.status(), 200);
    let got = read_all(resp).await;
    assert!(got.error.is_some(), "expected a truncated body");
    assert_eq!(
        got.event_names(),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );
    assert_eq!(
        got.bytes(),
        reply.expected_stream_bytes_for_model("claude-test-1")
    );

    // The next request (new connection) is fine.
    let got = read_all(messages(&c, &fake.base_url(), "k1", true).await).await;
    assert!(got.error.is_none());
}

#[tokio::test]
async fn drop_of_a_json_reply_truncates_the_body() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script("k1", [Reply::ok().drop_after(0)]);
    let got = read_all(messages(&client(), &fake.base_url(), "k1", false).await).await;
    assert!(got.error.is_some());
}

#[tokio::test]
async fn error_event_after_k_events_then_clean_end() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let reply = Reply::ok()
        .events(3)
        .error_event_after(4, ErrorKind::Overloaded);
    fake.script("k1", [reply.clone()]);
    let got = read_all(messages(&client(), &fake.base_url(), "k1", true).await).await;
    assert!(got.error.is_none(), "the stream ends cleanly");
    assert_eq!(
        got.event_names(),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error"
        ]
    );
    let error = got.event_data().pop().unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert_eq!(
        got.bytes(),
        reply.expected_stream_bytes_for_model("claude-test-1")
    );
}

#[tokio::test]
async fn error_event_as_first_event_of_a_200_stream() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script(
        "k1",
        [Reply::error_event_first(ErrorKind::Api).message("boom")],
    );
    let resp = messages(&client(), &fake.base_url(), "k1", true).await;
    assert_eq!(resp.status(), 200);
    let got = read_all(resp).await;
    assert_eq!(got.event_names(), ["error"]);
    assert_eq!(got.event_data()[0]["error"]["message"], "boom");
}

#[tokio::test]
async fn error_event_reply_to_a_json_request_is_an_error_status() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script("k1", [Reply::error_event_first(ErrorKind::Overloaded)]);
    let resp = messages(&client(), &fake.base_url(), "k1", false).await;
    assert_eq!(resp.status(), 529);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn slow_reply_delays_headers() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script("k1", [Reply::slow(Duration::from_millis(150))]);
    let start = Instant::now();
    let resp = messages(&client(), &fake.base_url(), "k1", true).await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn hang_never_answers_and_shutdown_cuts_it() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script("k1", [Reply::hang(), Reply::hang()]);
    let c = client();
    let url = fake.url("/v1/messages");
    let timed_out = c
        .post(&url)
        .header("x-api-key", "k1")
        .timeout(Duration::from_millis(200))
        .json(&common::body(true))
        .send()
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout());

    let pending = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        async move {
            c.post(&url)
                .header("x-api-key", "k1")
                .json(&common::body(true))
                .send()
                .await
        }
    });
    assert!(fake.wait_for_requests(2, Duration::from_secs(2)).await);
    fake.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "the hanging request is cut at shutdown");
    assert!(fake.is_shut_down());
    assert!(
        c.post(&url)
            .header("x-api-key", "k1")
            .json(&common::body(true))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn drop_stops_the_server() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let base = fake.base_url();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = client();
    assert!(c.get(format!("{base}/v1/models")).send().await.is_err());
}
