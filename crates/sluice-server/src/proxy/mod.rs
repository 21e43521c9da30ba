//! The data path: a client request in, an upstream response out.
//!
//! `handle` authenticates the client, reads the (bounded) body, asks the provider what the
//! request is, and hands it to the attempt loop ([`attempt`]); the committed response streams
//! back through [`body::ProxyBody`]. A streaming request that has to wait for an account is
//! answered at once with an SSE response that carries keepalive events until the upstream
//! stream takes over.

pub mod attempt;
pub mod body;
pub mod lease;
pub mod log;
pub mod queue;
pub mod sse;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use tokio::sync::mpsc;

use sluice_config::ProviderKind;

use self::attempt::{Delivery, Exchange, Failure, Held, Ready};
use self::body::ProxyBody;
use self::log::RequestRecord;
use crate::error::{ErrorKind, ProxyError};
use crate::provider::{self, ClientRequest, LocalRequest, Provider, Route, RouteKind, routing};
use crate::state::AppState;

/// Handle any request addressed to a provider API.
pub async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let providers = app.providers();
    let Some(pending) = routing::route(providers, &parts.method, parts.uri.path(), &parts.headers)
    else {
        let error = ProxyError::new(
            ErrorKind::NotFound,
            format!(
                "sluice does not serve {} {}",
                parts.method,
                parts.uri.path()
            ),
        );
        return error_response(providers.get(ProviderKind::Anthropic).as_ref(), &error);
    };
    if !app.client_keys().admits(&parts.headers) {
        let error = ProxyError::new(
            ErrorKind::Authentication,
            "sluice needs a client key: send one of the configured client_keys as x-api-key or authorization: Bearer",
        );
        return error_response(pending.error_provider().as_ref(), &error);
    }

    let limit = app.config().limits.max_request_body;
    let body = match read_body(body, &parts.headers, limit).await {
        Ok(body) => body,
        Err(error) => return error_response(pending.error_provider().as_ref(), &error),
    };
    let route = pending.resolve(&body);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());

    match route.kind {
        RouteKind::ClientTokenRefresh => {
            return relay_untouched(&app, route.provider.as_ref(), &parts, &path_and_query, body)
                .await;
        }
        RouteKind::Local => return answer_locally(&app, &route, &parts, &path_and_query, &body),
        RouteKind::Generate | RouteKind::Auxiliary => {}
    }

    let client = ClientRequest {
        method: &parts.method,
        path_and_query: &path_and_query,
        headers: &parts.headers,
        body: &body,
    };
    let facts = route.provider.inspect_request(&client);
    let mut record = RequestRecord::new(
        parts.method.as_str(),
        parts.uri.path(),
        route.pool.as_str(),
        facts.model.clone(),
    );
    record.attach(&app, &parts.headers, facts.conversation);
    let exchange = Exchange::new(
        app.clone(),
        &route,
        parts.method,
        path_and_query,
        parts.headers,
        body,
        facts,
        record,
    );
    respond(exchange).await
}

/// A request sluice answers itself: the provider answers from the pool's current state.
fn answer_locally(
    app: &AppState,
    route: &Route,
    parts: &http::request::Parts,
    path_and_query: &str,
    body: &Bytes,
) -> Response {
    let snapshot = app.pool(route.pool).snapshot();
    let local = LocalRequest {
        client: ClientRequest {
            method: &parts.method,
            path_and_query,
            headers: &parts.headers,
            body,
        },
        pool: &snapshot,
        now: crate::state::now(),
    };
    let mut record = RequestRecord::new(
        parts.method.as_str(),
        parts.uri.path(),
        route.pool.as_str(),
        None,
    );
    let response = match route.provider.answer_locally(&local) {
        Some(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        None => error_response(
            route.provider.as_ref(),
            &ProxyError::new(
                ErrorKind::NotFound,
                format!(
                    "sluice does not serve {} {}",
                    parts.method,
                    parts.uri.path()
                ),
            ),
        ),
    };
    record.status = response.status().as_u16();
    record.outcome = "local";
    record.emit();
    response
}

async fn respond(mut exchange: Exchange) -> Response {
    match exchange.run(None).await {
        Ok(delivery) => deliver(exchange, delivery),
        Err(Held) => respond_held(exchange),
    }
}

fn deliver(exchange: Exchange, delivery: Delivery) -> Response {
    match delivery {
        Delivery::Stream(ready) => stream_response(exchange, ready),
        Delivery::Failure(failure) => failure_response(exchange, failure),
    }
}

fn stream_response(exchange: Exchange, ready: Ready) -> Response {
    let Ready {
        status,
        headers,
        first,
        body,
        watch,
        lease,
    } = ready;
    let mut record = exchange.record;
    record.status = status.as_u16();
    let idle = exchange.app.config().upstream.idle_timeout;
    let body = ProxyBody::new(
        body,
        first,
        watch,
        exchange.provider,
        Some(lease),
        idle,
        record,
    )
    .translated_by(exchange.translator);
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn failure_response(exchange: Exchange, failure: Failure) -> Response {
    let mut record = exchange.record;
    let mut translator = exchange.translator;
    let response = match failure {
        Failure::Upstream {
            status,
            mut headers,
            body,
        } => {
            // A client that speaks another API than the upstream gets the failure in its own.
            let (status, body) = match translator.as_mut() {
                Some(translator) => {
                    let (status, body) = translator.on_error(status, &body);
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    (status, body)
                }
                None => (status, body),
            };
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response.headers_mut().remove(http::header::CONTENT_LENGTH);
            response
        }
        Failure::Own(error) => {
            record.error = Some(error.message.clone());
            error_response(exchange.provider.as_ref(), &error)
        }
    };
    record.status = response.status().as_u16();
    record.outcome = "failed";
    record.emit();
    response
}

/// Answer a held streaming request now, with keepalives, and finish it in the background.
fn respond_held(mut exchange: Exchange) -> Response {
    let (sink, events) = mpsc::channel::<Bytes>(32);
    let provider = exchange.provider.clone();
    tokio::spawn(async move {
        if sink.send(provider.keepalive_event()).await.is_err() {
            return;
        }
        match exchange.run(Some(&sink)).await {
            Ok(Delivery::Stream(ready)) => {
                let response = stream_response(exchange, ready);
                let mut body = response.into_body();
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Ok(data) = frame.into_data()
                        && sink.send(data).await.is_err()
                    {
                        break;
                    }
                }
            }
            Ok(Delivery::Failure(failure)) => {
                let error = match &failure {
                    Failure::Own(error) => error.clone(),
                    Failure::Upstream { status, body, .. } => upstream_error_summary(*status, body),
                };
                let _ = sink.send(provider.error_event(&error)).await;
                let mut record = exchange.record;
                record.status = 200;
                record.outcome = "failed";
                record.error = Some(error.message);
                record.emit();
            }
            Err(Held) => unreachable!("a request with a keepalive sink is never held again"),
        }
    });
    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(events)
            .map(|data| Ok::<_, std::convert::Infallible>(Frame::data(data))),
    );
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// An upstream failure restated as an error of sluice's, keeping the upstream's message type.
fn upstream_error_summary(status: StatusCode, body: &[u8]) -> ProxyError {
    let kind = match status.as_u16() {
        429 => ErrorKind::RateLimited,
        529 => ErrorKind::Overloaded,
        401 | 403 => ErrorKind::Authentication,
        400..=499 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Upstream,
    };
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("upstream answered HTTP {}", status.as_u16()));
    ProxyError::new(kind, message)
}

/// Read the request body, refusing anything larger than `limit`.
async fn read_body(body: Body, headers: &http::HeaderMap, limit: u64) -> Result<Bytes, ProxyError> {
    let too_large = || {
        ProxyError::new(
            ErrorKind::RequestTooLarge,
            format!(
                "request body exceeds sluice's limit of {limit} bytes (limits.max_request_body)"
            ),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(ProxyError::new(
            ErrorKind::InvalidRequest,
            "could not read the request body",
        )),
    }
}

/// Relay a request exactly as the client sent it (its own credentials included) to the
/// provider's default base URL: used for the client's own OAuth token refresh.
async fn relay_untouched(
    app: &AppState,
    provider: &dyn Provider,
    parts: &http::request::Parts,
    path_and_query: &str,
    body: Bytes,
) -> Response {
    let base = app.config().providers.base_url(provider.kind()).clone();
    let mut headers = http::HeaderMap::new();
    for (name, value) in &parts.headers {
        if provider::is_hop_by_hop(name.as_str())
            || matches!(name.as_str(), "host" | "content-length")
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let url = provider.upstream_url(&base, path_and_query);
    let sent = app
        .client()
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(upstream) => {
            let status = upstream.status();
            let headers = upstream.headers().clone();
            let response: http::Response<reqwest::Body> = upstream.into();
            let mut out = Response::new(Body::new(response.into_body()));
            *out.status_mut() = status;
            for (name, value) in &headers {
                if !provider::is_hop_by_hop(name.as_str()) {
                    out.headers_mut().append(name.clone(), value.clone());
                }
            }
            out
        }
        Err(_) => error_response(
            provider,
            &ProxyError::new(
                ErrorKind::Upstream,
                "could not reach the upstream token endpoint",
            ),
        ),
    }
}

/// An error of sluice's own, in the provider's wire format.
pub fn error_response(provider: &dyn Provider, error: &ProxyError) -> Response {
    let (status, headers, body) = provider.error_response(error);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
