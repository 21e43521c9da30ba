//! Credentials: the upstream sees only the account's; clients need a key when keys are
//! configured; no secret ever shows in `/status` or the logs.

mod common;

use common::*;
use sluice_config::Secret;

#[tokio::test]
async fn the_upstream_sees_only_the_accounts_credential() {
    let h = Harness::start(&[
        api("key", "sk-ant-api03-ACCOUNTKEY"),
        oauth("sub", "sk-ant-oat01-ACCOUNTTOKEN"),
    ])
    .await;
    for _ in 0..2 {
        let response = h
            .messages(&plain_body())
            .header("authorization", "Bearer sk-ant-client-bearer")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let all: String = request
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        assert!(
            !all.contains("client-own-key"),
            "client x-api-key leaked: {all}"
        );
        assert!(
            !all.contains("client-bearer"),
            "client bearer leaked: {all}"
        );
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        match request.credential.as_deref() {
            Some("sk-ant-api03-ACCOUNTKEY") => {
                assert_eq!(request.header("x-api-key"), Some("sk-ant-api03-ACCOUNTKEY"));
                assert_eq!(request.header("authorization"), None);
                assert_eq!(
                    request.header("anthropic-beta"),
                    Some("claude-code-20250219")
                );
            }
            Some("sk-ant-oat01-ACCOUNTTOKEN") => {
                assert_eq!(
                    request.header("authorization"),
                    Some("Bearer sk-ant-oat01-ACCOUNTTOKEN")
                );
                assert_eq!(request.header("x-api-key"), None);
                assert_eq!(
                    request.header("anthropic-beta"),
                    Some("claude-code-20250219,oauth-2025-04-20")
                );
            }
            other => panic!("unexpected credential {other:?}"),
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn client_keys_are_enforced_in_both_header_styles() {
    let h = Harness::start_with(&[api("a", "sk-a")], |c| {
        c.client_keys = vec![Secret::from("sk-sluice-team".to_owned())];
    })
    .await;
    let body = plain_body().to_string();
    let post = |h: &Harness| {
        h.client
            .post(h.url("/v1/messages"))
            .header("content-type", "application/json")
            .body(body.clone())
    };

    let none = post(&h).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let json: serde_json::Value = none.json().await.unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "authentication_error");

    let wrong = post(&h)
        .header("x-api-key", "sk-sluice-nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(h.fake.request_count(), 0);

    let by_key = post(&h)
        .header("x-api-key", "sk-sluice-team")
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);
    let by_bearer = post(&h)
        .header("authorization", "Bearer sk-sluice-team")
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);
    // The client key is sluice's, never the upstream's.
    for request in h.fake.requests() {
        assert_eq!(request.credential.as_deref(), Some("sk-a"));
    }
    let status = h.client.get(h.url("/status")).send().await.unwrap();
    assert_eq!(status.status(), 401, "status needs a key too");
    h.stop().await;
}

#[tokio::test]
async fn a_non_loopback_listen_without_client_keys_is_refused() {
    let mut config = sluice_config::Config {
        listen: "0.0.0.0:8787".parse().unwrap(),
        ..sluice_config::Config::default()
    };
    let error = sluice_server::AppState::new(config.clone())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("client_keys"), "{error}");
    config.client_keys = vec![Secret::from("k".to_owned())];
    assert!(sluice_server::AppState::new(config).is_ok());
}

#[tokio::test]
async fn the_clients_own_token_refresh_is_relayed_untouched() {
    let h = Harness::start_with(&[oauth("sub", "sk-ant-oat01-POOLED")], |c| {
        // The relay goes to the provider's base URL, which tests point at the fake.
        c.providers.anthropic.base_url = c.accounts[0].upstream.clone().unwrap();
    })
    .await;
    let _ = h
        .client
        .post(h.url("/v1/oauth/token"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer client-own-refresh-session")
        .body(r#"{"grant_type":"refresh_token","refresh_token":"client-own"}"#)
        .send()
        .await
        .unwrap();
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 1);
    let relayed = &requests[0];
    assert_eq!(relayed.path, "/v1/oauth/token");
    assert_eq!(
        relayed.header("authorization"),
        Some("Bearer client-own-refresh-session")
    );
    assert_eq!(
        relayed.body,
        r#"{"grant_type":"refresh_token","refresh_token":"client-own"}"#.as_bytes()
    );
    let all: String = relayed
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    assert!(
        !all.contains("POOLED"),
        "a pooled credential leaked into the client's refresh"
    );
    assert_eq!(
        h.status().await["totals"]["completed"],
        0,
        "not routed through the pool"
    );
    h.stop().await;
}
