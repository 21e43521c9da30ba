//! OpenAI Codex CLI with ChatGPT-subscription accounts: the Responses API at
//! `https://chatgpt.com/backend-api/codex`.
//!
//! Wire facts this module relies on (see WIRE.md and `fixtures/client-requests/codex_*`):
//! Codex sends `POST /v1/responses` (custom provider) or `/backend-api/codex/responses`
//! (built-in provider with `chatgpt_base_url`), always streaming, with `prompt_cache_key`
//! and the `session-id` header naming the conversation; the upstream wants
//! `authorization: Bearer <access token>` and `chatgpt-account-id`; quota arrives as
//! `x-codex-{primary,secondary}-{used-percent,window-minutes,reset-at,reset-after-seconds}`
//! and as 429 `usage_limit_reached` bodies with `resets_at` / `resets_in_seconds`.
//!
//! Two requests are answered locally. Codex's WebSocket attempt (`GET /v1/responses` with
//! `Upgrade: websocket`) gets **426 Upgrade Required**: in codex-rs
//! (`core/src/client.rs`, `stream_responses_websocket`) a handshake answered 426 is the one
//! outcome that returns `FallbackToHttp` at once and pins the session to HTTP; every other
//! answer (the 404 the capture server gave, a 5xx, a reset, or 200 without switching
//! protocols) is a stream error that goes through the turn's retry budget with backoff
//! before Codex gives up on WebSockets — the ~6 s of retries seen against a server that
//! ignores the upgrade. openai/codex#43353 shows a 426 answer falling back and completing the
//! turn (logged at ERROR level, harmlessly). And the CLI's own usage queries
//! (`/backend-api/wham/usage`, `/api/codex/usage`) get the pool's figures, so a CLI whose
//! last-used account is exhausted does not block input while the pool has headroom.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sluice_config::{Credential, ProviderKind};
use sluice_scheduler::{
    AccountSnapshot, ConversationKey, Outcome, PoolSnapshot, QuotaObservation, Timestamp,
};

use super::openai::{
    classify_openai_failure, insert_bearer, keepalive_comment, observe_openai_body,
    observe_responses_event, openai_status,
};
use super::signals::{epoch, percent_fraction};
use super::{
    AccountContext, ClientRequest, LocalAnswer, LocalRequest, Opening, Provider, RequestFacts,
    RouteKind, StreamReport, UpstreamRequest, forwardable_request_headers, session_header,
};
use crate::error::{ErrorKind, ProxyError};
use crate::provider::retry_after_header;

/// The ChatGPT backend's Codex base; requests go to `{base}/responses`.
pub const DEFAULT_BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
/// Usage of a ChatGPT account without spending quota (the idle-account probe).
pub const DEFAULT_USAGE_URL: &str = "https://chatgpt.com/backend-api/wham/usage";
/// The header naming the ChatGPT account (workspace) a token acts for.
pub const ACCOUNT_ID_HEADER: &str = "chatgpt-account-id";

/// Client-side prefixes of the Codex routes; what follows is appended to the account's base.
const CLIENT_PREFIXES: [&str; 2] = ["/backend-api/codex", "/v1"];
/// Paths where Codex asks for its own usage.
const USAGE_PATHS: [&str; 2] = ["/backend-api/wham/usage", "/api/codex/usage"];

/// Codex's windows: primary 5 hours, secondary a week (`-window-minutes` says so per response).
const SESSION_WINDOW_SECS: i64 = 5 * 3600;
const WEEKLY_WINDOW_SECS: i64 = 7 * 24 * 3600;
/// A window at most this long is the session window; longer ones are weekly.
const LONGEST_SESSION_MINUTES: f64 = 24.0 * 60.0;

/// ChatGPT-account Codex. `pool` is the scheduler pool its requests are placed in.
pub struct Codex {
    pool: ProviderKind,
}

impl Codex {
    pub fn new(pool: ProviderKind) -> Self {
        Codex { pool }
    }
}

/// The kind of a Codex request, or `None` when the path is not Codex's.
pub fn route(method: &Method, path: &str) -> Option<RouteKind> {
    if USAGE_PATHS.contains(&path) {
        return (method == Method::GET).then_some(RouteKind::Local);
    }
    let rest = CLIENT_PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    match rest {
        "/responses" if method == Method::GET => Some(RouteKind::Local),
        "/responses" | "/responses/compact" if method == Method::POST => Some(RouteKind::Generate),
        "/models" if method == Method::GET => Some(RouteKind::Auxiliary),
        _ => None,
    }
}

/// Whether a request comes from the Codex CLI (it names itself in `originator`), for the
/// paths Codex shares with other clients (`GET /v1/models`).
pub fn is_codex_client(headers: &HeaderMap) -> bool {
    headers
        .get("originator")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("codex"))
}

/// The upstream URL for a client path: the client's prefix replaced by the account's base.
pub fn upstream_url(base: &url::Url, path_and_query: &str) -> String {
    let base = base.as_str().trim_end_matches('/');
    let rest = CLIENT_PREFIXES
        .iter()
        .find_map(|prefix| path_and_query.strip_prefix(prefix))
        .unwrap_or(path_and_query);
    format!("{base}{rest}")
}

#[derive(Deserialize, Default)]
struct ResponsesPeek<'a> {
    #[serde(default)]
    stream: bool,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    prompt_cache_key: Option<Cow<'a, str>>,
}

impl Provider for Codex {
    fn kind(&self) -> ProviderKind {
        self.pool
    }

    /// The conversation is the first of `x-sluice-session`, the body's `prompt_cache_key`
    /// (Codex sets it to its session id, and it is what the upstream caches by), and the
    /// `session-id` header.
    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        let peek: ResponsesPeek<'_> = serde_json::from_slice(body).unwrap_or_default();
        let conversation = session_header(headers)
            .or_else(|| peek.prompt_cache_key.as_deref().filter(|k| !k.is_empty()))
            .or_else(|| {
                headers
                    .get("session-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            })
            .map(ConversationKey::from_raw);
        RequestFacts {
            conversation,
            stream: peek.stream,
            model: peek.model.map(Cow::into_owned),
            weight: 1,
        }
    }

    fn upstream_url(&self, base: &url::Url, path_and_query: &str) -> String {
        upstream_url(base, path_and_query)
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = forwardable_request_headers(client);
        // The client's own account id would send the pooled token to someone else's account.
        headers.remove(ACCOUNT_ID_HEADER);
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        insert_bearer(&mut headers, credential);
        headers
    }

    fn upstream_request(
        &self,
        request: &ClientRequest<'_>,
        account: &AccountContext<'_>,
    ) -> Result<UpstreamRequest, ProxyError> {
        let mut headers = self.upstream_headers(request.headers, account.credential);
        if let Some(id) = &account.identity.chatgpt_account_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                ProxyError::new(
                    ErrorKind::Internal,
                    "the account's ChatGPT account id is not a valid header value",
                )
            })?;
            headers.insert(ACCOUNT_ID_HEADER, value);
        }
        Ok(UpstreamRequest {
            method: request.method.clone(),
            url: upstream_url(account.base_url, request.path_and_query),
            headers,
            body: request.body.clone(),
        })
    }

    fn answer_locally(&self, request: &LocalRequest<'_>) -> Option<LocalAnswer> {
        let path = request.client.path();
        if USAGE_PATHS.contains(&path) {
            return Some(LocalAnswer::json(
                StatusCode::OK,
                &pooled_usage(request.pool, request.now),
            ));
        }
        if route(request.client.method, path) == Some(RouteKind::Local) {
            return Some(refuse_websocket());
        }
        None
    }

    fn observe_quota(&self, headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
        parse_codex_headers(headers, now)
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome> {
        // A usage limit says when it resets in its body; everything else reads as it does
        // from the OpenAI API.
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Some(Outcome::RateLimited {
                status: 429,
                retry_after: usage_limit_reset(body, now)
                    .map(|at| sluice_scheduler::headers::clamp_retry_after(now.until(at)))
                    .or_else(|| retry_after_header(headers, now)),
            });
        }
        classify_openai_failure(status, headers, body, now)
    }

    fn observe_event(&self, event: &str, data: &[u8], report: &mut StreamReport) {
        observe_responses_event(event, data, report);
    }

    /// `response.created` and `response.in_progress` come before anything can fail; a
    /// quota refusal arrives as `response.failed` after them.
    fn opening_event(&self, event: &str, data: &[u8]) -> Opening {
        super::openai::responses_opening(event, data)
    }

    fn observe_body(&self, body: &[u8], report: &mut StreamReport) {
        observe_openai_body(body, report);
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
        (openai_status(error.kind), headers, error_json(error))
    }

    /// A `response.failed` event: the terminal failure Codex handles (and retries the turn
    /// on, which sends it back through sluice to an account that can serve).
    fn error_event(&self, error: &ProxyError) -> Bytes {
        let code = match error.kind {
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::Overloaded => "server_is_overloaded",
            _ => "server_error",
        };
        let data = json!({
            "type": "response.failed",
            "response": {
                "id": "resp_sluice",
                "object": "response",
                "status": "failed",
                "error": { "code": code, "message": error.message },
            },
        });
        Bytes::from(format!("event: response.failed\ndata: {data}\n\n"))
    }

    fn keepalive_event(&self) -> Bytes {
        keepalive_comment()
    }
}

/// sluice's own errors for Codex. A pool that is out of quota says `usage_limit_reached`
/// with `resets_in_seconds`, which Codex shows as "try again in …" instead of retrying.
fn error_json(error: &ProxyError) -> Bytes {
    let body = match error.kind {
        ErrorKind::RateLimited => {
            let secs = error.retry_after.map(|d| d.as_secs().max(1));
            json!({
                "error": {
                    "type": "usage_limit_reached",
                    "message": error.message,
                    "resets_in_seconds": secs,
                }
            })
        }
        _ => return super::openai::error_json(error),
    };
    Bytes::from(body.to_string())
}

/// The 426 Codex falls back to HTTP from at once (see the module header for why 426).
pub fn refuse_websocket() -> LocalAnswer {
    let mut answer = LocalAnswer::json(
        StatusCode::UPGRADE_REQUIRED,
        &json!({
            "error": {
                "type": "invalid_request_error",
                "code": "websocket_not_supported",
                "message": "sluice serves the Responses API over HTTP only: POST /v1/responses",
                "param": null,
            }
        }),
    );
    answer
        .headers
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// One Codex usage window as a response reports it.
#[derive(Default)]
struct Window {
    used: Option<f64>,
    minutes: Option<f64>,
    reset: Option<Timestamp>,
}

impl Window {
    fn read(headers: &HeaderMap, which: &str, now: Timestamp) -> Window {
        let get = |field: &str| {
            headers
                .get(format!("x-codex-{which}-{field}"))
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |field: &str| {
            get(field)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        Window {
            used: get("used-percent").and_then(percent_fraction),
            minutes: number("window-minutes").filter(|m| *m > 0.0),
            reset: number("reset-at").and_then(epoch).or_else(|| {
                number("reset-after-seconds")
                    .map(|secs| now + std::time::Duration::from_secs_f64(secs.min(1e9)))
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.used.is_none() && self.reset.is_none()
    }
}

/// Codex's quota headers as the pool's session (shorter) and weekly (longer) windows.
/// Which of primary and secondary is which is decided by their window lengths when the
/// response gives them; Codex's own convention (primary 5 h, secondary weekly) otherwise.
pub fn parse_codex_headers(headers: &HeaderMap, now: Timestamp) -> QuotaObservation {
    let primary = Window::read(headers, "primary", now);
    let secondary = Window::read(headers, "secondary", now);
    let primary_is_session = match (primary.minutes, secondary.minutes) {
        (Some(p), Some(s)) => p <= s,
        (Some(p), None) => p <= LONGEST_SESSION_MINUTES,
        (None, Some(s)) => s > LONGEST_SESSION_MINUTES,
        (None, None) => true,
    };
    let (session, weekly) = if primary_is_session {
        (primary, secondary)
    } else {
        (secondary, primary)
    };
    let mut obs = QuotaObservation::default();
    if !session.is_empty() {
        obs.session_utilization = session.used;
        obs.session_reset = session.reset;
    }
    if !weekly.is_empty() {
        obs.weekly_utilization = weekly.used;
        obs.weekly_reset = weekly.reset;
    }
    obs
}

/// When a 429 `usage_limit_reached` body says the limit lifts: `resets_at` (epoch seconds)
/// or `resets_in_seconds`.
pub fn usage_limit_reset(body: &[u8], now: Timestamp) -> Option<Timestamp> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        resets_at: Option<f64>,
        resets_in_seconds: Option<f64>,
    }
    let inner = serde_json::from_slice::<Envelope>(body).ok()?.error?;
    inner.resets_at.and_then(epoch).or_else(|| {
        inner
            .resets_in_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| now + std::time::Duration::from_secs_f64(s.min(1e9)))
    })
}

/// The pool's usage in the shape of `GET /backend-api/wham/usage`: the figures of the
/// account with the most headroom, so the CLI blocks input only when every account is out.
/// An account out of service (disabled, failing auth, needing a login) does not count.
pub fn pooled_usage(pool: &PoolSnapshot, now: Timestamp) -> serde_json::Value {
    let usable = |a: &&AccountSnapshot| {
        a.enabled && !matches!(a.state, "disabled" | "auth_failed" | "needs_relogin")
    };
    let open = |a: &&AccountSnapshot| matches!(a.state, "available" | "at_capacity");
    let headroom = |a: &AccountSnapshot| {
        let session = a.quota.session_used().unwrap_or(0.0);
        let weekly = a.quota.weekly_used().unwrap_or(0.0);
        session.max(weekly)
    };
    let best = pool
        .accounts
        .iter()
        .filter(usable)
        .filter(open)
        .min_by(|a, b| headroom(a).total_cmp(&headroom(b)));
    let limit_reached = best.is_none();
    // With nothing open, report the account that comes back first.
    let shown = best.or_else(|| {
        pool.accounts
            .iter()
            .filter(usable)
            .min_by_key(|a| a.until.unwrap_or(Timestamp(i64::MAX)))
    });
    let window = |used: Option<f64>, resets: Option<Timestamp>, length: i64, exhausted: bool| {
        let used_percent = if exhausted {
            100
        } else {
            (used.unwrap_or(0.0).clamp(0.0, 1.0) * 100.0).round() as i64
        };
        let reset_at = resets.unwrap_or(now + std::time::Duration::from_secs(length as u64));
        json!({
            "used_percent": used_percent,
            "limit_window_seconds": length,
            "reset_after_seconds": now.until(reset_at).as_secs(),
            "reset_at": reset_at.as_millis() / 1000,
        })
    };
    let (primary, secondary) = match shown {
        Some(account) => {
            let session = account.quota.session.as_ref();
            let weekly = account.quota.weekly.as_ref();
            let session_reset = session
                .and_then(|w| w.resets_at)
                .or(account.until.filter(|_| limit_reached));
            (
                window(
                    session.map(|w| w.used()),
                    session_reset,
                    SESSION_WINDOW_SECS,
                    limit_reached,
                ),
                window(
                    weekly.map(|w| w.used()),
                    weekly.and_then(|w| w.resets_at),
                    WEEKLY_WINDOW_SECS,
                    false,
                ),
            )
        }
        None => (
            window(None, None, SESSION_WINDOW_SECS, true),
            window(None, None, WEEKLY_WINDOW_SECS, false),
        ),
    };
    json!({
        "plan_type": "pro",
        "rate_limit": {
            "allowed": !limit_reached,
            "limit_reached": limit_reached,
            "primary_window": primary,
            "secondary_window": secondary,
        },
        "credits": { "has_credits": false, "unlimited": false, "balance": null },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_scheduler::{AccountSpec, CredentialKind, Pool, PoolConfig};

    use super::*;
    use crate::provider::UpstreamIdentity;
    use crate::provider::test_support::{captured, headers};

    const POOL: ProviderKind = ProviderKind::Codex;
    const NOW: Timestamp = Timestamp::from_secs(1_767_000_000);

    fn fixture(name: &str) -> (HeaderMap, Bytes, serde_json::Value) {
        let captured = captured(name);
        let body = captured.body_bytes();
        (captured.headers, body, captured.raw)
    }

    #[test]
    fn routes_by_path() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(r(Method::POST, "/v1/responses"), Some(RouteKind::Generate));
        assert_eq!(
            r(Method::POST, "/backend-api/codex/responses"),
            Some(RouteKind::Generate)
        );
        assert_eq!(
            r(Method::POST, "/v1/responses/compact"),
            Some(RouteKind::Generate)
        );
        assert_eq!(r(Method::GET, "/v1/responses"), Some(RouteKind::Local));
        assert_eq!(
            r(Method::GET, "/backend-api/codex/responses"),
            Some(RouteKind::Local)
        );
        assert_eq!(
            r(Method::GET, "/backend-api/wham/usage"),
            Some(RouteKind::Local)
        );
        assert_eq!(r(Method::GET, "/api/codex/usage"), Some(RouteKind::Local));
        assert_eq!(r(Method::GET, "/v1/models"), Some(RouteKind::Auxiliary));
        assert_eq!(r(Method::POST, "/v1/messages"), None);
        assert_eq!(r(Method::POST, "/backend-api/wham/usage"), None);
        assert_eq!(r(Method::GET, "/v1/chat/completions"), None);
    }

    #[test]
    fn conversation_is_prompt_cache_key_then_session_header() {
        let (hdrs, body, _) = fixture("codex_responses.json");
        let facts = Codex::new(POOL).inspect(&hdrs, &body);
        assert_eq!(
            facts.conversation,
            Some(ConversationKey::from_raw(
                "01a20183-f688-7641-ad2f-d9b8d5c3f31e"
            ))
        );
        assert!(facts.stream);
        assert_eq!(facts.model.as_deref(), Some("gpt-5"));

        let keyed =
            Bytes::from_static(br#"{"model":"gpt-5","prompt_cache_key":"PK","stream":true}"#);
        let facts = Codex::new(POOL).inspect(&headers(&[("session-id", "SID")]), &keyed);
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("PK")));
        let unkeyed = Bytes::from_static(br#"{"model":"gpt-5"}"#);
        let facts = Codex::new(POOL).inspect(&headers(&[("session-id", "SID")]), &unkeyed);
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("SID")));
        let facts = Codex::new(POOL).inspect(
            &headers(&[("session-id", "SID"), ("x-sluice-session", "T")]),
            &keyed,
        );
        assert_eq!(facts.conversation, Some(ConversationKey::from_raw("T")));
        assert_eq!(
            Codex::new(POOL)
                .inspect(&HeaderMap::new(), &Bytes::from_static(b"{"))
                .conversation,
            None
        );
    }

    #[test]
    fn upstream_request_maps_the_path_and_swaps_credentials() {
        let (mut hdrs, body, _) = fixture("codex_responses.json");
        hdrs.insert(ACCOUNT_ID_HEADER, HeaderValue::from_static("acct-client"));
        hdrs.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let credential = Credential::OAuth {
            access_token: "chatgpt-access-secret".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        };
        let identity = UpstreamIdentity {
            chatgpt_account_id: Some("acct-pooled".into()),
            project: None,
        };
        let base = url::Url::parse("https://chatgpt.example/backend-api/codex").unwrap();
        let account = AccountContext {
            base_url: &base,
            credential: &credential,
            identity: &identity,
        };
        for path in ["/v1/responses", "/backend-api/codex/responses"] {
            let request = ClientRequest {
                method: &Method::POST,
                path_and_query: path,
                headers: &hdrs,
                body: &body,
            };
            let out = Codex::new(POOL)
                .upstream_request(&request, &account)
                .unwrap();
            assert_eq!(
                out.url,
                "https://chatgpt.example/backend-api/codex/responses"
            );
            assert_eq!(out.headers["authorization"], "Bearer chatgpt-access-secret");
            assert!(out.headers["authorization"].is_sensitive());
            assert_eq!(out.headers[ACCOUNT_ID_HEADER], "acct-pooled");
            assert_eq!(out.headers.get_all(ACCOUNT_ID_HEADER).iter().count(), 1);
            assert_eq!(out.headers["accept-encoding"], "identity");
            // Codex's own headers travel on.
            for kept in [
                "session-id",
                "originator",
                "x-codex-turn-metadata",
                "x-codex-window-id",
            ] {
                assert_eq!(out.headers[kept], hdrs[kept], "{kept}");
            }
            assert!(out.headers.get("host").is_none());
            assert!(out.headers.get("content-length").is_none());
            assert_eq!(out.body, body);
        }
        let models = ClientRequest {
            method: &Method::GET,
            path_and_query: "/v1/models?client_version=0.169.0",
            headers: &hdrs,
            body: &Bytes::new(),
        };
        assert_eq!(
            Codex::new(POOL)
                .upstream_request(&models, &account)
                .unwrap()
                .url,
            "https://chatgpt.example/backend-api/codex/models?client_version=0.169.0"
        );
        assert!(is_codex_client(&hdrs));
        assert!(!is_codex_client(&headers(&[(
            "user-agent",
            "OpenAI/Python"
        )])));
    }

    #[test]
    fn quota_windows_are_mapped_by_length() {
        let obs = parse_codex_headers(
            &headers(&[
                ("x-codex-primary-used-percent", "42.5"),
                ("x-codex-primary-window-minutes", "300"),
                ("x-codex-primary-reset-at", "1767003600"),
                ("x-codex-secondary-used-percent", "10"),
                ("x-codex-secondary-window-minutes", "10080"),
                ("x-codex-secondary-reset-after-seconds", "86400"),
            ]),
            NOW,
        );
        assert_eq!(obs.session_utilization, Some(0.425));
        assert_eq!(obs.session_reset, Some(Timestamp::from_secs(1_767_003_600)));
        assert_eq!(obs.weekly_utilization, Some(0.10));
        assert_eq!(obs.weekly_reset, Some(NOW + Duration::from_secs(86_400)));

        // A response whose primary window is the weekly one is read by length, not name.
        let swapped = parse_codex_headers(
            &headers(&[
                ("x-codex-primary-used-percent", "80"),
                ("x-codex-primary-window-minutes", "10080"),
                ("x-codex-secondary-used-percent", "5"),
                ("x-codex-secondary-window-minutes", "300"),
            ]),
            NOW,
        );
        assert_eq!(swapped.weekly_utilization, Some(0.80));
        assert_eq!(swapped.session_utilization, Some(0.05));

        // Only one window, a week long: weekly.
        let weekly_only = parse_codex_headers(
            &headers(&[
                ("x-codex-primary-used-percent", "99"),
                ("x-codex-primary-window-minutes", "10080"),
            ]),
            NOW,
        );
        assert_eq!(weekly_only.weekly_utilization, Some(0.99));
        assert_eq!(weekly_only.session_utilization, None);

        // No lengths: Codex's convention.
        let bare = parse_codex_headers(&headers(&[("x-codex-primary-used-percent", "3")]), NOW);
        assert_eq!(bare.session_utilization, Some(0.03));
        let garbage = parse_codex_headers(
            &headers(&[
                ("x-codex-primary-used-percent", "lots"),
                ("x-codex-secondary-reset-at", "soon"),
            ]),
            NOW,
        );
        assert!(garbage.is_empty());
    }

    #[test]
    fn a_full_session_window_takes_the_account_out_until_its_reset() {
        let mut pool = Pool::new(PoolConfig::default());
        let id = pool.upsert_account(AccountSpec {
            name: "c".into(),
            provider: "codex".into(),
            kind: CredentialKind::OAuth,
            priority: 0,
            weight: 1,
            enabled: true,
        });
        let obs = parse_codex_headers(
            &headers(&[
                ("x-codex-primary-used-percent", "100"),
                ("x-codex-primary-window-minutes", "300"),
                ("x-codex-primary-reset-after-seconds", "600"),
            ]),
            NOW,
        );
        pool.observe_quota(id, &obs, NOW);
        let snapshot = pool.snapshot(NOW);
        assert_eq!(snapshot.accounts[0].state, "quota_exhausted");
        assert_eq!(
            snapshot.accounts[0].until,
            Some(NOW + Duration::from_secs(600))
        );
    }

    #[test]
    fn usage_limit_bodies_bench_until_their_reset() {
        let codex = Codex::new(POOL);
        let classify = |status: u16, hdrs: &[(&str, &str)], body: &str| {
            codex.classify_failure(
                StatusCode::from_u16(status).unwrap(),
                &headers(hdrs),
                body.as_bytes(),
                NOW,
            )
        };
        let at = r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":1767000900,"resets_in_seconds":900}}"#;
        assert_eq!(
            classify(429, &[("retry-after", "5")], at),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(900))
            })
        );
        let only_in = r#"{"error":{"type":"usage_limit_reached","resets_in_seconds":120}}"#;
        assert_eq!(
            classify(429, &[], only_in),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(120))
            })
        );
        assert_eq!(
            classify(429, &[("retry-after", "7")], "not json"),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(7))
            })
        );
        assert_eq!(
            classify(401, &[], r#"{"detail":"Unauthorized"}"#),
            Some(Outcome::AuthRejected { status: 401 })
        );
        assert_eq!(
            classify(503, &[], ""),
            Some(Outcome::Overloaded { retry_after: None })
        );
        assert_eq!(
            classify(500, &[], ""),
            Some(Outcome::ServerError { status: 500 })
        );
        assert_eq!(
            classify(400, &[], r#"{"error":{"type":"invalid_request_error"}}"#),
            None
        );
    }

    #[test]
    fn usage_comes_from_response_completed() {
        let codex = Codex::new(POOL);
        let mut report = StreamReport::default();
        for (event, data) in [
            (
                "response.created",
                r#"{"type":"response.created","response":{"id":"r","status":"in_progress","usage":null}}"#,
            ),
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","delta":"pong"}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":8},"total_tokens":5012}}}"#,
            ),
        ] {
            codex.observe_event(event, data.as_bytes(), &mut report);
        }
        assert!(report.completed);
        assert_eq!(report.tokens.input, 904);
        assert_eq!(report.tokens.cache_read, 4096);
        assert_eq!(report.tokens.output, 12);
        assert!(report.error.is_none());
    }

    #[test]
    fn the_websocket_upgrade_is_refused_with_426() {
        let (hdrs, _, captured) = fixture("codex_ws_upgrade.json");
        assert_eq!(captured["method"], "GET");
        let path = captured["path"].as_str().unwrap();
        assert_eq!(route(&Method::GET, path), Some(RouteKind::Local));
        let pool = Pool::new(PoolConfig::default()).snapshot(NOW);
        let answer = Codex::new(POOL)
            .answer_locally(&LocalRequest {
                client: ClientRequest {
                    method: &Method::GET,
                    path_and_query: path,
                    headers: &hdrs,
                    body: &Bytes::new(),
                },
                pool: &pool,
                now: NOW,
            })
            .unwrap();
        assert_eq!(answer.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(answer.headers["connection"], "close");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["error"]["code"], "websocket_not_supported");
    }

    fn pool_with(accounts: &[(&str, Option<f64>, Option<f64>)]) -> Pool {
        let mut pool = Pool::new(PoolConfig::default());
        for (name, session, weekly) in accounts {
            let id = pool.upsert_account(AccountSpec {
                name: (*name).into(),
                provider: "codex".into(),
                kind: CredentialKind::OAuth,
                priority: 0,
                weight: 1,
                enabled: true,
            });
            pool.observe_quota(
                id,
                &QuotaObservation {
                    session_utilization: *session,
                    session_reset: session.map(|_| NOW + Duration::from_secs(3600)),
                    weekly_utilization: *weekly,
                    weekly_reset: weekly.map(|_| NOW + Duration::from_secs(86_400)),
                    ..QuotaObservation::default()
                },
                NOW,
            );
        }
        pool
    }

    fn local_usage(pool: &mut Pool, path: &str) -> serde_json::Value {
        let snapshot = pool.snapshot(NOW);
        let answer = Codex::new(POOL)
            .answer_locally(&LocalRequest {
                client: ClientRequest {
                    method: &Method::GET,
                    path_and_query: path,
                    headers: &HeaderMap::new(),
                    body: &Bytes::new(),
                },
                pool: &snapshot,
                now: NOW,
            })
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        serde_json::from_slice(&answer.body).unwrap()
    }

    #[test]
    fn usage_queries_get_the_pools_headroom() {
        // One account exhausted, one with room: the CLI is told there is room.
        let mut pool = pool_with(&[
            ("full", Some(1.0), Some(0.5)),
            ("roomy", Some(0.2), Some(0.3)),
        ]);
        for path in USAGE_PATHS {
            let usage = local_usage(&mut pool, path);
            assert_eq!(usage["rate_limit"]["allowed"], true);
            assert_eq!(usage["rate_limit"]["limit_reached"], false);
            assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 20);
            assert_eq!(
                usage["rate_limit"]["primary_window"]["limit_window_seconds"],
                SESSION_WINDOW_SECS
            );
            assert_eq!(
                usage["rate_limit"]["primary_window"]["reset_after_seconds"],
                3600
            );
            assert_eq!(usage["rate_limit"]["secondary_window"]["used_percent"], 30);
        }

        // Every account exhausted: the limit is reached and the soonest return is shown.
        let mut pool = pool_with(&[("a", Some(1.0), None), ("b", Some(0.95), None)]);
        let usage = local_usage(&mut pool, "/backend-api/wham/usage");
        assert_eq!(usage["rate_limit"]["limit_reached"], true);
        assert_eq!(usage["rate_limit"]["allowed"], false);
        assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 100);
        assert_eq!(
            usage["rate_limit"]["primary_window"]["reset_at"],
            (NOW + Duration::from_secs(3600)).as_millis() / 1000
        );

        // An empty pool has no headroom to offer.
        let mut empty = Pool::new(PoolConfig::default());
        let usage = local_usage(&mut empty, "/api/codex/usage");
        assert_eq!(usage["rate_limit"]["limit_reached"], true);
    }

    #[test]
    fn own_errors_speak_codex() {
        let codex = Codex::new(POOL);
        let err = ProxyError::new(ErrorKind::RateLimited, "every codex account is out")
            .retry_after(Some(Duration::from_secs(90)));
        let (status, hdrs, body) = codex.error_response(&err);
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(hdrs["retry-after"], "90");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["type"], "usage_limit_reached");
        assert_eq!(json["error"]["resets_in_seconds"], 90);
        assert_eq!(
            usage_limit_reset(&body, NOW),
            Some(NOW + Duration::from_secs(90)),
            "sluice's own refusal reads back like the upstream's"
        );

        let broke = ProxyError::new(ErrorKind::Upstream, "the upstream stream broke off");
        let event = codex.error_event(&broke);
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: response.failed\ndata: "));
        assert!(text.ends_with("\n\n"));
        let data: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["code"], "server_error");
        let (status, _, body) = codex.error_response(&broke);
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["type"], "server_error");
    }
}
