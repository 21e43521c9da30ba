//! Providers: everything that differs between upstream APIs, behind one trait.
//!
//! The proxy core (attempt loop, streaming, holding) and the scheduler never look at a
//! provider's wire format. A provider says which requests are its own, what identifies a
//! conversation, how to build the upstream request for one account (URL, credential,
//! body), what a response says about quota and failure, how usage appears in its stream,
//! which requests sluice answers itself, and how its errors look.
//!
//! [`routing`] decides which provider a request belongs to (by path, by the client for
//! paths Codex shares, by model for Chat Completions); [`Providers`] holds one object per
//! dialect. A route names both the pool and the provider object, since one pool is spoken
//! to in several dialects (the Anthropic pool through Messages and Chat Completions,
//! Gemini's through Code Assist and the Gemini API). An account whose upstream differs from
//! its pool's (an Anthropic-compatible third party) carries its own adapter.

pub mod anthropic;
pub mod claude_chat;
pub mod codex;
pub mod compatible;
pub mod gemini;
pub mod openai;
pub mod routing;
mod signals;
pub(crate) use signals::retry_after_header;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use sluice_config::{Config, Credential, CredentialKind, ProviderKind};
use sluice_scheduler::{
    ConversationKey, Outcome, PoolSnapshot, QuotaObservation, Timestamp, TokenTotals,
};
use url::Url;

use crate::error::ProxyError;

/// What kind of call a request is, within its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A model call that produces output (`/v1/messages`): the pool's main traffic.
    Generate,
    /// A cheap auxiliary call on an account (`count_tokens`, `models`, other API paths).
    Auxiliary,
    /// The client's own OAuth token refresh: relayed untouched, never given a pooled
    /// account's credential.
    ClientTokenRefresh,
    /// Answered by sluice itself ([`Provider::answer_locally`]), never sent upstream: the
    /// Codex WebSocket upgrade it refuses, the usage endpoints it answers with the pool's
    /// figures.
    Local,
}

/// Where a request goes: the pool it is placed in, what kind of call it is, and the
/// provider that speaks the client's dialect (inspection, errors, keepalives, translation).
#[derive(Clone)]
pub struct Route {
    pub pool: ProviderKind,
    pub kind: RouteKind,
    pub provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("pool", &self.pool)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Which of a pool's accounts may serve a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eligibility {
    /// Only accounts with this kind of credential (Gemini: Code Assist needs a Google
    /// login, the Gemini API a key).
    pub credential: Option<CredentialKind>,
    /// Only the pool's own provider, never an Anthropic-compatible third party: the
    /// conversation carries thinking that Anthropic signed, which a third party rejects.
    pub first_party_only: bool,
}

impl Eligibility {
    /// Whether an account of `provider` authenticating with `credential` may serve.
    pub fn admits(&self, provider: ProviderKind, credential: CredentialKind) -> bool {
        self.credential.is_none_or(|wanted| wanted == credential)
            && !(self.first_party_only && provider != provider.pool())
    }

    /// Why an account was left out, in words for an error message.
    pub fn describe(&self) -> &'static str {
        match (self.credential, self.first_party_only) {
            (Some(CredentialKind::OAuth), _) => {
                "this API needs a Google-login account (Code Assist); the pool has only API keys"
            }
            (Some(CredentialKind::ApiKey), _) => {
                "this API needs an API-key account (the Gemini API); the pool has only Google logins"
            }
            (None, true) => {
                "the conversation carries Anthropic-signed thinking, which only Anthropic accounts accept"
            }
            (None, false) => "no account of the pool may serve it",
        }
    }
}

/// What the first events of a stream say about committing to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    /// The stream failed before producing anything: fail over.
    Failed(Outcome),
    /// Bookkeeping that says nothing yet (Responses' `response.created`): look at the next.
    Preamble,
    /// Real output, or anything else: commit to this stream.
    Content,
}

/// A request rewritten into the upstream API's own terms (see [`Provider::upstream_form`]).
#[derive(Clone, Debug)]
pub struct TranslatedRequest {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the proxy learns from a request before choosing an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub conversation: Option<ConversationKey>,
    /// The client asked for a streamed (SSE) response.
    pub stream: bool,
    pub model: Option<String>,
    /// Relative cost, at least 1.
    pub weight: u32,
}

/// Usage and failure signals gathered from a response body while it streams past.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub tokens: TokenTotals,
    /// An error the upstream reported inside the stream, classified for the account.
    pub error: Option<Outcome>,
    /// The stream reached its terminal event.
    pub completed: bool,
}

/// A client request as a provider sees it.
#[derive(Clone, Copy, Debug)]
pub struct ClientRequest<'a> {
    pub method: &'a Method,
    /// The path and query exactly as the client sent them.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl<'a> ClientRequest<'a> {
    pub fn path(&self) -> &'a str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query, |(path, _)| path)
    }

    pub fn query(&self) -> Option<&'a str> {
        self.path_and_query.split_once('?').map(|(_, query)| query)
    }
}

/// What identifies an account upstream besides its credential. None of it is secret; it is
/// learned from the account's login (Codex `id_token` claims) or discovered and remembered
/// (Gemini's Code Assist project).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamIdentity {
    /// The ChatGPT account (workspace) id, sent as `chatgpt-account-id` (Codex).
    pub chatgpt_account_id: Option<String>,
    /// The Code Assist project (`cloudaicompanionProject`) of a Google-login account.
    pub project: Option<String>,
}

/// The account one attempt goes to.
#[derive(Clone, Copy, Debug)]
pub struct AccountContext<'a> {
    pub base_url: &'a Url,
    pub credential: &'a Credential,
    pub identity: &'a UpstreamIdentity,
}

/// Everything sent upstream for one attempt.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A request sluice answers itself, with the pool's current state to answer from.
#[derive(Clone, Copy, Debug)]
pub struct LocalRequest<'a> {
    pub client: ClientRequest<'a>,
    /// The snapshot of the pool this provider's requests go to.
    pub pool: &'a PoolSnapshot,
    pub now: Timestamp,
}

/// A response sluice makes without an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl LocalAnswer {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> LocalAnswer {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        LocalAnswer {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Rewrites an upstream response on its way to the client, when the client speaks another
/// API than the upstream (Chat Completions over Messages) or must see pooled facts instead
/// of one account's (Gemini's `loadCodeAssist`). Fed whole events as they arrive; holds
/// nothing back beyond the event it is given.
pub trait ResponseTranslator: Send {
    /// The `content-type` of what the client receives, if it differs from the upstream's.
    fn content_type(&self, upstream_is_stream: bool) -> Option<&'static str> {
        let _ = upstream_is_stream;
        None
    }

    /// One complete upstream SSE event (`event:` name, joined `data:`); append what the
    /// client receives for it now, which may be nothing.
    fn on_event(&mut self, event: &str, data: &[u8], out: &mut BytesMut);

    /// The upstream stream ended cleanly; append anything that closes the client's stream.
    fn on_end(&mut self, out: &mut BytesMut) {
        let _ = out;
    }

    /// A complete non-streamed successful body; the body the client receives instead.
    fn on_body(&mut self, body: &[u8]) -> Bytes;

    /// An unsuccessful upstream response passed back to the client (its own mistake, or the
    /// last failure); the status and body in the client's error shape.
    fn on_error(&mut self, status: StatusCode, body: &[u8]) -> (StatusCode, Bytes) {
        (status, Bytes::copy_from_slice(body))
    }
}

pub trait Provider: Send + Sync + 'static {
    fn kind(&self) -> ProviderKind;

    /// Identify the conversation, stream flag, model and weight of a request.
    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts;

    /// [`Provider::inspect`] with the method and path too, for providers whose model or
    /// stream flag lives in the path (Gemini's `/v1beta/models/{model}:streamGenerateContent`).
    fn inspect_request(&self, request: &ClientRequest<'_>) -> RequestFacts {
        self.inspect(request.headers, request.body)
    }

    /// Build the upstream request for one account: URL, headers (the client's credentials
    /// out, the account's in) and body (rewritten where the provider must, such as Code
    /// Assist's `project`). An error is the client's mistake when its kind is
    /// [`crate::error::ErrorKind::InvalidRequest`] (answer it, try no account), else the
    /// account's (try another).
    fn upstream_request(
        &self,
        request: &ClientRequest<'_>,
        account: &AccountContext<'_>,
    ) -> Result<UpstreamRequest, ProxyError> {
        Ok(UpstreamRequest {
            method: request.method.clone(),
            url: self.upstream_url(account.base_url, request.path_and_query),
            headers: self.upstream_headers(request.headers, account.credential),
            body: request.body.clone(),
        })
    }

    /// Which of the pool's accounts may serve `request`.
    fn eligibility(&self, request: &ClientRequest<'_>) -> Eligibility {
        let _ = request;
        Eligibility::default()
    }

    /// The request in the upstream API's own terms, for accounts whose upstream request an
    /// adapter builds (an Anthropic-compatible third party behind the Chat Completions
    /// bridge). `None`: the client's request already is in those terms.
    fn upstream_form(
        &self,
        request: &ClientRequest<'_>,
    ) -> Result<Option<TranslatedRequest>, ProxyError> {
        let _ = request;
        Ok(None)
    }

    /// Whether an early event of a successful stream means it failed after all (Codex's
    /// `response.failed`, a Gemini error chunk, an Anthropic `error` event), is bookkeeping
    /// to read past, or is output to commit to.
    fn opening_event(&self, event: &str, data: &[u8]) -> Opening {
        let mut report = StreamReport::default();
        self.observe_event(event, data, &mut report);
        match report.error {
            Some(outcome) => Opening::Failed(outcome),
            None => Opening::Content,
        }
    }

    /// Answer a [`RouteKind::Local`] request without an upstream. `None`: not a request
    /// this provider answers (the proxy answers 404 in the provider's error shape).
    fn answer_locally(&self, request: &LocalRequest<'_>) -> Option<LocalAnswer> {
        let _ = request;
        None
    }

    /// A translator for the response to `request`, when it must be rewritten on its way.
    fn response_translator(
        &self,
        request: &ClientRequest<'_>,
    ) -> Option<Box<dyn ResponseTranslator>> {
        let _ = request;
        None
    }

    /// The upstream URL for `path_and_query` on an account whose base URL is `base`.
    fn upstream_url(&self, base: &Url, path_and_query: &str) -> String {
        let base = base.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    /// The headers to send upstream: the client's, minus its credentials and hop-by-hop
    /// headers, plus the account's credential.
    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap;

    /// Quota signals in a response's headers.
    fn observe_quota(&self, headers: &HeaderMap, now: Timestamp) -> QuotaObservation;

    /// What an unsuccessful response means for the account. `None`: the failure is the
    /// client's (bad request, unknown model) and the response goes back to it unchanged.
    fn classify_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome>;

    /// Fold one streamed event (`event:` name and `data:` payload) into the report.
    fn observe_event(&self, event: &str, data: &[u8], report: &mut StreamReport);

    /// Fold a complete non-streamed JSON body into the report.
    fn observe_body(&self, body: &[u8], report: &mut StreamReport);

    /// An error response in this provider's format.
    fn error_response(&self, error: &ProxyError) -> (StatusCode, HeaderMap, Bytes);

    /// An error as one event of this provider's stream format.
    fn error_event(&self, error: &ProxyError) -> Bytes;

    /// A keepalive event for a held stream.
    fn keepalive_event(&self) -> Bytes;
}

/// One provider object per dialect sluice speaks.
pub struct Providers {
    anthropic: Arc<dyn Provider>,
    claude_chat: ArcSwap<claude_chat::ClaudeChat>,
    codex: Arc<dyn Provider>,
    gemini_code_assist: Arc<dyn Provider>,
    gemini_api: Arc<dyn Provider>,
    openai: Arc<dyn Provider>,
}

impl Default for Providers {
    fn default() -> Self {
        Providers::new(&Config::default())
    }
}

impl Providers {
    pub fn new(config: &Config) -> Self {
        Providers {
            anthropic: Arc::new(anthropic::Anthropic),
            claude_chat: ArcSwap::from_pointee(chat_bridge(config)),
            codex: Arc::new(codex::Codex::new(ProviderKind::Codex)),
            gemini_code_assist: Arc::new(gemini::Gemini::new(
                ProviderKind::Gemini,
                gemini::Dialect::CodeAssist,
            )),
            gemini_api: Arc::new(gemini::Gemini::new(
                ProviderKind::Gemini,
                gemini::Dialect::Api,
            )),
            openai: Arc::new(openai::OpenAI::new(ProviderKind::OpenAI)),
        }
    }

    /// Take the settings of a reloaded configuration.
    pub fn configure(&self, config: &Config) {
        self.claude_chat.store(Arc::new(chat_bridge(config)));
    }

    /// The provider a pool's own errors are shown in (for requests that reach no route of
    /// their own): the pool's native dialect.
    pub fn get(&self, kind: ProviderKind) -> &Arc<dyn Provider> {
        match kind.pool() {
            ProviderKind::Codex => &self.codex,
            ProviderKind::Gemini => &self.gemini_code_assist,
            ProviderKind::OpenAI => &self.openai,
            _ => &self.anthropic,
        }
    }

    /// Chat Completions clients naming a Claude model.
    pub fn claude_chat(&self) -> Arc<dyn Provider> {
        self.claude_chat.load_full()
    }

    /// Gemini in one dialect.
    pub fn gemini(&self, dialect: gemini::Dialect) -> &Arc<dyn Provider> {
        match dialect {
            gemini::Dialect::CodeAssist => &self.gemini_code_assist,
            gemini::Dialect::Api => &self.gemini_api,
        }
    }
}

fn chat_bridge(config: &Config) -> claude_chat::ClaudeChat {
    claude_chat::ClaudeChat::new(
        ProviderKind::Anthropic,
        crate::translate::RequestOptions {
            default_max_tokens: config.providers.anthropic.chat_default_max_tokens,
        },
    )
}

/// The adapter that builds an account's upstream requests when the account's provider is
/// not its pool's own: an Anthropic-compatible third party, with its auth style and model
/// map. `None` for every other account.
pub fn adapter_for(
    provider: ProviderKind,
    options: &sluice_config::AccountOptions,
) -> Option<Arc<dyn Provider>> {
    (provider == ProviderKind::AnthropicCompatible).then(|| {
        let auth = match options.auth {
            sluice_config::AuthStyle::XApiKey => compatible::AuthStyle::XApiKey,
            sluice_config::AuthStyle::Bearer => compatible::AuthStyle::Bearer,
        };
        Arc::new(compatible::AnthropicCompatible::new(
            ProviderKind::Anthropic,
            auth,
            compatible::ModelMap::new(options.model_map.iter().cloned()),
        )) as Arc<dyn Provider>
    })
}

/// Request headers that describe one connection, not the message, and never travel on.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Copy the headers of a client request that may travel upstream: not hop-by-hop, not
/// listed in `Connection`, not the client's credentials, not sluice's own control headers.
pub(crate) fn forwardable_request_headers(client: &HeaderMap) -> HeaderMap {
    let connection_listed: Vec<String> = client
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || matches!(
                n,
                "host"
                    | "content-length"
                    | "x-api-key"
                    | "x-goog-api-key"
                    | "authorization"
                    | "accept-encoding"
            )
            || n.starts_with("x-sluice-")
            || connection_listed.iter().any(|c| c == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The conversation a client names explicitly with `x-sluice-session` (any provider).
pub(crate) fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-sluice-session")?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
