//! Scripted replies, error shapes and statuses, credential identification, quota headers and the
//! request log, over real sockets.

mod common;

use std::time::Duration;

use common::{client, header, messages, read_all};
use serde_json::Value;
use sluice_fake::{ErrorKind, FakeAnthropic, FakeConfig, OAUTH_BETA, QuotaHeaders, Reply};

async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    let retry = header(&resp, "retry-after").map(str::to_owned);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert!(body["error"]["message"].is_string());
    (status, retry, body)
}

#[tokio::test]
async fn script_is_consumed_in_order_then_default() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.script(
        "k1",
        [
            Reply::status(429).retry_after(7),
            Reply::status(529),
            Reply::status(500),
            Reply::ok().events(1),
        ],
    );
    fake.set_default("k1", Reply::ok().events(2));
    let c = client();
    let base = fake.base_url();

    let (status, retry, body) = error_of(messages(&c, &base, "k1", true).await).await;
    assert_eq!((status, retry.as_deref()), (429, Some("7")));
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let (status, retry, body) = error_of(messages(&c, &base, "k1", true).await).await;
    assert_eq!((status, retry.as_deref()), (529, Some("5")));
    assert_eq!(body["error"]["type"], "overloaded_error");
    let (status, retry, body) = error_of(messages(&c, &base, "k1", true).await).await;
    assert_eq!((status, retry), (500, None));
    assert_eq!(body["error"]["type"], "api_error");

    let deltas = |n| {
        let names = async {
            read_all(messages(&c, &base, "k1", true).await)
                .await
                .event_names()
        };
        async move {
            assert_eq!(
                names
                    .await
                    .iter()
                    .filter(|e| *e == "content_block_delta")
                    .count(),
                n
            )
        }
    };
    deltas(1).await;
    deltas(2).await;
    deltas(2).await;
    assert_eq!(fake.script_len("k1"), 0);
}

#[tokio::test]
async fn every_error_kind_has_its_status_and_shape() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    let kinds = ErrorKind::ALL;
    fake.script(
        "k1",
        kinds.map(|k| Reply::error(k).message(format!("msg {}", k.type_str()))),
    );
    let c = client();
    for kind in kinds {
        let (status, retry, body) =
            error_of(messages(&c, &fake.base_url(), "k1", false).await).await;
        assert_eq!(status, kind.status());
        assert_eq!(body["error"]["type"], kind.type_str());
        assert_eq!(body["error"]["message"], format!("msg {}", kind.type_str()));
        assert_eq!(
            retry.is_some(),
            matches!(kind, ErrorKind::RateLimit | ErrorKind::Overloaded)
        );
    }
}

#[tokio::test]
async fn error_reply_extra_headers_and_quota_override() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.set_quota_headers(
        "k1",
        QuotaHeaders::unified(0.42, 1_000, 0.10, 2_000).status("allowed"),
    );
    fake.script(
        "k1",
        [
            Reply::status(429)
                .retry_after(60)
                .quota(QuotaHeaders::unified(1.0, 1_000, 0.5, 2_000).status("rejected"))
                .header("x-extra", "yes"),
            Reply::ok(),
        ],
    );
    let c = client();
    let resp = messages(&c, &fake.base_url(), "k1", true).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-status"),
        Some("rejected")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-5h-utilization"),
        Some("1")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-unified-representative-claim"),
        Some("five_hour")
    );
    assert_eq!(header(&resp, "x-extra"), Some("yes"));

    let resp = messages(&c, &fake.base_url(), "k1", true).await;
    assert_eq!(resp.status(), 200);
    for (name, value) in [
        ("anthropic-ratelimit-unified-status", "allowed"),
        ("anthropic-ratelimit-unified-reset", "1000"),
        (
            "anthropic-ratelimit-unified-representative-claim",
            "five_hour",
        ),
        ("anthropic-ratelimit-unified-5h-utilization", "0.42"),
        ("anthropic-ratelimit-unified-5h-reset", "1000"),
        ("anthropic-ratelimit-unified-5h-status", "allowed"),
        ("anthropic-ratelimit-unified-7d-utilization", "0.1"),
        ("anthropic-ratelimit-unified-7d-reset", "2000"),
        ("anthropic-ratelimit-unified-7d-status", "allowed"),
    ] {
        assert_eq!(header(&resp, name), Some(value), "{name}");
    }
}

#[tokio::test]
async fn api_key_rate_limit_headers() {
    let fake = FakeAnthropic::with_accounts(["k1"]).unwrap();
    fake.set_quota_headers(
        "k1",
        QuotaHeaders::api_key()
            .requests(50, 49, 1_700_000_000)
            .tokens(80_000, 79_000, 1_700_000_000),
    );
    let resp = messages(&client(), &fake.base_url(), "k1", false).await;
    assert_eq!(
        header(&resp, "anthropic-ratelimit-requests-limit"),
        Some("50")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
    assert_eq!(
        header(&resp, "anthropic-ratelimit-tokens-reset"),
        Some("2023-11-14T22:13:20Z")
    );
    assert!(header(&resp, "anthropic-ratelimit-unified-status").is_none());
}

#[tokio::test]
async fn credentials_identify_accounts() {
    let fake = FakeAnthropic::with_accounts(["key-a", "key-b"]).unwrap();
    fake.set_default("key-a", Reply::ok().deltas(["from a"]));
    fake.set_default("key-b", Reply::ok().deltas(["from b"]));
    let c = client();
    let url = fake.url("/v1/messages");

    let text = |resp: reqwest::Response| async {
        resp.json::<Value>().await.unwrap()["content"][0]["text"].clone()
    };
    let a = c
        .post(&url)
        .header("x-api-key", "key-a")
        .json(&common::body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(text(a).await, "from a");
    let b = c
        .post(&url)
        .header("authorization", "Bearer key-b")
        .json(&common::body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(text(b).await, "from b");

    let unknown = c
        .post(&url)
        .header("x-api-key", "nope")
        .json(&common::body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let (_, _, body) = error_of(unknown).await;
    assert_eq!(body["error"]["type"], "authentication_error");
    let missing = c.post(&url).json(&common::body(true)).send().await.unwrap();
    assert_eq!(missing.status(), 401);

    fake.set_allow_any_credential(true);
    let any = c
        .post(&url)
        .header("x-api-key", "nope")
        .json(&common::body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), 200);
    assert!(fake.accounts().contains(&"nope".to_owned()));

    let recorded: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.credential).collect();
    assert_eq!(
        recorded,
        [
            Some("key-a".into()),
            Some("key-b".into()),
            Some("nope".into()),
            None,
            Some("nope".into())
        ]
    );
}

#[tokio::test]
async fn oauth_accounts_need_bearer_and_beta_flag() {
    let fake = FakeAnthropic::with_accounts(["tok"]).unwrap();
    fake.set_oauth("tok", true);
    let c = client();
    let url = fake.url("/v1/messages");
    let send = |auth: (&'static str, &'static str), beta: &'static str| {
        c.post(&url)
            .header(auth.0, auth.1)
            .header("anthropic-beta", beta)
            .json(&common::body(false))
            .send()
    };
    assert_eq!(
        send(("authorization", "Bearer tok"), "claude-code-20250219")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(("x-api-key", "tok"), OAUTH_BETA)
            .await
            .unwrap()
            .status(),
        401
    );
    let beta = "claude-code-20250219, oauth-2025-04-20";
    assert_eq!(
        send(("authorization", "Bearer tok"), beta)
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn requests_are_recorded() {
    let fake = FakeAnthropic::with_accounts(["k1", "k2"]).unwrap();
    let c = client();
    messages(&c, &fake.base_url(), "k1", true)
        .await
        .bytes()
        .await
        .unwrap();
    c.post(fake.url("/v1/messages"))
        .header("authorization", "Bearer k2")
        .header("x-custom", "v")
        .body("{\"stream\":false}")
        .send()
        .await
        .unwrap();
    assert!(fake.wait_for_requests(2, Duration::from_secs(1)).await);

    let all = fake.requests();
    assert_eq!(all.len(), 2);
    let first = &all[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages?beta=true");
    assert_eq!(first.path_only(), "/v1/messages");
    assert_eq!(first.header("X-API-KEY"), Some("k1"));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.json().unwrap()["model"], "claude-test-1");
    assert!(first.request_id.starts_with("req_"));

    let k2 = fake.requests_for("k2");
    assert_eq!(k2.len(), 1);
    assert_eq!(&k2[0].body[..], b"{\"stream\":false}");
    assert_eq!(k2[0].header("x-custom"), Some("v"));
    assert!(k2[0].received_at >= first.received_at);

    fake.clear_requests();
    assert!(fake.requests().is_empty());
    assert!(!fake.wait_for_requests(1, Duration::from_millis(20)).await);
}

#[tokio::test]
async fn bad_requests() {
    let fake = FakeAnthropic::start(FakeConfig {
        max_body_bytes: 1024,
        ..FakeConfig::default().account("k1")
    })
    .unwrap();
    let c = client();
    let resp = c
        .post(fake.url("/v1/nothing"))
        .header("x-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_of(resp).await.2["error"]["type"], "not_found_error");

    let resp = c
        .post(fake.url("/v1/messages"))
        .header("x-api-key", "k1")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        error_of(resp).await.2["error"]["type"],
        "invalid_request_error"
    );

    let resp = c
        .post(fake.url("/v1/messages"))
        .header("x-api-key", "k1")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(error_of(resp).await.2["error"]["type"], "request_too_large");
}
