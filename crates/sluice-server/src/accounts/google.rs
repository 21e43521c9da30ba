//! Google-login accounts for Gemini, from the client side: the PKCE login URL (Gemini CLI's
//! installed-app client), whose account a login is (the `id_token`'s email, else the
//! userinfo endpoint), the account's Code Assist setup (`loadCodeAssist`, and
//! `onboardUser` for an account that has no project yet), and its quota without spending
//! it (`retrieveUserQuota`).
//!
//! Tokens are refreshed through [`super::oauth::TokenServer::google`]: form-encoded, with
//! the client's public secret; Google refresh tokens do not rotate.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_config::{GeminiEndpoints, Secret};
use sluice_scheduler::{QuotaObservation, Timestamp};
use url::Url;

use super::oauth::{InfoError, Pkce, bearer, call_json};
use crate::provider::gemini::{CodeAssistSetup, parse_load_code_assist, parse_user_quota};

/// The scopes a Gemini CLI login asks for.
pub const SCOPES: &str = "https://www.googleapis.com/auth/cloud-platform \
    https://www.googleapis.com/auth/userinfo.email \
    https://www.googleapis.com/auth/userinfo.profile";

/// What Code Assist is told about the caller, as the Gemini CLI says it.
fn client_metadata() -> Value {
    json!({"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"})
}

/// Times `onboardUser` is asked before giving up on a long-running onboarding.
const ONBOARD_ATTEMPTS: u32 = 5;
const ONBOARD_PAUSE: Duration = Duration::from_secs(2);

/// The login page URL for a PKCE login that returns to `redirect_uri`.
pub fn authorize_url(endpoints: &GeminiEndpoints, redirect_uri: &str, pkce: &Pkce) -> Url {
    let mut url = endpoints.authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &endpoints.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES)
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &pkce.state);
    url
}

/// The email an `id_token` names.
pub fn email_from_id_token(id_token: &Secret<String>) -> Option<String> {
    super::chatgpt::jwt_claims(id_token.expose())?
        .get("email")?
        .as_str()
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
}

/// The email of the account behind an access token.
pub async fn email(
    client: &reqwest::Client,
    endpoints: &GeminiEndpoints,
    access_token: &Secret<String>,
) -> Result<Option<String>, InfoError> {
    let request = client
        .get(endpoints.userinfo_url.clone())
        .header(http::header::AUTHORIZATION, bearer(access_token)?);
    let body = call_json(request).await?;
    Ok(body
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned))
}

fn method_url(base: &Url, method: &str) -> Url {
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/v1internal:{method}")).unwrap_or_else(|_| base_fallback(base))
}

fn base_fallback(base: &str) -> Url {
    // The base parsed as a URL before; appending a path keeps it one.
    Url::parse(base).unwrap_or_else(|_| Url::parse("http://invalid/").expect("a valid URL"))
}

async fn code_assist(
    client: &reqwest::Client,
    base: &Url,
    access_token: &Secret<String>,
    method: &str,
    body: &Value,
) -> Result<Value, InfoError> {
    let request = client
        .post(method_url(base, method))
        .header(http::header::AUTHORIZATION, bearer(access_token)?)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    call_json(request).await
}

/// Why an account's Code Assist setup could not be completed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("Code Assist {0}")]
    Call(InfoError),
    #[error("the Google account has no Code Assist project (onboarding did not complete)")]
    NoProject,
}

/// An account's Code Assist project (and tier): from `loadCodeAssist`, or, for an account
/// that has none yet, by onboarding it to its default tier as the Gemini CLI would.
pub async fn discover_project(
    client: &reqwest::Client,
    base: &Url,
    access_token: &Secret<String>,
) -> Result<CodeAssistSetup, SetupError> {
    let loaded = code_assist(
        client,
        base,
        access_token,
        "loadCodeAssist",
        &json!({"metadata": client_metadata()}),
    )
    .await
    .map_err(SetupError::Call)?;
    let setup = parse_load_code_assist(loaded.to_string().as_bytes()).unwrap_or_default();
    if setup.project.is_some() {
        return Ok(setup);
    }
    let tier = default_tier(&loaded).unwrap_or_else(|| "free-tier".to_owned());
    for attempt in 1..=ONBOARD_ATTEMPTS {
        let answer = code_assist(
            client,
            base,
            access_token,
            "onboardUser",
            &json!({"tierId": tier, "metadata": client_metadata()}),
        )
        .await
        .map_err(SetupError::Call)?;
        let done = answer.get("done").and_then(Value::as_bool) == Some(true);
        if let Some(onboarded) = parse_load_code_assist(answer.to_string().as_bytes())
            && onboarded.project.is_some()
        {
            return Ok(CodeAssistSetup {
                project: onboarded.project,
                tier: setup.tier.or(Some(tier)),
            });
        }
        if done || attempt == ONBOARD_ATTEMPTS {
            break;
        }
        tokio::time::sleep(ONBOARD_PAUSE).await;
    }
    Err(SetupError::NoProject)
}

/// The tier `loadCodeAssist` offers by default (`allowedTiers[isDefault]`).
fn default_tier(loaded: &Value) -> Option<String> {
    loaded
        .get("allowedTiers")?
        .as_array()?
        .iter()
        .find(|tier| tier.get("isDefault").and_then(Value::as_bool) == Some(true))?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}

/// An account's remaining daily quota, without spending any.
pub async fn user_quota(
    client: &reqwest::Client,
    base: &Url,
    access_token: &Secret<String>,
    project: &str,
    now: Timestamp,
) -> Result<QuotaObservation, InfoError> {
    let answer = code_assist(
        client,
        base,
        access_token,
        "retrieveUserQuota",
        &json!({"project": project}),
    )
    .await?;
    let observation = parse_user_quota(answer.to_string().as_bytes(), None, now);
    if observation.is_empty() {
        return Err(InfoError::Unreadable);
    }
    Ok(observation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_url_asks_for_offline_access_with_pkce() {
        let endpoints = GeminiEndpoints::default();
        let pkce = Pkce::generate();
        let url = authorize_url(&endpoints, "http://127.0.0.1:5/oauth2callback", &pkce);
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["access_type"], "offline");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["redirect_uri"], "http://127.0.0.1:5/oauth2callback");
        assert!(pairs["scope"].contains("cloud-platform"));
        assert!(!url.as_str().contains(pkce.verifier.expose().as_str()));
    }

    #[test]
    fn the_default_tier_is_the_one_marked_so() {
        let loaded = json!({"allowedTiers": [{"id": "legacy-tier"}, {"id": "free-tier", "isDefault": true}]});
        assert_eq!(default_tier(&loaded).as_deref(), Some("free-tier"));
        assert_eq!(default_tier(&json!({})), None);
        assert_eq!(
            method_url(&Url::parse("http://h:1/").unwrap(), "loadCodeAssist").as_str(),
            "http://h:1/v1internal:loadCodeAssist"
        );
    }
}
