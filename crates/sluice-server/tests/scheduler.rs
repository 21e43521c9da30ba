//! The scheduler as a client sees it through the real server: switching strategy at runtime,
//! who may switch it, the upstream breaker's single recovery probe, FIFO admission with
//! keepalives for held streams, and learned quota surviving a restart.

mod common;

use std::time::Duration;

use common::*;
use sluice_fake::{QuotaHeaders, Reply, epoch_secs};
use tokio_util::sync::CancellationToken;

/// Poll `check` until it holds, failing after a generous deadline (never a timing assertion:
/// a correct server gets there as fast as it can).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn served_by(h: &Harness, session: &str) -> String {
    let response = h
        .messages(&plain_body())
        .header("x-sluice-session", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let account = response.headers()["x-sluice-account"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.bytes().await;
    account
}

fn put_scheduler(h: &Harness, body: &str) -> reqwest::RequestBuilder {
    h.client
        .put(h.url("/api/scheduler"))
        .header("content-type", "application/json")
        .body(body.to_owned())
}

#[tokio::test]
async fn the_strategy_and_preferred_account_switch_at_runtime() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b"), api("c", "sk-c")]).await;
    let view: serde_json::Value = h.get_json("/api/scheduler").await;
    assert_eq!(view["strategy"], "adaptive");
    assert_eq!(view["preferred_account"], serde_json::Value::Null);
    assert_eq!(view["strategies"].as_array().unwrap().len(), 8);

    // adaptive keeps a conversation on one account.
    let home = served_by(&h, "conv").await;
    for _ in 0..3 {
        assert_eq!(served_by(&h, "conv").await, home);
    }

    // round-robin does not: the same conversation now visits every account.
    let response = put_scheduler(&h, r#"{"strategy": "round-robin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let view: serde_json::Value = response.json().await.unwrap();
    assert_eq!(view["strategy"], "round-robin");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(served_by(&h, "conv").await);
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c"]);
    assert_eq!(h.status().await["strategy"], "round-robin");

    // Preferred routing: every request to b while b can serve.
    let response = put_scheduler(&h, r#"{"preferred_account": "b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for session in ["x", "y", "conv"] {
        assert_eq!(served_by(&h, session).await, "b");
    }
    // …and failing over when b cannot.
    h.fake.script("sk-b", [Reply::status(429).retry_after(30)]);
    assert_ne!(served_by(&h, "z").await, "b");
    let view: serde_json::Value = put_scheduler(&h, r#"{"preferred_account": null}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["preferred_account"], serde_json::Value::Null);
    assert_eq!(view["strategy"], "round-robin", "left as it was");

    // Mistakes are refused whole, with a reason, and change nothing.
    for (body, reason) in [
        (r#"{"strategy": "random"}"#, "unknown strategy"),
        (
            r#"{"strategy": "sticky", "preferred_account": "nobody"}"#,
            "no account named",
        ),
        (r#"{"strategi": "sticky"}"#, "unknown field"),
        ("not json", "expected"),
    ] {
        let response = put_scheduler(&h, body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(reason), "{body}: {text}");
    }
    assert_eq!(h.status().await["strategy"], "round-robin");
    h.stop().await;
}

#[tokio::test]
async fn changing_the_scheduler_needs_the_admin_key_or_a_local_json_request() {
    let h = Harness::start_with(&[api("a", "sk-a")], |config| {
        config.admin_key = Some("sk-sluice-admin".to_owned().into());
    })
    .await;
    // A simple request (what a web page can send without a preflight) is refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = h
            .client
            .put(h.url("/api/scheduler"))
            .header("content-type", content_type)
            .body(r#"{"strategy": "sticky"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{content_type}");
    }
    let response = h
        .client
        .put(h.url("/api/scheduler"))
        .header("content-type", "text/plain")
        .header("x-api-key", "wrong")
        .body(r#"{"strategy": "sticky"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(h.status().await["strategy"], "adaptive");

    // The admin key works whatever the content type.
    let response = h
        .client
        .put(h.url("/api/scheduler"))
        .header("content-type", "text/plain")
        .header("authorization", "Bearer sk-sluice-admin")
        .body(r#"{"strategy": "sticky"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.status().await["strategy"], "sticky");
    // So does a JSON request from this machine.
    let response = put_scheduler(&h, r#"{"strategy": "fill-first"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.status().await["strategy"], "fill-first");
    h.stop().await;
}

#[tokio::test]
async fn an_upstream_wide_throttle_opens_the_breaker_and_lets_one_probe_through() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b")]).await;
    // The same overload on both accounts, nothing succeeding: the upstream's, not theirs.
    h.fake.script("sk-a", [Reply::status(529).retry_after(1)]);
    h.fake.script("sk-b", [Reply::status(529).retry_after(1)]);
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(
        response.status(),
        529,
        "both accounts failed: the upstream's answer"
    );
    let pool = &h.status().await["pools"][0]["scheduler"];
    assert!(pool["breaker"].is_object(), "breaker open: {pool}");
    assert_eq!(pool["breaker"]["reason"]["kind"], "overloaded");

    // Once the breaker's second is up, one probe goes; it is slow, and while it is out
    // nothing else reaches the upstream.
    h.fake
        .set_default("sk-a", Reply::ok().delay(Duration::from_millis(1500)));
    h.fake
        .set_default("sk-b", Reply::ok().delay(Duration::from_millis(1500)));
    let before = h.fake.request_count();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let request = h.messages(&plain_body());
        waiting.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    eventually("the probe reaches the upstream", || async {
        h.fake.request_count() == before + 1
    })
    .await;
    let scheduler = h.status().await["pools"][0]["scheduler"].clone();
    assert_eq!(scheduler["breaker"]["probe_in_flight"], true, "{scheduler}");
    assert_eq!(scheduler["queued"], 2, "{scheduler}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.fake.request_count(),
        before + 1,
        "only the probe while it is out"
    );
    for request in waiting {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(h.fake.request_count(), before + 3);
    assert!(h.status().await["pools"][0]["scheduler"]["breaker"].is_null());
    h.stop().await;
}

#[tokio::test]
async fn queued_requests_are_served_in_arrival_order_and_held_streams_get_pings() {
    let h = Harness::start_with(&[api("a", "sk-a")], |config| {
        config.scheduler.max_in_flight_per_account = 1;
        config.queue.max_wait = Duration::from_secs(20);
    })
    .await;
    // The first request holds the only slot for a while.
    h.fake.script(
        "sk-a",
        [Reply::ok()
            .events(12)
            .event_delay(Duration::from_millis(100))],
    );
    let first = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(first.status(), 200);

    let queued = |k: u64| {
        let h = &h;
        async move { h.status().await["pools"][0]["scheduler"]["queued"] == k }
    };
    let mut held = Vec::new();
    for n in 0..3u64 {
        let mut body = stream_body(None);
        body["messages"][0]["content"] = format!("request {n}").into();
        let request = h.messages(&body);
        held.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            concat(&frames(response).await.0)
        }));
        eventually("the request is queued", || queued(n + 1)).await;
    }
    // One more, whose client gives up while queued: it leaves the queue.
    let mut body = stream_body(None);
    body["messages"][0]["content"] = "abandoned".into();
    let abandoned = h.messages(&body).send().await.unwrap();
    eventually("the fourth is queued", || queued(4)).await;
    drop(abandoned);
    eventually("the abandoned request leaves the queue", || queued(3)).await;

    let _ = frames(first).await;
    for (n, request) in held.into_iter().enumerate() {
        let body = request.await.unwrap();
        let names = event_names(&body);
        assert_eq!(names[0], "ping", "request {n} was held with keepalives");
        assert!(names.contains(&"message_start".to_owned()), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    }
    let order: Vec<String> = h
        .fake
        .requests_for("sk-a")
        .iter()
        .skip(1)
        .map(|r| {
            r.json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(order, ["request 0", "request 1", "request 2"]);
    h.stop().await;
}

#[tokio::test]
async fn learned_quota_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let five_hours = epoch_secs(std::time::SystemTime::now()) + 3 * 3600;
    let week = epoch_secs(std::time::SystemTime::now()) + 4 * 86_400;

    let h = Harness::start_with_store(&[oauth("max", "sk-ant-oat01-max")], dir.path()).await;
    let tasks = sluice_server::accounts::spawn_tasks(&h.state, CancellationToken::new());
    h.fake.set_quota_headers(
        "sk-ant-oat01-max",
        QuotaHeaders::unified(0.42, five_hours, 0.31, week),
    );
    let response = h.messages(&plain_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    let state = h.state.clone();
    h.stop().await;
    // Shutting down writes what was learned, without waiting for the next interval.
    tasks.shutdown(&state).await;
    drop(state);

    let restarted =
        Harness::start_with_store(&[oauth("max", "sk-ant-oat01-max")], dir.path()).await;
    let account = restarted.account_status("max").await;
    assert_eq!(account["quota"]["session"]["utilization"], 0.42);
    assert_eq!(account["quota"]["weekly"]["utilization"], 0.31);
    assert_eq!(
        restarted.fake.request_count(),
        0,
        "known before any request"
    );
    restarted.stop().await;
}
