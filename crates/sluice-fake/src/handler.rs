//! Request handling: identify the credential, record the request, route it (`/v1/messages`,
//! `/v1/messages/count_tokens`, `/v1/models`, `HEAD /`), pick the account's reply and build the response.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::accounts::{Account, Accounts};
use crate::body::FakeBody;
use crate::clock::Clock;
use crate::error_kind::{ErrorKind, error_body};
use crate::oauth::{OAuthAnswer, OAuthServer, is_oauth_route};
use crate::quota::QuotaHeaders;
use crate::record::{RecordedRequest, RequestLog};
use crate::reply::Reply;
use crate::sim::SimRequest;

/// The `anthropic-beta` flag OAuth access tokens must carry.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// State shared by the server task and the `FakeAnthropic` handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub accounts: Accounts,
    pub log: RequestLog,
    pub clock: Clock,
    pub allow_any_credential: AtomicBool,
    pub max_body_bytes: usize,
    pub models: Vec<String>,
    pub cancel: CancellationToken,
    pub oauth: OAuthServer,
}

/// How the request carried its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    ApiKey(String),
    Bearer(String),
}

impl Credential {
    fn key(&self) -> &str {
        match self {
            Self::ApiKey(k) | Self::Bearer(k) => k,
        }
    }
}

/// `x-api-key: K`, else `authorization: Bearer K`.
pub(crate) fn credential_of(headers: &HeaderMap) -> Option<Credential> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Credential::ApiKey(k.trim().to_owned()));
    }
    let auth = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Credential::Bearer(token.trim().to_owned()))
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn response(
    status: u16,
    request_id: &str,
    headers: Vec<(String, String)>,
    body: FakeBody,
) -> Response<FakeBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        map.insert("request-id", v);
    }
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                map.insert(n, v);
            }
            _ => debug!(%name, "fake: skipping invalid response header"),
        }
    }
    resp
}

fn json_response(
    status: u16,
    request_id: &str,
    mut headers: Vec<(String, String)>,
    body: Bytes,
) -> Response<FakeBody> {
    headers.insert(0, ("content-type".into(), "application/json".into()));
    response(status, request_id, headers, FakeBody::full(body))
}

fn error_response(kind: ErrorKind, message: &str, request_id: &str) -> Response<FakeBody> {
    let mut headers = Vec::new();
    if let Some(secs) = kind.default_retry_after() {
        headers.push(("retry-after".into(), secs.to_string()));
    }
    json_response(
        kind.status(),
        request_id,
        headers,
        error_body(kind.type_str(), message),
    )
}

/// Handle one request. An `Err` makes hyper drop the connection (used when a hanging reply is cut short
/// by shutdown, or the client sent a broken body).
pub(crate) async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, io::Error> {
    let seq = shared.log.next_seq();
    let request_id = format!("req_fake_{seq:016x}");
    let (parts, body) = req.into_parts();
    let (body, too_large) = match Limited::new(body, shared.max_body_bytes).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => (Bytes::new(), true),
        Err(e) => return Err(io::Error::other(e)),
    };
    let credential = credential_of(&parts.headers);
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    debug!(method = %parts.method, %path, credential = ?credential.as_ref().map(Credential::key), "fake: request");
    shared.log.push(RecordedRequest {
        seq,
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        headers: header_list(&parts.headers),
        body: body.clone(),
        credential: credential.as_ref().map(|c| c.key().to_owned()),
        received_at: shared.clock.now(),
        request_id: request_id.clone(),
    });

    let route = parts.uri.path();
    if route == "/" && (parts.method == Method::HEAD || parts.method == Method::GET) {
        return Ok(response(200, &request_id, Vec::new(), FakeBody::empty()));
    }
    if is_oauth_route(&parts.method, route) {
        let answer = shared
            .oauth
            .handle(
                &parts.method,
                &path,
                &parts.headers,
                &body,
                &shared.accounts,
                &shared.clock,
            )
            .await;
        return oauth_response(answer, &request_id);
    }
    let known = matches!(
        (&parts.method, route),
        (&Method::POST, "/v1/messages")
            | (&Method::POST, "/v1/messages/count_tokens")
            | (&Method::GET, "/v1/models")
    ) || (parts.method == Method::GET && route.starts_with("/v1/models/"));
    if !known {
        return Ok(error_response(
            ErrorKind::NotFound,
            &format!("fake: no route for {} {route}", parts.method),
            &request_id,
        ));
    }
    if too_large {
        return Ok(error_response(
            ErrorKind::RequestTooLarge,
            ErrorKind::RequestTooLarge.default_message(),
            &request_id,
        ));
    }
    let key = match authorize(shared, credential.as_ref(), &parts.headers) {
        Ok(key) => key,
        Err(message) => {
            return Ok(error_response(
                ErrorKind::Authentication,
                message,
                &request_id,
            ));
        }
    };

    match route {
        "/v1/messages" => messages(shared, &key, &parts.headers, &body, &request_id).await,
        "/v1/messages/count_tokens" => {
            let quota = account_quota(shared, &key);
            let n = (body.len() / 4).max(1);
            Ok(json_response(
                200,
                &request_id,
                quota,
                Bytes::from(json!({ "input_tokens": n }).to_string()),
            ))
        }
        "/v1/models" => {
            let data: Vec<Value> = shared.models.iter().map(|m| model_json(m)).collect();
            let body = json!({
                "data": data,
                "has_more": false,
                "first_id": shared.models.first(),
                "last_id": shared.models.last(),
            });
            Ok(json_response(
                200,
                &request_id,
                Vec::new(),
                Bytes::from(body.to_string()),
            ))
        }
        _ => {
            let id = route.trim_start_matches("/v1/models/");
            if shared.models.iter().any(|m| m == id) {
                Ok(json_response(
                    200,
                    &request_id,
                    Vec::new(),
                    Bytes::from(model_json(id).to_string()),
                ))
            } else {
                Ok(error_response(
                    ErrorKind::NotFound,
                    &format!("model: {id}"),
                    &request_id,
                ))
            }
        }
    }
}

fn oauth_response(answer: OAuthAnswer, request_id: &str) -> Result<Response<FakeBody>, io::Error> {
    Ok(match answer {
        OAuthAnswer::Json { status, body } => json_response(
            status,
            request_id,
            Vec::new(),
            Bytes::from(body.to_string()),
        ),
        OAuthAnswer::Redirect(location) => response(
            302,
            request_id,
            vec![("location".into(), location)],
            FakeBody::empty(),
        ),
        OAuthAnswer::Text(text) => response(
            200,
            request_id,
            vec![("content-type".into(), "text/plain".into())],
            FakeBody::full(Bytes::from(text)),
        ),
        OAuthAnswer::RateLimited { retry_after_secs } => json_response(
            429,
            request_id,
            vec![("retry-after".into(), retry_after_secs.to_string())],
            error_body("rate_limit_error", "fake: usage endpoint rate limited"),
        ),
        OAuthAnswer::Drop => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake: dropped the OAuth request",
            ));
        }
    })
}

fn model_json(id: &str) -> Value {
    json!({ "type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z" })
}

/// The account key of an acceptable credential, or the 401 message.
fn authorize(
    shared: &Shared,
    credential: Option<&Credential>,
    headers: &HeaderMap,
) -> Result<String, &'static str> {
    let credential = credential.ok_or("fake: x-api-key or authorization header is required")?;
    let key = credential.key();
    let create = shared.allow_any_credential.load(Ordering::Relaxed);
    let oauth = shared
        .accounts
        .with(key, create, |a| a.require_oauth_beta)
        .ok_or("fake: invalid x-api-key")?;
    if oauth {
        let has_beta = headers
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|flag| flag.trim() == OAUTH_BETA);
        if !matches!(credential, Credential::Bearer(_)) || !has_beta {
            return Err("fake: OAuth authentication is currently not supported.");
        }
    }
    Ok(key.to_owned())
}

fn account_quota(shared: &Shared, key: &str) -> Vec<(String, String)> {
    let now = shared.clock.now();
    shared
        .accounts
        .with(key, false, |a| current_quota(a, now))
        .flatten()
        .map(|q| q.to_headers())
        .unwrap_or_default()
}

fn current_quota(account: &mut Account, now: std::time::SystemTime) -> Option<QuotaHeaders> {
    match &mut account.sim {
        Some(sim) => Some(sim.headers_now(now)),
        None => account.quota.clone(),
    }
}

/// The Claude Code session a request belongs to: the session header, else `metadata.user_id`.
fn session_of(headers: &HeaderMap, body: &Value) -> Option<String> {
    if let Some(s) = headers
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
    {
        return Some(s.to_owned());
    }
    body.pointer("/metadata/user_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn messages(
    shared: &Shared,
    key: &str,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
) -> Result<Response<FakeBody>, io::Error> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Ok(error_response(
            ErrorKind::InvalidRequest,
            "fake: request body is not valid JSON",
            request_id,
        ));
    };
    if !json.is_object() {
        return Ok(error_response(
            ErrorKind::InvalidRequest,
            "fake: request body must be a JSON object",
            request_id,
        ));
    }
    let streaming = json.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = json.get("model").and_then(Value::as_str);
    let sim_request = SimRequest {
        body_len: body.len(),
        max_tokens: json.get("max_tokens").and_then(Value::as_u64),
        session: session_of(headers, &json),
    };
    let now = shared.clock.now();
    let (reply, account_quota): (Reply, Option<QuotaHeaders>) = shared
        .accounts
        .with(key, true, |a| {
            if let Some(reply) = a.script.pop_front() {
                let quota = current_quota(a, now);
                (reply, quota)
            } else if let Some(sim) = &mut a.sim {
                let (reply, quota) = sim.decide(now, &sim_request);
                (reply, Some(quota))
            } else {
                (a.default.clone(), a.quota.clone())
            }
        })
        .unwrap_or_default();

    let plan = reply.plan(streaming, model);
    if !plan.head_delay.is_zero() {
        tokio::time::sleep(plan.head_delay).await;
    }
    if plan.hang {
        shared.cancel.cancelled().await;
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "fake: shut down while hanging",
        ));
    }
    let mut out: Vec<(String, String)> = reply
        .quota
        .clone()
        .or(account_quota)
        .map(|q| q.to_headers())
        .unwrap_or_default();
    out.extend(plan.headers);
    out.extend(reply.headers.iter().cloned());
    let body = if plan.streaming {
        FakeBody::paced(plan.frames, plan.frame_delay, plan.end, false)
    } else {
        FakeBody::full(plan.frames.concat().into())
    };
    Ok(response(plan.status, request_id, out, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(*n, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn credential_styles() {
        assert_eq!(
            credential_of(&headers(&[("x-api-key", "k1")])),
            Some(Credential::ApiKey("k1".into()))
        );
        assert_eq!(
            credential_of(&headers(&[("authorization", "Bearer t1")])),
            Some(Credential::Bearer("t1".into()))
        );
        assert_eq!(
            credential_of(&headers(&[("authorization", "bearer  t2 ")])),
            Some(Credential::Bearer("t2".into()))
        );
        assert_eq!(
            credential_of(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            credential_of(&headers(&[
                ("authorization", "Bearer t1"),
                ("x-api-key", "k1")
            ])),
            Some(Credential::ApiKey("k1".into()))
        );
        assert_eq!(credential_of(&HeaderMap::new()), None);
    }

    #[test]
    fn session_prefers_header() {
        let body = json!({"metadata": {"user_id": "u"}});
        assert_eq!(
            session_of(&headers(&[("x-claude-code-session-id", "s")]), &body).as_deref(),
            Some("s")
        );
        assert_eq!(session_of(&HeaderMap::new(), &body).as_deref(), Some("u"));
    }
}
