//! Gemini CLI with Google-login (Code Assist) accounts and Gemini API keys.
//!
//! Two dialects share one pool of Google accounts:
//! - **Code Assist** (`CODE_ASSIST_ENDPOINT`, Google-login accounts): `POST
//!   /v1internal:{method}` with `authorization: Bearer`, bodies
//!   `{model, project, user_prompt_id, request:{…, session_id}}`, answers wrapped in
//!   `{"response":{…}}`. Each account has its own project (`cloudaicompanionProject`, found
//!   with `loadCodeAssist`); sluice puts the chosen account's project into every body and
//!   shows the CLI one pool-wide placeholder ([`POOL_PROJECT`]) in `loadCodeAssist` and
//!   `onboardUser` answers, so what the CLI learned at startup is right for every account.
//! - **Gemini API** (`GOOGLE_GEMINI_BASE_URL`, API keys): `POST
//!   /v1beta/models/{model}:{generateContent,streamGenerateContent}` with `x-goog-api-key`.
//!
//! There are no quota headers: quota is learned from 429 `RESOURCE_EXHAUSTED` bodies
//! (`RetryInfo.retryDelay`, `ErrorInfo.metadata.quotaResetDelay`, per-day limits that reset
//! at midnight Pacific) and from the `retrieveUserQuota` probe.
//!
//! **Conversation key.** Code Assist bodies carry `request.session_id`, the CLI's session id,
//! the same on every turn: that is the key. `user_prompt_id` is not used: it names one
//! prompt (the first equals the session id, later ones do not). Gemini API bodies name no
//! session, so the key is derived from the conversation's opening — every text part of the
//! user turns before the first model turn, plus the client's key — which every later turn
//! resends unchanged because the CLI sends the whole history each time. It changes only
//! when the CLI compresses its history (one move per compression).

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use sluice_config::{Credential, CredentialKind, ProviderKind};
use sluice_scheduler::quota::Bucket;
use sluice_scheduler::{ConversationKey, Outcome, QuotaObservation, Timestamp, TokenTotals};

use super::signals::{next_pacific_midnight, parse_duration};
use super::{
    AccountContext, ClientRequest, Eligibility, Provider, RequestFacts, ResponseTranslator,
    RouteKind, StreamReport, UpstreamRequest, forwardable_request_headers, session_header,
};
use crate::error::{ErrorKind, ProxyError};

/// Google's Code Assist endpoint (what `CODE_ASSIST_ENDPOINT` replaces).
pub const DEFAULT_CODE_ASSIST_URL: &str = "https://cloudcode-pa.googleapis.com";
/// The Gemini API (what `GOOGLE_GEMINI_BASE_URL` replaces).
pub const DEFAULT_API_URL: &str = "https://generativelanguage.googleapis.com";
/// Google's token endpoint (form-encoded; refresh tokens do not rotate).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The project the CLI is shown; each request gets its account's real project instead.
pub const POOL_PROJECT: &str = "sluice-pool";

const CODE_ASSIST_PREFIX: &str = "/v1internal:";
const API_PREFIX: &str = "/v1beta/models/";

/// Code Assist methods and whether each produces model output.
const CODE_ASSIST_METHODS: [(&str, RouteKind); 7] = [
    ("generateContent", RouteKind::Generate),
    ("streamGenerateContent", RouteKind::Generate),
    ("countTokens", RouteKind::Auxiliary),
    ("loadCodeAssist", RouteKind::Auxiliary),
    ("onboardUser", RouteKind::Auxiliary),
    ("retrieveUserQuota", RouteKind::Auxiliary),
    ("listExperiments", RouteKind::Auxiliary),
];

/// Which Gemini API a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1internal:*`, Google-login accounts.
    CodeAssist,
    /// `/v1beta/models/*`, API keys.
    Api,
}

impl Dialect {
    /// The kind of account a request in this dialect must go to.
    pub fn credential_kind(self) -> CredentialKind {
        match self {
            Dialect::CodeAssist => CredentialKind::OAuth,
            Dialect::Api => CredentialKind::ApiKey,
        }
    }
}

/// The dialect and kind of a Gemini request, or `None` when the path is not Gemini's.
pub fn route(method: &Method, path: &str) -> Option<(Dialect, RouteKind)> {
    if let Some(name) = path.strip_prefix(CODE_ASSIST_PREFIX) {
        if method != Method::POST {
            return None;
        }
        return CODE_ASSIST_METHODS
            .iter()
            .find(|(m, _)| *m == name)
            .map(|(_, kind)| (Dialect::CodeAssist, *kind));
    }
    if path == "/v1beta/models" || (path.starts_with(API_PREFIX) && !path.contains(':')) {
        return (method == Method::GET).then_some((Dialect::Api, RouteKind::Auxiliary));
    }
    let (_, action) = path.strip_prefix(API_PREFIX)?.split_once(':')?;
    if method != Method::POST {
        return None;
    }
    match action {
        "generateContent" | "streamGenerateContent" => Some((Dialect::Api, RouteKind::Generate)),
        "countTokens" | "embedContent" | "batchEmbedContents" => {
            Some((Dialect::Api, RouteKind::Auxiliary))
        }
        _ => None,
    }
}

/// Gemini in one dialect. `pool` is the scheduler pool its requests are placed in; both
/// dialects share it, each going only to accounts of its [`Dialect::credential_kind`].
pub struct Gemini {
    pool: ProviderKind,
    dialect: Dialect,
}

impl Gemini {
    pub fn new(pool: ProviderKind, dialect: Dialect) -> Self {
        Gemini { pool, dialect }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// The method of a Code Assist path (`/v1internal:streamGenerateContent` → `streamGenerateContent`).
fn code_assist_method(path: &str) -> Option<&str> {
    path.strip_prefix(CODE_ASSIST_PREFIX)
}

/// The model and action of a Gemini API path (`/v1beta/models/gemini-2.5-pro:generateContent`).
fn api_model_action(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(API_PREFIX)?.split_once(':')
}

#[derive(Deserialize, Default)]
struct CodeAssistPeek<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    request: Option<ContentsPeek<'a>>,
}

#[derive(Deserialize, Default)]
struct ContentsPeek<'a> {
    #[serde(default, borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    contents: Vec<ContentPeek<'a>>,
}

#[derive(Deserialize)]
struct ContentPeek<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parts: Vec<PartPeek<'a>>,
}

#[derive(Deserialize)]
struct PartPeek<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// The key of a conversation named by no id: its opening (the text of the user turns before
/// the first model turn) and who sent it. `None` when there is no opening text.
fn opening_key(identity: Option<&str>, contents: &[ContentPeek<'_>]) -> Option<ConversationKey> {
    let mut raw = String::from("gemini-opening\u{1f}");
    raw.push_str(identity.unwrap_or(""));
    let mut any = false;
    for content in contents {
        if content.role.as_deref() == Some("model") {
            break;
        }
        for text in content.parts.iter().filter_map(|p| p.text.as_deref()) {
            raw.push('\u{1f}');
            raw.push_str(text);
            any = true;
        }
    }
    any.then(|| ConversationKey::from_raw(&raw))
}

/// The client's own Gemini API key (header or `key=` query), its identity for the opening key.
fn client_api_key<'a>(request: &ClientRequest<'a>) -> Option<Cow<'a, str>> {
    if let Some(key) = request
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(Cow::Borrowed(key));
    }
    url::form_urlencoded::parse(request.query()?.as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, value)| Cow::Owned(value.into_owned()))
}

impl Provider for Gemini {
    fn kind(&self) -> ProviderKind {
        self.pool
    }

    /// Without the path only the Code Assist body can be read (the API's model and stream
    /// flag live in the path): [`Provider::inspect_request`] is the full answer.
    fn inspect(&self, headers: &HeaderMap, body: &Bytes) -> RequestFacts {
        let path = match self.dialect {
            Dialect::CodeAssist => "/v1internal:generateContent",
            Dialect::Api => "/v1beta/models/unknown:generateContent",
        };
        self.inspect_request(&ClientRequest {
            method: &Method::POST,
            path_and_query: path,
            headers,
            body,
        })
    }

    fn inspect_request(&self, request: &ClientRequest<'_>) -> RequestFacts {
        let path = request.path();
        let explicit = session_header(request.headers).map(ConversationKey::from_raw);
        match self.dialect {
            Dialect::CodeAssist => {
                let peek: CodeAssistPeek<'_> =
                    serde_json::from_slice(request.body).unwrap_or_default();
                let inner = peek.request.unwrap_or_default();
                let conversation = explicit.or_else(|| {
                    inner
                        .session_id
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .map(ConversationKey::from_raw)
                        .or_else(|| opening_key(None, &inner.contents))
                });
                RequestFacts {
                    conversation,
                    stream: code_assist_method(path) == Some("streamGenerateContent"),
                    model: peek.model.map(Cow::into_owned),
                    weight: 1,
                }
            }
            Dialect::Api => {
                let (model, action) = api_model_action(path).unzip();
                let conversation = explicit.or_else(|| {
                    let peek: ContentsPeek<'_> =
                        serde_json::from_slice(request.body).unwrap_or_default();
                    opening_key(client_api_key(request).as_deref(), &peek.contents)
                });
                RequestFacts {
                    conversation,
                    stream: action == Some("streamGenerateContent"),
                    model: model.map(str::to_owned),
                    weight: 1,
                }
            }
        }
    }

    /// Each dialect has its own kind of account: Code Assist Google logins, the API keys.
    fn eligibility(&self, _request: &ClientRequest<'_>) -> Eligibility {
        Eligibility {
            credential: Some(self.dialect.credential_kind()),
            first_party_only: false,
        }
    }

    fn upstream_headers(&self, client: &HeaderMap, credential: &Credential) -> HeaderMap {
        let mut headers = forwardable_request_headers(client);
        headers.remove("x-goog-api-key");
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let (name, value) = match credential {
            Credential::ApiKey(key) => ("x-goog-api-key", key.expose().to_owned()),
            Credential::OAuth { access_token, .. } => {
                ("authorization", format!("Bearer {}", access_token.expose()))
            }
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
        if account.credential.kind() != self.dialect.credential_kind() {
            return Err(ProxyError::new(
                ErrorKind::Internal,
                "this Gemini account cannot serve this dialect (Code Assist needs a Google login, the Gemini API a key)",
            ));
        }
        let headers = self.upstream_headers(request.headers, account.credential);
        let (path_and_query, body) = match self.dialect {
            Dialect::CodeAssist => {
                let method = code_assist_method(request.path()).unwrap_or_default();
                let body =
                    substitute_project(request.body, method, account.identity.project.as_deref())?;
                (request.path_and_query.to_owned(), body)
            }
            // A key the client put in the URL is its own, not the account's.
            Dialect::Api => (
                without_key_param(request.path_and_query),
                request.body.clone(),
            ),
        };
        Ok(UpstreamRequest {
            method: request.method.clone(),
            url: self.upstream_url(account.base_url, &path_and_query),
            headers,
            body,
        })
    }

    fn response_translator(
        &self,
        request: &ClientRequest<'_>,
    ) -> Option<Box<dyn ResponseTranslator>> {
        match code_assist_method(request.path()) {
            Some("loadCodeAssist" | "onboardUser") if self.dialect == Dialect::CodeAssist => {
                Some(Box::new(PoolProjectAnswer))
            }
            _ => None,
        }
    }

    fn observe_quota(&self, _headers: &HeaderMap, _now: Timestamp) -> QuotaObservation {
        // Google sends no quota headers; see `classify_failure` and `parse_user_quota`.
        QuotaObservation::default()
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<Outcome> {
        let error = GoogleError::parse(body);
        match status.as_u16() {
            429 => Some(Outcome::RateLimited {
                status: 429,
                retry_after: error
                    .as_ref()
                    .and_then(|e| e.quota_reset(now))
                    .map(|at| sluice_scheduler::headers::clamp_retry_after(now.until(at))),
            }),
            401 | 403 => Some(Outcome::AuthRejected {
                status: status.as_u16(),
            }),
            // The Gemini API answers a bad key 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
            400 if error
                .as_ref()
                .is_some_and(|e| e.has_reason("API_KEY_INVALID")) =>
            {
                Some(Outcome::AuthRejected { status: 400 })
            }
            503 | 529 => Some(Outcome::Overloaded { retry_after: None }),
            500..=599 => Some(Outcome::ServerError {
                status: status.as_u16(),
            }),
            _ => None,
        }
    }

    fn observe_event(&self, _event: &str, data: &[u8], report: &mut StreamReport) {
        observe_chunk(data, report);
    }

    fn observe_body(&self, body: &[u8], report: &mut StreamReport) {
        // A whole body may be one response object or (some clients ask without alt=sse) a
        // JSON array of chunks.
        if body.trim_ascii_start().starts_with(b"[") {
            if let Ok(chunks) = serde_json::from_slice::<Vec<Box<RawValue>>>(body) {
                for chunk in chunks {
                    observe_chunk(chunk.get().as_bytes(), report);
                }
            }
        } else {
            observe_chunk(body, report);
        }
    }

    fn error_response(&self, error: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if let Some(after) = error.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        let (status, _) = google_status(error.kind);
        (status, headers, error_json(error))
    }

    fn error_event(&self, error: &ProxyError) -> Bytes {
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&error_json(error));
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The Gemini CLI's Code Assist stream reader throws on any line that is neither
    /// `data: …` nor blank, and the Google GenAI SDK's reader stalls on anything that does not
    /// start with `data: `. So: a blank line for Code Assist, an empty response chunk for the
    /// API.
    fn keepalive_event(&self) -> Bytes {
        match self.dialect {
            Dialect::CodeAssist => Bytes::from_static(b"\n"),
            Dialect::Api => Bytes::from_static(b"data: {\"candidates\":[]}\n\n"),
        }
    }
}

/// Replace the body's project with the account's, in every place a Code Assist method
/// carries one: `project` (generation, quota, experiments), `cloudaicompanionProject` and
/// `metadata.duetProject` (`loadCodeAssist`, `onboardUser`). Only the top level is parsed;
/// the conversation inside `request` is copied as is.
pub fn substitute_project(
    body: &Bytes,
    method: &str,
    project: Option<&str>,
) -> Result<Bytes, ProxyError> {
    if body.is_empty() {
        return Ok(body.clone());
    }
    let mut top: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body).map_err(|_| {
        ProxyError::new(
            ErrorKind::InvalidRequest,
            "the Code Assist request body is not a JSON object",
        )
    })?;
    let discovery = matches!(method, "loadCodeAssist" | "onboardUser");
    let raw_project = project.map(|p| RawValue::from_string(json!(p).to_string()));
    let raw_project = match raw_project {
        Some(Ok(raw)) => Some(raw),
        Some(Err(_)) => None,
        None => None,
    };
    match (&raw_project, top.contains_key("project")) {
        (Some(raw), true) => {
            top.insert("project".into(), raw.clone());
        }
        (None, true) => {
            return Err(ProxyError::new(
                ErrorKind::Upstream,
                "this account's Code Assist project is not known yet",
            ));
        }
        _ => {}
    }
    if discovery {
        // The client's project (GOOGLE_CLOUD_PROJECT) is not the account's: name the
        // account's, or none so the upstream answers with the account's own.
        match &raw_project {
            Some(raw) => {
                top.insert("cloudaicompanionProject".into(), raw.clone());
            }
            None => {
                top.remove("cloudaicompanionProject");
            }
        }
        if let Some(metadata) = top.get("metadata") {
            let mut metadata: serde_json::Value =
                serde_json::from_str(metadata.get()).unwrap_or_default();
            if let Some(map) = metadata.as_object_mut() {
                match project {
                    Some(p) => {
                        map.insert("duetProject".into(), json!(p));
                    }
                    None => {
                        map.remove("duetProject");
                    }
                }
                if let Ok(raw) = RawValue::from_string(metadata.to_string()) {
                    top.insert("metadata".into(), raw);
                }
            }
        }
    }
    serde_json::to_vec(&top).map(Bytes::from).map_err(|_| {
        ProxyError::new(
            ErrorKind::Internal,
            "could not rewrite the Code Assist body",
        )
    })
}

/// Drop the `key` query parameter (a client's own API key) from a path and query.
fn without_key_param(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some("key"))
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// Rewrites `loadCodeAssist` and `onboardUser` answers to name [`POOL_PROJECT`], so the
/// CLI's idea of its project does not depend on which account answered it.
struct PoolProjectAnswer;

impl ResponseTranslator for PoolProjectAnswer {
    fn on_event(&mut self, _event: &str, data: &[u8], out: &mut BytesMut) {
        // Both methods answer plain JSON; a stream would be passed through unchanged.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n\n");
    }

    fn on_body(&mut self, body: &[u8]) -> Bytes {
        pool_project_answer(body)
    }
}

/// A `loadCodeAssist` or `onboardUser` answer with the project replaced by [`POOL_PROJECT`].
pub fn pool_project_answer(body: &[u8]) -> Bytes {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    fn rewrite(slot: &mut serde_json::Value) {
        match slot {
            serde_json::Value::String(s) => *s = POOL_PROJECT.to_owned(),
            serde_json::Value::Object(map) => {
                for key in ["id", "name"] {
                    if map.contains_key(key) {
                        map.insert(key.into(), json!(POOL_PROJECT));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(slot) = value.get_mut("cloudaicompanionProject") {
        rewrite(slot);
    } else if value.get("currentTier").is_some()
        && let Some(map) = value.as_object_mut()
    {
        // A tier whose project the user is meant to name (GOOGLE_CLOUD_PROJECT): sluice names
        // each account's own in every request, so the CLI needs none of its own.
        map.insert("cloudaicompanionProject".into(), json!(POOL_PROJECT));
    }
    if let Some(slot) = value.pointer_mut("/response/cloudaicompanionProject") {
        rewrite(slot);
    }
    Bytes::from(value.to_string())
}

/// What a `loadCodeAssist` answer says about an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeAssistSetup {
    /// The account's project, if it has one yet (else it must be onboarded).
    pub project: Option<String>,
    /// `currentTier.id` (`free-tier`, `standard-tier`, …).
    pub tier: Option<String>,
}

/// Read an account's project and tier from its `loadCodeAssist` (or `onboardUser`) answer.
pub fn parse_load_code_assist(body: &[u8]) -> Option<CodeAssistSetup> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let project_of = |slot: Option<&serde_json::Value>| match slot? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map.get("id")?.as_str().map(str::to_owned),
        _ => None,
    };
    let project = project_of(value.get("cloudaicompanionProject"))
        .or_else(|| project_of(value.pointer("/response/cloudaicompanionProject")))
        .filter(|p| !p.is_empty());
    let tier = value
        .pointer("/currentTier/id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Some(CodeAssistSetup { project, tier })
}

/// An account's quota from its `retrieveUserQuota` answer, as a request bucket (the
/// fraction left of a per-model daily allowance). With `model`, that model's bucket;
/// otherwise the most used one.
pub fn parse_user_quota(body: &[u8], model: Option<&str>, _now: Timestamp) -> QuotaObservation {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Quota {
        #[serde(default)]
        buckets: Vec<QuotaBucket>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct QuotaBucket {
        remaining_amount: Option<String>,
        remaining_fraction: Option<f64>,
        reset_time: Option<String>,
        model_id: Option<String>,
    }
    let Ok(quota) = serde_json::from_slice::<Quota>(body) else {
        return QuotaObservation::default();
    };
    let mut usable = quota.buckets.into_iter().filter(|b| {
        b.remaining_fraction
            .is_some_and(|f| f.is_finite() && f >= 0.0)
    });
    let chosen = match model {
        Some(model) => usable.find(|b| b.model_id.as_deref() == Some(model)),
        None => usable.min_by(|a, b| {
            a.remaining_fraction
                .unwrap_or(1.0)
                .total_cmp(&b.remaining_fraction.unwrap_or(1.0))
        }),
    };
    let Some(bucket) = chosen else {
        return QuotaObservation::default();
    };
    let fraction = bucket.remaining_fraction.unwrap_or(1.0).clamp(0.0, 1.0);
    let amount = bucket
        .remaining_amount
        .as_deref()
        .and_then(|a| a.trim().parse::<u64>().ok());
    let (limit, remaining) = match amount {
        Some(amount) if fraction > 0.0 => (((amount as f64) / fraction).round() as u64, amount),
        _ => (1000, (fraction * 1000.0).round() as u64),
    };
    let resets_at = bucket
        .reset_time
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| Timestamp::from_millis(t.as_millisecond()));
    QuotaObservation {
        requests: Some(Bucket {
            limit: limit.max(remaining),
            remaining,
            resets_at,
        }),
        ..QuotaObservation::default()
    }
}

/// A Google API error body: `{"error":{"code","message","status","details":[…]}}`.
#[derive(Debug, Default)]
pub struct GoogleError {
    pub message: String,
    pub status: Option<String>,
    details: Vec<serde_json::Value>,
}

impl GoogleError {
    pub fn parse(body: &[u8]) -> Option<GoogleError> {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            message: String,
            status: Option<String>,
            #[serde(default)]
            details: Vec<serde_json::Value>,
        }
        // Some Google front ends answer a one-element array of error objects.
        let envelope = serde_json::from_slice::<Envelope>(body).ok().or_else(|| {
            serde_json::from_slice::<Vec<Envelope>>(body)
                .ok()?
                .into_iter()
                .next()
        })?;
        Some(GoogleError {
            message: envelope.error.message,
            status: envelope.error.status,
            details: envelope.error.details,
        })
    }

    fn detail(&self, kind: &str) -> impl Iterator<Item = &serde_json::Value> {
        let suffix = format!("google.rpc.{kind}");
        self.details.iter().filter(move |d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with(&suffix))
        })
    }

    fn has_reason(&self, reason: &str) -> bool {
        self.detail("ErrorInfo")
            .any(|d| d.get("reason").and_then(|r| r.as_str()) == Some(reason))
    }

    /// Whether the exhausted quota is a per-day one.
    pub fn is_daily(&self) -> bool {
        let daily = |text: &str| {
            let t = text.to_ascii_lowercase();
            t.contains("perday") || t.contains("per day") || t.contains("per_day")
        };
        daily(&self.message)
            || self.detail("QuotaFailure").any(|d| {
                d.get("violations")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .any(|v| {
                        ["quotaId", "quotaMetric"]
                            .iter()
                            .filter_map(|k| v.get(*k).and_then(|x| x.as_str()))
                            .any(daily)
                    })
            })
    }

    /// When the exhausted quota comes back: the latest of `RetryInfo.retryDelay`,
    /// `ErrorInfo.metadata.quotaResetDelay` and `quotaResetTimeStamp`; for a daily limit
    /// that names none, the next midnight Pacific.
    pub fn quota_reset(&self, now: Timestamp) -> Option<Timestamp> {
        let delays = self
            .detail("RetryInfo")
            .filter_map(|d| d.get("retryDelay")?.as_str())
            .chain(
                self.detail("ErrorInfo")
                    .filter_map(|d| d.pointer("/metadata/quotaResetDelay")?.as_str()),
            )
            .filter_map(parse_duration)
            .map(|delay| now + delay);
        let stamps = self
            .detail("ErrorInfo")
            .filter_map(|d| d.pointer("/metadata/quotaResetTimeStamp")?.as_str())
            .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| Timestamp::from_millis(t.as_millisecond()));
        let explicit = delays.chain(stamps).max();
        match explicit {
            Some(at) => Some(at),
            None if self.is_daily() => Some(next_pacific_midnight(now)),
            None => None,
        }
    }
}

/// One streamed chunk (or a whole body): usage from `usageMetadata`, the end from a
/// candidate's `finishReason`, a failure from an `error` object. Code Assist wraps it all in
/// `{"response":{…}}`.
fn observe_chunk(data: &[u8], report: &mut StreamReport) {
    #[derive(Deserialize)]
    struct Wrapped {
        response: Option<Chunk>,
        #[serde(flatten)]
        bare: Chunk,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Chunk {
        #[serde(default)]
        candidates: Vec<Candidate>,
        usage_metadata: Option<UsageMetadata>,
        error: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Candidate {
        finish_reason: Option<String>,
    }
    let Ok(wrapped) = serde_json::from_slice::<Wrapped>(data) else {
        return;
    };
    if let Some(error) = &wrapped.bare.error {
        let status = error.get("status").and_then(|s| s.as_str());
        let code = error.get("code").and_then(|c| c.as_u64());
        report.error = Some(match (status, code) {
            (Some("RESOURCE_EXHAUSTED"), _) | (_, Some(429)) => Outcome::RateLimited {
                status: 429,
                retry_after: None,
            },
            (Some("UNAVAILABLE"), _) | (_, Some(503)) => Outcome::Overloaded { retry_after: None },
            (Some("UNAUTHENTICATED" | "PERMISSION_DENIED"), _) => {
                Outcome::AuthRejected { status: 401 }
            }
            _ => Outcome::ServerError { status: 500 },
        });
        return;
    }
    let chunk = wrapped.response.unwrap_or(wrapped.bare);
    if let Some(usage) = chunk.usage_metadata {
        report.tokens = usage.tokens();
    }
    if chunk.candidates.iter().any(|c| c.finish_reason.is_some()) {
        report.completed = true;
    }
}

/// `usageMetadata`: prompt tokens include cached ones, which sluice counts apart; thoughts
/// are output.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    fn tokens(&self) -> TokenTotals {
        let cached = self.cached_content_token_count.unwrap_or(0);
        TokenTotals {
            input: (self.prompt_token_count.unwrap_or(0)
                + self.tool_use_prompt_token_count.unwrap_or(0))
            .saturating_sub(cached),
            output: self.candidates_token_count.unwrap_or(0)
                + self.thoughts_token_count.unwrap_or(0),
            cache_creation: 0,
            cache_read: cached,
        }
    }
}

/// The HTTP status and `error.status` Google clients expect for one of sluice's errors.
fn google_status(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ErrorKind::Authentication => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        ErrorKind::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "INVALID_ARGUMENT"),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        ErrorKind::Overloaded | ErrorKind::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        }
        ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// One of sluice's errors as a Google error body; a rate limit carries `RetryInfo` so the
/// CLI waits as long as the pool needs.
fn error_json(error: &ProxyError) -> Bytes {
    let (status, name) = google_status(error.kind);
    let mut body = json!({
        "error": { "code": status.as_u16(), "message": error.message, "status": name },
    });
    if let Some(after) = error.retry_after {
        body["error"]["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}s", after.as_secs().max(1)),
        }]);
    }
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::provider::UpstreamIdentity;
    use crate::provider::test_support::captured as fixture;

    const POOL: ProviderKind = ProviderKind::Gemini;
    const NOW: Timestamp = Timestamp::from_secs(1_767_000_000);

    fn facts(
        dialect: Dialect,
        headers: &HeaderMap,
        path: &str,
        body: &serde_json::Value,
    ) -> RequestFacts {
        Gemini::new(POOL, dialect).inspect_request(&ClientRequest {
            method: &Method::POST,
            path_and_query: path,
            headers,
            body: &Bytes::from(body.to_string()),
        })
    }

    /// The captured first turn continued by one model answer and a new user prompt, as the
    /// CLI sends its second turn: the whole history again, with a new `user_prompt_id`.
    fn next_turn(
        mut first: serde_json::Value,
        contents_at: &str,
        prompt_id: Option<&str>,
    ) -> serde_json::Value {
        let contents = first
            .pointer_mut(contents_at)
            .unwrap()
            .as_array_mut()
            .unwrap();
        contents.push(json!({"role": "model", "parts": [{"text": "pong"}]}));
        contents.push(json!({"role": "user", "parts": [{"text": "now say ping"}]}));
        if let Some(id) = prompt_id {
            first["user_prompt_id"] = json!(id);
        }
        first
    }

    #[test]
    fn routes_by_path() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(
            r(Method::POST, "/v1internal:streamGenerateContent"),
            Some((Dialect::CodeAssist, RouteKind::Generate))
        );
        assert_eq!(
            r(Method::POST, "/v1internal:loadCodeAssist"),
            Some((Dialect::CodeAssist, RouteKind::Auxiliary))
        );
        for method in [
            "onboardUser",
            "retrieveUserQuota",
            "listExperiments",
            "countTokens",
        ] {
            assert_eq!(
                r(Method::POST, &format!("/v1internal:{method}")),
                Some((Dialect::CodeAssist, RouteKind::Auxiliary)),
                "{method}"
            );
        }
        assert_eq!(r(Method::POST, "/v1internal:somethingElse"), None);
        assert_eq!(r(Method::GET, "/v1internal:loadCodeAssist"), None);
        assert_eq!(
            r(
                Method::POST,
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
            ),
            Some((Dialect::Api, RouteKind::Generate))
        );
        assert_eq!(
            r(Method::POST, "/v1beta/models/gemini-2.5-pro:countTokens"),
            Some((Dialect::Api, RouteKind::Auxiliary))
        );
        assert_eq!(
            r(Method::GET, "/v1beta/models"),
            Some((Dialect::Api, RouteKind::Auxiliary))
        );
        assert_eq!(
            r(Method::GET, "/v1beta/models/gemini-2.5-pro"),
            Some((Dialect::Api, RouteKind::Auxiliary))
        );
        assert_eq!(r(Method::POST, "/v1beta/models/x:deleteEverything"), None);
        assert_eq!(r(Method::POST, "/v1/messages"), None);
        assert_eq!(Dialect::CodeAssist.credential_kind(), CredentialKind::OAuth);
        assert_eq!(Dialect::Api.credential_kind(), CredentialKind::ApiKey);
    }

    #[test]
    fn code_assist_turns_share_the_session_id_key() {
        let stream = fixture("gemini_cli_codeassist_stream.json");
        let router = fixture("gemini_cli_apikey_router.json"); // a Code Assist routing call
        let first = facts(
            Dialect::CodeAssist,
            &stream.headers,
            &stream.path,
            &stream.body,
        );
        assert!(first.stream);
        assert_eq!(first.model.as_deref(), Some("gemini-3-flash"));
        assert_eq!(
            first.conversation,
            Some(ConversationKey::from_raw(
                "22970e34-c119-479b-ab0a-6ab433f6e482"
            ))
        );
        // The CLI's model-routing call of the same prompt lands on the same account.
        let routing = facts(
            Dialect::CodeAssist,
            &router.headers,
            &router.path,
            &router.body,
        );
        assert!(!routing.stream);
        assert_eq!(routing.conversation, first.conversation);
        // The second turn has a new user_prompt_id; the key does not move.
        let second = next_turn(
            stream.body.clone(),
            "/request/contents",
            Some("22970e34-c119-479b-ab0a-6ab433f6e482########1"),
        );
        assert_ne!(second["user_prompt_id"], stream.body["user_prompt_id"]);
        assert_eq!(
            facts(Dialect::CodeAssist, &stream.headers, &stream.path, &second).conversation,
            first.conversation
        );
        // Without a session id the opening is the key, and it is stable too.
        let mut anonymous = stream.body.clone();
        anonymous["request"]
            .as_object_mut()
            .unwrap()
            .remove("session_id");
        let anon_first = facts(
            Dialect::CodeAssist,
            &stream.headers,
            &stream.path,
            &anonymous,
        );
        let anon_second = facts(
            Dialect::CodeAssist,
            &stream.headers,
            &stream.path,
            &next_turn(anonymous, "/request/contents", Some("other")),
        );
        assert!(anon_first.conversation.is_some());
        assert_eq!(anon_first.conversation, anon_second.conversation);
    }

    #[test]
    fn api_key_turns_share_the_opening_key() {
        let captured = fixture("gemini_cli_apikey_stream.json");
        let first = facts(
            Dialect::Api,
            &captured.headers,
            &captured.path,
            &captured.body,
        );
        assert!(first.stream);
        assert_eq!(first.model.as_deref(), Some("gemini-3.8-flash"));
        assert!(first.conversation.is_some());
        let second = next_turn(captured.body.clone(), "/contents", None);
        assert_eq!(
            facts(Dialect::Api, &captured.headers, &captured.path, &second).conversation,
            first.conversation,
            "the second turn resends the opening unchanged"
        );
        // Another prompt, or another client key, is another conversation.
        let mut other = captured.body.clone();
        other["contents"][0]["parts"][1]["text"] = json!("say something else");
        assert_ne!(
            facts(Dialect::Api, &captured.headers, &captured.path, &other).conversation,
            first.conversation
        );
        let mut other_key = captured.headers.clone();
        other_key.insert("x-goog-api-key", HeaderValue::from_static("someone-else"));
        assert_ne!(
            facts(Dialect::Api, &other_key, &captured.path, &captured.body).conversation,
            first.conversation
        );
        // The opening split over two user turns (as the routing call sends it) is the same opening.
        let mut split = captured.body.clone();
        let parts = split["contents"][0]["parts"].as_array().unwrap().clone();
        split["contents"] = json!([
            {"role": "user", "parts": [parts[0].clone()]},
            {"role": "user", "parts": [parts[1].clone()]},
        ]);
        assert_eq!(
            facts(Dialect::Api, &captured.headers, &captured.path, &split).conversation,
            first.conversation
        );
        let mut explicit = captured.headers.clone();
        explicit.insert("x-sluice-session", HeaderValue::from_static("T"));
        assert_eq!(
            facts(Dialect::Api, &explicit, &captured.path, &captured.body).conversation,
            Some(ConversationKey::from_raw("T"))
        );
    }

    fn oauth() -> Credential {
        Credential::OAuth {
            access_token: "ya29.pooled-secret".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        }
    }

    #[test]
    fn code_assist_bodies_get_the_accounts_project() {
        let captured = fixture("gemini_cli_codeassist_stream.json");
        let body = Bytes::from(captured.body.to_string());
        let base = url::Url::parse("https://cloudcode.example").unwrap();
        let credential = oauth();
        let identity = UpstreamIdentity {
            chatgpt_account_id: None,
            project: Some("account-project-7".into()),
        };
        let request = ClientRequest {
            method: &Method::POST,
            path_and_query: &captured.path,
            headers: &captured.headers,
            body: &body,
        };
        let out = Gemini::new(POOL, Dialect::CodeAssist)
            .upstream_request(
                &request,
                &AccountContext {
                    base_url: &base,
                    credential: &credential,
                    identity: &identity,
                },
            )
            .unwrap();
        assert_eq!(
            out.url,
            "https://cloudcode.example/v1internal:streamGenerateContent?alt=sse"
        );
        assert_eq!(out.headers["authorization"], "Bearer ya29.pooled-secret");
        assert!(out.headers["authorization"].is_sensitive());
        assert_eq!(out.headers["accept-encoding"], "identity");
        let sent: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(sent["project"], "account-project-7");
        assert_eq!(
            sent["request"], captured.body["request"],
            "the conversation is untouched"
        );
        assert_eq!(sent["user_prompt_id"], captured.body["user_prompt_id"]);

        // Unknown project: this account cannot serve yet (another may).
        let unknown = UpstreamIdentity::default();
        let err = Gemini::new(POOL, Dialect::CodeAssist)
            .upstream_request(
                &request,
                &AccountContext {
                    base_url: &base,
                    credential: &credential,
                    identity: &unknown,
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);

        // An API key cannot serve Code Assist.
        let key = Credential::ApiKey("k".to_owned().into());
        assert!(
            Gemini::new(POOL, Dialect::CodeAssist)
                .upstream_request(
                    &request,
                    &AccountContext {
                        base_url: &base,
                        credential: &key,
                        identity: &identity,
                    },
                )
                .is_err()
        );
    }

    #[test]
    fn discovery_calls_name_the_accounts_project_or_none() {
        let body = Bytes::from_static(
            br#"{"cloudaicompanionProject":"client-proj","metadata":{"ideType":"IDE_UNSPECIFIED","pluginType":"GEMINI","duetProject":"client-proj"}}"#,
        );
        let sent: serde_json::Value = serde_json::from_slice(
            &substitute_project(&body, "loadCodeAssist", Some("acct-proj")).unwrap(),
        )
        .unwrap();
        assert_eq!(sent["cloudaicompanionProject"], "acct-proj");
        assert_eq!(sent["metadata"]["duetProject"], "acct-proj");
        assert_eq!(sent["metadata"]["pluginType"], "GEMINI");
        let sent: serde_json::Value =
            serde_json::from_slice(&substitute_project(&body, "loadCodeAssist", None).unwrap())
                .unwrap();
        assert!(sent.get("cloudaicompanionProject").is_none());
        assert!(sent["metadata"].get("duetProject").is_none());
        // The captured loadCodeAssist names no project and passes through.
        let captured = fixture("gemini_cli_codeassist_load.json");
        let body = Bytes::from(captured.body.to_string());
        let sent: serde_json::Value =
            serde_json::from_slice(&substitute_project(&body, "loadCodeAssist", None).unwrap())
                .unwrap();
        assert_eq!(sent, captured.body);
        assert_eq!(
            substitute_project(&Bytes::from_static(b"[1]"), "generateContent", Some("p"))
                .unwrap_err()
                .kind,
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn discovery_answers_show_the_pool_project() {
        let load = br#"{"currentTier":{"id":"standard-tier","name":"Gemini Code Assist"},"allowedTiers":[{"id":"standard-tier"}],"cloudaicompanionProject":"acct-proj-1"}"#;
        let setup = parse_load_code_assist(load).unwrap();
        assert_eq!(setup.project.as_deref(), Some("acct-proj-1"));
        assert_eq!(setup.tier.as_deref(), Some("standard-tier"));
        let shown = pool_project_answer(load);
        let value: serde_json::Value = serde_json::from_slice(&shown).unwrap();
        assert_eq!(value["cloudaicompanionProject"], POOL_PROJECT);
        assert_eq!(value["currentTier"]["id"], "standard-tier");

        let onboard = br#"{"name":"operations/1","done":true,"response":{"@type":"type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse","cloudaicompanionProject":{"id":"acct-proj-2","name":"acct-proj-2"}}}"#;
        assert_eq!(
            parse_load_code_assist(onboard).unwrap().project.as_deref(),
            Some("acct-proj-2")
        );
        let value: serde_json::Value =
            serde_json::from_slice(&pool_project_answer(onboard)).unwrap();
        assert_eq!(
            value["response"]["cloudaicompanionProject"]["id"],
            POOL_PROJECT
        );

        let gemini = Gemini::new(POOL, Dialect::CodeAssist);
        let load_request = ClientRequest {
            method: &Method::POST,
            path_and_query: "/v1internal:loadCodeAssist",
            headers: &HeaderMap::new(),
            body: &Bytes::new(),
        };
        let mut translator = gemini.response_translator(&load_request).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&translator.on_body(load)).unwrap();
        assert_eq!(value["cloudaicompanionProject"], POOL_PROJECT);
        let user_defined =
            br#"{"currentTier":{"id":"standard-tier","userDefinedCloudaicompanionProject":true}}"#;
        let value: serde_json::Value =
            serde_json::from_slice(&translator.on_body(user_defined)).unwrap();
        assert_eq!(
            value["cloudaicompanionProject"], POOL_PROJECT,
            "the CLI is never asked for a project of its own"
        );
        let stream_request = ClientRequest {
            path_and_query: "/v1internal:streamGenerateContent?alt=sse",
            ..load_request
        };
        assert!(gemini.response_translator(&stream_request).is_none());
        // And a body naming the pool project goes upstream with the account's.
        let sent = substitute_project(
            &Bytes::from(format!(
                r#"{{"model":"m","project":"{POOL_PROJECT}","request":{{}}}}"#
            )),
            "generateContent",
            Some("acct-proj-1"),
        )
        .unwrap();
        assert!(!String::from_utf8_lossy(&sent).contains(POOL_PROJECT));
    }

    #[test]
    fn api_requests_swap_the_key_and_drop_the_clients_from_the_url() {
        let captured = fixture("gemini_cli_apikey_stream.json");
        let body = Bytes::from(captured.body.to_string());
        let base = url::Url::parse("https://generativelanguage.example/").unwrap();
        let key = Credential::ApiKey("AIza-pooled".to_owned().into());
        let identity = UpstreamIdentity::default();
        let path = format!("{}&key=client-own", captured.path);
        let request = ClientRequest {
            method: &Method::POST,
            path_and_query: &path,
            headers: &captured.headers,
            body: &body,
        };
        let out = Gemini::new(POOL, Dialect::Api)
            .upstream_request(
                &request,
                &AccountContext {
                    base_url: &base,
                    credential: &key,
                    identity: &identity,
                },
            )
            .unwrap();
        assert_eq!(
            out.url,
            "https://generativelanguage.example/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(out.headers["x-goog-api-key"], "AIza-pooled");
        assert_eq!(out.headers.get_all("x-goog-api-key").iter().count(), 1);
        assert!(out.headers.get("authorization").is_none());
        assert_eq!(
            out.headers["x-goog-api-client"],
            captured.headers["x-goog-api-client"]
        );
        assert_eq!(out.body, body);
        assert_eq!(without_key_param("/p?key=a"), "/p");
        assert_eq!(without_key_param("/p?alt=sse&key=a&x=1"), "/p?alt=sse&x=1");
        assert_eq!(without_key_param("/p"), "/p");
    }

    #[test]
    fn resource_exhausted_bodies_bench_until_the_reset() {
        let gemini = Gemini::new(POOL, Dialect::CodeAssist);
        let classify = |status: u16, body: &str| {
            gemini.classify_failure(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                body.as_bytes(),
                NOW,
            )
        };
        let per_minute = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(
            classify(429, per_minute),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(37))
            })
        );
        let capacity = r#"{"error":{"code":429,"message":"You have exhausted your capacity on this model. Your quota will reset after 2h13m45s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED","domain":"cloudcode-pa.googleapis.com","metadata":{"uiMessage":"true","model":"gemini-2.5-pro","quotaResetDelay":"2h13m45s"}},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"8025.5s"}]}}"#;
        assert_eq!(
            classify(429, capacity),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs_f64(8025.5))
            }),
            "the later of the two delays"
        );
        let daily = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Gemini 2.5 Pro Requests' and limit 'Gemini 2.5 Pro Requests per day per user per tier'","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"cloudcode-pa.googleapis.com/gemini_2_5_pro_requests","quotaId":"Gemini25ProRequestsPerDayPerUserPerTier"}]}]}}"#;
        let expected = NOW.until(next_pacific_midnight(NOW));
        assert_eq!(
            classify(429, daily),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: Some(expected)
            })
        );
        assert!(GoogleError::parse(daily.as_bytes()).unwrap().is_daily());
        assert!(
            !GoogleError::parse(per_minute.as_bytes())
                .unwrap()
                .is_daily()
        );
        assert_eq!(
            classify(429, "not json"),
            Some(Outcome::RateLimited {
                status: 429,
                retry_after: None
            })
        );
        assert_eq!(
            classify(
                403,
                r#"{"error":{"code":403,"message":"Permission denied on resource project x.","status":"PERMISSION_DENIED"}}"#
            ),
            Some(Outcome::AuthRejected { status: 403 })
        );
        let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert_eq!(
            classify(400, bad_key),
            Some(Outcome::AuthRejected { status: 400 })
        );
        assert_eq!(
            classify(
                400,
                r#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#
            ),
            None
        );
        assert_eq!(classify(404, ""), None);
        assert_eq!(
            classify(
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#
            ),
            Some(Outcome::Overloaded { retry_after: None })
        );
        assert_eq!(
            classify(500, ""),
            Some(Outcome::ServerError { status: 500 })
        );
    }

    #[test]
    fn user_quota_probe_becomes_a_request_bucket() {
        let body = br#"{"buckets":[{"remainingAmount":"80","remainingFraction":0.8,"resetTime":"2025-12-29T08:00:00Z","tokenType":"REQUESTS","modelId":"gemini-2.5-flash"},{"remainingFraction":0.05,"resetTime":"2025-12-29T08:00:00Z","tokenType":"REQUESTS","modelId":"gemini-2.5-pro"}]}"#;
        let most_used = parse_user_quota(body, None, NOW).requests.unwrap();
        assert_eq!((most_used.limit, most_used.remaining), (1000, 50));
        assert_eq!(
            most_used.resets_at,
            Some(Timestamp::from_millis(
                "2025-12-29T08:00:00Z"
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_millisecond()
            ))
        );
        let flash = parse_user_quota(body, Some("gemini-2.5-flash"), NOW)
            .requests
            .unwrap();
        assert_eq!((flash.limit, flash.remaining), (100, 80));
        assert!(parse_user_quota(body, Some("gemini-9"), NOW).is_empty());
        assert!(parse_user_quota(b"garbage", None, NOW).is_empty());
    }

    #[test]
    fn usage_and_end_from_chunks() {
        let gemini = Gemini::new(POOL, Dialect::CodeAssist);
        let mut report = StreamReport::default();
        gemini.observe_event(
            "message",
            br#"{"response":{"candidates":[{"content":{"role":"model","parts":[{"text":"po"}]},"index":0}],"usageMetadata":{"promptTokenCount":1000,"totalTokenCount":1000}}}"#,
            &mut report,
        );
        assert!(!report.completed);
        gemini.observe_event(
            "message",
            br#"{"response":{"candidates":[{"content":{"role":"model","parts":[{"text":"ng"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":2,"thoughtsTokenCount":30,"cachedContentTokenCount":600,"totalTokenCount":1032}},"traceId":"t"}"#,
            &mut report,
        );
        assert!(report.completed);
        assert_eq!(
            report.tokens,
            TokenTotals {
                input: 400,
                output: 32,
                cache_creation: 0,
                cache_read: 600
            }
        );
        // The API dialect's chunks are not wrapped.
        let mut bare = StreamReport::default();
        Gemini::new(POOL, Dialect::Api).observe_event(
            "message",
            br#"{"candidates":[{"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":7}}"#,
            &mut bare,
        );
        assert!(bare.completed);
        assert_eq!((bare.tokens.input, bare.tokens.output), (5, 7));
        let mut failed = StreamReport::default();
        gemini.observe_event(
            "message",
            br#"{"error":{"code":429,"message":"exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
            &mut failed,
        );
        assert!(matches!(failed.error, Some(Outcome::RateLimited { .. })));
        let mut whole = StreamReport::default();
        gemini.observe_body(
            br#"[{"candidates":[{"index":0}]},{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}]"#,
            &mut whole,
        );
        assert!(whole.completed);
        assert_eq!((whole.tokens.input, whole.tokens.output), (3, 4));
    }

    #[test]
    fn own_errors_speak_google() {
        let gemini = Gemini::new(POOL, Dialect::CodeAssist);
        let err = ProxyError::new(ErrorKind::RateLimited, "every gemini account is out")
            .retry_after(Some(Duration::from_secs(42)));
        let (status, headers, body) = gemini.error_response(&err);
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "42");
        let parsed = GoogleError::parse(&body).unwrap();
        assert_eq!(parsed.status.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(
            parsed.quota_reset(NOW),
            Some(NOW + Duration::from_secs(42)),
            "the CLI reads the same retry delay sluice meant"
        );
        let (status, _, _) = gemini.error_response(&ProxyError::new(ErrorKind::Overloaded, "busy"));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let event = gemini.error_event(&ProxyError::new(ErrorKind::Upstream, "broke"));
        assert!(event.starts_with(b"data: {\"error\":"));
        assert!(event.ends_with(b"\n\n"));
        assert_eq!(&gemini.keepalive_event()[..], b"\n");
        let api_keepalive = Gemini::new(POOL, Dialect::Api).keepalive_event();
        assert!(api_keepalive.starts_with(b"data: "));
        assert!(api_keepalive.ends_with(b"\n\n"));
    }
}
