//! `FakeCodex`: a fake ChatGPT-account Codex upstream (`chatgpt.com/backend-api`) and its
//! OAuth token endpoint (`auth.openai.com/oauth/token`), on one port.
//!
//! - `POST {base_path}/responses` (default base `/backend-api/codex`): the Responses API,
//!   streamed as real Responses SSE when the body says `"stream": true`. Requires
//!   `authorization: Bearer <access token>` (401 otherwise) and `chatgpt-account-id` naming
//!   the account that token belongs to (403 otherwise). Every answer of an account with a
//!   [`CodexQuota`] carries `x-codex-{primary,secondary}-*` headers; a scripted 429 is
//!   `usage_limit_reached` with `resets_at` and `resets_in_seconds`.
//! - `GET /backend-api/wham/usage`: the account's usage, without spending it.
//! - `POST /oauth/token`: `grant_type=refresh_token` (JSON or form). Refresh tokens rotate:
//!   each use answers a new access token, a new refresh token and an `id_token` whose claims
//!   name the account and plan; using a spent refresh token again answers 401
//!   `refresh_token_reused` and revokes the family (its newest token then answers
//!   `refresh_token_invalidated`). `grant_type=authorization_code` completes a login.
//! - `GET /oauth/authorize`: a login page that approves at once as the account chosen with
//!   [`FakeCodex::set_login_account`] and sends the browser back to `redirect_uri` with a
//!   code (PKCE S256 checked at the exchange).
//!
//! Accounts are identified by their ChatGPT account id; replies are scripted per account
//! like [`crate::FakeAnthropic`]'s, and every request is recorded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
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
use crate::responses_wire::{
    ResponseIds, failed_event, response_object, stream_events, wants_stream,
};
use crate::wire::{
    ApiRequest, PendingLogin, approve_login, bearer, json as json_response, read_and_record,
    serve_plan, token_fields,
};

/// The path the Codex CLI's built-in provider uses; `responses` hangs below it.
pub const DEFAULT_CODEX_BASE_PATH: &str = "/backend-api/codex";
/// Lifetime of the access tokens the token endpoint issues.
pub const CODEX_ACCESS_TOKEN_SECS: u64 = 3600;

/// How to start a [`FakeCodex`].
#[derive(Debug, Clone)]
pub struct FakeCodexConfig {
    pub addr: SocketAddr,
    /// Where `/responses` lives (`/backend-api/codex`, or e.g. `""` or `/v1`).
    pub base_path: String,
    pub clock: Clock,
    pub max_recorded_requests: usize,
}

impl Default for FakeCodexConfig {
    fn default() -> Self {
        FakeCodexConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            base_path: DEFAULT_CODEX_BASE_PATH.to_owned(),
            clock: Clock::system(),
            max_recorded_requests: crate::DEFAULT_MAX_RECORDED_REQUESTS,
        }
    }
}

/// One Codex usage window.
#[derive(Debug, Clone, PartialEq)]
pub struct CodexWindow {
    /// Percent used, 0–100.
    pub used_percent: f64,
    pub window_minutes: u64,
    /// Seconds until the window resets.
    pub reset_after_seconds: u64,
}

/// An account's Codex usage: the 5-hour (primary) and weekly (secondary) windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CodexQuota {
    pub primary: Option<CodexWindow>,
    pub secondary: Option<CodexWindow>,
}

impl CodexQuota {
    /// A 5-hour window at `primary` % and a weekly one at `secondary` %, resetting in an hour
    /// and a day.
    pub fn used(primary: f64, secondary: f64) -> CodexQuota {
        CodexQuota {
            primary: Some(CodexWindow {
                used_percent: primary,
                window_minutes: 300,
                reset_after_seconds: 3600,
            }),
            secondary: Some(CodexWindow {
                used_percent: secondary,
                window_minutes: 10_080,
                reset_after_seconds: 86_400,
            }),
        }
    }

    fn headers(&self, now_secs: u64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, window) in [("primary", &self.primary), ("secondary", &self.secondary)] {
            let Some(w) = window else { continue };
            out.push((
                format!("x-codex-{name}-used-percent"),
                w.used_percent.to_string(),
            ));
            out.push((
                format!("x-codex-{name}-window-minutes"),
                w.window_minutes.to_string(),
            ));
            out.push((
                format!("x-codex-{name}-reset-after-seconds"),
                w.reset_after_seconds.to_string(),
            ));
            out.push((
                format!("x-codex-{name}-reset-at"),
                (now_secs + w.reset_after_seconds).to_string(),
            ));
        }
        out
    }

    fn usage_json(&self, plan: &str, now_secs: u64) -> Value {
        let window = |w: &Option<CodexWindow>| match w {
            Some(w) => json!({
                "used_percent": w.used_percent.round() as i64,
                "limit_window_seconds": w.window_minutes * 60,
                "reset_after_seconds": w.reset_after_seconds,
                "reset_at": now_secs + w.reset_after_seconds,
            }),
            None => Value::Null,
        };
        let reached = [&self.primary, &self.secondary]
            .iter()
            .any(|w| w.as_ref().is_some_and(|w| w.used_percent >= 100.0));
        json!({
            "plan_type": plan,
            "rate_limit": {
                "allowed": !reached,
                "limit_reached": reached,
                "primary_window": window(&self.primary),
                "secondary_window": window(&self.secondary),
            },
            "credits": {"has_credits": false, "unlimited": false, "balance": null},
        })
    }
}

#[derive(Debug)]
struct CodexAccount {
    script: VecDeque<ApiReply>,
    default: ApiReply,
    quota: Option<CodexQuota>,
    plan: String,
}

impl Default for CodexAccount {
    fn default() -> Self {
        CodexAccount {
            script: VecDeque::new(),
            default: ApiReply::ok(),
            quota: None,
            plan: "plus".to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct RefreshTokens {
    /// Live refresh token → account.
    live: HashMap<String, String>,
    /// Spent refresh token → account (reusing one revokes the account's family).
    spent: HashMap<String, String>,
    revoked: HashSet<String>,
    /// Statuses the next refreshes answer with instead of rotating.
    failures: VecDeque<u16>,
    issued: u64,
    /// Who the login page logs in, and the codes it handed out.
    login_account: Option<String>,
    codes: HashMap<String, (String, PendingLogin)>,
    logins: u64,
}

#[derive(Debug)]
struct Shared {
    accounts: Mutex<HashMap<String, CodexAccount>>,
    /// Access token → account id.
    tokens: Mutex<HashMap<String, String>>,
    refresh: Mutex<RefreshTokens>,
    log: RequestLog,
    clock: Clock,
    base_path: String,
    cancel: CancellationToken,
}

/// A fake Codex upstream. Dropping it (or [`FakeCodex::shutdown`]) stops it.
#[derive(Debug)]
pub struct FakeCodex {
    running: Running,
    shared: Arc<Shared>,
}

impl FakeCodex {
    /// Bind and serve. Must be called from within a tokio runtime.
    pub fn start(config: FakeCodexConfig) -> io::Result<FakeCodex> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            accounts: Mutex::default(),
            tokens: Mutex::default(),
            refresh: Mutex::default(),
            log: RequestLog::new(config.max_recorded_requests),
            clock: config.clock,
            base_path: config.base_path.trim_end_matches('/').to_owned(),
            cancel: cancel.clone(),
        });
        let handler = handler(shared.clone(), |shared, req| async move {
            handle(&shared, req).await
        });
        let running = Running::start(config.addr, cancel, handler, "codex")?;
        Ok(FakeCodex { running, shared })
    }

    /// Start with the default configuration.
    pub fn new() -> io::Result<FakeCodex> {
        FakeCodex::start(FakeCodexConfig::default())
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// The base an account's requests go to: `origin + base_path` (`…/backend-api/codex`).
    pub fn base_url(&self) -> String {
        format!("{}{}", self.origin(), self.shared.base_path)
    }

    /// The usage endpoint (`…/backend-api/wham/usage`).
    pub fn usage_url(&self) -> String {
        format!("{}/backend-api/wham/usage", self.origin())
    }

    /// The OAuth token endpoint (`…/oauth/token`).
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.origin())
    }

    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Make account `account_id` known, with `access_token` valid for it.
    pub fn add_account(&self, account_id: &str, access_token: &str) {
        self.shared
            .accounts
            .lock()
            .entry(account_id.to_owned())
            .or_default();
        self.shared
            .tokens
            .lock()
            .insert(access_token.to_owned(), account_id.to_owned());
    }

    /// The account's plan (`plus`, `pro`, …) as its id token and usage report it.
    pub fn set_plan(&self, account_id: &str, plan: &str) {
        self.with(account_id, |a| a.plan = plan.to_owned());
    }

    /// Append replies to the account's script; each `/responses` request consumes one.
    pub fn script<I: IntoIterator<Item = ApiReply>>(&self, account_id: &str, replies: I) {
        self.with(account_id, |a| a.script.extend(replies));
    }

    /// The reply used when the script is empty.
    pub fn set_default(&self, account_id: &str, reply: ApiReply) {
        self.with(account_id, |a| a.default = reply);
    }

    /// The account's quota headers and usage report.
    pub fn set_quota(&self, account_id: &str, quota: CodexQuota) {
        self.with(account_id, |a| a.quota = Some(quota));
    }

    /// Make `refresh_token` the live refresh token of the account's token family.
    pub fn set_refresh_token(&self, account_id: &str, refresh_token: &str) {
        self.with(account_id, |_| ());
        self.shared
            .refresh
            .lock()
            .live
            .insert(refresh_token.to_owned(), account_id.to_owned());
    }

    /// The live refresh token of the account, if its family is alive.
    pub fn live_refresh_token(&self, account_id: &str) -> Option<String> {
        self.shared
            .refresh
            .lock()
            .live
            .iter()
            .find(|(_, a)| *a == account_id)
            .map(|(t, _)| t.clone())
    }

    /// Answer the next refreshes with these statuses (5xx: a transient failure that rotates
    /// nothing) before rotating again.
    pub fn fail_refreshes<I: IntoIterator<Item = u16>>(&self, statuses: I) {
        self.shared.refresh.lock().failures.extend(statuses);
    }

    /// How many successful refreshes the token endpoint has made (logins included).
    pub fn refreshes(&self) -> u64 {
        self.shared.refresh.lock().issued
    }

    /// The account the login page logs in as (it must exist: [`FakeCodex::add_account`]).
    pub fn set_login_account(&self, account_id: &str) {
        self.with(account_id, |_| ());
        self.shared.refresh.lock().login_account = Some(account_id.to_owned());
    }

    /// How many logins completed (codes exchanged).
    pub fn logins(&self) -> u64 {
        self.shared.refresh.lock().logins
    }

    /// Whether `refresh_token` is live (not spent, not revoked).
    pub fn is_refresh_token_live(&self, refresh_token: &str) -> bool {
        self.shared.refresh.lock().live.contains_key(refresh_token)
    }

    /// The OAuth authorization page (`…/oauth/authorize`).
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.origin())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// The requests made for account `account_id` (by its `chatgpt-account-id` header).
    pub fn requests_for(&self, account_id: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("chatgpt-account-id") == Some(account_id))
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

    fn with<R>(&self, account_id: &str, f: impl FnOnce(&mut CodexAccount) -> R) -> R {
        f(self
            .shared
            .accounts
            .lock()
            .entry(account_id.to_owned())
            .or_default())
    }
}

fn detail(status: u16, request_id: &str, message: &str) -> Response<FakeBody> {
    json_response(status, request_id, &[], &json!({"detail": message}))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> io::Result<Response<FakeBody>> {
    let req = read_and_record(&shared.log, shared.clock.now(), "codex", req, |h, _| {
        bearer(h)
    })
    .await?;
    let responses = format!("{}/responses", shared.base_path);
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/oauth/token") => Ok(token(shared, &req)),
        (&Method::GET, "/oauth/authorize") => Ok(login_page(shared, &req)),
        (&Method::GET, "/backend-api/wham/usage") => Ok(usage(shared, &req)),
        (&Method::POST, path) if path == responses => responses_call(shared, &req).await,
        _ => Ok(detail(404, &req.request_id, "Not Found")),
    }
}

/// The account a request may act for, or the refusal.
fn authorize(shared: &Shared, req: &ApiRequest) -> Result<String, Box<Response<FakeBody>>> {
    let Some(token) = bearer(&req.headers) else {
        return Err(Box::new(detail(
            401,
            &req.request_id,
            "fake: missing bearer token",
        )));
    };
    let Some(owner) = shared.tokens.lock().get(&token).cloned() else {
        return Err(Box::new(detail(
            401,
            &req.request_id,
            "fake: invalid or expired access token",
        )));
    };
    match req.header("chatgpt-account-id") {
        Some(account) if account == owner => Ok(owner),
        Some(_) => Err(Box::new(detail(
            403,
            &req.request_id,
            "fake: the token does not belong to this chatgpt-account-id",
        ))),
        None => Err(Box::new(detail(
            403,
            &req.request_id,
            "fake: chatgpt-account-id header is required",
        ))),
    }
}

fn usage(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let account = match authorize(shared, req) {
        Ok(account) => account,
        Err(refusal) => return *refusal,
    };
    let (quota, plan) = shared
        .accounts
        .lock()
        .get(&account)
        .map(|a| (a.quota.clone().unwrap_or_default(), a.plan.clone()))
        .unwrap_or_default();
    json_response(
        200,
        &req.request_id,
        &[],
        &quota.usage_json(&plan, shared.clock.epoch_secs()),
    )
}

async fn responses_call(shared: &Shared, req: &ApiRequest) -> io::Result<Response<FakeBody>> {
    let account = match authorize(shared, req) {
        Ok(account) => account,
        Err(refusal) => return Ok(*refusal),
    };
    let body = req.json();
    if !body.is_object() {
        return Ok(json_response(
            400,
            &req.request_id,
            &[],
            &json!({"error": {"type": "invalid_request_error", "message": "fake: the body must be a JSON object"}}),
        ));
    }
    let (reply, quota, plan) = {
        let mut accounts = shared.accounts.lock();
        let a = accounts.entry(account.clone()).or_default();
        let reply = a.script.pop_front().unwrap_or_else(|| a.default.clone());
        (reply, a.quota.clone(), a.plan.clone())
    };
    let now = shared.clock.epoch_secs();
    let mut plan_out = reply.base_plan();
    plan_out.headers = quota.map(|q| q.headers(now)).unwrap_or_default();
    plan_out.headers.extend(reply.headers.iter().cloned());
    if let Some((status, override_body)) = reply.error() {
        plan_out.status = status;
        let secs = reply.reset_secs();
        let error = match status {
            429 => json!({"error": {
                "type": reply.code.as_deref().unwrap_or("usage_limit_reached"),
                "message": "The usage limit has been reached",
                "plan_type": plan,
                "resets_at": now + secs,
                "resets_in_seconds": secs,
            }}),
            401 => json!({"detail": "Unauthorized"}),
            500..=599 => json!({"error": {
                "type": "server_error",
                "code": reply.code.as_deref().unwrap_or(if status == 503 { "server_is_overloaded" } else { "server_error" }),
                "message": "fake: the server had an error",
            }}),
            _ => json!({"error": {
                "type": "invalid_request_error",
                "code": reply.code,
                "message": "fake: invalid request",
            }}),
        };
        plan_out
            .headers
            .push(("content-type".into(), "application/json".into()));
        if status == 429 {
            plan_out
                .headers
                .push(("retry-after".into(), secs.to_string()));
        }
        plan_out.frames = vec![
            override_body
                .cloned()
                .unwrap_or_else(|| Bytes::from(error.to_string())),
        ];
        return serve_plan(plan_out, &req.request_id, &shared.cancel).await;
    }
    let model = reply
        .model_for(body.get("model").and_then(Value::as_str), "gpt-5")
        .to_owned();
    let response_id = format!(
        "resp_fake_{}",
        req.request_id.trim_start_matches("req_codex_")
    );
    let ids = ResponseIds {
        response_id: &response_id,
        item_id: "msg_fake_0001",
        model: &model,
        created_at: now,
    };
    if wants_stream(&body) {
        plan_out.headers.push((
            "content-type".into(),
            "text/event-stream; charset=utf-8".into(),
        ));
        let events = stream_events(&reply, &ids);
        let failure = failed_event(&reply, &ids, events.len());
        reply.stream_into(&mut plan_out, events, failure);
    } else {
        plan_out
            .headers
            .push(("content-type".into(), "application/json".into()));
        let object = response_object(&reply, &ids, "completed");
        reply.body_into(&mut plan_out, Bytes::from(object.to_string()));
    }
    serve_plan(plan_out, &req.request_id, &shared.cancel).await
}

fn token_error(status: u16, request_id: &str, code: &str, message: &str) -> Response<FakeBody> {
    json_response(
        status,
        request_id,
        &[],
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

fn login_page(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let mut refresh = shared.refresh.lock();
    let Some(account) = refresh.login_account.clone() else {
        return token_error(
            400,
            &req.request_id,
            "access_denied",
            "fake: nobody to log in",
        );
    };
    refresh.issued += 1;
    let serial = refresh.issued;
    match approve_login(req, serial) {
        Ok((code, pending, redirect)) => {
            refresh.codes.insert(code, (account, pending));
            redirect
        }
        Err(refusal) => *refusal,
    }
}

/// Issue a new token family member for `account`: access, refresh and id tokens.
fn issue(shared: &Shared, refresh: &mut RefreshTokens, account: &str) -> Value {
    refresh.issued += 1;
    let n = refresh.issued;
    let new_refresh = format!("codex-rt-{account}-{n}");
    let new_access = format!("codex-at-{account}-{n}");
    refresh.live.insert(new_refresh.clone(), account.to_owned());
    shared
        .tokens
        .lock()
        .insert(new_access.clone(), account.to_owned());
    let plan = shared
        .accounts
        .lock()
        .get(account)
        .map_or_else(|| "plus".to_owned(), |a| a.plan.clone());
    let now = shared.clock.epoch_secs();
    json!({
        "id_token": id_token(account, &plan, now),
        "access_token": new_access,
        "refresh_token": new_refresh,
        "expires_in": CODEX_ACCESS_TOKEN_SECS,
        "token_type": "Bearer",
    })
}

fn token(shared: &Shared, req: &ApiRequest) -> Response<FakeBody> {
    let fields = token_fields(req);
    let field = |k: &str| fields.get(k).map(String::as_str);
    if field("grant_type") == Some("authorization_code") {
        let mut refresh = shared.refresh.lock();
        let pending = field("code").and_then(|code| refresh.codes.remove(code));
        return match pending {
            Some((account, pending)) if pending.matches(&fields) => {
                refresh.logins += 1;
                let answer = issue(shared, &mut refresh, &account);
                json_response(200, &req.request_id, &[], &answer)
            }
            _ => json_response(
                400,
                &req.request_id,
                &[],
                &json!({"error": "invalid_grant", "error_description": "fake: unknown code, or the verifier or redirect does not match"}),
            ),
        };
    }
    if field("grant_type") != Some("refresh_token") {
        return token_error(
            400,
            &req.request_id,
            "unsupported_grant_type",
            "fake: only refresh_token and authorization_code are supported",
        );
    }
    let Some(presented) = field("refresh_token") else {
        return token_error(
            400,
            &req.request_id,
            "invalid_request",
            "fake: refresh_token is required",
        );
    };
    let mut refresh = shared.refresh.lock();
    if let Some(status) = refresh.failures.pop_front() {
        return token_error(
            status,
            &req.request_id,
            "server_error",
            "fake: token endpoint failure",
        );
    }
    if let Some(account) = refresh.live.remove(presented) {
        refresh.spent.insert(presented.to_owned(), account.clone());
        let answer = issue(shared, &mut refresh, &account);
        return json_response(200, &req.request_id, &[], &answer);
    }
    if let Some(account) = refresh.spent.get(presented).cloned() {
        // A spent token used again: the whole family dies.
        let family: Vec<String> = refresh
            .live
            .iter()
            .filter(|(_, a)| **a == account)
            .map(|(t, _)| t.clone())
            .collect();
        for token in family {
            refresh.live.remove(&token);
            refresh.revoked.insert(token);
        }
        return token_error(
            401,
            &req.request_id,
            "refresh_token_reused",
            "Your refresh token has already been used to generate a new access token. Please try signing in again.",
        );
    }
    if refresh.revoked.contains(presented) {
        return token_error(
            401,
            &req.request_id,
            "refresh_token_invalidated",
            "Your refresh token has been invalidated. Please try signing in again.",
        );
    }
    json_response(
        400,
        &req.request_id,
        &[],
        &json!({"error": "invalid_grant", "error_description": "fake: unknown refresh token"}),
    )
}

/// An unsigned-in-spirit JWT with the claims Codex reads: the account id and plan.
pub fn id_token(account_id: &str, plan: &str, now_secs: u64) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "fake"});
    let claims = json!({
        "iss": "https://auth.openai.com",
        "aud": ["app_EMoamEEZ73f0CkXaXp7hrann"],
        "email": format!("{account_id}@fake.test"),
        "iat": now_secs,
        "exp": now_secs + CODEX_ACCESS_TOKEN_SECS,
        "https://api.openai.com/auth": {
            "chatgpt_account_id": account_id,
            "chatgpt_plan_type": plan,
            "chatgpt_user_id": format!("user-{account_id}"),
        },
    });
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("fake-signature")
    )
}
