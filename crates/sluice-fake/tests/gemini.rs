//! `FakeGemini` over real sockets: Code Assist (project discovery and enforcement, wrapped
//! answers and streams, quota probe, RESOURCE_EXHAUSTED bodies), the Gemini API with keys
//! (CRLF streams, JSON arrays, bad keys), and the non-rotating Google token endpoint.

mod api_common;

use api_common::{body_text, client, events, header};
use serde_json::{Value, json};
use sluice_fake::{ApiReply, FakeGemini, GeminiQuotaBucket};

fn captured_body(name: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/client-requests/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["body"].clone()
}

async fn code_assist(
    fake: &FakeGemini,
    token: &str,
    method: &str,
    body: &Value,
) -> reqwest::Response {
    client()
        .post(format!("{}/v1internal:{method}", fake.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn generate_body(project: &str) -> Value {
    let mut body = captured_body("gemini_cli_codeassist_stream.json");
    body["project"] = json!(project);
    body
}

#[tokio::test]
async fn load_code_assist_names_the_accounts_project_and_tier() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.set_tier("ya29.a", "free-tier");
    let response = code_assist(
        &fake,
        "ya29.a",
        "loadCodeAssist",
        &captured_body("gemini_cli_codeassist_load.json"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cloudaicompanionProject"], "proj-a");
    assert_eq!(body["currentTier"]["id"], "free-tier");

    let onboard = code_assist(
        &fake,
        "ya29.a",
        "onboardUser",
        &json!({"tierId": "free-tier"}),
    )
    .await;
    let body: Value = onboard.json().await.unwrap();
    assert_eq!(body["done"], true);
    assert_eq!(body["response"]["cloudaicompanionProject"]["id"], "proj-a");

    let experiments = code_assist(
        &fake,
        "ya29.a",
        "listExperiments",
        &json!({"project": "proj-a"}),
    )
    .await;
    assert_eq!(experiments.status(), 200);
    let unauthenticated = code_assist(&fake, "ya29.nobody", "loadCodeAssist", &json!({})).await;
    assert_eq!(unauthenticated.status(), 401);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_code_assist_stream_is_wrapped_and_ends_with_usage() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.set_default(
        "ya29.a",
        ApiReply::ok()
            .text(["po", "ng"])
            .tokens(1000, 32)
            .cached(600)
            .reasoning(30),
    );
    let response = client()
        .post(format!(
            "{}/v1internal:streamGenerateContent?alt=sse",
            fake.base_url()
        ))
        .bearer_auth("ya29.a")
        .json(&generate_body("proj-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (body, broken) = body_text(response).await;
    assert!(!broken);
    assert!(
        !body.contains('\r'),
        "Code Assist streams use plain newlines"
    );
    let chunks: Vec<Value> = events(&body).iter().map(|e| e.json()).collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0]["response"]["candidates"][0]["content"]["parts"][0]["text"],
        "po"
    );
    assert!(
        chunks[0]["response"]["candidates"][0]
            .get("finishReason")
            .is_none()
    );
    let last = &chunks[1]["response"];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 1000);
    assert_eq!(last["usageMetadata"]["cachedContentTokenCount"], 600);
    assert_eq!(last["usageMetadata"]["thoughtsTokenCount"], 30);
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(last["modelVersion"], "gemini-3-flash");
    assert!(chunks[1]["traceId"].is_string());

    let whole = code_assist(&fake, "ya29.a", "generateContent", &generate_body("proj-a")).await;
    let body: Value = whole.json().await.unwrap();
    assert_eq!(
        body["response"]["candidates"][0]["content"]["parts"][0]["text"],
        "pong"
    );
    assert_eq!(fake.requests_for("ya29.a").len(), 2);
}

#[tokio::test]
async fn another_accounts_project_is_refused() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.add_code_assist_account("ya29.b", "proj-b");
    let response = code_assist(&fake, "ya29.a", "generateContent", &generate_body("proj-b")).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("proj-b")
    );
    // The captured CLI body names a project no account owns.
    let captured = captured_body("gemini_cli_codeassist_stream.json");
    assert_eq!(
        code_assist(&fake, "ya29.b", "generateContent", &captured)
            .await
            .status(),
        403
    );
    assert_eq!(
        code_assist(&fake, "ya29.b", "generateContent", &generate_body("proj-b"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn exhausted_quota_says_when_it_comes_back() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.script(
        "ya29.a",
        [
            ApiReply::status(429).retry_after(37),
            ApiReply::status(429).daily(),
        ],
    );
    let response = code_assist(&fake, "ya29.a", "generateContent", &generate_body("proj-a")).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let details = body["error"]["details"].as_array().unwrap();
    let retry = details
        .iter()
        .find(|d| d["@type"].as_str().unwrap().ends_with("RetryInfo"))
        .unwrap();
    assert_eq!(retry["retryDelay"], "37s");
    let info = details
        .iter()
        .find(|d| d["@type"].as_str().unwrap().ends_with("ErrorInfo"))
        .unwrap();
    assert_eq!(info["metadata"]["quotaResetDelay"], "37s");

    let daily = code_assist(&fake, "ya29.a", "generateContent", &generate_body("proj-a")).await;
    assert_eq!(daily.status(), 429);
    let body: Value = daily.json().await.unwrap();
    let details = body["error"]["details"].as_array().unwrap();
    assert!(
        details
            .iter()
            .all(|d| !d["@type"].as_str().unwrap().ends_with("RetryInfo"))
    );
    let violation = &details[0]["violations"][0];
    assert!(violation["quotaId"].as_str().unwrap().contains("PerDay"));
}

#[tokio::test]
async fn the_quota_probe_lists_buckets() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.set_user_quota(
        "ya29.a",
        vec![GeminiQuotaBucket {
            model: "gemini-2.5-pro".into(),
            remaining_fraction: 0.25,
            reset_after: std::time::Duration::from_secs(3600),
        }],
    );
    let response = code_assist(
        &fake,
        "ya29.a",
        "retrieveUserQuota",
        &json!({"project": "proj-a"}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let bucket = &body["buckets"][0];
    assert_eq!(bucket["modelId"], "gemini-2.5-pro");
    assert_eq!(bucket["remainingFraction"], 0.25);
    assert_eq!(bucket["tokenType"], "REQUESTS");
    assert!(bucket["resetTime"].as_str().unwrap().ends_with('Z'));
    let counted = code_assist(
        &fake,
        "ya29.a",
        "countTokens",
        &json!({"request": {"model": "models/gemini-2.5-pro", "contents": []}}),
    )
    .await;
    assert!(
        counted.json::<Value>().await.unwrap()["totalTokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn the_gemini_api_takes_keys_and_streams_crlf_events() {
    let fake = FakeGemini::new().unwrap();
    fake.add_api_key("AIza-1");
    fake.set_default("AIza-1", ApiReply::ok().text(["a", "b", "c"]));
    let body = captured_body("gemini_cli_apikey_stream.json");
    let url = format!(
        "{}/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse",
        fake.base_url()
    );
    let response = client()
        .post(&url)
        .header("x-goog-api-key", "AIza-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (text, _) = body_text(response).await;
    assert!(text.contains("\r\n\r\n"));
    let chunks: Vec<Value> = events(&text).iter().map(|e| e.json()).collect();
    assert_eq!(chunks.len(), 3);
    assert!(chunks[0].get("response").is_none(), "the API does not wrap");
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[2]["modelVersion"], "gemini-3.8-flash");

    let by_query = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.5-pro:generateContent?key=AIza-1",
            fake.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let whole: Value = by_query.json().await.unwrap();
    assert_eq!(whole["candidates"][0]["content"]["parts"][0]["text"], "abc");

    let array = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            fake.base_url()
        ))
        .header("x-goog-api-key", "AIza-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let chunks: Value = array.json().await.unwrap();
    assert_eq!(chunks.as_array().unwrap().len(), 3);

    let bad = client()
        .post(&url)
        .header("x-goog-api-key", "AIza-wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.unwrap();
    assert_eq!(error["error"]["details"][0]["reason"], "API_KEY_INVALID");
    // A key cannot call Code Assist.
    assert_eq!(
        code_assist(&fake, "AIza-1", "loadCodeAssist", &json!({}))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_stream_can_fail_or_break_midway() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.script(
        "ya29.a",
        [
            ApiReply::ok().events(3).fail_after(1),
            ApiReply::ok().events(3).drop_after(2),
        ],
    );
    let url = format!(
        "{}/v1internal:streamGenerateContent?alt=sse",
        fake.base_url()
    );
    let send = || {
        client()
            .post(&url)
            .bearer_auth("ya29.a")
            .json(&generate_body("proj-a"))
            .send()
    };
    let (text, broken) = body_text(send().await.unwrap()).await;
    assert!(!broken);
    let chunks = events(&text);
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1].json()["error"]["status"], "INTERNAL");
    let (text, broken) = body_text(send().await.unwrap()).await;
    assert!(broken);
    assert_eq!(events(&text).len(), 2);
}

async fn refresh(fake: &FakeGemini, refresh_token: &str) -> reqwest::Response {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            (
                "client_id",
                "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
            ),
            ("client_secret", "fake-secret"),
        ])
        .finish();
    client()
        .post(fake.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn google_refresh_tokens_do_not_rotate() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.a", "proj-a");
    fake.set_refresh_token("ya29.a", "1//refresh-a");
    fake.expire_access_token("ya29.a");
    assert_eq!(
        code_assist(&fake, "ya29.a", "loadCodeAssist", &json!({}))
            .await
            .status(),
        401
    );

    let first: Value = refresh(&fake, "1//refresh-a").await.json().await.unwrap();
    assert!(
        first.get("refresh_token").is_none(),
        "Google keeps the refresh token"
    );
    assert_eq!(first["expires_in"], 3599);
    assert_eq!(first["token_type"], "Bearer");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(
        code_assist(&fake, access, "loadCodeAssist", &json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        fake.requests_for("ya29.a")
            .iter()
            .filter(|r| r.path.starts_with("/v1internal"))
            .count(),
        2
    );

    // The same refresh token works again.
    let second = refresh(&fake, "1//refresh-a").await;
    assert_eq!(second.status(), 200);
    assert_eq!(fake.refreshes(), 2);

    fake.fail_refreshes([500]);
    assert_eq!(refresh(&fake, "1//refresh-a").await.status(), 500);
    let unknown = refresh(&fake, "1//nope").await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let json_body = client()
        .post(fake.token_url())
        .json(&json!({"grant_type": "refresh_token", "refresh_token": "1//refresh-a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body.status(),
        400,
        "the endpoint takes a form, not JSON"
    );
}
