//! Anthropic-compatible third parties (GLM, Kimi and the like) as low-priority fallbacks for
//! Claude traffic: the Messages API at another `base_url`, with its own auth style and its
//! own model names.
//!
//! Such an account sits in the Anthropic pool; only the upstream request differs from an
//! Anthropic account's (its key as `x-api-key` or `authorization: Bearer`, the body's
//! `model` mapped through [`ModelMap`]). Everything the client sees — conversation keys,
//! stream framing, error shapes — is the Anthropic provider's.
//!
//! A conversation that already carries Anthropic-signed thinking blocks must never be sent
//! to a third party: it cannot verify Anthropic's signatures and would reject the
//! conversation. [`carries_anthropic_signatures`] tells the scheduler to keep it on
//! first-party accounts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::{Outcome, QuotaObservation, Timestamp};

use super::anthropic::Anthropic;
use super::{
    AccountContext, ClientRequest, Provider, RequestFacts, StreamReport, UpstreamRequest,
    forwardable_request_headers,
};
use crate::error::{ErrorKind, ProxyError};

/// How a third party wants its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthStyle {
    /// `x-api-key: <key>`, as Anthropic.
    #[default]
    XApiKey,
    /// `authorization: Bearer <key>`.
    Bearer,
}

impl AuthStyle {
    /// The config spelling: `x-api-key` or `bearer`.
    pub fn parse(text: &str) -> Option<AuthStyle> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-api-key" => Some(AuthStyle::XApiKey),
            "bearer" => Some(AuthStyle::Bearer),
            _ => None,
        }
    }
}

/// Claude model names → the third party's. Keys match exactly, or by prefix when they end
/// in `*`; a lone `*` catches every other model. The first matching entry wins, exact
/// matches before patterns. A model nothing matches is sent unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelMap {
    exact: Vec<(String, String)>,
    prefixes: Vec<(String, String)>,
    fallback: Option<String>,
}

impl ModelMap {
    pub fn new<I, K, V>(entries: I) -> ModelMap
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = ModelMap::default();
        for (from, to) in entries {
            let (from, to) = (from.into(), to.into());
            if from == "*" {
                map.fallback.get_or_insert(to);
            } else if let Some(prefix) = from.strip_suffix('*') {
                map.prefixes.push((prefix.to_owned(), to));
            } else {
                map.exact.push((from, to));
            }
        }
        map
    }

    /// The third party's name for `model`, if the map renames it.
    pub fn map(&self, model: &str) -> Option<&str> {
        self.exact
            .iter()
            .find(|(from, _)| from == model)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(prefix, _)| model.starts_with(prefix.as_str()))
            })
            .map(|(_, to)| to.as_str())
            .or(self.fallback.as_deref())
    }
}

/// One third-party Anthropic-compatible endpoint. `pool` is the Anthropic pool it backs up.
pub struct AnthropicCompatible {
    pool: ProviderKind,
    auth: AuthStyle,
    models: ModelMap,
}

impl AnthropicCompatible {
    pub fn new(pool: ProviderKind, auth: AuthStyle, models: ModelMap) -> Self {
        AnthropicCompatible { pool, auth, models }
    }
}

impl Provider for AnthropicCompatible {
    fn kind(&self) -> ProviderKind {
        self.pool
    }

    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        Anthropic.inspect(headers, body)
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = forwardable_request_headers(client);
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let secret = match credential {
            Credential::ApiKey(key) => key.expose(),
            Credential::OAuth { access_token, .. } => access_token.expose(),
        };
        let (name, value) = match self.auth {
            AuthStyle::XApiKey => ("x-api-key", secret.to_owned()),
            AuthStyle::Bearer => ("authorization", format!("Bearer {secret}")),
        };
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers
    }

    fn upstream_request(
        &self,
        request: &ClientRequest<'_>,
        account: &AccountContext<'_>,
    ) -> Result<UpstreamRequest, ProxyError> {
        Ok(UpstreamRequest {
            method: request.method.clone(),
            url: self.upstream_url(account.base_url, request.path_and_query),
            headers: self.upstream_headers(request.headers, account.credential),
            body: map_model(request.body, &self.models)?,
        })
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
        Anthropic.error_response(error)
    }

    fn error_event(&self, error: &ProxyError) -> Bytes {
        Anthropic.error_event(error)
    }

    fn keepalive_event(&self) -> Bytes {
        Anthropic.keepalive_event()
    }
}

/// The body with its `model` renamed by `models`; the rest is copied as is (only the top
/// level is parsed). Unchanged when nothing maps.
pub fn map_model(body: &Bytes, models: &ModelMap) -> Result<Bytes, ProxyError> {
    #[derive(Deserialize)]
    struct ModelPeek<'a> {
        #[serde(borrow)]
        model: Option<Cow<'a, str>>,
    }
    let Ok(ModelPeek { model: Some(model) }) = serde_json::from_slice::<ModelPeek<'_>>(body) else {
        return Ok(body.clone());
    };
    let Some(mapped) = models.map(&model) else {
        return Ok(body.clone());
    };
    let mut top: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body).map_err(|_| {
        ProxyError::new(
            ErrorKind::InvalidRequest,
            "the request body is not a JSON object",
        )
    })?;
    let raw = RawValue::from_string(serde_json::Value::from(mapped).to_string())
        .map_err(|_| ProxyError::new(ErrorKind::Internal, "could not rename the model"))?;
    top.insert("model".into(), raw);
    serde_json::to_vec(&top)
        .map(Bytes::from)
        .map_err(|_| ProxyError::new(ErrorKind::Internal, "could not rename the model"))
}

/// Whether a Messages request carries thinking that Anthropic signed: a `thinking` block
/// with a `signature`, or a `redacted_thinking` block (encrypted by Anthropic). Such a
/// conversation must stay on Anthropic accounts. Cheap when there is no thinking at all:
/// the body is only parsed when it mentions one of those block types.
pub fn carries_anthropic_signatures(body: &[u8]) -> bool {
    let mentions = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    let might_carry =
        mentions(b"redacted_thinking") || (mentions(b"\"thinking\"") && mentions(b"\"signature\""));
    if !might_carry {
        return false;
    }
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(default, borrow)]
        messages: Vec<Message<'a>>,
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        content: Content<'a>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content<'a> {
        Blocks(#[serde(borrow)] Vec<Block<'a>>),
        Other(IgnoredAny),
    }
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        signature: Option<Cow<'a, str>>,
    }
    let Ok(request) = serde_json::from_slice::<Request<'_>>(body) else {
        // Unreadable but mentioning signed thinking: keep it first-party to be safe.
        return true;
    };
    request
        .messages
        .iter()
        .any(|message| match &message.content {
            Content::Blocks(blocks) => blocks.iter().any(|block| match block.kind.as_deref() {
                Some("redacted_thinking") => true,
                Some("thinking") => block.signature.as_deref().is_some_and(|s| !s.is_empty()),
                _ => false,
            }),
            Content::Other(_) => false,
        })
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::provider::UpstreamIdentity;
    use crate::provider::test_support::headers;

    fn glm_map() -> ModelMap {
        ModelMap::new([
            ("claude-opus-4-5", "glm-4.6-max"),
            ("claude-sonnet-*", "glm-4.6"),
            ("claude-haiku-*", "glm-4.5-air"),
            ("*", "glm-4.6"),
        ])
    }

    #[test]
    fn model_names_map_exactly_then_by_prefix_then_by_fallback() {
        let map = glm_map();
        assert_eq!(map.map("claude-opus-4-5"), Some("glm-4.6-max"));
        assert_eq!(map.map("claude-sonnet-4-5-20250929"), Some("glm-4.6"));
        assert_eq!(map.map("claude-haiku-4-5"), Some("glm-4.5-air"));
        assert_eq!(map.map("claude-opus-4-1"), Some("glm-4.6"), "the fallback");
        let no_fallback = ModelMap::new([("claude-sonnet-4-5", "kimi-k2")]);
        assert_eq!(no_fallback.map("claude-sonnet-4-5"), Some("kimi-k2"));
        assert_eq!(no_fallback.map("claude-opus-4-5"), None);
        assert_eq!(AuthStyle::parse("Bearer"), Some(AuthStyle::Bearer));
        assert_eq!(AuthStyle::parse("x-api-key"), Some(AuthStyle::XApiKey));
        assert_eq!(AuthStyle::parse("basic"), None);
    }

    #[test]
    fn the_request_gets_the_third_partys_model_and_auth_style() {
        let captured: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../../fixtures/client-requests/claude_code_messages.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let body = Bytes::from(captured["body"].to_string());
        let client = headers(&[
            ("x-api-key", "sk-ant-client"),
            ("authorization", "Bearer sk-ant-client"),
            ("anthropic-version", "2023-06-01"),
            ("x-claude-code-session-id", "s"),
        ]);
        let key = Credential::ApiKey("third-party-secret".to_owned().into());
        let identity = UpstreamIdentity::default();
        let base = url::Url::parse("https://open.bigmodel.example/api/anthropic").unwrap();
        let request = ClientRequest {
            method: &Method::POST,
            path_and_query: "/v1/messages?beta=true",
            headers: &client,
            body: &body,
        };
        let account = AccountContext {
            base_url: &base,
            credential: &key,
            identity: &identity,
        };

        let bearer =
            AnthropicCompatible::new(ProviderKind::Anthropic, AuthStyle::Bearer, glm_map());
        let out = bearer.upstream_request(&request, &account).unwrap();
        assert_eq!(
            out.url,
            "https://open.bigmodel.example/api/anthropic/v1/messages?beta=true"
        );
        assert_eq!(out.headers["authorization"], "Bearer third-party-secret");
        assert!(out.headers["authorization"].is_sensitive());
        assert!(out.headers.get("x-api-key").is_none());
        assert_eq!(out.headers["anthropic-version"], "2023-06-01");
        let sent: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(captured["body"]["model"], "claude-opus-4-8");
        assert_eq!(sent["model"], "glm-4.6", "the fallback entry");
        assert_eq!(sent["messages"], captured["body"]["messages"]);
        assert_eq!(sent["tools"], captured["body"]["tools"]);

        let keyed = AnthropicCompatible::new(
            ProviderKind::Anthropic,
            AuthStyle::XApiKey,
            ModelMap::default(),
        );
        let out = keyed.upstream_request(&request, &account).unwrap();
        assert_eq!(out.headers["x-api-key"], "third-party-secret");
        assert!(out.headers.get("authorization").is_none());
        assert_eq!(out.body, body, "nothing to map: the body is untouched");
        assert_eq!(keyed.kind(), ProviderKind::Anthropic);
        // The client-facing side is Anthropic's.
        assert_eq!(
            keyed.inspect(&client, &body).conversation,
            Anthropic.inspect(&client, &body).conversation
        );
    }

    #[test]
    fn signed_thinking_keeps_a_conversation_first_party() {
        let captured: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../../fixtures/client-requests/claude_code_messages.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let first_turn = captured["body"].to_string();
        assert!(!carries_anthropic_signatures(first_turn.as_bytes()));

        let mut second_turn = captured["body"].clone();
        let messages = second_turn["messages"].as_array_mut().unwrap();
        messages.push(serde_json::json!({
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user wants pong.", "signature": "EqQBCkgIARABGAIiQL"},
                {"type": "text", "text": "pong"}
            ]
        }));
        messages.push(serde_json::json!({"role": "user", "content": "again"}));
        assert!(carries_anthropic_signatures(
            second_turn.to_string().as_bytes()
        ));

        let redacted = br#"{"messages":[{"role":"assistant","content":[{"type":"redacted_thinking","data":"EmwKAhgBEgy"}]}]}"#;
        assert!(carries_anthropic_signatures(redacted));
        let unsigned = br#"{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":""}]}]}"#;
        assert!(!carries_anthropic_signatures(unsigned));
        let text_mentions = br#"{"messages":[{"role":"user","content":"what is a \"thinking\" block with a \"signature\"?"}]}"#;
        assert!(!carries_anthropic_signatures(text_mentions));
        let thinking_config = br#"{"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(!carries_anthropic_signatures(thinking_config));
    }

    #[test]
    fn failures_and_usage_read_like_anthropic() {
        let p = AnthropicCompatible::new(
            ProviderKind::Anthropic,
            AuthStyle::Bearer,
            ModelMap::default(),
        );
        assert_eq!(
            p.classify_failure(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "9")]),
                b"{}",
                Timestamp::from_secs(1)
            ),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(9))
            })
        );
        let mut report = StreamReport::default();
        p.observe_event(
            "message_delta",
            br#"{"type":"message_delta","usage":{"output_tokens":5}}"#,
            &mut report,
        );
        p.observe_event("message_stop", b"{}", &mut report);
        assert!(report.completed);
        assert_eq!(report.tokens.output, 5);
    }
}
