//! The Anthropic Messages API: Claude Code, the Anthropic SDKs, and Claude subscription or
//! API-key accounts upstream.
//!
//! Wire facts this module relies on (see WIRE.md): API keys travel as `x-api-key`,
//! subscription tokens as `authorization: Bearer` with `oauth-2025-04-20` in
//! `anthropic-beta`; quota arrives in `anthropic-ratelimit-*` headers; a stream reports
//! usage in `message_start` and `message_delta`; errors are
//! `{"type":"error","error":{"type":…,"message":…}}`.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::headers::parse_anthropic_headers;
use sluice_scheduler::weight::request_weight;
use sluice_scheduler::{ConversationKey, Outcome, QuotaObservation, Timestamp};

use super::{
    ClientRequest, Eligibility, Provider, RequestFacts, RouteKind, StreamReport,
    forwardable_request_headers,
};
use crate::error::{ErrorKind, ProxyError};
use crate::provider::retry_after_header;

/// The beta flag a subscription (OAuth) token needs on every call.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// Headers, in order of preference, that name a conversation explicitly.
const SESSION_HEADERS: [&str; 2] = ["x-sluice-session", "x-claude-code-session-id"];

pub struct Anthropic;

/// The kind of an Anthropic API request: `/v1/messages`, the client's own token refresh,
/// and every other `/v1/` path as an auxiliary call.
pub(crate) fn route(method: &Method, path: &str) -> Option<RouteKind> {
    Some(match path {
        "/v1/messages" if method == Method::POST => RouteKind::Generate,
        "/v1/oauth/token" => RouteKind::ClientTokenRefresh,
        p if p.starts_with("/v1/") => RouteKind::Auxiliary,
        _ => return None,
    })
}

/// The few top-level fields of a Messages request sluice cares about; serde skips the rest
/// (system prompt, tools, history) without building them.
#[derive(Deserialize, Default)]
struct MessagesPeek<'a> {
    #[serde(default)]
    stream: bool,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    metadata: Option<MetadataPeek<'a>>,
    /// Read leniently: a malformed value must not cost the request its conversation.
    #[serde(default, deserialize_with = "lenient_u64")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "thinking_budget")]
    thinking: Option<u64>,
}

fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_u64())
}

/// `thinking.budget_tokens`, when thinking is on with a budget.
fn thinking_budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?
        .get("budget_tokens")
        .and_then(serde_json::Value::as_u64))
}

#[derive(Deserialize, Default)]
struct MetadataPeek<'a> {
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
}

/// The session id inside Claude Code's `metadata.user_id`: a JSON string
/// `{"device_id":…,"session_id":…}`, or the older `user_<hash>_account_<uuid>_session_<uuid>`.
fn session_from_user_id(user_id: &str) -> Option<String> {
    if user_id.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        struct UserId {
            session_id: Option<String>,
        }
        return serde_json::from_str::<UserId>(user_id)
            .ok()?
            .session_id
            .filter(|s| !s.is_empty());
    }
    user_id
        .rsplit_once("_session_")
        .map(|(_, session)| session.to_owned())
        .filter(|s| !s.is_empty())
}

impl Provider for Anthropic {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        let header_session = SESSION_HEADERS
            .iter()
            .filter_map(|name| headers.get(*name)?.to_str().ok())
            .map(str::trim)
            .find(|v| !v.is_empty());
        let peek: MessagesPeek<'_> = if body.is_empty() {
            MessagesPeek::default()
        } else {
            serde_json::from_slice(body).unwrap_or_default()
        };
        let conversation = match header_session {
            Some(session) => Some(ConversationKey::from_raw(session)),
            None => peek
                .metadata
                .as_ref()
                .and_then(|m| m.user_id.as_deref())
                .and_then(session_from_user_id)
                .map(|s| ConversationKey::from_raw(&s)),
        };
        RequestFacts {
            conversation,
            stream: peek.stream,
            model: peek.model.map(Cow::into_owned),
            weight: request_weight(body.len() as u64, peek.max_tokens, peek.thinking),
        }
    }

    /// A conversation carrying thinking that Anthropic signed stays on Anthropic accounts:
    /// a third party cannot verify the signatures and would reject it.
    fn eligibility(&self, request: &ClientRequest<'_>) -> Eligibility {
        Eligibility {
            credential: None,
            first_party_only: request.method == Method::POST
                && super::compatible::carries_anthropic_signatures(request.body),
        }
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = forwardable_request_headers(client);
        // Ask for an unencoded body so usage can be read as it streams past.
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        match credential {
            Credential::ApiKey(key) => {
                if let Ok(mut value) = HeaderValue::from_str(key.expose()) {
                    value.set_sensitive(true);
                    headers.insert(HeaderName::from_static("x-api-key"), value);
                }
            }
            Credential::OAuth { access_token, .. } => {
                if let Ok(mut value) =
                    HeaderValue::from_str(&format!("Bearer {}", access_token.expose()))
                {
                    value.set_sensitive(true);
                    headers.insert(http::header::AUTHORIZATION, value);
                }
                append_beta(&mut headers, OAUTH_BETA);
            }
        }
        headers
    }

    fn observe_quota(&self, headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
        parse_anthropic_headers(
            headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
            now,
        )
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome> {
        let retry_after = retry_after_header(headers, now);
        match status.as_u16() {
            429 => Some(Outcome::RateLimited {
                status: 429,
                retry_after,
            }),
            529 => Some(Outcome::Overloaded { retry_after }),
            401 | 403 => Some(Outcome::AuthRejected {
                status: status.as_u16(),
            }),
            500..=599 => Some(match error_type(body).as_deref() {
                Some("overloaded_error") => Outcome::Overloaded { retry_after },
                _ => Outcome::ServerError {
                    status: status.as_u16(),
                },
            }),
            _ => None,
        }
    }

    fn observe_event(&self, event: &str, data: &[u8], report: &mut StreamReport) {
        match event {
            "message_start" => {
                #[derive(Deserialize)]
                struct Start {
                    message: Option<WithUsage>,
                }
                if let Ok(Start {
                    message: Some(WithUsage { usage: Some(usage) }),
                }) = serde_json::from_slice::<Start>(data)
                {
                    usage.fold_into(report);
                }
            }
            "message_delta" => {
                if let Ok(WithUsage { usage: Some(usage) }) = serde_json::from_slice(data) {
                    usage.fold_into(report);
                }
            }
            "message_stop" => report.completed = true,
            "error" => {
                report.error = Some(match error_type(data).as_deref() {
                    Some("overloaded_error") => Outcome::Overloaded { retry_after: None },
                    Some("rate_limit_error") => Outcome::RateLimited {
                        status: 429,
                        retry_after: None,
                    },
                    Some("authentication_error") | Some("permission_error") => {
                        Outcome::AuthRejected { status: 401 }
                    }
                    _ => Outcome::ServerError { status: 500 },
                })
            }
            _ => {}
        }
    }

    fn observe_body(&self, body: &[u8], report: &mut StreamReport) {
        if let Ok(WithUsage { usage: Some(usage) }) = serde_json::from_slice(body) {
            usage.fold_into(report);
            report.completed = true;
        }
    }

    fn error_response(&self, error: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = error.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        (error.kind.status(), headers, error_json(error))
    }

    fn error_event(&self, error: &ProxyError) -> Bytes {
        let mut event = b"event: error\ndata: ".to_vec();
        event.extend_from_slice(&error_json(error));
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    fn keepalive_event(&self) -> Bytes {
        Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
    }
}

/// Append a flag to the comma-separated `anthropic-beta` list unless it is already there.
fn append_beta(headers: &mut HeaderMap, flag: &str) {
    let existing: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if existing.contains(&flag) {
        return;
    }
    let mut joined = existing.join(",");
    if !joined.is_empty() {
        joined.push(',');
    }
    joined.push_str(flag);
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(HeaderName::from_static("anthropic-beta"), value);
    }
}

fn error_type_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Upstream | ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Internal => {
            "api_error"
        }
    }
}

fn error_json(error: &ProxyError) -> Bytes {
    let body = serde_json::json!({
        "type": "error",
        "error": { "type": error_type_name(error.kind), "message": error.message },
    });
    Bytes::from(body.to_string())
}

/// The `error.type` of an Anthropic error body or error event.
fn error_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_slice::<Envelope>(body).ok()?.error?.kind
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Later events restate cumulative counts, so each present field replaces the old one.
    fn fold_into(self, report: &mut StreamReport) {
        let tokens = &mut report.tokens;
        if let Some(n) = self.input_tokens {
            tokens.input = n;
        }
        if let Some(n) = self.output_tokens {
            tokens.output = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            tokens.cache_creation = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            tokens.cache_read = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::test_support::headers;

    #[test]
    fn routes_by_path() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(r(Method::POST, "/v1/messages"), Some(RouteKind::Generate));
        assert_eq!(
            r(Method::POST, "/v1/messages/count_tokens"),
            Some(RouteKind::Auxiliary)
        );
        assert_eq!(r(Method::GET, "/v1/models"), Some(RouteKind::Auxiliary));
        assert_eq!(
            r(Method::POST, "/v1/oauth/token"),
            Some(RouteKind::ClientTokenRefresh)
        );
        assert_eq!(r(Method::GET, "/"), None);
        assert_eq!(r(Method::GET, "/v2/x"), None);
    }

    #[test]
    fn conversation_from_headers_then_body() {
        let p = Anthropic;
        let body = Bytes::from_static(
            br#"{"model":"m","stream":true,"metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"S1\"}"}}"#,
        );
        let facts = p.inspect(&HeaderMap::new(), &body);
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("S1")));
        assert!(facts.stream);
        assert_eq!(facts.model.as_deref(), Some("m"));

        let facts = p.inspect(&headers(&[("x-claude-code-session-id", "H1")]), &body);
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("H1")));
        let facts = p.inspect(
            &headers(&[
                ("x-claude-code-session-id", "H1"),
                ("x-sluice-session", "T1"),
            ]),
            &body,
        );
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("T1")));

        let legacy = Bytes::from_static(
            br#"{"metadata":{"user_id":"user_abc_account_1234_session_5678-aa"}}"#,
        );
        assert_eq!(
            p.inspect(&HeaderMap::new(), &legacy).conversation,
            Some(ConversationKey::from_raw("5678-aa"))
        );
        let garbage = p.inspect(&HeaderMap::new(), &Bytes::from_static(b"not json"));
        assert_eq!(garbage.conversation, None);
        assert!(!garbage.stream);
    }

    #[test]
    fn weight_grows_with_context_output_cap_and_thinking() {
        let small = Bytes::from_static(br#"{"model":"m","max_tokens":64,"messages":[]}"#);
        assert_eq!(Anthropic.inspect(&HeaderMap::new(), &small).weight, 1);
        let mut big = serde_json::json!({
            "model": "m",
            "max_tokens": 32000,
            "thinking": {"type": "enabled", "budget_tokens": 16000},
            "messages": [{"role": "user", "content": "x".repeat(400_000)}],
        });
        let weight = |v: &serde_json::Value| {
            Anthropic
                .inspect(&HeaderMap::new(), &Bytes::from(v.to_string()))
                .weight
        };
        assert_eq!(weight(&big), 1 + 2 + 2 + 1);
        big["thinking"] = serde_json::json!({"type": "disabled"});
        assert_eq!(weight(&big), 1 + 2 + 2);
        // Odd values are ignored, not fatal to the rest of the peek.
        let odd = Bytes::from_static(
            br#"{"max_tokens":"lots","thinking":true,"metadata":{"user_id":"user_a_account_b_session_S9"}}"#,
        );
        let facts = Anthropic.inspect(&HeaderMap::new(), &odd);
        assert_eq!(facts.weight, 1);
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("S9")));
        // Garbage still weighs by size, never less than 1.
        assert_eq!(
            Anthropic
                .inspect(&HeaderMap::new(), &Bytes::from_static(b"not json"))
                .weight,
            1
        );
    }

    #[test]
    fn captured_claude_code_request_has_a_conversation() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../fixtures/client-requests/claude_code_messages.json"
        ))
        .unwrap();
        let body = Bytes::from(fixture["body"].to_string());
        let facts = Anthropic.inspect(&HeaderMap::new(), &body);
        assert_eq!(
            facts.conversation,
            Some(ConversationKey::from_raw(
                "65d2797d-c22d-4dea-b30c-191e0aefcf30"
            ))
        );
        assert!(facts.stream);
    }

    #[test]
    fn credentials_are_swapped_and_oauth_beta_appended() {
        let client = headers(&[
            ("x-api-key", "client-key"),
            ("authorization", "Bearer client-token"),
            (
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            ),
            ("anthropic-version", "2023-06-01"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("x-sluice-session", "s"),
            ("accept-encoding", "gzip, deflate"),
            ("host", "127.0.0.1:8787"),
            ("content-length", "10"),
            ("x-stainless-lang", "js"),
        ]);
        let oauth = Credential::OAuth {
            access_token: "sk-ant-oat01-secret".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        };
        let out = Anthropic.upstream_headers(&client, &oauth);
        assert_eq!(out["authorization"], "Bearer sk-ant-oat01-secret");
        assert!(out.get("x-api-key").is_none());
        assert_eq!(
            out["anthropic-beta"],
            "claude-code-20250219,interleaved-thinking-2025-05-14,oauth-2025-04-20"
        );
        assert_eq!(out["anthropic-version"], "2023-06-01");
        assert_eq!(out["x-stainless-lang"], "js");
        assert_eq!(out["accept-encoding"], "identity");
        for gone in [
            "connection",
            "x-custom-hop",
            "x-sluice-session",
            "host",
            "content-length",
        ] {
            assert!(out.get(gone).is_none(), "{gone} must not travel upstream");
        }

        let key = Credential::ApiKey("sk-ant-api03-secret".to_owned().into());
        let out = Anthropic.upstream_headers(&client, &key);
        assert_eq!(out["x-api-key"], "sk-ant-api03-secret");
        assert!(out.get("authorization").is_none());
        assert_eq!(
            out["anthropic-beta"],
            "claude-code-20250219,interleaved-thinking-2025-05-14"
        );
    }

    #[test]
    fn oauth_beta_is_not_duplicated_and_is_added_when_absent() {
        let oauth = Credential::OAuth {
            access_token: "t".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        };
        let out =
            Anthropic.upstream_headers(&headers(&[("anthropic-beta", "oauth-2025-04-20")]), &oauth);
        assert_eq!(out["anthropic-beta"], "oauth-2025-04-20");
        let out = Anthropic.upstream_headers(&HeaderMap::new(), &oauth);
        assert_eq!(out["anthropic-beta"], "oauth-2025-04-20");
    }

    #[test]
    fn failures_are_classified() {
        let now = Timestamp::from_secs(1_000);
        let classify = |status: u16, hdrs: &[(&str, &str)], body: &str| {
            Anthropic.classify_failure(
                StatusCode::from_u16(status).unwrap(),
                &headers(hdrs),
                body.as_bytes(),
                now,
            )
        };
        assert_eq!(
            classify(429, &[("retry-after", "12")], ""),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(12))
            })
        );
        assert_eq!(
            classify(529, &[], ""),
            Some(Outcome::Overloaded { retry_after: None })
        );
        assert_eq!(
            classify(
                503,
                &[],
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#
            ),
            Some(Outcome::Overloaded { retry_after: None })
        );
        assert_eq!(
            classify(500, &[], ""),
            Some(Outcome::ServerError { status: 500 })
        );
        assert_eq!(
            classify(401, &[], ""),
            Some(Outcome::AuthRejected { status: 401 })
        );
        assert_eq!(classify(400, &[], ""), None);
        assert_eq!(classify(404, &[], ""), None);
    }

    #[test]
    fn stream_usage_is_folded() {
        let mut report = StreamReport::default();
        let p = Anthropic;
        p.observe_event(
            "message_start",
            br#"{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":5,"cache_read_input_tokens":7}}}"#,
            &mut report,
        );
        p.observe_event("ping", b"{}", &mut report);
        p.observe_event(
            "message_delta",
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#,
            &mut report,
        );
        p.observe_event("message_stop", b"{}", &mut report);
        assert_eq!(report.tokens.input, 10);
        assert_eq!(report.tokens.output, 42);
        assert_eq!(report.tokens.cache_creation, 5);
        assert_eq!(report.tokens.cache_read, 7);
        assert!(report.completed);
        assert!(report.error.is_none());
        p.observe_event(
            "error",
            br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
            &mut report,
        );
        assert_eq!(
            report.error,
            Some(Outcome::Overloaded { retry_after: None })
        );
    }

    #[test]
    fn own_errors_use_the_anthropic_shape() {
        let err = ProxyError::new(ErrorKind::RateLimited, "all accounts are rate limited")
            .retry_after(Some(std::time::Duration::from_millis(2500)));
        let (status, headers, body) = Anthropic.error_response(&err);
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "3");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "rate_limit_error");
        let event = Anthropic.error_event(&err);
        assert!(event.starts_with(b"event: error\ndata: {"));
        assert!(event.ends_with(b"\n\n"));
    }
}
