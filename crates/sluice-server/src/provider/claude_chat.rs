//! OpenAI Chat Completions clients served by the Anthropic pool: `POST /v1/chat/completions`
//! naming a Claude model.
//!
//! The client speaks OpenAI, the upstream Anthropic. This provider translates the request
//! into a Messages request for the chosen account ([`crate::translate`]), reads quota,
//! failures and usage from the Anthropic response exactly as the Anthropic provider does,
//! and hands the proxy a [`ResponseTranslator`] that turns the answer back into Chat
//! Completions, event by event. sluice's own errors and keepalives are OpenAI-shaped.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::{ConversationKey, Outcome, QuotaObservation, Timestamp};

use super::anthropic::Anthropic;
use super::openai::{error_response, keepalive_comment};
use super::{
    AccountContext, ClientRequest, Provider, RequestFacts, ResponseTranslator, StreamReport,
    TranslatedRequest, UpstreamRequest, forwardable_request_headers, session_header,
};
use crate::error::ProxyError;
use crate::translate::{
    ChatStream, RequestOptions, StreamOptions, chat_to_messages, opening_fingerprint,
};

/// The Messages path a translated request goes to.
const MESSAGES_PATH: &str = "/v1/messages";

/// Whether a Chat Completions `model` names a Claude model (and so belongs to this bridge
/// rather than to OpenAI accounts).
pub fn serves_model(model: &str) -> bool {
    model.starts_with("claude-") || model.starts_with("anthropic/claude-")
}

/// The bridge. `pool` is the Anthropic pool.
pub struct ClaudeChat {
    pool: ProviderKind,
    options: RequestOptions,
}

impl ClaudeChat {
    pub fn new(pool: ProviderKind, options: RequestOptions) -> Self {
        ClaudeChat { pool, options }
    }
}

#[derive(Deserialize, Default)]
struct ChatPeek<'a> {
    #[serde(default)]
    stream: bool,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
}

impl Provider for ClaudeChat {
    fn kind(&self) -> ProviderKind {
        self.pool
    }

    /// The conversation is `x-sluice-session`, else the conversation's opening (system and
    /// first user message) together with the client's `user`.
    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        let peek: ChatPeek<'_> = serde_json::from_slice(body).unwrap_or_default();
        let conversation = session_header(headers)
            .map(ConversationKey::from_raw)
            .or_else(|| {
                let opening = opening_fingerprint(body)?;
                Some(match peek.user.as_deref() {
                    Some(user) => ConversationKey::from_raw(&format!("{}\u{1f}{user}", opening.0)),
                    None => opening,
                })
            });
        RequestFacts {
            conversation,
            stream: peek.stream,
            model: peek.model.map(Cow::into_owned),
            weight: 1,
        }
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = Anthropic.upstream_headers(client, credential);
        // OpenAI SDK headers that mean nothing to Anthropic; the Messages API wants a version.
        for name in ["openai-organization", "openai-project", "openai-beta"] {
            headers.remove(name);
        }
        if !headers.contains_key("anthropic-version") {
            headers.insert(
                "anthropic-version",
                http::HeaderValue::from_static("2023-06-01"),
            );
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers
    }

    fn upstream_request(
        &self,
        request: &ClientRequest<'_>,
        account: &AccountContext<'_>,
    ) -> Result<UpstreamRequest, ProxyError> {
        let messages = chat_to_messages(request.body, &self.options)?;
        Ok(UpstreamRequest {
            method: request.method.clone(),
            url: self.upstream_url(account.base_url, MESSAGES_PATH),
            headers: self.upstream_headers(request.headers, account.credential),
            body: Bytes::from(messages.to_string()),
        })
    }

    /// The Messages request, for a third-party account whose adapter adds its own
    /// credential and model names.
    fn upstream_form(
        &self,
        request: &ClientRequest<'_>,
    ) -> Result<Option<TranslatedRequest>, ProxyError> {
        let messages = chat_to_messages(request.body, &self.options)?;
        let mut headers = forwardable_request_headers(request.headers);
        for name in ["openai-organization", "openai-project", "openai-beta"] {
            headers.remove(name);
        }
        if !headers.contains_key("anthropic-version") {
            headers.insert(
                "anthropic-version",
                http::HeaderValue::from_static("2023-06-01"),
            );
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(Some(TranslatedRequest {
            path_and_query: MESSAGES_PATH.to_owned(),
            headers,
            body: Bytes::from(messages.to_string()),
        }))
    }

    fn response_translator(
        &self,
        request: &ClientRequest<'_>,
    ) -> Option<Box<dyn ResponseTranslator>> {
        let created = crate::state::now().as_millis() / 1000;
        Some(Box::new(ChatStream::new(StreamOptions::from_request(
            request.body,
            created,
        ))))
    }

    fn observe_quota(&self, headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
        Anthropic.observe_quota(headers, now)
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome> {
        Anthropic.classify_failure(status, headers, body, now)
    }

    fn observe_event(&self, event: &str, data: &[u8], report: &mut StreamReport) {
        Anthropic.observe_event(event, data, report);
    }

    fn observe_body(&self, body: &[u8], report: &mut StreamReport) {
        Anthropic.observe_body(body, report);
    }

    fn error_response(&self, error: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
        error_response(error)
    }

    /// A Chat Completions error chunk, which the OpenAI SDKs raise.
    fn error_event(&self, error: &ProxyError) -> Bytes {
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&super::openai::error_json(error));
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    fn keepalive_event(&self) -> Bytes {
        keepalive_comment()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue, Method};

    use super::*;
    use crate::error::ErrorKind;
    use crate::provider::UpstreamIdentity;

    fn captured() -> (HeaderMap, Bytes) {
        let text = std::fs::read_to_string(format!(
            "{}/../../fixtures/client-requests/openai_python_chat.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut headers = HeaderMap::new();
        for pair in value["headers"].as_array().unwrap() {
            headers.append(
                HeaderName::from_bytes(pair[0].as_str().unwrap().to_ascii_lowercase().as_bytes())
                    .unwrap(),
                HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
            );
        }
        let mut body = value["body"].clone();
        body["model"] = serde_json::json!("claude-sonnet-4-5");
        (headers, Bytes::from(body.to_string()))
    }

    #[test]
    fn claude_models_belong_to_the_bridge() {
        assert!(serves_model("claude-sonnet-4-5"));
        assert!(serves_model("anthropic/claude-opus-4-5"));
        assert!(!serves_model("gpt-4o-mini"));
        assert!(!serves_model("gemini-2.5-pro"));
    }

    #[test]
    fn the_request_becomes_a_messages_request_with_the_accounts_credential() {
        let (headers, body) = captured();
        let bridge = ClaudeChat::new(ProviderKind::Anthropic, RequestOptions::default());
        let facts = bridge.inspect(&headers, &body);
        assert!(facts.stream);
        assert_eq!(facts.model.as_deref(), Some("claude-sonnet-4-5"));
        assert!(facts.conversation.is_some());

        let credential = Credential::OAuth {
            access_token: "sk-ant-oat01-pooled".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        };
        let identity = UpstreamIdentity::default();
        let base = url::Url::parse("https://api.anthropic.example").unwrap();
        let out = bridge
            .upstream_request(
                &ClientRequest {
                    method: &Method::POST,
                    path_and_query: "/v1/chat/completions",
                    headers: &headers,
                    body: &body,
                },
                &AccountContext {
                    base_url: &base,
                    credential: &credential,
                    identity: &identity,
                },
            )
            .unwrap();
        assert_eq!(out.url, "https://api.anthropic.example/v1/messages");
        assert_eq!(out.headers["authorization"], "Bearer sk-ant-oat01-pooled");
        assert_eq!(out.headers["anthropic-beta"], "oauth-2025-04-20");
        assert_eq!(out.headers["anthropic-version"], "2023-06-01");
        assert_eq!(out.headers["accept-encoding"], "identity");
        let sent: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(
            sent,
            chat_to_messages(&body, &RequestOptions::default()).unwrap()
        );

        let bad = Bytes::from_static(br#"{"model":"claude-sonnet-4-5","messages":[],"n":3}"#);
        let err = bridge
            .upstream_request(
                &ClientRequest {
                    method: &Method::POST,
                    path_and_query: "/v1/chat/completions",
                    headers: &headers,
                    body: &bad,
                },
                &AccountContext {
                    base_url: &base,
                    credential: &credential,
                    identity: &identity,
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "the client's mistake");
    }

    #[test]
    fn own_errors_and_stream_errors_are_openai_shaped() {
        let bridge = ClaudeChat::new(ProviderKind::Anthropic, RequestOptions::default());
        let err = ProxyError::new(ErrorKind::RateLimited, "every claude account is limited");
        let (status, _, body) = bridge.error_response(&err);
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "rate_limit_exceeded");
        let event = bridge.error_event(&err);
        assert!(event.starts_with(b"data: {\"error\":"));
        assert_eq!(&bridge.keepalive_event()[..], b": keepalive\n\n");
    }
}
