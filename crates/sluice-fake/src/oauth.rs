//! A fake of Anthropic's OAuth side for subscription accounts: the PKCE authorize page (which
//! approves at once and redirects back), the hosted callback page that shows `code#state` to
//! paste, the token endpoint (code exchange and refresh), the profile and the usage endpoints.
//!
//! The token endpoint behaves like the real one where it matters to sluice: **refresh tokens
//! rotate** — every refresh answers a new access and refresh token and kills the old refresh
//! token, and presenting a dead one answers `400 invalid_grant`. Issued access tokens become
//! accounts of the fake Messages API (OAuth-style: bearer plus the OAuth beta flag). Tests
//! can make the next token requests fail in the ways that matter: an HTTP error, silence, a
//! connection dropped before the server acted, or one dropped after it rotated the token
//! (the answer lost on the way back).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::accounts::Accounts;
use crate::clock::Clock;

/// `POST` here exchanges codes and refreshes tokens.
pub const TOKEN_PATH: &str = "/v1/oauth/token";
/// `GET` here is the (auto-approving) login page.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// `GET` here is the hosted page a login without a local listener returns to: it shows the
/// `code#state` to paste.
pub const CALLBACK_PATH: &str = "/oauth/code/callback";
/// `GET` here describes the user behind an access token.
pub const PROFILE_PATH: &str = "/api/oauth/profile";
/// `GET` here reports a subscription's 5-hour and 7-day use.
pub const USAGE_PATH: &str = "/api/oauth/usage";

/// Claude Code's public OAuth client id, which the fake expects unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

/// A subscription user of the fake.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthUser {
    pub email: String,
    pub account_uuid: String,
    pub organization_uuid: String,
    /// `"max"` or `"pro"`.
    pub plan: String,
    /// e.g. `"default_claude_max_20x"`.
    pub rate_limit_tier: String,
    /// 5-hour utilization the usage endpoint reports, in percent (0–100).
    pub five_hour_percent: f64,
    /// 7-day utilization the usage endpoint reports, in percent (0–100).
    pub seven_day_percent: f64,
}

impl OAuthUser {
    /// A Max 20x user.
    pub fn max(email: &str) -> OAuthUser {
        OAuthUser {
            email: email.to_owned(),
            account_uuid: format!("uuid-{email}"),
            organization_uuid: format!("org-{email}"),
            plan: "max".to_owned(),
            rate_limit_tier: "default_claude_max_20x".to_owned(),
            five_hour_percent: 0.0,
            seven_day_percent: 0.0,
        }
    }

    /// A Pro user.
    pub fn pro(email: &str) -> OAuthUser {
        OAuthUser {
            plan: "pro".to_owned(),
            rate_limit_tier: "default_claude_pro".to_owned(),
            ..OAuthUser::max(email)
        }
    }
}

/// A freshly issued token pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Epoch milliseconds.
    pub expires_at_ms: i64,
}

/// How the token endpoint answers its next request instead of normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenFault {
    /// Answer this status with this OAuth `error` code, acting on nothing.
    Error { status: u16, error: String },
    /// Close the connection before acting: the refresh token stays valid.
    DropBeforeRotating,
    /// Rotate the refresh token, then close the connection instead of answering: the
    /// client cannot know whether its token is still good (it is not).
    DropAfterRotating,
    /// Hold the request this long, then answer normally.
    Delay(Duration),
}

/// How the usage endpoint answers its next request instead of normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageFault {
    /// 429 with `retry-after`.
    RateLimited { retry_after_secs: u64 },
    /// Any other status.
    Status(u16),
}

#[derive(Debug)]
enum RefreshState {
    Live,
    /// Already exchanged; presenting it again is a reuse.
    Used,
}

#[derive(Debug)]
struct PendingCode {
    challenge: String,
    redirect_uri: String,
    state: String,
    user: String,
}

#[derive(Debug, Default)]
struct Inner {
    users: Vec<OAuthUser>,
    /// Whom the next authorize request logs in.
    login_user: Option<String>,
    codes: HashMap<String, PendingCode>,
    refresh_tokens: HashMap<String, (String, RefreshState)>,
    access_tokens: HashMap<String, String>,
    token_faults: VecDeque<TokenFault>,
    usage_faults: VecDeque<UsageFault>,
    next_serial: u64,
    /// Refresh requests received (whatever became of them).
    refresh_requests: usize,
    /// Refreshes that rotated a token.
    refreshes: usize,
    /// Refresh requests that presented a dead refresh token.
    reuses: usize,
    code_exchanges: usize,
    usage_requests: HashMap<String, usize>,
    profile_requests: usize,
}

/// The OAuth side's state, shared by the server task and the test's handle.
#[derive(Debug)]
pub(crate) struct OAuthServer {
    inner: Mutex<Inner>,
    pub(crate) client_id: Mutex<String>,
    /// Lifetime of issued access tokens.
    pub(crate) access_lifetime: Mutex<Duration>,
    changed: Notify,
}

impl Default for OAuthServer {
    fn default() -> Self {
        OAuthServer {
            inner: Mutex::new(Inner::default()),
            client_id: Mutex::new(DEFAULT_CLIENT_ID.to_owned()),
            access_lifetime: Mutex::new(Duration::from_secs(8 * 60 * 60)),
            changed: Notify::new(),
        }
    }
}

/// What a request to one of the OAuth routes gets back.
pub(crate) enum OAuthAnswer {
    Json {
        status: u16,
        body: Value,
    },
    Redirect(String),
    Text(String),
    RateLimited {
        retry_after_secs: u64,
    },
    /// Drop the connection without an answer.
    Drop,
}

/// Counters a test reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OAuthCounts {
    /// Refresh requests received, whatever became of them.
    pub refresh_requests: usize,
    /// Refreshes that rotated a token.
    pub refreshes: usize,
    /// Refresh requests that presented an already used (dead) refresh token.
    pub reuses: usize,
    pub code_exchanges: usize,
    pub profile_requests: usize,
}

pub(crate) fn is_oauth_route(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (&Method::POST, TOKEN_PATH)
            | (&Method::GET, AUTHORIZE_PATH)
            | (&Method::GET, CALLBACK_PATH)
            | (&Method::GET, PROFILE_PATH)
            | (&Method::GET, USAGE_PATH)
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> OAuthAnswer {
    OAuthAnswer::Json {
        status,
        body: json!({ "error": error, "error_description": description }),
    }
}

fn api_error(status: u16, kind: &str, message: &str) -> OAuthAnswer {
    OAuthAnswer::Json {
        status,
        body: crate::error_kind::error_json(kind, message),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::from_millisecond(epoch_ms(t))
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// `base64url(sha256(verifier))`, without padding: the S256 PKCE challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl OAuthServer {
    /// Add (or replace) a user.
    pub(crate) fn add_user(&self, user: OAuthUser) {
        let mut inner = self.inner.lock();
        inner.users.retain(|u| u.email != user.email);
        if inner.login_user.is_none() {
            inner.login_user = Some(user.email.clone());
        }
        inner.users.push(user);
    }

    pub(crate) fn update_user(&self, email: &str, f: impl FnOnce(&mut OAuthUser)) {
        if let Some(user) = self
            .inner
            .lock()
            .users
            .iter_mut()
            .find(|u| u.email == email)
        {
            f(user);
        }
    }

    pub(crate) fn set_login_user(&self, email: &str) {
        self.inner.lock().login_user = Some(email.to_owned());
    }

    /// Issue a token pair for `email` as if it had logged in earlier.
    pub(crate) fn issue(&self, email: &str, accounts: &Accounts, clock: &Clock) -> IssuedTokens {
        let lifetime = *self.access_lifetime.lock();
        let mut inner = self.inner.lock();
        issue_locked(&mut inner, email, lifetime, accounts, clock)
    }

    pub(crate) fn push_token_faults(&self, faults: impl IntoIterator<Item = TokenFault>) {
        self.inner.lock().token_faults.extend(faults);
    }

    pub(crate) fn push_usage_faults(&self, faults: impl IntoIterator<Item = UsageFault>) {
        self.inner.lock().usage_faults.extend(faults);
    }

    pub(crate) fn counts(&self) -> OAuthCounts {
        let inner = self.inner.lock();
        OAuthCounts {
            refresh_requests: inner.refresh_requests,
            refreshes: inner.refreshes,
            reuses: inner.reuses,
            code_exchanges: inner.code_exchanges,
            profile_requests: inner.profile_requests,
        }
    }

    pub(crate) fn usage_requests(&self, email: &str) -> usize {
        self.inner
            .lock()
            .usage_requests
            .get(email)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn is_refresh_token_live(&self, token: &str) -> bool {
        matches!(
            self.inner.lock().refresh_tokens.get(token),
            Some((_, RefreshState::Live))
        )
    }

    /// Wait until `pred` holds for the counts; false on timeout.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&OAuthCounts) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if pred(&self.counts()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&self.counts());
            }
        }
    }

    pub(crate) async fn handle(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &Bytes,
        accounts: &Accounts,
        clock: &Clock,
    ) -> OAuthAnswer {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let answer = match (method, path) {
            (&Method::POST, TOKEN_PATH) => self.token(body, accounts, clock).await,
            (&Method::GET, AUTHORIZE_PATH) => self.authorize(path_and_query),
            (&Method::GET, CALLBACK_PATH) => hosted_callback(path_and_query),
            (&Method::GET, PROFILE_PATH) => self.profile(headers),
            (&Method::GET, USAGE_PATH) => self.usage(headers, clock),
            _ => api_error(404, "not_found_error", "fake: no such OAuth route"),
        };
        self.changed.notify_waiters();
        answer
    }

    fn authorize(&self, path_and_query: &str) -> OAuthAnswer {
        let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        if get("client_id") != self.client_id.lock().as_str() {
            return oauth_error(400, "invalid_client", "fake: unknown client_id");
        }
        if get("response_type") != "code" || get("code_challenge_method") != "S256" {
            return oauth_error(
                400,
                "invalid_request",
                "fake: expected response_type=code and code_challenge_method=S256",
            );
        }
        if get("code_challenge").is_empty() || get("state").is_empty() {
            return oauth_error(400, "invalid_request", "fake: missing challenge or state");
        }
        let redirect_uri = get("redirect_uri").to_owned();
        let Ok(redirect) = url::Url::parse(&redirect_uri) else {
            return oauth_error(400, "invalid_request", "fake: bad redirect_uri");
        };
        let mut inner = self.inner.lock();
        let Some(user) = inner.login_user.clone() else {
            return oauth_error(400, "access_denied", "fake: nobody to log in");
        };
        inner.next_serial += 1;
        let code = format!("fake-code-{}", inner.next_serial);
        let state = get("state").to_owned();
        inner.codes.insert(
            code.clone(),
            PendingCode {
                challenge: get("code_challenge").to_owned(),
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                user,
            },
        );
        // The user approves at once; the browser goes back to the redirect URI.
        let mut target = redirect;
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
        OAuthAnswer::Redirect(target.to_string())
    }

    async fn token(&self, body: &Bytes, accounts: &Accounts, clock: &Clock) -> OAuthAnswer {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return oauth_error(400, "invalid_request", "fake: body must be JSON");
        };
        let field = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or_default();
        if field("client_id") != self.client_id.lock().as_str() {
            return oauth_error(401, "invalid_client", "fake: unknown client_id");
        }
        match field("grant_type") {
            "refresh_token" => {
                let fault = {
                    let mut inner = self.inner.lock();
                    inner.refresh_requests += 1;
                    inner.token_faults.pop_front()
                };
                let rotate_then_drop = match fault {
                    None => false,
                    Some(TokenFault::Error { status, error }) => {
                        return oauth_error(status, &error, "fake: scripted failure");
                    }
                    Some(TokenFault::DropBeforeRotating) => return OAuthAnswer::Drop,
                    Some(TokenFault::DropAfterRotating) => true,
                    Some(TokenFault::Delay(delay)) => {
                        tokio::time::sleep(delay).await;
                        false
                    }
                };
                let answer = self.refresh(field("refresh_token"), accounts, clock);
                if rotate_then_drop {
                    return OAuthAnswer::Drop;
                }
                answer
            }
            "authorization_code" => self.exchange(&request, accounts, clock),
            _ => oauth_error(
                400,
                "unsupported_grant_type",
                "fake: grant_type must be authorization_code or refresh_token",
            ),
        }
    }

    fn refresh(&self, token: &str, accounts: &Accounts, clock: &Clock) -> OAuthAnswer {
        let lifetime = *self.access_lifetime.lock();
        let mut inner = self.inner.lock();
        let user = match inner.refresh_tokens.get_mut(token) {
            Some((user, state @ RefreshState::Live)) => {
                *state = RefreshState::Used;
                user.clone()
            }
            Some((_, RefreshState::Used)) => {
                inner.reuses += 1;
                return oauth_error(
                    400,
                    "invalid_grant",
                    "fake: refresh token already used (rotated)",
                );
            }
            None => {
                return oauth_error(400, "invalid_grant", "fake: unknown refresh token");
            }
        };
        inner.refreshes += 1;
        let issued = issue_locked(&mut inner, &user, lifetime, accounts, clock);
        token_answer(&inner, &user, &issued, clock)
    }

    fn exchange(&self, request: &Value, accounts: &Accounts, clock: &Clock) -> OAuthAnswer {
        let field = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or_default();
        let lifetime = *self.access_lifetime.lock();
        let mut inner = self.inner.lock();
        inner.code_exchanges += 1;
        let Some(pending) = inner.codes.remove(field("code")) else {
            return oauth_error(400, "invalid_grant", "fake: unknown or used code");
        };
        if pending.redirect_uri != field("redirect_uri") {
            return oauth_error(400, "invalid_grant", "fake: redirect_uri does not match");
        }
        if pending.state != field("state") {
            return oauth_error(400, "invalid_grant", "fake: state does not match");
        }
        if pkce_challenge(field("code_verifier")) != pending.challenge {
            return oauth_error(400, "invalid_grant", "fake: code_verifier does not match");
        }
        let issued = issue_locked(&mut inner, &pending.user, lifetime, accounts, clock);
        token_answer(&inner, &pending.user, &issued, clock)
    }

    fn user_of(&self, headers: &HeaderMap) -> Option<OAuthUser> {
        let token = bearer(headers)?;
        let inner = self.inner.lock();
        let email = inner.access_tokens.get(token)?;
        inner.users.iter().find(|u| &u.email == email).cloned()
    }

    fn profile(&self, headers: &HeaderMap) -> OAuthAnswer {
        self.inner.lock().profile_requests += 1;
        let Some(user) = self.user_of(headers) else {
            return api_error(401, "authentication_error", "fake: invalid bearer token");
        };
        OAuthAnswer::Json {
            status: 200,
            body: json!({
                "account": {
                    "uuid": user.account_uuid,
                    "email": user.email,
                    "display_name": user.email.split('@').next(),
                    "has_claude_max": user.plan == "max",
                    "has_claude_pro": user.plan == "pro",
                },
                "organization": {
                    "uuid": user.organization_uuid,
                    "name": format!("{}'s Organization", user.email),
                    "organization_type": format!("claude_{}", user.plan),
                    "rate_limit_tier": user.rate_limit_tier,
                },
            }),
        }
    }

    fn usage(&self, headers: &HeaderMap, clock: &Clock) -> OAuthAnswer {
        let has_beta = headers
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|flag| flag.trim() == crate::handler::OAUTH_BETA);
        let Some(user) = self.user_of(headers).filter(|_| has_beta) else {
            return api_error(401, "authentication_error", "fake: invalid bearer token");
        };
        let fault = {
            let mut inner = self.inner.lock();
            *inner.usage_requests.entry(user.email.clone()).or_default() += 1;
            inner.usage_faults.pop_front()
        };
        match fault {
            Some(UsageFault::RateLimited { retry_after_secs }) => {
                return OAuthAnswer::RateLimited { retry_after_secs };
            }
            Some(UsageFault::Status(status)) => {
                return api_error(status, "api_error", "fake: scripted usage failure");
            }
            None => {}
        }
        let now = clock.now();
        OAuthAnswer::Json {
            status: 200,
            body: json!({
                "five_hour": {
                    "utilization": user.five_hour_percent,
                    "resets_at": rfc3339(now + Duration::from_secs(3 * 60 * 60)),
                },
                "seven_day": {
                    "utilization": user.seven_day_percent,
                    "resets_at": rfc3339(now + Duration::from_secs(4 * 24 * 60 * 60)),
                },
                "seven_day_opus": null,
                "extra_usage": { "is_enabled": false, "monthly_limit": null, "used_credits": null, "utilization": null },
            }),
        }
    }
}

/// The hosted callback page: shows what to paste.
fn hosted_callback(path_and_query: &str) -> OAuthAnswer {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    match (params.get("code"), params.get("state")) {
        (Some(code), Some(state)) => OAuthAnswer::Text(format!("{code}#{state}")),
        _ => oauth_error(
            400,
            "invalid_request",
            "fake: the callback needs code and state",
        ),
    }
}

fn issue_locked(
    inner: &mut Inner,
    email: &str,
    lifetime: Duration,
    accounts: &Accounts,
    clock: &Clock,
) -> IssuedTokens {
    inner.next_serial += 1;
    let serial = inner.next_serial;
    let access_token = format!("sk-ant-oat01-fake-{serial:06}");
    let refresh_token = format!("sk-ant-ort01-fake-{serial:06}");
    inner
        .access_tokens
        .insert(access_token.clone(), email.to_owned());
    inner.refresh_tokens.insert(
        refresh_token.clone(),
        (email.to_owned(), RefreshState::Live),
    );
    // The new access token works on the Messages API, OAuth-style.
    accounts.upsert(&access_token, |a| a.require_oauth_beta = true);
    IssuedTokens {
        access_token,
        refresh_token,
        expires_at_ms: epoch_ms(clock.now() + lifetime),
    }
}

fn token_answer(inner: &Inner, email: &str, issued: &IssuedTokens, clock: &Clock) -> OAuthAnswer {
    let user = inner.users.iter().find(|u| u.email == email);
    let expires_in = ((issued.expires_at_ms - epoch_ms(clock.now())) / 1000).max(0);
    OAuthAnswer::Json {
        status: 200,
        body: json!({
            "token_type": "Bearer",
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_in": expires_in,
            "scope": "user:inference user:profile user:sessions:claude_code",
            "account": user.map(|u| json!({ "uuid": u.account_uuid, "email_address": u.email })),
            "organization": user.map(|u| json!({ "uuid": u.organization_uuid })),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s256_challenge_matches_rfc_7636() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
