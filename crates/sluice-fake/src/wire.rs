//! HTTP plumbing the Codex, Gemini and OpenAI fakes share: reading and recording a request,
//! finding its credential, building JSON and SSE responses, and carrying out a [`Plan`]
//! (delays, hangs, paced frames, aborted bodies).

use std::io;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::body::FakeBody;
use crate::record::{RecordedRequest, RequestLog};
use crate::reply::{BodyEnd, Plan};

/// Largest request body the fakes read.
pub(crate) const MAX_BODY: usize = 32 << 20;

/// A request read whole and recorded.
pub(crate) struct ApiRequest {
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
}

impl ApiRequest {
    /// The JSON body, or `Value::Null`.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok().map(str::trim)
    }

    /// A query parameter's value.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// The fields of a token request, whether it came as JSON or form-encoded.
pub(crate) fn token_fields(req: &ApiRequest) -> std::collections::HashMap<String, String> {
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
    }
    match req.json() {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect(),
        _ => std::collections::HashMap::new(),
    }
}

/// A login page that approves at once: checks the PKCE parameters and sends the browser
/// back to `redirect_uri` with a code. Returns the code, the challenge and the redirect URI
/// to remember, or the refusal.
pub(crate) fn approve_login(
    req: &ApiRequest,
    serial: u64,
) -> Result<
    (String, PendingLogin, Response<crate::body::FakeBody>),
    Box<Response<crate::body::FakeBody>>,
> {
    let get = |k: &str| req.query_param(k).unwrap_or_default();
    let refuse = |message: &str| {
        Box::new(json(
            400,
            &req.request_id,
            &[],
            &serde_json::json!({"error": "invalid_request", "error_description": message}),
        ))
    };
    if get("response_type") != "code" || get("code_challenge_method") != "S256" {
        return Err(refuse("fake: expected response_type=code and S256"));
    }
    if get("code_challenge").is_empty() || get("state").is_empty() || get("client_id").is_empty() {
        return Err(refuse("fake: missing challenge, state or client_id"));
    }
    let redirect_uri = get("redirect_uri");
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return Err(refuse("fake: bad redirect_uri"));
    };
    let code = format!("fake-login-code-{serial}");
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    let redirect = response(
        302,
        &req.request_id,
        &[("location".to_owned(), target.to_string())],
        crate::body::FakeBody::full(Bytes::new()),
    );
    Ok((
        code,
        PendingLogin {
            challenge: get("code_challenge"),
            redirect_uri,
        },
        redirect,
    ))
}

/// A login code handed out and not yet exchanged.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub challenge: String,
    pub redirect_uri: String,
}

impl PendingLogin {
    /// Whether an exchange presents what the login started with.
    pub(crate) fn matches(&self, fields: &std::collections::HashMap<String, String>) -> bool {
        let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        field("redirect_uri") == self.redirect_uri
            && crate::oauth::pkce_challenge(field("code_verifier")) == self.challenge
    }
}

/// The token of `authorization: Bearer <token>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Read the body (bounded), record the request with `credential_of`'s answer, and hand it
/// back. An unreadable body drops the connection.
pub(crate) async fn read_and_record(
    log: &RequestLog,
    now: SystemTime,
    prefix: &str,
    req: Request<Incoming>,
    credential_of: impl FnOnce(&HeaderMap, Option<&str>) -> Option<String>,
) -> io::Result<ApiRequest> {
    let seq = log.next_seq();
    let request_id = format!("req_{prefix}_{seq:016x}");
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let query = parts.uri.query().map(str::to_owned);
    let credential = credential_of(&parts.headers, query.as_deref());
    log.push(RecordedRequest {
        seq,
        method: parts.method.as_str().to_owned(),
        path: path_and_query,
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
        credential,
        received_at: now,
        request_id: request_id.clone(),
    });
    Ok(ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
        request_id,
    })
}

/// A response with `headers` (invalid ones skipped) and `body`.
pub(crate) fn response(
    status: u16,
    request_id: &str,
    headers: &[(String, String)],
    body: FakeBody,
) -> Response<FakeBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        map.insert("x-request-id", v);
    }
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                map.insert(n, v);
            }
            _ => debug!(%name, "fake: skipping invalid response header"),
        }
    }
    resp
}

/// A JSON response.
pub(crate) fn json(
    status: u16,
    request_id: &str,
    headers: &[(String, String)],
    body: &serde_json::Value,
) -> Response<FakeBody> {
    let mut all = vec![("content-type".to_owned(), "application/json".to_owned())];
    all.extend_from_slice(headers);
    response(
        status,
        request_id,
        &all,
        FakeBody::full(Bytes::from(body.to_string())),
    )
}

/// One SSE event with a name: `event: NAME\ndata: JSON\n\n`.
pub(crate) fn named_event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// One unnamed SSE event, with `\n` or `\r\n` line ends.
pub(crate) fn data_event(data: &serde_json::Value, crlf: bool) -> Bytes {
    if crlf {
        Bytes::from(format!("data: {data}\r\n\r\n"))
    } else {
        Bytes::from(format!("data: {data}\n\n"))
    }
}

/// Carry out a plan: wait, hang until shutdown, or answer with its frames.
pub(crate) async fn serve_plan(
    plan: Plan,
    request_id: &str,
    cancel: &CancellationToken,
) -> io::Result<Response<FakeBody>> {
    if !plan.head_delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(plan.head_delay) => {}
            () = cancel.cancelled() => {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "fake: shut down"));
            }
        }
    }
    if plan.hang {
        cancel.cancelled().await;
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "fake: shut down while hanging",
        ));
    }
    let body = if plan.streaming {
        FakeBody::paced(plan.frames, plan.frame_delay, plan.end, false)
    } else if plan.end == BodyEnd::Abort {
        FakeBody::paced(plan.frames, plan.frame_delay, BodyEnd::Abort, false)
    } else {
        FakeBody::full(plan.frames.concat().into())
    };
    Ok(response(plan.status, request_id, &plan.headers, body))
}

/// An empty plan with `status`, to be filled in.
pub(crate) fn plan(status: u16) -> Plan {
    Plan {
        head_delay: std::time::Duration::ZERO,
        hang: false,
        status,
        headers: Vec::new(),
        frames: Vec::new(),
        frame_delay: std::time::Duration::ZERO,
        end: BodyEnd::Clean,
        streaming: false,
    }
}
