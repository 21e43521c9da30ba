//! The admin API: changing how requests are routed while sluice runs.
//!
//! * `GET /api/scheduler` — the strategy, the preferred account, the strategies to choose from.
//! * `PUT /api/scheduler` with `{"strategy": "…", "preferred_account": "name" | null}` — switch
//!   strategy and/or preferred-account routing (either field may be left out; `null` turns
//!   preferred routing off). Conversations keep their accounts across a switch.
//!
//! Reading needs what `/status` needs (a client key, when client keys are configured).
//! Changing needs the configured `admin_key` (as `x-api-key` or `authorization: Bearer`), or
//! a loopback peer sending `content-type: application/json`: a browser page cannot send that
//! cross-origin without a CORS preflight, which sluice never grants, so a web page cannot
//! forge the call. A loopback peer must also have addressed sluice by a loopback name
//! (`Host: localhost`, `127.0.0.1`, `[::1]`): a page whose own domain was made to resolve to
//! 127.0.0.1 (DNS rebinding) is same-origin with sluice as far as the browser knows, but it
//! still sends its own domain as the host.
//!
//! The same guard ([`may_change`], and [`may_read`] for the dashboard's reads) protects every
//! state-changing call of the dashboard API.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};
use sluice_config::ProviderKind;
use sluice_scheduler::Strategy;
use subtle::ConstantTimeEq;

use crate::auth::presented_key;
use crate::error::{ErrorKind, ProxyError};
use crate::proxy::error_response;
use crate::state::AppState;

/// The largest admin request body read.
const MAX_ADMIN_BODY: usize = 16 << 10;

#[derive(Serialize)]
pub struct SchedulerView {
    pub strategy: Strategy,
    pub preferred_account: Option<String>,
    pub strategies: Vec<&'static str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulerChange {
    #[serde(default)]
    strategy: Option<String>,
    /// Absent: unchanged; `null`: automatic routing; a name: that account first.
    #[serde(default, deserialize_with = "present")]
    preferred_account: Option<Option<String>>,
}

/// Tell an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn anthropic(app: &AppState) -> std::sync::Arc<dyn crate::provider::Provider> {
    app.providers().get(ProviderKind::Anthropic).clone()
}

fn refuse(app: &AppState, kind: ErrorKind, message: impl Into<String>) -> Response {
    error_response(anthropic(app).as_ref(), &ProxyError::new(kind, message))
}

/// The routing state as the admin API shows it.
pub fn view(app: &AppState) -> SchedulerView {
    let mut strategy = Strategy::default();
    let mut preferred_account = None;
    for pool in app.pools() {
        let scheduler = pool.with(|p| {
            (
                p.strategy(),
                p.preferred()
                    .and_then(|id| p.spec(id))
                    .map(|s| s.name.clone()),
            )
        });
        strategy = scheduler.0;
        preferred_account = preferred_account.or(scheduler.1);
    }
    SchedulerView {
        strategy,
        preferred_account,
        strategies: Strategy::ALL.iter().map(|s| s.as_str()).collect(),
    }
}

pub async fn get_scheduler(State(app): State<AppState>, request: Request) -> Response {
    if !app.client_keys().admits(request.headers()) {
        return refuse(
            &app,
            ErrorKind::Authentication,
            "the scheduler API needs a client key",
        );
    }
    Json(view(&app)).into_response()
}

pub async fn put_scheduler(State(app): State<AppState>, request: Request) -> Response {
    let peer = peer_of(&request);
    if !may_change(&app, request.headers(), peer) {
        return refuse(
            &app,
            ErrorKind::Authentication,
            "changing the scheduler needs the admin_key (x-api-key or authorization: Bearer), or a request from this machine with content-type: application/json",
        );
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_ADMIN_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                &app,
                ErrorKind::InvalidRequest,
                format!("the request body must be JSON of at most {MAX_ADMIN_BODY} bytes"),
            );
        }
    };
    match apply(&app, &body) {
        Ok(()) => Json(view(&app)).into_response(),
        Err(message) => refuse(&app, ErrorKind::InvalidRequest, message),
    }
}

/// Switch every pool to the strategy called `name` (what the terminal dashboard's routing
/// menu does); the same checks and log line as `PUT /api/scheduler`.
pub fn switch_strategy(app: &AppState, name: &str) -> Result<(), String> {
    let body = serde_json::json!({ "strategy": name }).to_string();
    apply(app, &Bytes::from(body))
}

/// Validate the whole change first, then apply it to every pool: nothing changes when any
/// part is wrong.
fn apply(app: &AppState, body: &Bytes) -> Result<(), String> {
    let change: SchedulerChange = serde_json::from_slice(body).map_err(|e| {
        format!("expected {{\"strategy\": \"…\", \"preferred_account\": \"name\" | null}}: {e}")
    })?;
    let strategy = change
        .strategy
        .as_deref()
        .map(str::parse::<Strategy>)
        .transpose()
        .map_err(|e| e.to_string())?;
    let preferred = match &change.preferred_account {
        Some(Some(name)) => {
            let found = app.pools().find_map(|pool| {
                pool.with(|p| {
                    p.id_of(name)
                        .map(|id| (pool.provider, id, p.spec(id).is_some_and(|s| s.enabled)))
                })
            });
            match found {
                None => return Err(format!("there is no account named {name:?}")),
                Some((_, _, false)) => {
                    return Err(format!("account {name:?} is disabled"));
                }
                Some((provider, id, true)) => Some(Some((provider, id))),
            }
        }
        Some(None) => Some(None),
        None => None,
    };
    for pool in app.pools() {
        pool.update(|p| {
            if let Some(strategy) = strategy {
                p.set_strategy(strategy);
            }
            match preferred {
                Some(Some((provider, id))) if provider == pool.provider => {
                    p.set_preferred(Some(id));
                }
                Some(_) => {
                    p.set_preferred(None);
                }
                None => {}
            }
        });
    }
    tracing::info!(
        strategy = strategy.map(Strategy::as_str),
        preferred_account = ?change.preferred_account,
        "scheduler changed through the admin API"
    );
    Ok(())
}

/// The admin key, or a loopback peer with a JSON content type (a non-simple request).
pub(crate) fn may_change(app: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
    has_admin_key(app, headers) || (is_local(headers, peer) && is_json(headers))
}

/// The admin key, or a loopback peer (the dashboard and its API's reads).
pub(crate) fn may_read(app: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
    has_admin_key(app, headers) || is_local(headers, peer)
}

fn has_admin_key(app: &AppState, headers: &HeaderMap) -> bool {
    let config = app.config();
    let (Some(admin), Some(presented)) = (&config.admin_key, presented_key(headers)) else {
        return false;
    };
    admin.expose().as_bytes().ct_eq(presented.as_bytes()).into()
}

/// A loopback peer that addressed sluice by a loopback name.
fn is_local(headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|p| p.ip().is_loopback()) && loopback_host(headers)
}

/// Whether the `Host` header (if any: HTTP/1.0 clients send none, browsers always do) names
/// this machine.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(http::header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = host.trim();
    // Strip the port: `[::1]:8787`, `127.0.0.1:8787`, `localhost:8787`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(inside, _)| inside),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The peer of a request, as the accept loop recorded it.
pub(crate) fn peer_of<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_accepts_exactly_the_schedulers_strategies() {
        let scheduler: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(sluice_config::KNOWN_STRATEGIES, scheduler.as_slice());
    }

    #[test]
    fn only_a_json_media_type_counts() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert("content-type", "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
        headers.insert(
            "content-type",
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert("content-type", "application/json-seq".parse().unwrap());
        assert!(!is_json(&headers));
    }

    #[test]
    fn a_remote_peer_needs_the_admin_key_even_with_json() {
        let mut config = sluice_config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..sluice_config::Config::default()
        };
        config.admin_key = Some("sk-admin".to_owned().into());
        let app = AppState::new(config).unwrap();
        let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut json = HeaderMap::new();
        json.insert("content-type", "application/json".parse().unwrap());
        assert!(!may_change(&app, &json, Some(remote)));
        assert!(
            !may_change(&app, &json, None),
            "an unknown peer is not local"
        );
        assert!(may_change(&app, &json, Some(local)));
        let mut keyed = json.clone();
        keyed.insert("x-api-key", "sk-admin".parse().unwrap());
        assert!(may_change(&app, &keyed, Some(remote)));
        keyed.insert("x-api-key", "sk-admi".parse().unwrap());
        assert!(!may_change(&app, &keyed, Some(remote)));
    }

    #[test]
    fn a_local_peer_must_name_a_local_host() {
        let app = AppState::new(sluice_config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..sluice_config::Config::default()
        })
        .unwrap();
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let with_host = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("host", host.parse().unwrap());
            headers
        };
        for host in [
            "127.0.0.1:8787",
            "localhost:8787",
            "LOCALHOST",
            "[::1]:8787",
            "127.0.0.2",
            "app.localhost:80",
        ] {
            assert!(may_change(&app, &with_host(host), Some(local)), "{host}");
            assert!(may_read(&app, &with_host(host), Some(local)), "{host}");
        }
        // DNS rebinding: the attacker's name resolved to 127.0.0.1.
        for host in [
            "evil.example:8787",
            "127.0.0.1.evil.example",
            "[::2]:1",
            "10.0.0.1",
        ] {
            assert!(!may_change(&app, &with_host(host), Some(local)), "{host}");
            assert!(!may_read(&app, &with_host(host), Some(local)), "{host}");
        }
    }

    #[test]
    fn an_absent_field_differs_from_null() {
        let change: SchedulerChange = serde_json::from_str(r#"{"strategy":"sticky"}"#).unwrap();
        assert_eq!(change.preferred_account, None);
        let change: SchedulerChange =
            serde_json::from_str(r#"{"preferred_account":null}"#).unwrap();
        assert_eq!(change.preferred_account, Some(None));
        assert!(serde_json::from_str::<SchedulerChange>(r#"{"strategi":"x"}"#).is_err());
    }
}
