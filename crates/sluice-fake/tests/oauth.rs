//! The fake OAuth side over real HTTP: PKCE login, rotating refresh tokens that refuse reuse,
//! scripted token failures, profile and usage.

mod common;

use std::time::Duration;

use common::client;
use serde_json::{Value, json};
use sluice_fake::{
    DEFAULT_CLIENT_ID, FakeAnthropic, FakeConfig, OAuthUser, TokenFault, UsageFault, pkce_challenge,
};

async fn refresh(
    client: &reqwest::Client,
    fake: &FakeAnthropic,
    token: &str,
) -> reqwest::Result<(u16, Value)> {
    let response = client
        .post(fake.url("/v1/oauth/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token, "client_id": DEFAULT_CLIENT_ID}))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_is_an_invalid_grant() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.add_oauth_user(OAuthUser::max("a@example.com"));
    let first = fake.issue_tokens("a@example.com");
    let client = client();

    let (status, body) = refresh(&client, &fake, &first.refresh_token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let second_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh_token);
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert!(!fake.is_refresh_token_live(&first.refresh_token));
    assert!(fake.is_refresh_token_live(&second_refresh));

    let (status, body) = refresh(&client, &fake, &first.refresh_token).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let counts = fake.oauth_counts();
    assert_eq!(
        (counts.refresh_requests, counts.refreshes, counts.reuses),
        (2, 1, 1)
    );

    // Both the new access token and (until it expires) the old one work on the API.
    for token in [
        body_token(&client, &fake, &second_refresh).await,
        first.access_token,
    ] {
        let response = client
            .post(fake.url("/v1/messages"))
            .bearer_auth(&token)
            .header("anthropic-beta", "oauth-2025-04-20")
            .json(&common::body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

async fn body_token(client: &reqwest::Client, fake: &FakeAnthropic, refresh_token: &str) -> String {
    let (status, body) = refresh(client, fake, refresh_token).await.unwrap();
    assert_eq!(status, 200);
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn scripted_token_faults_act_or_not_as_they_say() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.add_oauth_user(OAuthUser::pro("p@example.com"));
    let tokens = fake.issue_tokens("p@example.com");
    let client = client();
    fake.script_token_faults([
        TokenFault::Error {
            status: 503,
            error: "temporarily_unavailable".into(),
        },
        TokenFault::DropBeforeRotating,
        TokenFault::DropAfterRotating,
    ]);

    let (status, _) = refresh(&client, &fake, &tokens.refresh_token)
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(fake.is_refresh_token_live(&tokens.refresh_token));

    assert!(
        refresh(&client, &fake, &tokens.refresh_token)
            .await
            .is_err()
    );
    assert!(
        fake.is_refresh_token_live(&tokens.refresh_token),
        "dropped before acting"
    );

    assert!(
        refresh(&client, &fake, &tokens.refresh_token)
            .await
            .is_err()
    );
    assert!(
        !fake.is_refresh_token_live(&tokens.refresh_token),
        "rotated, then the answer was lost"
    );
    let (status, body) = refresh(&client, &fake, &tokens.refresh_token)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        fake.wait_for_oauth(Duration::from_secs(1), |c| c.refresh_requests == 4)
            .await
    );
}

#[tokio::test]
async fn a_pkce_login_yields_tokens_and_a_profile() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.add_oauth_user(OAuthUser::max("a@example.com"));
    fake.add_oauth_user(OAuthUser::pro("b@example.com"));
    fake.set_login_user("b@example.com");
    let _ = client(); // installs the crypto provider the clients below need
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let hosted_url = fake.url("/oauth/code/callback");
    let hosted = hosted_url.as_str();
    let browser = reqwest::Client::new(); // follows the redirect, like a browser
    let authorize = |redirect: &str| {
        let mut url = url::Url::parse(&fake.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("code", "true")
            .append_pair("client_id", DEFAULT_CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "user:profile user:inference")
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "st4te");
        url.to_string()
    };

    // The hosted callback shows code#state to paste.
    let pasted = browser
        .get(authorize(hosted))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (code, state) = pasted.split_once('#').unwrap();
    assert_eq!(state, "st4te");

    let exchange = |code: &str, verifier: &str, redirect: &str| {
        client.post(fake.url("/v1/oauth/token")).json(&json!({
            "grant_type": "authorization_code", "code": code, "state": "st4te",
            "redirect_uri": redirect, "code_verifier": verifier, "client_id": DEFAULT_CLIENT_ID,
        }))
    };
    let wrong = exchange(code, "not-the-verifier", hosted)
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        400,
        "a wrong verifier is refused (and uses the code up)"
    );
    let pasted = browser
        .get(authorize(hosted))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (code, _) = pasted.split_once('#').unwrap();
    let answer: Value = exchange(code, verifier, hosted)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = answer["access_token"].as_str().unwrap();
    assert!(answer["refresh_token"].as_str().is_some());

    let profile: Value = client
        .get(fake.url("/api/oauth/profile"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["account"]["email"], "b@example.com");
    assert_eq!(profile["account"]["has_claude_pro"], true);

    // A localhost callback is redirected to, with code and state in the query.
    let redirected = client
        .get(authorize("http://localhost:9/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 302);
    let location = redirected.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://localhost:9/callback?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=st4te"), "{location}");
}

#[tokio::test]
async fn usage_reports_percentages_and_can_be_rate_limited() {
    let fake = FakeAnthropic::start(FakeConfig::default()).unwrap();
    fake.add_oauth_user(OAuthUser::max("a@example.com"));
    fake.update_oauth_user("a@example.com", |u| {
        u.five_hour_percent = 42.0;
        u.seven_day_percent = 7.0;
    });
    let tokens = fake.issue_tokens("a@example.com");
    let client = client();
    let usage = || {
        client
            .get(fake.url("/api/oauth/usage"))
            .bearer_auth(&tokens.access_token)
            .header("anthropic-beta", "oauth-2025-04-20")
            .send()
    };
    let body: Value = usage().await.unwrap().json().await.unwrap();
    assert_eq!(body["five_hour"]["utilization"], 42.0);
    assert_eq!(body["seven_day"]["utilization"], 7.0);
    assert!(
        body["five_hour"]["resets_at"]
            .as_str()
            .unwrap()
            .contains('T')
    );

    fake.script_usage_faults([UsageFault::RateLimited {
        retry_after_secs: 30,
    }]);
    let limited = usage().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(fake.usage_requests("a@example.com"), 2);

    let without_beta = client
        .get(fake.url("/api/oauth/usage"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(without_beta.status(), 401);
}
