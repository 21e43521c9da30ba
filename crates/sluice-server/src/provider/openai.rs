//! The OpenAI API with API-key accounts: `POST /v1/chat/completions` and `POST /v1/responses`
//! passed through, and the OpenAI wire shapes Codex shares (error JSON, Responses usage).
//!
//! Wire facts this module relies on (see WIRE.md): keys travel as `authorization: Bearer`;
//! quota arrives in `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with Go-style
//! reset delays (`6m0s`); Chat Completions streams are `data:` chunks ending `data: [DONE]`,
//! with a usage chunk when `stream_options.include_usage`; Responses streams end with
//! `response.completed` carrying `usage`; errors are
//! `{"error":{"message","type","param","code"}}`.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::quota::Bucket;
use sluice_scheduler::{ConversationKey, Outcome, QuotaObservation, Timestamp, TokenTotals};

use super::signals::parse_duration;
use super::{
    Opening, Provider, RequestFacts, RouteKind, StreamReport, forwardable_request_headers,
    session_header,
};
use crate::error::{ErrorKind, ProxyError};
use crate::provider::retry_after_header;

/// The public OpenAI API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com";

/// How long an account that answered `insufficient_quota` (no credit left: a billing matter,
/// not a rate) is left alone before it is tried again.
pub const INSUFFICIENT_QUOTA_BENCH: Duration = Duration::from_secs(60 * 60);

/// Headers that scope a request to the client's own OpenAI organization or project; they
/// would point a pooled key at someone else's.
const ACCOUNT_SCOPED_HEADERS: [&str; 2] = ["openai-organization", "openai-project"];

/// OpenAI API-key accounts. `pool` is the scheduler pool its requests are placed in.
pub struct OpenAI {
    pool: ProviderKind,
}

impl OpenAI {
    pub fn new(pool: ProviderKind) -> Self {
        OpenAI { pool }
    }
}

/// The kind of an OpenAI API request, or `None` when the path is not one this provider
/// serves. `GET /v1/models` is shared with the Anthropic API; the routing table decides by
/// the client (see ARCHITECTURE.md).
pub fn route(method: &Method, path: &str) -> Option<RouteKind> {
    match path {
        "/v1/chat/completions" | "/v1/responses" if method == Method::POST => {
            Some(RouteKind::Generate)
        }
        "/v1/models" if method == Method::GET => Some(RouteKind::Auxiliary),
        _ => None,
    }
}

/// The top-level fields of a Chat Completions or Responses request sluice looks at.
#[derive(Deserialize, Default)]
pub(crate) struct RequestPeek<'a> {
    #[serde(default)]
    pub stream: bool,
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub prompt_cache_key: Option<Cow<'a, str>>,
}

impl Provider for OpenAI {
    fn kind(&self) -> ProviderKind {
        self.pool
    }

    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        let peek: RequestPeek<'_> = serde_json::from_slice(body).unwrap_or_default();
        let conversation = session_header(headers)
            .map(ConversationKey::from_raw)
            .or_else(|| {
                peek.prompt_cache_key
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .map(ConversationKey::from_raw)
            })
            .or_else(|| crate::translate::opening_fingerprint(body));
        RequestFacts {
            conversation,
            stream: peek.stream,
            model: peek.model.map(Cow::into_owned),
            weight: 1,
        }
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = forwardable_request_headers(client);
        for name in ACCOUNT_SCOPED_HEADERS {
            headers.remove(name);
        }
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        insert_bearer(&mut headers, credential);
        headers
    }

    fn observe_quota(&self, headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
        parse_ratelimit_headers(headers, now)
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome> {
        classify_openai_failure(status, headers, body, now)
    }

    fn observe_event(&self, event: &str, data: &[u8], report: &mut StreamReport) {
        match event {
            // Chat Completions chunks carry no event name.
            "message" => observe_chat_chunk(data, report),
            _ => observe_responses_event(event, data, report),
        }
    }

    fn opening_event(&self, event: &str, data: &[u8]) -> Opening {
        responses_opening(event, data)
    }

    fn observe_body(&self, body: &[u8], report: &mut StreamReport) {
        observe_openai_body(body, report);
    }

    fn error_response(&self, error: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
        error_response(error)
    }

    fn error_event(&self, error: &ProxyError) -> Bytes {
        // `event: error` with an `error` object is raised by the OpenAI SDKs on both Chat
        // Completions and Responses streams.
        let mut event = b"event: error\ndata: ".to_vec();
        event.extend_from_slice(&error_json(error));
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    fn keepalive_event(&self) -> Bytes {
        keepalive_comment()
    }
}

/// How an early Responses (or Chat Completions) event bears on committing to a stream:
/// `response.created` and `response.in_progress` are bookkeeping sent before the upstream
/// can fail, so the decision waits for the next event.
pub(crate) fn responses_opening(event: &str, data: &[u8]) -> Opening {
    if matches!(event, "response.created" | "response.in_progress") {
        return Opening::Preamble;
    }
    let mut report = StreamReport::default();
    match event {
        "message" => observe_chat_chunk(data, &mut report),
        _ => observe_responses_event(event, data, &mut report),
    }
    match report.error {
        Some(outcome) => Opening::Failed(outcome),
        None => Opening::Content,
    }
}

/// An SSE comment: every SSE parser skips it, so it keeps a connection alive in any dialect.
pub(crate) fn keepalive_comment() -> Bytes {
    Bytes::from_static(b": keepalive\n\n")
}

/// Put the account's key or token on `headers` as `authorization: Bearer`.
pub(crate) fn insert_bearer(headers: &mut HeaderMap, credential: &Credential) {
    let secret = match credential {
        Credential::ApiKey(key) => key.expose(),
        Credential::OAuth { access_token, .. } => access_token.expose(),
    };
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {secret}")) {
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` as request and token buckets.
pub fn parse_ratelimit_headers(headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
    let bucket = |kind: &str| -> Option<Bucket> {
        let read = |field: &str| {
            headers
                .get(format!("x-ratelimit-{field}-{kind}"))
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |text: &str| {
            text.parse::<u64>().ok().or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .map(|n| n as u64)
            })
        };
        Some(Bucket {
            limit: read("limit").and_then(number)?,
            remaining: read("remaining").and_then(number)?,
            resets_at: read("reset")
                .and_then(parse_duration)
                .map(|delay| now + delay),
        })
    };
    QuotaObservation {
        requests: bucket("requests"),
        tokens: bucket("tokens"),
        ..QuotaObservation::default()
    }
}

/// What an unsuccessful OpenAI-shaped response means for the account.
pub(crate) fn classify_openai_failure(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Option<Outcome> {
    let retry_after = retry_after_header(headers, now);
    let error = ErrorFields::parse(body);
    match status.as_u16() {
        429 if error.is("insufficient_quota") => Some(Outcome::RateLimited {
            status: 429,
            retry_after: Some(INSUFFICIENT_QUOTA_BENCH),
        }),
        429 => Some(Outcome::RateLimited {
            status: 429,
            retry_after,
        }),
        401 | 403 => Some(Outcome::AuthRejected {
            status: status.as_u16(),
        }),
        503 | 529 => Some(Outcome::Overloaded { retry_after }),
        500..=599 if error.is("server_is_overloaded") || error.is("slow_down") => {
            Some(Outcome::Overloaded { retry_after })
        }
        500..=599 => Some(Outcome::ServerError {
            status: status.as_u16(),
        }),
        _ => None,
    }
}

/// The `type` and `code` of an OpenAI error body (`{"error":{…}}`, or the bare object an
/// `error` event carries).
#[derive(Default)]
pub(crate) struct ErrorFields {
    pub kind: Option<String>,
    pub code: Option<String>,
}

impl ErrorFields {
    pub(crate) fn parse(body: &[u8]) -> ErrorFields {
        #[derive(Deserialize)]
        struct Envelope {
            error: Option<Inner>,
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<serde_json::Value>,
        }
        let code_text = |code: Option<serde_json::Value>| match code {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope {
                error: Some(inner), ..
            }) => ErrorFields {
                kind: inner.kind,
                code: code_text(inner.code),
            },
            Ok(Envelope { kind, code, .. }) => ErrorFields {
                kind,
                code: code_text(code),
            },
            Err(_) => ErrorFields::default(),
        }
    }

    /// Whether the type or the code is `name`.
    pub(crate) fn is(&self, name: &str) -> bool {
        self.kind.as_deref() == Some(name) || self.code.as_deref() == Some(name)
    }
}

/// Usage of a Responses `usage` object: input includes cached tokens upstream, sluice counts
/// them apart (as Anthropic reports them).
#[derive(Deserialize)]
pub(crate) struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<CachedDetails>,
}

#[derive(Deserialize)]
struct CachedDetails {
    cached_tokens: Option<u64>,
}

impl ResponsesUsage {
    pub(crate) fn tokens(&self) -> TokenTotals {
        let cached = self
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        TokenTotals {
            input: self.input_tokens.unwrap_or(0).saturating_sub(cached),
            output: self.output_tokens.unwrap_or(0),
            cache_creation: 0,
            cache_read: cached,
        }
    }
}

/// Usage of a Chat Completions `usage` object.
#[derive(Deserialize)]
pub(crate) struct ChatUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<CachedDetails>,
}

impl ChatUsage {
    pub(crate) fn tokens(&self) -> TokenTotals {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        TokenTotals {
            input: self.prompt_tokens.unwrap_or(0).saturating_sub(cached),
            output: self.completion_tokens.unwrap_or(0),
            cache_creation: 0,
            cache_read: cached,
        }
    }
}

/// One Chat Completions stream chunk (`data:` without an event name).
fn observe_chat_chunk(data: &[u8], report: &mut StreamReport) {
    if data.trim_ascii() == b"[DONE]" {
        report.completed = true;
        return;
    }
    #[derive(Deserialize)]
    struct Chunk {
        usage: Option<ChatUsage>,
        error: Option<serde_json::Value>,
    }
    let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
        return;
    };
    if let Some(usage) = chunk.usage {
        report.tokens = usage.tokens();
    }
    if chunk.error.is_some() {
        report.error = Some(stream_error_outcome(&ErrorFields::parse(data)));
    }
}

/// One Responses stream event, named in `event:` (and again in the data's `type`).
pub(crate) fn observe_responses_event(event: &str, data: &[u8], report: &mut StreamReport) {
    match event {
        "response.completed" | "response.incomplete" => {
            #[derive(Deserialize)]
            struct Terminal {
                response: Option<WithResponsesUsage>,
            }
            if let Ok(Terminal {
                response: Some(WithResponsesUsage { usage: Some(usage) }),
            }) = serde_json::from_slice(data)
            {
                report.tokens = usage.tokens();
            }
            report.completed = true;
        }
        "response.failed" => {
            #[derive(Deserialize)]
            struct Failed {
                response: Option<FailedResponse>,
            }
            #[derive(Deserialize)]
            struct FailedResponse {
                error: Option<serde_json::Value>,
            }
            let fields = serde_json::from_slice::<Failed>(data)
                .ok()
                .and_then(|f| f.response?.error)
                .map(|e| ErrorFields::parse(e.to_string().as_bytes()))
                .unwrap_or_default();
            report.error = Some(stream_error_outcome(&fields));
        }
        "error" => report.error = Some(stream_error_outcome(&ErrorFields::parse(data))),
        _ => {}
    }
}

#[derive(Deserialize)]
struct WithResponsesUsage {
    usage: Option<ResponsesUsage>,
}

/// What an error reported inside a stream means for the account.
fn stream_error_outcome(error: &ErrorFields) -> Outcome {
    if error.is("rate_limit_exceeded")
        || error.is("usage_limit_reached")
        || error.is("rate_limit_error")
    {
        Outcome::RateLimited {
            status: 429,
            retry_after: None,
        }
    } else if error.is("insufficient_quota") {
        Outcome::RateLimited {
            status: 429,
            retry_after: Some(INSUFFICIENT_QUOTA_BENCH),
        }
    } else if error.is("server_is_overloaded") || error.is("slow_down") {
        Outcome::Overloaded { retry_after: None }
    } else if error.is("invalid_api_key") || error.is("authentication_error") {
        Outcome::AuthRejected { status: 401 }
    } else {
        Outcome::ServerError { status: 500 }
    }
}

/// A complete non-streamed body: a `chat.completion` or a Responses `response` object.
pub(crate) fn observe_openai_body(body: &[u8], report: &mut StreamReport) {
    #[derive(Deserialize)]
    struct AnyUsage {
        usage: Option<serde_json::Value>,
    }
    let Ok(AnyUsage { usage: Some(usage) }) = serde_json::from_slice::<AnyUsage>(body) else {
        return;
    };
    let tokens = if usage.get("prompt_tokens").is_some() {
        serde_json::from_value::<ChatUsage>(usage)
            .ok()
            .map(|u| u.tokens())
    } else {
        serde_json::from_value::<ResponsesUsage>(usage)
            .ok()
            .map(|u| u.tokens())
    };
    if let Some(tokens) = tokens {
        report.tokens = tokens;
        report.completed = true;
    }
}

/// The OpenAI `error.type` and `error.code` for one of sluice's own errors.
fn error_type_and_code(kind: ErrorKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ErrorKind::InvalidRequest => ("invalid_request_error", None),
        ErrorKind::Authentication => ("invalid_request_error", Some("invalid_api_key")),
        ErrorKind::NotFound => ("invalid_request_error", Some("not_found")),
        ErrorKind::RequestTooLarge => ("invalid_request_error", Some("request_too_large")),
        ErrorKind::RateLimited => ("rate_limit_error", Some("rate_limit_exceeded")),
        ErrorKind::Overloaded => ("server_error", Some("server_is_overloaded")),
        ErrorKind::Timeout => ("server_error", Some("timeout")),
        ErrorKind::Upstream | ErrorKind::Unavailable | ErrorKind::Internal => {
            ("server_error", None)
        }
    }
}

/// `{"error":{"message","type","param","code"}}` for one of sluice's own errors.
pub(crate) fn error_json(error: &ProxyError) -> Bytes {
    let (kind, code) = error_type_and_code(error.kind);
    let body = serde_json::json!({
        "error": { "message": error.message, "type": kind, "param": null, "code": code },
    });
    Bytes::from(body.to_string())
}

/// The HTTP status OpenAI clients expect for one of sluice's errors: 503 rather than
/// Anthropic's 529 for an overload.
pub(crate) fn openai_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        other => other.status(),
    }
}

/// One of sluice's errors as an OpenAI error response.
pub(crate) fn error_response(error: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(after) = error.retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    (openai_status(error.kind), headers, error_json(error))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::provider::test_support::{captured, headers};
    use crate::provider::{AccountContext, ClientRequest, UpstreamIdentity};

    const POOL: ProviderKind = ProviderKind::OpenAI;
    const NOW: Timestamp = Timestamp::from_secs(1_767_000_000);

    fn fixture(name: &str) -> (HeaderMap, Bytes) {
        let captured = captured(name);
        let body = captured.body_bytes();
        (captured.headers, body)
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Some(RouteKind::Generate)
        );
        assert_eq!(
            route(&Method::POST, "/v1/responses"),
            Some(RouteKind::Generate)
        );
        assert_eq!(
            route(&Method::GET, "/v1/models"),
            Some(RouteKind::Auxiliary)
        );
        assert_eq!(route(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(route(&Method::POST, "/v1/messages"), None);
    }

    #[test]
    fn captured_python_requests_are_inspected() {
        let p = OpenAI::new(POOL);
        let (hdrs, body) = fixture("openai_python_chat.json");
        let facts = p.inspect(&hdrs, &body);
        assert!(facts.stream);
        assert_eq!(facts.model.as_deref(), Some("gpt-4o-mini"));
        assert!(
            facts.conversation.is_some(),
            "a chat conversation is keyed by its opening"
        );
        let (hdrs, body) = fixture("openai_python_responses.json");
        let facts = p.inspect(&hdrs, &body);
        assert!(facts.stream);
        assert_eq!(facts.model.as_deref(), Some("gpt-5"));
        let keyed = Bytes::from_static(br#"{"model":"m","prompt_cache_key":"pk-1","input":"x"}"#);
        assert_eq!(
            p.inspect(&HeaderMap::new(), &keyed).conversation,
            Some(ConversationKey::from_raw("pk-1"))
        );
        assert_eq!(
            p.inspect(&headers(&[("x-sluice-session", "t")]), &keyed)
                .conversation,
            Some(ConversationKey::from_raw("t"))
        );
    }

    #[test]
    fn the_key_replaces_the_clients_credentials() {
        let (client, body) = fixture("openai_python_chat.json");
        let mut client = client;
        client.insert(
            "openai-organization",
            HeaderValue::from_static("org-client"),
        );
        client.insert("openai-project", HeaderValue::from_static("proj-client"));
        let credential = Credential::ApiKey("sk-pooled".to_owned().into());
        let identity = UpstreamIdentity::default();
        let base = url::Url::parse("https://api.openai.example/").unwrap();
        let request = ClientRequest {
            method: &Method::POST,
            path_and_query: "/v1/chat/completions",
            headers: &client,
            body: &body,
        };
        let out = OpenAI::new(POOL)
            .upstream_request(
                &request,
                &AccountContext {
                    base_url: &base,
                    credential: &credential,
                    identity: &identity,
                },
            )
            .unwrap();
        assert_eq!(out.url, "https://api.openai.example/v1/chat/completions");
        assert_eq!(out.headers["authorization"], "Bearer sk-pooled");
        assert!(out.headers["authorization"].is_sensitive());
        assert_eq!(out.headers["accept-encoding"], "identity");
        assert_eq!(out.headers["x-stainless-lang"], "python");
        for gone in [
            "openai-organization",
            "openai-project",
            "host",
            "connection",
        ] {
            assert!(out.headers.get(gone).is_none(), "{gone} must not travel");
        }
        assert_eq!(out.body, body);
    }

    #[test]
    fn ratelimit_headers_become_buckets() {
        let obs = parse_ratelimit_headers(
            &headers(&[
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "499"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "1500"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]),
            NOW,
        );
        let requests = obs.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (500, 499));
        assert_eq!(requests.resets_at, Some(NOW + Duration::from_millis(120)));
        let tokens = obs.tokens.unwrap();
        assert_eq!(tokens.resets_at, Some(NOW + Duration::from_secs(360)));
        assert!((tokens.used() - 0.95).abs() < 1e-9);
        assert!(parse_ratelimit_headers(&HeaderMap::new(), NOW).is_empty());
        let partial = parse_ratelimit_headers(
            &headers(&[
                ("x-ratelimit-limit-requests", "5"),
                ("x-ratelimit-reset-requests", "1s"),
            ]),
            NOW,
        );
        assert!(
            partial.is_empty(),
            "a limit without remaining is not a bucket"
        );
    }

    #[test]
    fn failures_are_classified() {
        let classify = |status: u16, hdrs: &[(&str, &str)], body: &str| {
            classify_openai_failure(
                StatusCode::from_u16(status).unwrap(),
                &headers(hdrs),
                body.as_bytes(),
                NOW,
            )
        };
        assert_eq!(
            classify(
                429,
                &[("retry-after", "3")],
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(3))
            })
        );
        assert_eq!(
            classify(
                429,
                &[],
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#
            ),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(INSUFFICIENT_QUOTA_BENCH)
            })
        );
        assert_eq!(
            classify(401, &[], r#"{"error":{"code":"invalid_api_key"}}"#),
            Some(Outcome::AuthRejected { status: 401 })
        );
        assert_eq!(
            classify(503, &[], ""),
            Some(Outcome::Overloaded { retry_after: None })
        );
        assert_eq!(
            classify(500, &[], r#"{"error":{"type":"server_error"}}"#),
            Some(Outcome::ServerError { status: 500 })
        );
        assert_eq!(
            classify(400, &[], r#"{"error":{"type":"invalid_request_error"}}"#),
            None
        );
        assert_eq!(classify(404, &[], ""), None);
    }

    #[test]
    fn chat_stream_usage_and_end() {
        let p = OpenAI::new(POOL);
        let mut report = StreamReport::default();
        p.observe_event(
            "message",
            br#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"po"},"finish_reason":null}],"usage":null}"#,
            &mut report,
        );
        p.observe_event(
            "message",
            br#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":8}}}"#,
            &mut report,
        );
        assert!(!report.completed);
        p.observe_event("message", b"[DONE]", &mut report);
        assert!(report.completed);
        assert_eq!(
            report.tokens,
            TokenTotals {
                input: 12,
                output: 3,
                cache_creation: 0,
                cache_read: 8
            }
        );
        p.observe_event(
            "message",
            br#"{"error":{"message":"overloaded","type":"server_error","code":"server_is_overloaded"}}"#,
            &mut report,
        );
        assert_eq!(
            report.error,
            Some(Outcome::Overloaded { retry_after: None })
        );
    }

    #[test]
    fn responses_stream_usage_and_failure() {
        let p = OpenAI::new(POOL);
        let mut report = StreamReport::default();
        p.observe_event(
            "response.output_text.delta",
            br#"{"type":"response.output_text.delta","delta":"x"}"#,
            &mut report,
        );
        p.observe_event(
            "response.completed",
            br#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":107}}}"#,
            &mut report,
        );
        assert!(report.completed);
        assert_eq!(
            report.tokens,
            TokenTotals {
                input: 40,
                output: 7,
                cache_creation: 0,
                cache_read: 60
            }
        );
        let mut failed = StreamReport::default();
        p.observe_event(
            "response.failed",
            br#"{"type":"response.failed","response":{"status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#,
            &mut failed,
        );
        assert_eq!(
            failed.error,
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: None
            })
        );
    }

    #[test]
    fn whole_bodies_report_usage() {
        let mut report = StreamReport::default();
        observe_openai_body(
            br#"{"object":"chat.completion","usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            &mut report,
        );
        assert_eq!((report.tokens.input, report.tokens.output), (9, 2));
        assert!(report.completed);
        let mut report = StreamReport::default();
        observe_openai_body(
            br#"{"object":"response","usage":{"input_tokens":5,"output_tokens":1,"total_tokens":6}}"#,
            &mut report,
        );
        assert_eq!((report.tokens.input, report.tokens.output), (5, 1));
    }

    #[test]
    fn own_errors_use_the_openai_shape() {
        let err = ProxyError::new(ErrorKind::Overloaded, "busy")
            .retry_after(Some(Duration::from_millis(1500)));
        let (status, hdrs, body) = OpenAI::new(POOL).error_response(&err);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(hdrs["retry-after"], "2");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["type"], "server_error");
        assert_eq!(json["error"]["code"], "server_is_overloaded");
        assert_eq!(json["error"]["message"], "busy");
        assert!(json["error"]["param"].is_null());
        let event = OpenAI::new(POOL).error_event(&err);
        assert!(event.starts_with(b"event: error\ndata: {\"error\":"));
        assert!(event.ends_with(b"\n\n"));
        assert_eq!(&OpenAI::new(POOL).keepalive_event()[..], b": keepalive\n\n");
    }
}
