//! `FakeGemini`: a fake Google Code Assist endpoint (`cloudcode-pa.googleapis.com`), Gemini
//! API (`generativelanguage.googleapis.com`) and Google token endpoint
//! (`oauth2.googleapis.com/token`), on one port.
//!
//! - Code Assist, `POST /v1internal:{loadCodeAssist, onboardUser, retrieveUserQuota,
//!   listExperiments, countTokens, generateContent, streamGenerateContent}` with
//!   `authorization: Bearer`. Each Google-login account has its own project;
//!   `loadCodeAssist` names it (`cloudaicompanionProject`) with the account's `currentTier`,
//!   and a request whose `project` is not the account's own is refused 403
//!   `PERMISSION_DENIED`. Answers are wrapped as `{"response":{…}}`; `?alt=sse` streams are
//!   `data:` events.
//! - Gemini API, `POST /v1beta/models/{model}:{generateContent, streamGenerateContent,
//!   countTokens}` with `x-goog-api-key` (or `?key=`); a bad key is 400 `API_KEY_INVALID`.
//!   Its SSE events are written with CRLF line ends, which Google's readers accept and which
//!   exercises sluice's framing of them.
//! - `POST /token`: form-encoded `grant_type=refresh_token`. Refresh tokens do **not**
//!   rotate; each refresh issues a new one-hour access token for the same account.
//!   `grant_type=authorization_code` completes a login (with the client secret and PKCE).
//! - `GET /o/oauth2/v2/auth`: a login page that approves at once as the account chosen with
//!   [`FakeGemini::set_login_account`]; `GET /oauth2/v2/userinfo` names a token's email.
//!
//! A scripted 429 is `RESOURCE_EXHAUSTED` with `RetryInfo.retryDelay` and
//! `ErrorInfo.metadata.quotaResetDelay`, or, with [`ApiReply::daily`], a per-day
//! `QuotaFailure` with no delay at all (the limit lifts at midnight Pacific).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api_reply::ApiReply;
use crate::body::FakeBody;
use crate::clock::Clock;
use crate::listen::{Running, handler};
use crate::record::{RecordedRequest, RequestLog};
use crate::wire::{
    ApiRequest, PendingLogin, approve_login, bearer, data_event, json as json_response,
    read_and_record, serve_plan,
};

/// Lifetime of the access tokens the token endpoint issues.
pub const GOOGLE_ACCESS_TOKEN_SECS: u64 = 3599;

/// How to start a [`FakeGemini`].
#[derive(Debug, Clone)]
pub struct FakeGeminiConfig {
    pub addr: SocketAddr,
    pub clock: Clock,
    pub max_recorded_requests: usize,
}

impl Default for FakeGeminiConfig {
    fn default() -> Self {
        FakeGeminiConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clock: Clock::system(),
            max_recorded_requests: crate::DEFAULT_MAX_RECORDED_REQUESTS,
        }
    }
}

/// One model's share of a Code Assist account's daily quota (`retrieveUserQuota`).
#[derive(Debug, Clone, PartialEq)]
pub struct GeminiQuotaBucket {
    pub model: String,
    /// 0–1.
    pub remaining_fraction: f64,
    pub reset_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    CodeAssist { project: String, tier: String },
    ApiKey,
}

#[derive(Debug)]
struct GeminiAccount {
    kind: Kind,
    script: VecDeque<ApiReply>,
    default: ApiReply,
    quota: Vec<GeminiQuotaBucket>,
}

#[derive(Debug, Default)]
struct Tokens {
    /// Access token → account key.
    access: HashMap<String, String>,
    /// Refresh token → account key (never rotated).
    refresh: HashMap<String, String>,
    failures: VecDeque<u16>,
    issued: u64,
    /// Who the login page logs in, the codes it handed out, and each account's email.
    login_account: Option<String>,
    codes: HashMap<String, (String, PendingLogin)>,
    emails: HashMap<String, String>,
    logins: u64,
}

#[derive(Debug)]
struct Shared {
    accounts: Mutex<HashMap<String, GeminiAccount>>,
    tokens: Mutex<Tokens>,
    log: RequestLog,
    clock: Clock,
    cancel: CancellationToken,
}

/// A fake Google upstream for Gemini CLI. Dropping it (or [`FakeGemini::shutdown`]) stops it.
#[derive(Debug)]
pub struct FakeGemini {
    running: Running,
    shared: Arc<Shared>,
}

impl FakeGemini {
    /// Bind and serve. Must be called from within a tokio runtime.
    pub fn start(config: FakeGeminiConfig) -> io::Result<FakeGemini> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            accounts: Mutex::default(),
            tokens: Mutex::default(),
            log: RequestLog::new(config.max_recorded_requests),
            clock: config.clock,
            cancel: cancel.clone(),
        });
        let handler = handler(shared.clone(), |shared, req| async move {
            handle(&shared, req).await
        });
        let running = Running::start(config.addr, cancel, handler, "gemini")?;
        Ok(FakeGemini { running, shared })
    }

    pub fn new() -> io::Result<FakeGemini> {
        FakeGemini::start(FakeGeminiConfig::default())
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `http://127.0.0.1:PORT`: the Code Assist endpoint and the Gemini API base alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// The token endpoint (`…/token`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// A Google-login account known by `access_token`, owning `project` (standard tier).
    pub fn add_code_assist_account(&self, access_token: &str, project: &str) {
        self.shared.accounts.lock().insert(
            access_token.to_owned(),
            GeminiAccount {
                kind: Kind::CodeAssist {
                    project: project.to_owned(),
                    tier: "standard-tier".to_owned(),
                },
                script: VecDeque::new(),
                default: ApiReply::ok(),
                quota: Vec::new(),
            },
        );
        self.shared
            .tokens
            .lock()
            .access
            .insert(access_token.to_owned(), access_token.to_owned());
    }

    /// A Gemini API key.
    pub fn add_api_key(&self, key: &str) {
        self.shared.accounts.lock().insert(
            key.to_owned(),
            GeminiAccount {
                kind: Kind::ApiKey,
                script: VecDeque::new(),
                default: ApiReply::ok(),
                quota: Vec::new(),
            },
        );
    }

    /// The Code Assist tier `loadCodeAssist` reports (`free-tier`, `standard-tier`, …).
    pub fn set_tier(&self, account: &str, tier: &str) {
        self.with(account, |a| {
            if let Kind::CodeAssist { tier: t, .. } = &mut a.kind {
                *t = tier.to_owned();
            }
        });
    }

    /// Append replies to the account's script; each generation request consumes one.
    pub fn script<I: IntoIterator<Item = ApiReply>>(&self, account: &str, replies: I) {
        self.with(account, |a| a.script.extend(replies));
    }

    pub fn set_default(&self, account: &str, reply: ApiReply) {
        self.with(account, |a| a.default = reply);
    }

    /// What `retrieveUserQuota` reports for the account.
    pub fn set_user_quota(&self, account: &str, buckets: Vec<GeminiQuotaBucket>) {
        self.with(account, |a| a.quota = buckets);
    }

    /// Make `refresh_token` refresh the account (it stays valid: Google does not rotate).
    pub fn set_refresh_token(&self, account: &str, refresh_token: &str) {
        self.shared
            .tokens
            .lock()
            .refresh
            .insert(refresh_token.to_owned(), account.to_owned());
    }

    /// Answer the next refreshes with these statuses before issuing tokens again.
    pub fn fail_refreshes<I: IntoIterator<Item = u16>>(&self, statuses: I) {
        self.shared.tokens.lock().failures.extend(statuses);
    }

    /// Forget an access token (as if it expired).
    pub fn expire_access_token(&self, token: &str) {
        self.shared.tokens.lock().access.remove(token);
    }

    /// How many access tokens the token endpoint has issued.
    pub fn refreshes(&self) -> u64 {
        self.shared.tokens.lock().issued
    }

    /// The email the account's login and userinfo name.
    pub fn set_email(&self, account: &str, email: &str) {
        self.shared
            .tokens
            .lock()
            .emails
            .insert(account.to_owned(), email.to_owned());
    }

    /// The account the login page logs in as.
    pub fn set_login_account(&self, account: &str) {
        self.shared.tokens.lock().login_account = Some(account.to_owned());
    }

    /// How many logins completed.
    pub fn logins(&self) -> u64 {
        self.shared.tokens.lock().logins
    }

    /// The login page (`…/o/oauth2/v2/auth`).
    pub fn authorize_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url())
    }

    /// The userinfo endpoint (`…/oauth2/v2/userinfo`).
    pub fn userinfo_url(&self) -> String {
        format!("{}/oauth2/v2/userinfo", self.base_url())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// The requests made with any of the account's credentials.
    pub fn requests_for(&self, account: &str) -> Vec<RecordedRequest> {
        let tokens = self.shared.tokens.lock();
        self.requests()
            .into_iter()
            .filter(|r| {
                r.credential.as_deref().is_some_and(|c| {
                    c == account || tokens.access.get(c).is_some_and(|owner| owner == account)
                })
            })
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.log.total()
    }

    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared.log.wait_for(n, timeout).await
    }

    pub fn shutdown(&self) {
        self.running.shutdown();
    }

    fn with<R>(&self, account: &str, f: impl FnOnce(&mut GeminiAccount) -> R) -> R {
        let mut accounts = self.shared.accounts.lock();
        let entry = accounts
            .entry(account.to_owned())
            .or_insert_with(|| GeminiAccount {
                kind: Kind::ApiKey,
                script: VecDeque::new(),
                default: ApiReply::ok(),
                quota: Vec::new(),
            });
        f(entry)
    }
}

/// `{"error":{"code","message","status"[,"details"]}}`.
fn google_error(status: u16, message: &str, details: Option<Value>) -> Value {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let mut error = json!({"code": status, "message": message, "status": name});
    if let Some(details) = details {
        error["details"] = details;
    }
    json!({ "error": error })
}

fn error_response(status: u16, request_id: &str, message: &str) -> Response<FakeBody> {
    json_response(
        status,
        request_id,
        &[],
        &google_error(status, message, None),
    )
}

/// The credential a Gemini request carries: bearer token, `x-goog-api-key`, or `?key=`.
fn credential(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    bearer(headers)
        .or_else(|| {
            headers
                .get("x-goog-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        })
        .or_else(|| {
            url::form_urlencoded::parse(query?.as_bytes())
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.into_owned())
        })
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> io::Result<Response<FakeBody>> {
    let req = read_and_record(&shared.log, shared.clock.now(), "gemini", req, credential).await?;
    if req.method == Method::POST && req.path == "/token" {
        return Ok(token(shared, &req));
    }
    if req.method == Method::GET && req.path == "/o/oauth2/v2/auth" {
        return Ok(login_page(shared, &req));
    }
    if req.method == Method::GET && req.path == "/oauth2/v2/userinfo" {
        return Ok(userinfo(shared, &req));
    }
    if let Some(method) = req.path.strip_prefix("/v1internal:") {
        if req.method != Method::POST {
            return Ok(error_response(404, &req.request_id, "fake: not found"));
        }
        let method = method.to_owned();
        return code_assist(shared, &req, &method).await;
    }
    if req.path == "/v1beta/models" && req.method == Method::GET {
        return Ok(json_response(
            200,
            &req.request_id,
            &[],
            &json!({"models": [{"name": "models/gemini-2.5-pro"}, {"name": "models/gemini-2.5-flash"}]}),
        ));
    }
    if let Some((model, action)) = req
        .path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split_once(':'))
        && req.method == Method::POST
    {
        let (model, action) = (model.to_owned(), action.to_owned());
        return api(shared, &req, &model, &action).await;
    }
    Ok(error_response(404, &req.request_id, "fake: not found"))
}

fn token(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return json_response(
            400,
            &req.request_id,
            &[],
            &json!({"error": "invalid_request", "error_description": "fake: the body must be form-encoded"}),
        );
    }
    if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        return exchange(shared, req, &form);
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return json_response(
            400,
            &req.request_id,
            &[],
            &json!({"error": "unsupported_grant_type", "error_description": "fake: only refresh_token and authorization_code"}),
        );
    }
    let mut tokens = shared.tokens.lock();
    if let Some(status) = tokens.failures.pop_front() {
        return json_response(
            status,
            &req.request_id,
            &[],
            &json!({"error": "internal_failure", "error_description": "fake: token endpoint failure"}),
        );
    }
    let account = form
        .get("refresh_token")
        .and_then(|t| tokens.refresh.get(t).cloned());
    let Some(account) = account else {
        return json_response(
            400,
            &req.request_id,
            &[],
            &json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        );
    };
    tokens.issued += 1;
    let access = format!("ya29.fake-{account}-{}", tokens.issued);
    tokens.access.insert(access.clone(), account);
    json_response(
        200,
        &req.request_id,
        &[],
        &json!({
            "access_token": access,
            "expires_in": GOOGLE_ACCESS_TOKEN_SECS,
            "scope": "https://www.googleapis.com/auth/cloud-platform openid https://www.googleapis.com/auth/userinfo.email",
            "token_type": "Bearer",
        }),
    )
}

fn login_page(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let mut tokens = shared.tokens.lock();
    let Some(account) = tokens.login_account.clone() else {
        return error_response(400, &req.request_id, "fake: nobody to log in");
    };
    tokens.issued += 1;
    let serial = tokens.issued;
    match approve_login(req, serial) {
        Ok((code, pending, redirect)) => {
            tokens.codes.insert(code, (account, pending));
            redirect
        }
        Err(refusal) => *refusal,
    }
}

/// An unsigned-in-spirit JWT naming the account's email.
fn google_id_token(email: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(&json!({"iss": "https://accounts.google.com", "email": email, "email_verified": true}))
    )
}

fn exchange(
    shared: &Shared,
    req: &ApiRequest,
    form: &HashMap<String, String>,
) -> Response<FakeBody> {
    if form.get("client_secret").is_none_or(String::is_empty) {
        return json_response(
            401,
            &req.request_id,
            &[],
            &json!({"error": "invalid_client", "error_description": "fake: client_secret is required"}),
        );
    }
    let mut tokens = shared.tokens.lock();
    let pending = form.get("code").and_then(|code| tokens.codes.remove(code));
    let Some((account, _)) = pending.filter(|(_, p)| p.matches(form)) else {
        return json_response(
            400,
            &req.request_id,
            &[],
            &json!({"error": "invalid_grant", "error_description": "fake: bad code, verifier or redirect"}),
        );
    };
    tokens.issued += 1;
    tokens.logins += 1;
    let n = tokens.issued;
    let access = format!("ya29.fake-{account}-{n}");
    let refresh = format!("1//fake-refresh-{account}-{n}");
    tokens.access.insert(access.clone(), account.clone());
    tokens.refresh.insert(refresh.clone(), account.clone());
    let email = tokens
        .emails
        .get(&account)
        .cloned()
        .unwrap_or_else(|| format!("{account}@fake.test"));
    json_response(
        200,
        &req.request_id,
        &[],
        &json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": GOOGLE_ACCESS_TOKEN_SECS,
            "id_token": google_id_token(&email),
            "token_type": "Bearer",
        }),
    )
}

fn userinfo(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let tokens = shared.tokens.lock();
    let account = bearer(&req.headers).and_then(|t| tokens.access.get(&t).cloned());
    match account {
        Some(account) => {
            let email = tokens
                .emails
                .get(&account)
                .cloned()
                .unwrap_or_else(|| format!("{account}@fake.test"));
            json_response(
                200,
                &req.request_id,
                &[],
                &json!({"email": email, "verified_email": true}),
            )
        }
        None => error_response(401, &req.request_id, "fake: invalid token"),
    }
}

/// The account a Code Assist request acts for.
fn code_assist_account(
    shared: &Shared,
    req: &ApiRequest,
) -> Result<String, Box<Response<FakeBody>>> {
    let refuse = || {
        Box::new(error_response(
            401,
            &req.request_id,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ))
    };
    let token = bearer(&req.headers).ok_or_else(refuse)?;
    let account = shared
        .tokens
        .lock()
        .access
        .get(&token)
        .cloned()
        .ok_or_else(refuse)?;
    match shared.accounts.lock().get(&account).map(|a| &a.kind) {
        Some(Kind::CodeAssist { .. }) => Ok(account),
        _ => Err(refuse()),
    }
}

async fn code_assist(
    shared: &Shared,
    req: &ApiRequest,
    method: &str,
) -> io::Result<Response<FakeBody>> {
    let account = match code_assist_account(shared, req) {
        Ok(account) => account,
        Err(refusal) => return Ok(*refusal),
    };
    let (project, tier) = match shared.accounts.lock().get(&account).map(|a| a.kind.clone()) {
        Some(Kind::CodeAssist { project, tier }) => (project, tier),
        _ => {
            return Ok(error_response(
                401,
                &req.request_id,
                "fake: not a Code Assist account",
            ));
        }
    };
    let body = req.json();
    let sent_project = body.get("project").and_then(Value::as_str);
    let id = &req.request_id;
    if let Some(sent) = sent_project
        && sent != project
    {
        return Ok(error_response(
            403,
            id,
            &format!("Permission denied on resource project {sent}."),
        ));
    }
    match method {
        "loadCodeAssist" => Ok(json_response(
            200,
            id,
            &[],
            &json!({
                "currentTier": {
                    "id": tier,
                    "name": if tier == "free-tier" { "Gemini Code Assist for individuals" } else { "Gemini Code Assist" },
                    "description": "fake tier",
                    "userDefinedCloudaicompanionProject": tier != "free-tier",
                },
                "allowedTiers": [{"id": tier, "isDefault": true}],
                "cloudaicompanionProject": project,
                "gcpManaged": false,
            }),
        )),
        "onboardUser" => Ok(json_response(
            200,
            id,
            &[],
            &json!({
                "name": format!("operations/fake-{id}"),
                "done": true,
                "response": {
                    "@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
                    "cloudaicompanionProject": {"id": project, "name": project},
                },
            }),
        )),
        "listExperiments" => Ok(json_response(
            200,
            id,
            &[],
            &json!({"experimentIds": [], "flags": []}),
        )),
        "retrieveUserQuota" => {
            if sent_project.is_none() {
                return Ok(error_response(400, id, "fake: project is required"));
            }
            let now = shared.clock.now();
            let buckets: Vec<Value> = shared
                .accounts
                .lock()
                .get(&account)
                .map(|a| a.quota.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|b| {
                    let reset = jiff::Timestamp::try_from(now + b.reset_after)
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    json!({
                        "remainingFraction": b.remaining_fraction,
                        "resetTime": reset,
                        "tokenType": "REQUESTS",
                        "modelId": b.model,
                    })
                })
                .collect();
            Ok(json_response(200, id, &[], &json!({"buckets": buckets})))
        }
        "countTokens" => {
            let n = (req.body.len() / 4).max(1);
            Ok(json_response(200, id, &[], &json!({"totalTokens": n})))
        }
        "generateContent" | "streamGenerateContent" => {
            if sent_project.is_none() {
                return Ok(error_response(400, id, "fake: project is required"));
            }
            let stream = method == "streamGenerateContent";
            let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
            generate(
                shared,
                req,
                &account,
                model.as_deref(),
                stream,
                Dialect::CodeAssist,
            )
            .await
        }
        _ => Ok(error_response(404, id, "fake: unknown Code Assist method")),
    }
}

async fn api(
    shared: &Shared,
    req: &ApiRequest,
    model: &str,
    action: &str,
) -> io::Result<Response<FakeBody>> {
    let key = credential(&req.headers, req.query.as_deref());
    let known = key.as_deref().and_then(|k| {
        matches!(
            shared.accounts.lock().get(k).map(|a| &a.kind),
            Some(Kind::ApiKey)
        )
        .then(|| k.to_owned())
    });
    let Some(account) = known else {
        return Ok(json_response(
            400,
            &req.request_id,
            &[],
            &google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                Some(json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }])),
            ),
        ));
    };
    match action {
        "generateContent" => {
            generate(shared, req, &account, Some(model), false, Dialect::Api).await
        }
        "streamGenerateContent" => {
            let sse = req.query_param("alt").as_deref() == Some("sse");
            let dialect = if sse {
                Dialect::Api
            } else {
                Dialect::ApiJsonArray
            };
            generate(shared, req, &account, Some(model), true, dialect).await
        }
        "countTokens" => {
            let n = (req.body.len() / 4).max(1);
            Ok(json_response(
                200,
                &req.request_id,
                &[],
                &json!({"totalTokens": n}),
            ))
        }
        _ => Ok(error_response(404, &req.request_id, "fake: unknown method")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    CodeAssist,
    Api,
    /// `streamGenerateContent` without `alt=sse`: one JSON array of chunks.
    ApiJsonArray,
}

fn chunk(reply: &ApiReply, text: &str, model: &str, last: bool, response_id: &str) -> Value {
    let u = reply.usage;
    let mut candidate =
        json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
    let usage = if last {
        candidate["finishReason"] = json!("STOP");
        let mut usage = json!({
            "promptTokenCount": u.input_tokens,
            "candidatesTokenCount": u.output_tokens - u.reasoning_tokens.min(u.output_tokens),
            "totalTokenCount": u.input_tokens + u.output_tokens,
        });
        if u.reasoning_tokens > 0 {
            usage["thoughtsTokenCount"] = json!(u.reasoning_tokens);
        }
        if u.cached_tokens > 0 {
            usage["cachedContentTokenCount"] = json!(u.cached_tokens);
        }
        usage
    } else {
        json!({"promptTokenCount": u.input_tokens, "totalTokenCount": u.input_tokens})
    };
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id,
    })
}

async fn generate(
    shared: &Shared,
    req: &ApiRequest,
    account: &str,
    requested_model: Option<&str>,
    stream: bool,
    dialect: Dialect,
) -> io::Result<Response<FakeBody>> {
    let reply = {
        let mut accounts = shared.accounts.lock();
        match accounts.get_mut(account) {
            Some(a) => a.script.pop_front().unwrap_or_else(|| a.default.clone()),
            None => ApiReply::ok(),
        }
    };
    let mut plan = reply.base_plan();
    plan.headers.extend(reply.headers.iter().cloned());
    let model = reply
        .model_for(requested_model, "gemini-2.5-pro")
        .to_owned();
    if let Some((status, override_body)) = reply.error() {
        plan.status = status;
        plan.headers.push((
            "content-type".into(),
            "application/json; charset=UTF-8".into(),
        ));
        let secs = reply.reset_secs();
        let body = match status {
            429 if reply.daily => google_error(
                429,
                &format!(
                    "Quota exceeded for quota metric '{model} requests' and limit '{model} requests per day per user per tier'."
                ),
                Some(json!([{
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": format!("cloudcode-pa.googleapis.com/{}_requests", model.replace(['-', '.'], "_")),
                        "quotaId": "GenerateRequestsPerDayPerUserPerTier",
                    }],
                }])),
            ),
            429 => google_error(
                429,
                &format!(
                    "You have exhausted your capacity on this model. Your quota will reset after {secs}s."
                ),
                Some(json!([
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": reply.code.as_deref().unwrap_or("QUOTA_EXHAUSTED"),
                        "domain": "cloudcode-pa.googleapis.com",
                        "metadata": {"model": model, "quotaResetDelay": format!("{secs}s")},
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")},
                ])),
            ),
            503 => google_error(
                503,
                "The model is overloaded. Please try again later.",
                None,
            ),
            other => google_error(other, "fake: scripted failure", None),
        };
        plan.frames = vec![
            override_body
                .cloned()
                .unwrap_or_else(|| Bytes::from(body.to_string())),
        ];
        return serve_plan(plan, &req.request_id, &shared.cancel).await;
    }
    let response_id = format!("fake-{}", req.request_id);
    let wrap = |value: Value| match dialect {
        Dialect::CodeAssist => {
            json!({"response": value, "traceId": format!("trace-{response_id}")})
        }
        Dialect::Api | Dialect::ApiJsonArray => value,
    };
    let crlf = dialect != Dialect::CodeAssist;
    if stream && dialect != Dialect::ApiJsonArray {
        plan.headers
            .push(("content-type".into(), "text/event-stream".into()));
        let n = reply.deltas.len();
        let events: Vec<Bytes> = reply
            .deltas
            .iter()
            .enumerate()
            .map(|(i, text)| {
                data_event(
                    &wrap(chunk(&reply, text, &model, i + 1 == n, &response_id)),
                    crlf,
                )
            })
            .collect();
        let failure = data_event(&google_error(500, "fake: the stream failed", None), crlf);
        reply.stream_into(&mut plan, events, failure);
    } else {
        plan.headers.push((
            "content-type".into(),
            "application/json; charset=UTF-8".into(),
        ));
        let whole = if dialect == Dialect::ApiJsonArray {
            let n = reply.deltas.len();
            Value::Array(
                reply
                    .deltas
                    .iter()
                    .enumerate()
                    .map(|(i, text)| chunk(&reply, text, &model, i + 1 == n, &response_id))
                    .collect(),
            )
        } else {
            wrap(chunk(
                &reply,
                &reply.full_text(),
                &model,
                true,
                &response_id,
            ))
        };
        reply.body_into(&mut plan, Bytes::from(whole.to_string()));
    }
    serve_plan(plan, &req.request_id, &shared.cancel).await
}
