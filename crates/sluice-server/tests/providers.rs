//! The providers on their own against the fakes over real sockets: each captured client
//! request goes through the provider's `upstream_request` to the fake of its upstream with
//! the pooled account's credential (the fakes refuse anything else), and the answer comes
//! back through the provider's quota, failure, usage and translation hooks. This is the
//! contract the proxy relies on; `codex.rs`, `gemini.rs`, `openai_routes.rs` and
//! `compatible.rs` test the same through the running proxy.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_config::{Credential, ProviderKind};
use sluice_fake::{ApiReply, CodexQuota, FakeAnthropic, FakeCodex, FakeGemini, FakeOpenAI, Reply};
use sluice_scheduler::{Outcome, Timestamp};
use sluice_server::provider::claude_chat::ClaudeChat;
use sluice_server::provider::codex::Codex;
use sluice_server::provider::compatible::{AnthropicCompatible, AuthStyle, ModelMap};
use sluice_server::provider::gemini::{
    Dialect, Gemini, POOL_PROJECT, parse_load_code_assist, parse_user_quota,
};
use sluice_server::provider::openai::OpenAI;
use sluice_server::provider::{
    AccountContext, ClientRequest, Provider, StreamReport, UpstreamIdentity,
};
use sluice_server::proxy::sse::SseFramer;
use sluice_server::translate::RequestOptions;

struct Captured {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    fn load(name: &str) -> Captured {
        let text = std::fs::read_to_string(format!(
            "{}/../../fixtures/client-requests/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut headers = HeaderMap::new();
        for pair in value["headers"].as_array().unwrap() {
            headers.append(
                HeaderName::from_bytes(pair[0].as_str().unwrap().to_ascii_lowercase().as_bytes())
                    .unwrap(),
                HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
            );
        }
        Captured {
            method: value["method"].as_str().unwrap().parse().unwrap(),
            path: value["path"].as_str().unwrap().to_owned(),
            headers,
            body: Bytes::from(value["body"].to_string()),
        }
    }

    fn with_body(mut self, body: &Value) -> Captured {
        self.body = Bytes::from(body.to_string());
        self
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn request(&self) -> ClientRequest<'_> {
        ClientRequest {
            method: &self.method,
            path_and_query: &self.path,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Build the upstream request with `provider` for the account and send it.
async fn send(
    provider: &dyn Provider,
    captured: &Captured,
    base: &str,
    credential: &Credential,
    identity: &UpstreamIdentity,
) -> Answer {
    sluice_server::upstream::install_crypto_provider();
    let base = url::Url::parse(base).unwrap();
    let upstream = provider
        .upstream_request(
            &captured.request(),
            &AccountContext {
                base_url: &base,
                credential,
                identity,
            },
        )
        .unwrap();
    let response = reqwest::Client::new()
        .request(upstream.method, upstream.url)
        .headers(upstream.headers)
        .body(upstream.body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let response: http::Response<reqwest::Body> = response.into();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// Frame a streamed body the way the proxy does and fold every event into a report.
fn observe_stream(provider: &dyn Provider, body: &Bytes) -> (StreamReport, Vec<(String, Vec<u8>)>) {
    let mut report = StreamReport::default();
    let mut seen = Vec::new();
    let mut framer = SseFramer::default();
    framer.push(body.clone(), |event| {
        provider.observe_event(event.name, &event.data, &mut report);
        seen.push((event.name.to_owned(), event.data.to_vec()));
    });
    (report, seen)
}

fn oauth(token: &str) -> Credential {
    Credential::OAuth {
        access_token: token.to_owned().into(),
        refresh_token: None,
        expires_at_ms: None,
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

#[tokio::test]
async fn codex_reaches_the_chatgpt_backend_as_the_pooled_account() {
    let fake = FakeCodex::new().unwrap();
    fake.add_account("acct-pooled", "at-pooled");
    fake.set_quota("acct-pooled", CodexQuota::used(42.0, 10.0));
    fake.set_default(
        "acct-pooled",
        ApiReply::ok()
            .text(["po", "ng"])
            .tokens(5000, 12)
            .cached(4096),
    );
    let codex = Codex::new(ProviderKind::Codex);
    let captured = Captured::load("codex_responses.json");
    let identity = UpstreamIdentity {
        chatgpt_account_id: Some("acct-pooled".into()),
        project: None,
    };
    let answer = send(
        &codex,
        &captured,
        &fake.base_url(),
        &oauth("at-pooled"),
        &identity,
    )
    .await;
    assert_eq!(answer.status, 200);

    let recorded = &fake.requests()[0];
    assert_eq!(recorded.path, "/backend-api/codex/responses");
    assert_eq!(recorded.credential.as_deref(), Some("at-pooled"));
    assert_eq!(recorded.header("chatgpt-account-id"), Some("acct-pooled"));
    for passed in [
        "session-id",
        "originator",
        "x-codex-turn-metadata",
        "x-codex-window-id",
    ] {
        assert_eq!(
            recorded.header(passed).map(str::as_bytes),
            captured.headers.get(passed).map(|v| v.as_bytes()),
            "{passed}"
        );
    }
    assert_eq!(recorded.body, captured.body, "the body travels unchanged");

    let quota = codex.observe_quota(&answer.headers, now());
    assert_eq!(quota.session_utilization, Some(0.42));
    assert_eq!(quota.weekly_utilization, Some(0.10));
    let (report, events) = observe_stream(&codex, &answer.body);
    assert!(report.completed);
    assert_eq!(report.tokens.input, 904);
    assert_eq!(report.tokens.cache_read, 4096);
    assert_eq!(report.tokens.output, 12);
    assert_eq!(events.last().unwrap().0, "response.completed");

    // A usage limit benches the account until the body's reset.
    fake.script("acct-pooled", [ApiReply::status(429).retry_after(900)]);
    let limited = send(
        &codex,
        &captured,
        &fake.base_url(),
        &oauth("at-pooled"),
        &identity,
    )
    .await;
    assert_eq!(limited.status, 429);
    match codex.classify_failure(limited.status, &limited.headers, &limited.body, now()) {
        Some(Outcome::RateLimited {
            retry_after: Some(after),
            ..
        }) => assert!((899..=900).contains(&after.as_secs()), "{after:?}"),
        other => panic!("{other:?}"),
    }

    // Without the account id the backend refuses: the credential's fault, not the client's.
    let refused = send(
        &codex,
        &captured,
        &fake.base_url(),
        &oauth("at-pooled"),
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        codex.classify_failure(refused.status, &refused.headers, &refused.body, now()),
        Some(Outcome::AuthRejected { status: 403 })
    );
}

#[tokio::test]
async fn code_assist_runs_on_the_accounts_own_project() {
    let fake = FakeGemini::new().unwrap();
    fake.add_code_assist_account("ya29.pooled", "proj-pooled");
    fake.set_default(
        "ya29.pooled",
        ApiReply::ok()
            .text(["po", "ng"])
            .tokens(1000, 32)
            .cached(600)
            .reasoning(30),
    );
    let gemini = Gemini::new(ProviderKind::Gemini, Dialect::CodeAssist);
    let credential = oauth("ya29.pooled");

    // Discovery: the CLI's loadCodeAssist reaches the account; sluice learns the project
    // from the raw answer and shows the CLI the pool's placeholder.
    let load = Captured::load("gemini_cli_codeassist_load.json");
    let answer = send(
        &gemini,
        &load,
        &fake.base_url(),
        &credential,
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let setup = parse_load_code_assist(&answer.body).unwrap();
    assert_eq!(setup.project.as_deref(), Some("proj-pooled"));
    let mut translator = gemini.response_translator(&load.request()).unwrap();
    let shown: Value = serde_json::from_slice(&translator.on_body(&answer.body)).unwrap();
    assert_eq!(shown["cloudaicompanionProject"], POOL_PROJECT);

    // The captured stream names the CLI's project; the account's goes upstream instead.
    let identity = UpstreamIdentity {
        chatgpt_account_id: None,
        project: setup.project,
    };
    let mut stream = Captured::load("gemini_cli_codeassist_stream.json");
    assert_eq!(stream.json()["project"], "fake-project-123");
    let mut body = stream.json();
    body["project"] = json!(POOL_PROJECT);
    stream = stream.with_body(&body);
    let answer = send(&gemini, &stream, &fake.base_url(), &credential, &identity).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let recorded = fake.requests().last().unwrap().json().unwrap();
    assert_eq!(recorded["project"], "proj-pooled");
    assert_eq!(recorded["request"], body["request"]);
    let (report, events) = observe_stream(&gemini, &answer.body);
    assert_eq!(events.len(), 2);
    assert!(report.completed);
    assert_eq!(report.tokens.input, 400);
    assert_eq!(report.tokens.cache_read, 600);
    assert_eq!(report.tokens.output, 32);

    // A daily limit benches the account until midnight Pacific.
    fake.script("ya29.pooled", [ApiReply::status(429).daily()]);
    let limited = send(&gemini, &stream, &fake.base_url(), &credential, &identity).await;
    assert_eq!(limited.status, 429);
    let at = now();
    match gemini.classify_failure(limited.status, &limited.headers, &limited.body, at) {
        Some(Outcome::RateLimited {
            retry_after: Some(after),
            ..
        }) => assert!(after.as_secs() > 0 && after.as_secs() <= 24 * 3600),
        other => panic!("{other:?}"),
    }

    // The quota probe, as the idle-account prober will send it.
    let probe = Captured {
        method: Method::POST,
        path: "/v1internal:retrieveUserQuota".into(),
        headers: HeaderMap::new(),
        body: Bytes::from(json!({"project": POOL_PROJECT}).to_string()),
    };
    fake.set_user_quota(
        "ya29.pooled",
        vec![sluice_fake::GeminiQuotaBucket {
            model: "gemini-2.5-pro".into(),
            remaining_fraction: 0.25,
            reset_after: std::time::Duration::from_secs(3600),
        }],
    );
    let answer = send(&gemini, &probe, &fake.base_url(), &credential, &identity).await;
    assert_eq!(answer.status, 200);
    let bucket = parse_user_quota(&answer.body, Some("gemini-2.5-pro"), now())
        .requests
        .unwrap();
    assert_eq!(bucket.remaining, 250);
}

#[tokio::test]
async fn the_gemini_api_gets_the_pooled_key_and_crlf_events_frame() {
    let fake = FakeGemini::new().unwrap();
    fake.add_api_key("AIza-pooled");
    fake.set_default(
        "AIza-pooled",
        ApiReply::ok().text(["a", "b", "c"]).tokens(40, 6),
    );
    let gemini = Gemini::new(ProviderKind::Gemini, Dialect::Api);
    let mut captured = Captured::load("gemini_cli_apikey_stream.json");
    captured.path.push_str("&key=client-own");
    let answer = send(
        &gemini,
        &captured,
        &fake.base_url(),
        &Credential::ApiKey("AIza-pooled".to_owned().into()),
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.credential.as_deref(), Some("AIza-pooled"));
    assert!(!recorded.path.contains("client-own"));
    let (report, events) = observe_stream(&gemini, &answer.body);
    assert_eq!(events.len(), 3, "CRLF events are framed one by one");
    assert!(report.completed);
    assert_eq!((report.tokens.input, report.tokens.output), (40, 6));
}

#[tokio::test]
async fn openai_keys_learn_their_buckets() {
    let fake = FakeOpenAI::new().unwrap();
    fake.add_key("sk-pooled");
    fake.set_default(
        "sk-pooled",
        ApiReply::ok().text(["po", "ng"]).tokens(20, 3).cached(8),
    );
    let openai = OpenAI::new(ProviderKind::OpenAI);
    let captured = Captured::load("openai_python_chat.json");
    let key = Credential::ApiKey("sk-pooled".to_owned().into());
    let answer = send(
        &openai,
        &captured,
        &fake.base_url(),
        &key,
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(fake.requests()[0].credential.as_deref(), Some("sk-pooled"));
    let quota = openai.observe_quota(&answer.headers, now());
    assert_eq!(quota.requests.as_ref().unwrap().limit, 500);
    assert!(quota.tokens.unwrap().resets_at.is_some());
    let (report, _) = observe_stream(&openai, &answer.body);
    assert!(report.completed);
    assert_eq!(
        (
            report.tokens.input,
            report.tokens.cache_read,
            report.tokens.output
        ),
        (12, 8, 3)
    );

    fake.script("sk-pooled", [ApiReply::status(429).retry_after(12)]);
    let limited = send(
        &openai,
        &captured,
        &fake.base_url(),
        &key,
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(
        openai.classify_failure(limited.status, &limited.headers, &limited.body, now()),
        Some(Outcome::RateLimited {
            status: 429,
            retry_after: Some(std::time::Duration::from_secs(12))
        })
    );
    let responses = Captured::load("openai_python_responses.json");
    let answer = send(
        &openai,
        &responses,
        &fake.base_url(),
        &key,
        &UpstreamIdentity::default(),
    )
    .await;
    let (report, _) = observe_stream(&openai, &answer.body);
    assert!(report.completed);
}

#[tokio::test]
async fn chat_completions_are_served_by_an_anthropic_account() {
    let fake = FakeAnthropic::with_accounts(["sk-ant-api03-pooled"]).unwrap();
    fake.set_default(
        "sk-ant-api03-pooled",
        Reply::ok().deltas(["po", "ng"]).tokens(10, 5),
    );
    let bridge = ClaudeChat::new(ProviderKind::Anthropic, RequestOptions::default());
    let mut captured = Captured::load("openai_python_chat.json");
    let mut body = captured.json();
    body["model"] = json!("claude-sonnet-4-5");
    captured = captured.with_body(&body);
    let key = Credential::ApiKey("sk-ant-api03-pooled".to_owned().into());
    let answer = send(
        &bridge,
        &captured,
        &fake.base_url(),
        &key,
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.credential.as_deref(), Some("sk-ant-api03-pooled"));
    assert_eq!(recorded.json().unwrap()["max_tokens"], 8192);

    // The proxy frames the Anthropic stream, reads usage from it, and the translator turns
    // each event into Chat Completions chunks.
    let mut translator = bridge.response_translator(&captured.request()).unwrap();
    let mut out = BytesMut::new();
    let (report, events) = observe_stream(&bridge, &answer.body);
    for (name, data) in &events {
        translator.on_event(name, data, &mut out);
    }
    translator.on_end(&mut out);
    assert!(report.completed);
    assert_eq!((report.tokens.input, report.tokens.output), (10, 5));
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "pong");
    let usage = chunks.last().unwrap();
    assert_eq!(
        usage["usage"]["prompt_tokens"], 10,
        "include_usage was asked for"
    );
    assert_eq!(usage["usage"]["completion_tokens"], 5);

    // A refused request comes back as an OpenAI error.
    fake.script(
        "sk-ant-api03-pooled",
        [Reply::status(400).message("max_tokens: too large")],
    );
    let refused = send(
        &bridge,
        &captured,
        &fake.base_url(),
        &key,
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(
        bridge.classify_failure(refused.status, &refused.headers, &refused.body, now()),
        None
    );
    let (status, body) = translator.on_error(refused.status, &refused.body);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["message"], "max_tokens: too large");
}

#[tokio::test]
async fn a_third_party_gets_its_model_names_and_auth_style() {
    let fake = FakeAnthropic::with_accounts(["glm-key"]).unwrap();
    let compatible = AnthropicCompatible::new(
        ProviderKind::Anthropic,
        AuthStyle::Bearer,
        ModelMap::new([("claude-sonnet-*", "glm-4.6")]),
    );
    let captured = Captured::load("anthropic_python_sdk.json");
    let answer = send(
        &compatible,
        &captured,
        &fake.base_url(),
        &Credential::ApiKey("glm-key".to_owned().into()),
        &UpstreamIdentity::default(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.header("authorization"), Some("Bearer glm-key"));
    assert!(recorded.header("x-api-key").is_none());
    assert_eq!(recorded.json().unwrap()["model"], "glm-4.6");
    let message: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        message["model"], "glm-4.6",
        "the third party saw its own model name"
    );
}
