//! Providers: everything that differs between upstream APIs, behind one trait.
//!
//! The proxy core (attempt loop, streaming, holding) and the scheduler never look at a
//! provider's wire format. A provider says which requests are its own, what identifies a
//! conversation, how to put an account's credential on a request, what a response says
//! about quota and failure, how usage appears in its stream, and how its errors look.
//! Adding Codex or Gemini means adding a module here and a line in [`route`].

pub mod anthropic;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::{ConversationKey, Outcome, QuotaObservation, Timestamp, TokenTotals};
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

pub trait Provider: Send + Sync + 'static {
    fn kind(&self) -> ProviderKind;

    /// Identify the conversation, stream flag, model and weight of a request.
    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts;

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
