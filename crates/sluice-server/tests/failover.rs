//! Failover before the first byte: every fault kind moves the request to another account
//! without the client noticing, and benches or cools down the account at fault.

mod common;

use std::time::Duration;

use common::*;
use sluice_fake::{ErrorKind, Reply};

/// Two accounts where `a` is preferred (priority), so the first attempt always hits `a`.
async fn pair() -> Harness {
    let mut b = api("b", "sk-b");
    b.priority = 1;
    Harness::start_with(&[api("a", "sk-a"), b], |c| {
        c.upstream.response_timeout = Duration::from_millis(500);
    })
    .await
}

async fn served_by_b_after(h: &Harness, stream: bool) -> reqwest::Response {
    let body = if stream {
        stream_body(None)
    } else {
        plain_body()
    };
    let response = h.messages(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sluice-account"], "b");
    response
}

fn credentials_seen(h: &Harness) -> Vec<String> {
    h.fake
        .requests()
        .iter()
        .map(|r| r.credential.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_429_fails_over_and_benches_the_account_until_retry_after() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::status(429).retry_after(120)]);
    let response = served_by_b_after(&h, true).await;
    let (frames, _) = frames(response).await;
    assert!(event_names(&concat(&frames)).contains(&"message_stop".to_owned()));
    assert_eq!(credentials_seen(&h), ["sk-a", "sk-b"]);

    let a = h.account_status("a").await;
    assert_eq!(a["state"], "rate_limited");
    assert_eq!(a["last_error"], "rate_limited (HTTP 429)");
    let until = a["rate_limited_until"].as_i64().unwrap();
    let now = sluice_server::state::now().as_millis();
    assert!(
        (100_000..=121_000).contains(&(until - now)),
        "benched ~120 s, got {}",
        until - now
    );

    // While benched, new requests go straight to b.
    served_by_b_after(&h, false).await;
    assert_eq!(h.fake.requests_for("sk-a").len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_529_fails_over_with_a_short_cooldown_not_a_quota_bench() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::status(529)]);
    served_by_b_after(&h, false).await;
    let a = h.account_status("a").await;
    assert_eq!(a["state"], "cooling_down");
    assert_eq!(a["last_error"], "overloaded (HTTP 529)");
    assert!(a["rate_limited_until"].is_null());
    h.stop().await;
}

#[tokio::test]
async fn a_500_fails_over_and_cools_the_account_down() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::status(500)]);
    served_by_b_after(&h, true).await;
    let a = h.account_status("a").await;
    assert_eq!(a["state"], "cooling_down");
    assert_eq!(a["last_error"], "server_error (HTTP 500)");
    h.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_fails_over() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut b = api("b", "sk-b");
    b.priority = 1;
    let h = Harness::start_with(&[api("a", "sk-a"), b], |c| {
        c.accounts[0].upstream = Some(format!("http://{closed}").parse().unwrap());
    })
    .await;
    served_by_b_after(&h, false).await;
    let a = h.account_status("a").await;
    assert_eq!(a["state"], "cooling_down");
    assert_eq!(a["last_error"], "connect");
    h.stop().await;
}

#[tokio::test]
async fn a_slow_upstream_times_out_and_fails_over() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::slow(Duration::from_secs(3))]);
    served_by_b_after(&h, false).await;
    assert_eq!(h.account_status("a").await["last_error"], "timeout");
    h.stop().await;
}

#[tokio::test]
async fn an_error_as_the_first_event_fails_over_invisibly() {
    let h = pair().await;
    h.fake
        .script("sk-a", [Reply::error_event_first(ErrorKind::Overloaded)]);
    let response = served_by_b_after(&h, true).await;
    let (frames, _) = frames(response).await;
    let names = event_names(&concat(&frames));
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert!(!names.contains(&"error".to_owned()));
    assert_eq!(h.account_status("a").await["state"], "cooling_down");
    h.stop().await;
}

#[tokio::test]
async fn a_rejected_credential_fails_over_and_marks_the_account() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::status(401)]);
    served_by_b_after(&h, false).await;
    let a = h.account_status("a").await;
    assert_eq!(a["state"], "auth_failed");
    // It stays out: the next request goes to b without trying a.
    served_by_b_after(&h, false).await;
    assert_eq!(h.fake.requests_for("sk-a").len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn the_same_body_is_resent_on_failover() {
    let h = pair().await;
    h.fake.script("sk-a", [Reply::status(529)]);
    let body = stream_body(Some("resend"));
    let response = h.messages(&body).send().await.unwrap();
    let _ = frames(response).await;
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[0].body, body.to_string().as_bytes());
    h.stop().await;
}

#[tokio::test]
async fn each_account_is_tried_at_most_once_and_the_last_failure_is_returned() {
    let h = pair().await;
    h.fake.set_default("sk-a", Reply::status(529));
    h.fake.set_default("sk-b", Reply::status(529));
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 529);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["type"], "overloaded_error");
    assert_eq!(h.fake.request_count(), 2);
    h.stop().await;
}

#[tokio::test]
async fn when_every_account_is_benched_long_the_client_gets_a_429_with_retry_after() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    h.fake.script("sk-a", [Reply::status(429).retry_after(300)]);
    let first = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(
        first.status(),
        429,
        "the only account's own 429 is passed on"
    );

    let second = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(second.status(), 429);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (290..=300).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let json: serde_json::Value = second.json().await.unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(h.fake.request_count(), 1, "a benched account is not tried");
    h.stop().await;
}

#[tokio::test]
async fn a_request_is_held_when_an_account_recovers_soon() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    h.fake.script("sk-a", [Reply::status(429).retry_after(1)]);
    let first = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(first.status(), 429);
    let held = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(
        held.status(),
        200,
        "held until the bench expired, then served"
    );
    assert_eq!(h.fake.request_count(), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_held_stream_receives_keepalive_pings_then_the_upstream_stream() {
    let h = Harness::start(&[api("a", "sk-a")]).await;
    let reply = Reply::ok().events(3);
    h.fake.script("sk-a", [Reply::status(429).retry_after(2)]);
    h.fake.set_default("sk-a", reply.clone());
    let first = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(first.status(), 429);

    let held = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(held.status(), 200);
    let (frames, error) = frames(held).await;
    assert!(error.is_none());
    let body = concat(&frames);
    let upstream = reply.expected_stream_bytes_for_model("claude-sonnet-4-5");
    assert!(
        body.ends_with(&upstream),
        "the upstream stream follows the keepalives intact"
    );
    let prefix = &body[..body.len() - upstream.len()];
    let pings = event_names(prefix);
    assert!(pings.len() >= 2, "keepalives while held: {pings:?}");
    assert!(pings.iter().all(|n| n == "ping"));
    h.stop().await;
}
