//! ChatGPT accounts for Codex, from the client side: the PKCE login URL (the Codex CLI's
//! public client, which returns to `localhost:1455`), who a login belongs to (the
//! `id_token`'s claims: email, ChatGPT account id, plan), and an account's usage without
//! spending it (`GET /backend-api/wham/usage`).
//!
//! Tokens are refreshed through [`super::oauth::TokenServer::codex`]: JSON, and the refresh
//! token rotates (reusing a spent one answers `refresh_token_reused` and revokes the
//! family), so the refresh machinery's single flight and commit-before-use matter here.

use base64::Engine;
use serde_json::Value;
use sluice_config::{CodexEndpoints, Secret};
use sluice_scheduler::{QuotaObservation, Timestamp};
use url::Url;

use super::oauth::{InfoError, Pkce, bearer, call_json};
use crate::provider::codex::ACCOUNT_ID_HEADER;

/// The scopes a Codex login asks for.
pub const SCOPES: &str = "openid profile email offline_access";

/// The claim holding ChatGPT's own facts about the user, in both id and access tokens.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";

/// A window at most this long is the 5-hour (session) window; longer ones are weekly.
const LONGEST_SESSION_SECS: f64 = 24.0 * 3600.0;

/// The login page URL for a PKCE login that returns to the configured redirect URI.
pub fn authorize_url(endpoints: &CodexEndpoints, pkce: &Pkce) -> Url {
    let mut url = endpoints.authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &endpoints.client_id)
        .append_pair("redirect_uri", endpoints.redirect_uri.as_str())
        .append_pair("scope", SCOPES)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("state", &pkce.state);
    url
}

/// Who a ChatGPT login belongs to. Nothing here is secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatGptIdentity {
    pub email: Option<String>,
    /// The ChatGPT account (workspace) the tokens act for: `chatgpt-account-id`.
    pub account_id: Option<String>,
    pub user_id: Option<String>,
    /// `free`, `plus`, `pro`, `team`, …
    pub plan: Option<String>,
}

impl ChatGptIdentity {
    /// The store's key for "the same login again": the user in this workspace (Codex quota
    /// is per user per workspace).
    pub fn login_key(&self) -> Option<String> {
        match (&self.user_id, &self.account_id) {
            (Some(user), Some(account)) => Some(format!("{user}/{account}")),
            (None, Some(account)) => Some(account.clone()),
            _ => None,
        }
    }

    /// The pool weight of the plan: relative capacity, Pro having several times Plus's.
    pub fn weight(&self) -> u32 {
        match self.plan.as_deref() {
            Some("pro") => 6,
            _ => 1,
        }
    }
}

/// The claims of a JWT, without checking its signature: it came from the token endpoint
/// over TLS (or from the user's own credentials file), and sluice only reads who it names.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Who an `id_token` (or an access token, which carries the same claims) names.
pub fn identity_from_token(token: &Secret<String>) -> Option<ChatGptIdentity> {
    let claims = jwt_claims(token.expose())?;
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let auth = claims.get(AUTH_CLAIM);
    let identity = ChatGptIdentity {
        email: text(claims.get("email"))
            .or_else(|| text(claims.pointer("/https:~1~1api.openai.com~1profile/email"))),
        account_id: text(auth.and_then(|a| a.get("chatgpt_account_id"))),
        user_id: text(auth.and_then(|a| a.get("chatgpt_user_id")))
            .or_else(|| text(auth.and_then(|a| a.get("user_id")))),
        plan: text(auth.and_then(|a| a.get("chatgpt_plan_type"))),
    };
    (identity != ChatGptIdentity::default()).then_some(identity)
}

/// When a JWT access token expires (its `exp` claim), in epoch milliseconds.
pub fn token_expiry_ms(token: &Secret<String>) -> Option<i64> {
    let exp = jwt_claims(token.expose())?.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0).then_some((exp * 1000.0) as i64)
}

/// An account's 5-hour and weekly use, without spending any of it.
pub async fn usage(
    client: &reqwest::Client,
    endpoints: &CodexEndpoints,
    access_token: &Secret<String>,
    account_id: Option<&str>,
    now: Timestamp,
) -> Result<QuotaObservation, InfoError> {
    let mut request = client
        .get(endpoints.usage_url.clone())
        .header(http::header::AUTHORIZATION, bearer(access_token)?);
    if let Some(account_id) = account_id {
        request = request.header(ACCOUNT_ID_HEADER, account_id);
    }
    let body = call_json(request).await?;
    let observation = usage_observation(&body, now);
    if observation.is_empty() {
        return Err(InfoError::Unreadable);
    }
    Ok(observation)
}

/// The quota a `wham/usage` document reports: `rate_limit.{primary,secondary}_window`, each
/// with `used_percent` (0–100), `limit_window_seconds` and a reset. Which window is the
/// session one is read from their lengths, as with the response headers.
pub fn usage_observation(body: &Value, now: Timestamp) -> QuotaObservation {
    struct Window {
        used: f64,
        length: Option<f64>,
        reset: Option<Timestamp>,
    }
    let window = |name: &str| {
        let w = body.get("rate_limit")?.get(name)?;
        let used = w.get("used_percent")?.as_f64()?;
        if !used.is_finite() || used < 0.0 {
            return None;
        }
        let reset = w
            .get("reset_at")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Timestamp::from_millis((s * 1000.0) as i64))
            .or_else(|| {
                w.get("reset_after_seconds")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| now + std::time::Duration::from_secs_f64(s.min(1e9)))
            });
        Some(Window {
            used: used / 100.0,
            length: w.get("limit_window_seconds").and_then(Value::as_f64),
            reset,
        })
    };
    let primary = window("primary_window");
    let secondary = window("secondary_window");
    let primary_is_session = match (
        primary.as_ref().and_then(|w| w.length),
        secondary.as_ref().and_then(|w| w.length),
    ) {
        (Some(p), Some(s)) => p <= s,
        (Some(p), None) => p <= LONGEST_SESSION_SECS,
        (None, Some(s)) => s > LONGEST_SESSION_SECS,
        (None, None) => true,
    };
    let (session, weekly) = if primary_is_session {
        (primary, secondary)
    } else {
        (secondary, primary)
    };
    let mut observation = QuotaObservation::default();
    if let Some(w) = session {
        observation.session_utilization = Some(w.used);
        observation.session_reset = w.reset;
    }
    if let Some(w) = weekly {
        observation.weekly_utilization = Some(w.used);
        observation.weekly_reset = w.reset;
    }
    observation
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_767_000_000);

    fn jwt(claims: &Value) -> Secret<String> {
        let part =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        Secret::new(format!(
            "{}.{}.sig",
            part(&json!({"alg": "RS256"})),
            part(claims)
        ))
    }

    #[test]
    fn the_id_token_names_the_account_and_plan() {
        let token = jwt(&json!({
            "email": "dev@example.com",
            "exp": 1_767_003_600,
            AUTH_CLAIM: {
                "chatgpt_account_id": "acct-1",
                "chatgpt_plan_type": "pro",
                "chatgpt_user_id": "user-9",
            },
        }));
        let identity = identity_from_token(&token).unwrap();
        assert_eq!(identity.email.as_deref(), Some("dev@example.com"));
        assert_eq!(identity.account_id.as_deref(), Some("acct-1"));
        assert_eq!(identity.login_key().as_deref(), Some("user-9/acct-1"));
        assert_eq!(identity.weight(), 6);
        assert_eq!(token_expiry_ms(&token), Some(1_767_003_600_000));
        assert_eq!(identity_from_token(&Secret::new("opaque".into())), None);
        assert_eq!(identity_from_token(&Secret::new("a.!!!.c".into())), None);
    }

    #[test]
    fn usage_windows_become_the_session_and_the_week() {
        let body = json!({
            "plan_type": "plus",
            "rate_limit": {
                "allowed": true,
                "limit_reached": false,
                "primary_window": {"used_percent": 42, "limit_window_seconds": 18000, "reset_after_seconds": 600, "reset_at": 1_767_000_600},
                "secondary_window": {"used_percent": 7, "limit_window_seconds": 604800, "reset_after_seconds": 86400},
            },
        });
        let observation = usage_observation(&body, NOW);
        assert_eq!(observation.session_utilization, Some(0.42));
        assert_eq!(
            observation.session_reset,
            Some(Timestamp::from_secs(1_767_000_600))
        );
        assert_eq!(observation.weekly_utilization, Some(0.07));
        assert_eq!(
            observation.weekly_reset,
            Some(NOW + Duration::from_secs(86_400))
        );
        assert!(usage_observation(&json!({"rate_limit": null}), NOW).is_empty());
    }

    #[test]
    fn the_login_url_carries_pkce_and_the_registered_redirect() {
        let endpoints = CodexEndpoints::default();
        let pkce = Pkce::generate();
        let url = authorize_url(&endpoints, &pkce);
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["redirect_uri"], "http://localhost:1455/auth/callback");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["code_challenge"], pkce.challenge);
        assert_eq!(pairs["scope"], SCOPES);
        assert_eq!(pairs["client_id"], endpoints.client_id);
    }
}
