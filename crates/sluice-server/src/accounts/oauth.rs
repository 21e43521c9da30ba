//! OAuth from the client side. The token endpoint client is shared by every provider
//! ([`TokenServer`]: Anthropic and OpenAI take JSON, Google form-encoded bodies with its
//! installed-app secret); the rest is Anthropic's: the PKCE login URL, the profile and the
//! usage of a subscription. Codex's and Google's own calls are in [`super::chatgpt`] and
//! [`super::google`].
//!
//! Every URL comes from `[providers.*]`, so tests point them at the fakes. The token
//! calls sort their failures by what they mean for a rotating refresh token: never sent
//! ([`TokenError::Unreached`], safe to send again), refused for good ([`TokenError::Dead`]: a
//! new login is needed), refused without acting ([`TokenError::Refused`]), or unknown
//! ([`TokenError::Ambiguous`]: the token may already have been rotated away, so it is not
//! sent again lightly). Error texts carry status codes and OAuth error codes, never a token.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use sluice_config::{AnthropicEndpoints, Config, ProviderKind, Secret};
use sluice_scheduler::headers::parse_reset;
use sluice_scheduler::{QuotaObservation, Timestamp};
use sluice_store::{OAuthTokens, Profile};
use url::Url;

use crate::provider::anthropic::OAUTH_BETA;

/// The scopes a Claude Code login asks for.
pub const SCOPES: &str = "org:create_api_key user:profile user:inference user:sessions:claude_code";

/// Longest wait for the token endpoint, from sending to the last byte of the answer.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for the profile and usage endpoints.
const INFO_TIMEOUT: Duration = Duration::from_secs(20);

/// OAuth error codes that mean the grant is dead: only a new login helps.
const DEAD_GRANT: &[&str] = &[
    "invalid_grant",
    "invalid_token",
    "unauthorized_client",
    "access_denied",
    "refresh_token_reused",
    "refresh_token_expired",
    "token_expired",
    "token_revoked",
];

/// A PKCE verifier and its S256 challenge, plus the login's `state`.
pub struct Pkce {
    pub verifier: Secret<String>,
    pub challenge: String,
    pub state: String,
}

impl Pkce {
    /// Fresh random values from the system's secure generator.
    pub fn generate() -> Pkce {
        let verifier = random_urlsafe(32);
        let challenge = challenge_of(&verifier);
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
            state: random_urlsafe(32),
        }
    }
}

fn random_urlsafe(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// `base64url(sha256(verifier))` without padding.
pub fn challenge_of(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The login page URL for a PKCE login that returns to `redirect_uri`.
pub fn authorize_url(endpoints: &AnthropicEndpoints, redirect_uri: &str, pkce: &Pkce) -> Url {
    let mut url = endpoints.authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("code", "true")
        .append_pair("client_id", &endpoints.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &pkce.state);
    url
}

/// A token endpoint and how it wants to be spoken to.
#[derive(Clone, Debug)]
pub struct TokenServer {
    pub url: Url,
    pub client_id: String,
    /// Google's installed-app clients send their (public) secret too.
    pub client_secret: Option<Secret<String>>,
    /// Google takes form-encoded bodies; Anthropic and OpenAI take JSON.
    pub form: bool,
    /// Scope sent along with a refresh (OpenAI's token endpoint wants one).
    pub refresh_scope: Option<&'static str>,
}

impl TokenServer {
    pub fn anthropic(endpoints: &AnthropicEndpoints) -> TokenServer {
        TokenServer {
            url: endpoints.token_url.clone(),
            client_id: endpoints.client_id.clone(),
            client_secret: None,
            form: false,
            refresh_scope: None,
        }
    }

    pub fn codex(endpoints: &sluice_config::CodexEndpoints) -> TokenServer {
        TokenServer {
            url: endpoints.token_url.clone(),
            client_id: endpoints.client_id.clone(),
            client_secret: None,
            form: false,
            refresh_scope: Some("openid profile email"),
        }
    }

    pub fn google(endpoints: &sluice_config::GeminiEndpoints) -> TokenServer {
        TokenServer {
            url: endpoints.token_url.clone(),
            client_id: endpoints.client_id.clone(),
            client_secret: Some(endpoints.client_secret.clone()),
            form: true,
            refresh_scope: None,
        }
    }

    /// The token server of `provider`'s logins; `None` for providers that only take keys.
    pub fn of(config: &Config, provider: ProviderKind) -> Option<TokenServer> {
        match provider {
            ProviderKind::Anthropic => Some(TokenServer::anthropic(&config.providers.anthropic)),
            ProviderKind::Codex => Some(TokenServer::codex(&config.providers.codex)),
            ProviderKind::Gemini => Some(TokenServer::google(&config.providers.gemini)),
            ProviderKind::AnthropicCompatible | ProviderKind::OpenAI => None,
        }
    }
}

/// What the token endpoint granted.
pub struct TokenGrant {
    pub access_token: Secret<String>,
    /// Absent when the server did not rotate; the old refresh token then stays valid.
    pub refresh_token: Option<Secret<String>>,
    pub expires_in: Option<Duration>,
    /// OpenID Connect's identity token (OpenAI, Google), whose claims name the account.
    pub id_token: Option<Secret<String>>,
}

impl TokenGrant {
    /// The tokens to keep, given when the grant arrived and the refresh token it replaces.
    pub fn into_tokens(self, now: Timestamp, previous: Option<&Secret<String>>) -> OAuthTokens {
        OAuthTokens {
            access_token: self.access_token,
            refresh_token: self.refresh_token.or_else(|| previous.cloned()),
            expires_at_ms: self.expires_in.map(|d| (now + d).as_millis()),
        }
    }
}

/// How a token request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Never reached the token server (DNS, TCP or TLS failed): safe to send again.
    #[error("could not reach the token server")]
    Unreached,
    /// Refused for good (`invalid_grant` and kin): only a new login helps.
    #[error("the token server refused the grant ({code})")]
    Dead { code: String },
    /// The token server answered an error without acting on the grant.
    #[error("the token server answered HTTP {status}{}", .code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused {
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The request may have reached the token server, and no usable answer came back.
    #[error("no usable answer from the token server ({0})")]
    Ambiguous(&'static str),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<f64>,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<serde_json::Value>,
}

/// An OAuth error code from an error body, if it looks like one (short, lower-case words);
/// anything else is not repeated anywhere.
fn error_code(body: &[u8]) -> Option<String> {
    let parsed: OAuthErrorBody = serde_json::from_slice(body).ok()?;
    let plausible = |code: &str| {
        !code.is_empty()
            && code.len() <= 48
            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    let code = match parsed.error? {
        serde_json::Value::String(code) => code,
        // OpenAI style {"error": {"code": …, "type": …}} names the precise reason in `code`;
        // Anthropic style {"error": {"type": …}} only has the type.
        serde_json::Value::Object(map) => ["code", "type"]
            .iter()
            .filter_map(|field| map.get(*field)?.as_str())
            .find(|code| plausible(code))?
            .to_owned(),
        _ => return None,
    };
    plausible(&code).then_some(code)
}

/// Post `fields` to the token endpoint in the encoding it wants (the client id, and its
/// secret when it has one, added).
async fn post_token(
    client: &reqwest::Client,
    server: &TokenServer,
    fields: &[(&str, &str)],
) -> Result<TokenGrant, TokenError> {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    all.push(("client_id", server.client_id.as_str()));
    if let Some(secret) = &server.client_secret {
        all.push(("client_secret", secret.expose().as_str()));
    }
    let (content_type, body) = if server.form {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &all {
            form.append_pair(name, value);
        }
        ("application/x-www-form-urlencoded", form.finish())
    } else {
        let map: serde_json::Map<String, serde_json::Value> = all
            .iter()
            .map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(*value)))
            .collect();
        (
            "application/json",
            serde_json::Value::Object(map).to_string(),
        )
    };
    let exchange = async {
        let response = client
            .post(server.url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| {
                if error.is_connect() {
                    TokenError::Unreached
                } else {
                    TokenError::Ambiguous("the connection failed after the request was sent")
                }
            })?;
        let status = response.status();
        let retry_after =
            crate::provider::retry_after_header(response.headers(), crate::state::now());
        let bytes = response
            .bytes()
            .await
            .map_err(|_| TokenError::Ambiguous("the answer broke off"))?;
        if status.is_success() {
            let answer: TokenAnswer = serde_json::from_slice(&bytes)
                .map_err(|_| TokenError::Ambiguous("the answer is not the expected JSON"))?;
            let access_token = answer
                .access_token
                .filter(|t| !t.is_empty())
                .ok_or(TokenError::Ambiguous("the answer has no access token"))?;
            return Ok(TokenGrant {
                access_token: Secret::new(access_token),
                refresh_token: answer
                    .refresh_token
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
                expires_in: answer
                    .expires_in
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64),
                id_token: answer.id_token.filter(|t| !t.is_empty()).map(Secret::new),
            });
        }
        let code = error_code(&bytes);
        let dead = code.as_deref().is_some_and(|c| DEAD_GRANT.contains(&c))
            || (matches!(status.as_u16(), 401 | 403) && code.as_deref() != Some("invalid_client"));
        if dead {
            return Err(TokenError::Dead {
                code: code.unwrap_or_else(|| format!("http_{}", status.as_u16())),
            });
        }
        Err(TokenError::Refused {
            status: status.as_u16(),
            code,
            retry_after,
        })
    };
    tokio::time::timeout(TOKEN_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(TokenError::Ambiguous(
            "the token server did not answer in time",
        )))
}

/// Trade a refresh token for new tokens at `server`. Sent once: the caller decides about
/// retries.
pub async fn refresh_with(
    client: &reqwest::Client,
    server: &TokenServer,
    refresh_token: &Secret<String>,
) -> Result<TokenGrant, TokenError> {
    let mut fields = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose().as_str()),
    ];
    if let Some(scope) = server.refresh_scope {
        fields.push(("scope", scope));
    }
    post_token(client, server, &fields).await
}

/// Trade a login's authorization code for tokens at `server`. `state` goes along where the
/// server wants it (Anthropic's).
pub async fn exchange_code_with(
    client: &reqwest::Client,
    server: &TokenServer,
    code: &str,
    pkce: &Pkce,
    redirect_uri: &str,
    state: Option<&str>,
) -> Result<TokenGrant, TokenError> {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pkce.verifier.expose().as_str()),
    ];
    if let Some(state) = state {
        fields.push(("state", state));
    }
    post_token(client, server, &fields).await
}

/// Trade an Anthropic refresh token for new tokens.
pub async fn refresh(
    client: &reqwest::Client,
    endpoints: &AnthropicEndpoints,
    refresh_token: &Secret<String>,
) -> Result<TokenGrant, TokenError> {
    refresh_with(client, &TokenServer::anthropic(endpoints), refresh_token).await
}

/// Trade an Anthropic login's authorization code for tokens.
pub async fn exchange_code(
    client: &reqwest::Client,
    endpoints: &AnthropicEndpoints,
    code: &str,
    pkce: &Pkce,
    redirect_uri: &str,
) -> Result<TokenGrant, TokenError> {
    exchange_code_with(
        client,
        &TokenServer::anthropic(endpoints),
        code,
        pkce,
        redirect_uri,
        Some(&pkce.state),
    )
    .await
}

/// Who a subscription belongs to, with the tier that sets its default weight.
#[derive(Clone, Debug, Default)]
pub struct AccountProfile {
    pub profile: Profile,
    /// e.g. `default_claude_max_20x`.
    pub rate_limit_tier: Option<String>,
}

impl AccountProfile {
    /// The pool weight a subscription of this tier should get: its relative capacity.
    pub fn weight(&self) -> u32 {
        let tier = self.rate_limit_tier.as_deref().unwrap_or_default();
        if tier.contains("20x") {
            20
        } else if tier.contains("5x") || self.profile.plan.as_deref() == Some("max") {
            5
        } else {
            1
        }
    }
}

/// Failures of the profile and usage calls.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("could not reach the endpoint")]
    Transport,
    #[error("rate limited")]
    RateLimited { retry_after: Option<Duration> },
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered something unreadable")]
    Unreadable,
}

async fn get_json(
    client: &reqwest::Client,
    url: &Url,
    access_token: &Secret<String>,
) -> Result<serde_json::Value, InfoError> {
    let request = client
        .get(url.clone())
        .header(http::header::AUTHORIZATION, bearer(access_token)?)
        .header("anthropic-beta", OAUTH_BETA);
    call_json(request).await
}

/// `Bearer <token>`, marked sensitive so no log or debug output shows it.
pub(crate) fn bearer(token: &Secret<String>) -> Result<http::HeaderValue, InfoError> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| InfoError::Unreadable)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Send an informational call (profile, usage, setup) and read its JSON answer, bounded in
/// time; a 429 says how long to back off.
pub(crate) async fn call_json(
    request: reqwest::RequestBuilder,
) -> Result<serde_json::Value, InfoError> {
    let call = async {
        let response = request
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| InfoError::Transport)?;
        let status = response.status();
        if status == http::StatusCode::TOO_MANY_REQUESTS {
            let retry_after =
                crate::provider::retry_after_header(response.headers(), crate::state::now());
            return Err(InfoError::RateLimited { retry_after });
        }
        if !status.is_success() {
            return Err(InfoError::Status(status.as_u16()));
        }
        response.json().await.map_err(|_| InfoError::Unreadable)
    };
    tokio::time::timeout(INFO_TIMEOUT, call)
        .await
        .unwrap_or(Err(InfoError::Transport))
}

/// The user and plan behind an access token.
pub async fn profile(
    client: &reqwest::Client,
    endpoints: &AnthropicEndpoints,
    access_token: &Secret<String>,
) -> Result<AccountProfile, InfoError> {
    let body = get_json(client, &endpoints.profile_url, access_token).await?;
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let flag = |pointer: &str| body.pointer(pointer).and_then(serde_json::Value::as_bool);
    let plan = if flag("/account/has_claude_max") == Some(true) {
        Some("max".to_owned())
    } else if flag("/account/has_claude_pro") == Some(true) {
        Some("pro".to_owned())
    } else {
        text("/organization/organization_type").map(|t| t.trim_start_matches("claude_").to_owned())
    };
    Ok(AccountProfile {
        profile: Profile {
            email: text("/account/email").or_else(|| text("/account/email_address")),
            plan,
            account_uuid: text("/account/uuid"),
            organization_uuid: text("/organization/uuid"),
            ..Profile::default()
        },
        rate_limit_tier: text("/organization/rate_limit_tier"),
    })
}

/// A subscription's 5-hour and 7-day use, without spending any of it. The endpoint reports
/// percentages (0–100); the scheduler wants fractions.
pub async fn usage(
    client: &reqwest::Client,
    endpoints: &AnthropicEndpoints,
    access_token: &Secret<String>,
    now: Timestamp,
) -> Result<QuotaObservation, InfoError> {
    let body = get_json(client, &endpoints.usage_url, access_token).await?;
    let observation = usage_observation(&body, now);
    if observation.is_empty() {
        return Err(InfoError::Unreadable);
    }
    Ok(observation)
}

/// The quota a usage document reports.
pub fn usage_observation(body: &serde_json::Value, now: Timestamp) -> QuotaObservation {
    let window = |name: &str| {
        let window = body.get(name)?;
        let utilization = window.get("utilization")?.as_f64()? / 100.0;
        let reset = window
            .get("resets_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|text| parse_reset(text, now));
        Some((utilization, reset))
    };
    let mut observation = QuotaObservation::default();
    if let Some((utilization, reset)) = window("five_hour") {
        observation.session_utilization = Some(utilization);
        observation.session_reset = reset;
    }
    if let Some((utilization, reset)) = window("seven_day") {
        observation.weekly_utilization = Some(utilization);
        observation.weekly_reset = reset;
    }
    observation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_ne!(a.verifier.expose(), b.verifier.expose());
        assert_ne!(a.state, b.state);
        assert_eq!(a.challenge, challenge_of(a.verifier.expose()));
        assert!(
            a.verifier.expose().len() >= 43,
            "RFC 7636 wants at least 43 characters"
        );
    }

    #[test]
    fn the_login_url_carries_every_pkce_parameter() {
        let endpoints = AnthropicEndpoints::default();
        let pkce = Pkce::generate();
        let url = authorize_url(&endpoints, "http://localhost:5/callback", &pkce);
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["code"], "true");
        assert_eq!(pairs["client_id"], endpoints.client_id);
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["redirect_uri"], "http://localhost:5/callback");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["code_challenge"], pkce.challenge);
        assert_eq!(pairs["state"], pkce.state);
        assert!(pairs["scope"].contains("user:inference"));
        assert!(!url.as_str().contains(pkce.verifier.expose().as_str()));
    }

    #[test]
    fn error_codes_are_read_only_when_they_look_like_codes() {
        assert_eq!(
            error_code(br#"{"error":"invalid_grant","error_description":"x"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(
            error_code(br#"{"type":"error","error":{"type":"rate_limit_error"}}"#).as_deref(),
            Some("rate_limit_error")
        );
        assert_eq!(error_code(br#"{"error":"sk-ant-ort01-SECRET"}"#), None);
        assert_eq!(
            error_code(
                br#"{"error":{"message":"x","type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}"#
            )
            .as_deref(),
            Some("refresh_token_reused"),
            "OpenAI names the reason in code"
        );
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn usage_percentages_become_fractions() {
        let now = Timestamp::from_secs(1_767_000_000);
        let body = serde_json::json!({
            "five_hour": {"utilization": 42.0, "resets_at": "2026-01-02T19:59:59.600956+00:00"},
            "seven_day": {"utilization": 7.5, "resets_at": null},
            "seven_day_opus": null,
        });
        let observation = usage_observation(&body, now);
        assert_eq!(observation.session_utilization, Some(0.42));
        assert!(observation.session_reset.is_some());
        assert_eq!(observation.weekly_utilization, Some(0.075));
        assert_eq!(observation.weekly_reset, None);
        assert!(usage_observation(&serde_json::json!({}), now).is_empty());
    }

    #[test]
    fn tiers_set_weights() {
        let tier = |tier: &str, plan: &str| AccountProfile {
            profile: Profile {
                plan: Some(plan.to_owned()),
                ..Profile::default()
            },
            rate_limit_tier: Some(tier.to_owned()),
        };
        assert_eq!(tier("default_claude_max_20x", "max").weight(), 20);
        assert_eq!(tier("default_claude_max_5x", "max").weight(), 5);
        assert_eq!(tier("default_claude_pro", "pro").weight(), 1);
    }
}
