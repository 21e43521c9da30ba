//! Providers: everything that differs between upstream APIs, behind one trait.
//!
//! The proxy core (attempt loop, streaming, holding) and the scheduler never look at a
//! provider's wire format. A provider says which requests are its own, what identifies a
//! conversation, how to build the upstream request for one account (URL, credential,
//! body), what a response says about quota and failure, how usage appears in its stream,
//! which requests sluice answers itself, and how its errors look.
//!
//! `anthropic` is wired into [`route`]; `codex`, `gemini`, `openai` and `compatible` are
//! complete providers waiting for their pools and routes (ARCHITECTURE.md lists the
//! integration points). Every method added for them has a default that keeps the Anthropic
//! provider behaving exactly as before.

pub mod anthropic;
pub mod claude_chat;
pub mod codex;
pub mod compatible;
pub mod gemini;
pub mod openai;
mod signals;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use sluice_config::{Credential, ProviderKind};
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

/// Where a request goes: which provider's pool, and what kind of call it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub provider: ProviderKind,
    pub kind: RouteKind,
}

/// Decide the provider and kind of a request from its method and path.
pub fn route(method: &Method, path: &str) -> Option<Route> {
    anthropic::route(method, path)
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

/// The providers this build knows, by kind.
#[derive(Clone)]
pub struct Providers {
    anthropic: Arc<dyn Provider>,
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            anthropic: Arc::new(anthropic::Anthropic),
        }
    }
}

impl Providers {
    pub fn get(&self, kind: ProviderKind) -> &Arc<dyn Provider> {
        match kind {
            ProviderKind::Anthropic => &self.anthropic,
        }
    }
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
                "host" | "content-length" | "x-api-key" | "authorization" | "accept-encoding"
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
