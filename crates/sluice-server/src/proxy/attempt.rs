//! The attempt loop: ask the pool for an account, send, and on a failure before the first
//! byte reaches the client, try another account.
//!
//! Everything that can still be retried happens here, before the response is committed:
//! connect errors, timeouts, 429/529/5xx/401/403 statuses, and a stream whose opening events
//! the provider reads as a failure (an Anthropic `error` event, Codex's `response.failed`
//! after its `response.created`, a Gemini error chunk). A subscription whose access token has
//! expired is refreshed before it is sent; one whose token the upstream refuses (401) gets
//! one forced refresh and a second try on the same account before the account is failed.
//! Once [`Delivery::Stream`] is handed out the request belongs to the client and is never
//! retried.
//!
//! Only the accounts the route's provider admits are tried (a Gemini dialect's kind of
//! credential; never a third party for a conversation carrying Anthropic-signed thinking).
//! The upstream request is built by the route's provider, or by the account's adapter for a
//! third party (from the request in Messages terms when the client spoke Chat Completions);
//! quota and failures are read by whichever built it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use sluice_config::ProviderKind;
use sluice_scheduler::{AccountId, Decision, Lease, Outcome, RequestInfo, Unavailable};
use tokio::sync::mpsc;

use super::body::Watch;
use super::lease::LeaseGuard;
use super::log::{RequestRecord, outcome_name};
use super::queue::QueuePlace;
use super::sse::SseFramer;
use crate::accounts::{refresh, setup};
use crate::error::{ErrorKind, ProxyError};
use crate::provider::{
    AccountContext, ClientRequest, Eligibility, Opening, Provider, RequestFacts,
    ResponseTranslator, Route, RouteKind, UpstreamRequest,
};
use crate::state::{AppState, PoolHandle, UpstreamAccount, now};

/// Largest upstream error body read to classify a failure.
const MAX_ERROR_BODY: usize = 256 << 10;
/// Largest opening of a stream read to decide whether it failed before producing anything.
const MAX_OPENING: usize = 64 << 10;
/// Most bookkeeping events (`response.created`, …) read past before committing anyway.
const MAX_PREAMBLE_EVENTS: usize = 8;

/// A response that failed (or a refusal of sluice's own), ready to be shown to the client.
pub enum Failure {
    Upstream {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Own(ProxyError),
}

/// A committed upstream response, ready to stream to the client.
pub struct Ready {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub first: Option<Bytes>,
    pub body: reqwest::Body,
    pub watch: Watch,
    pub lease: LeaseGuard,
}

pub enum Delivery {
    Stream(Ready),
    Failure(Failure),
}

/// A streaming request must wait longer than one keepalive interval: commit an SSE response
/// now and keep the client's connection alive with keepalive events while it waits.
pub struct Held;

enum Attempt {
    Deliver(Ready),
    /// A failure that is the client's own (bad request): shown as is, never retried.
    Passthrough(Failure),
    /// A failure of the account: try another.
    Failover(Failure, Outcome),
}

/// One client request on its way through the pool.
pub struct Exchange {
    pub app: AppState,
    /// The provider speaking the client's dialect.
    pub provider: Arc<dyn Provider>,
    pub pool: Arc<PoolHandle>,
    pub pool_kind: ProviderKind,
    pub route_kind: RouteKind,
    pub method: Method,
    pub path_and_query: String,
    pub client_headers: HeaderMap,
    pub body: Bytes,
    pub facts: RequestFacts,
    pub record: RequestRecord,
    /// Rewrites the response for a client that speaks another API than the upstream.
    pub translator: Option<Box<dyn ResponseTranslator>>,
    eligibility: Eligibility,
    excluded: Vec<AccountId>,
    tries: Vec<(AccountId, u32)>,
    last_failure: Option<Failure>,
    hold_deadline: tokio::time::Instant,
    /// The request's place in the pool's admission queue while it waits.
    place: QueuePlace,
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app: AppState,
        route: &Route,
        method: Method,
        path_and_query: String,
        client_headers: HeaderMap,
        body: Bytes,
        facts: RequestFacts,
        record: RequestRecord,
    ) -> Self {
        let pool = app.pool(route.pool).clone();
        let hold_deadline = tokio::time::Instant::now() + app.config().queue.max_wait;
        let place = QueuePlace::new(pool.clone());
        let client = ClientRequest {
            method: &method,
            path_and_query: &path_and_query,
            headers: &client_headers,
            body: &body,
        };
        let eligibility = route.provider.eligibility(&client);
        let translator = route.provider.response_translator(&client);
        // Accounts that may not serve this request are left out from the start.
        let excluded: Vec<AccountId> = app
            .directory()
            .iter()
            .filter(|a| a.pool() == route.pool && !admits(&eligibility, a))
            .map(|a| a.id)
            .collect();
        Exchange {
            app,
            provider: route.provider.clone(),
            pool,
            pool_kind: route.pool,
            route_kind: route.kind,
            method,
            path_and_query,
            client_headers,
            body,
            facts,
            record,
            translator,
            eligibility,
            excluded,
            tries: Vec::new(),
            last_failure: None,
            hold_deadline,
            place,
        }
    }

    /// Run attempts until a response is committed or nothing more can be tried. With
    /// `keepalive` (a committed held stream) waits send keepalive events; without it, a
    /// streaming request that must wait long returns [`Held`].
    pub async fn run(&mut self, keepalive: Option<&mpsc::Sender<Bytes>>) -> Result<Delivery, Held> {
        let mut request = RequestInfo {
            conversation: self.facts.conversation,
            weight: self.facts.weight.max(1),
            ticket: self.place.ticket(),
        };
        let (max_attempts, per_account) = {
            let config = self.app.config();
            let accounts = self.pool.with(|p| p.len()) as u32;
            let max = match config.retry.max_attempts {
                0 => accounts.max(1),
                n => n,
            };
            (max, config.retry.attempts_per_account.max(1))
        };
        if !self.excluded.is_empty()
            && self
                .pool
                .with(|p| p.ids().all(|id| self.excluded.contains(&id)))
        {
            // Every account of the pool is of a kind this request cannot use.
            return Ok(Delivery::Failure(Failure::Own(ProxyError::new(
                ErrorKind::Unavailable,
                format!(
                    "no {} account can serve this request: {}",
                    self.pool_kind,
                    self.eligibility.describe()
                ),
            ))));
        }
        let pool = self.pool.clone();
        loop {
            let changed = pool.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let decision = self
                .pool
                .with(|pool| pool.acquire(&request, &self.excluded, now()));
            if !matches!(decision, Decision::Wait { .. }) && request.ticket.take().is_some() {
                // Out of the queue (placed or refused): the next in line may go now.
                self.place.left();
                self.record.note_dequeued();
                self.pool.changed.notify_waiters();
            }
            match decision {
                Decision::Route(lease) => {
                    let account = lease.account;
                    self.record.attempts += 1;
                    match self.try_account(lease).await {
                        Attempt::Deliver(ready) => return Ok(Delivery::Stream(ready)),
                        Attempt::Passthrough(failure) => return Ok(Delivery::Failure(failure)),
                        Attempt::Failover(failure, outcome) => {
                            self.record.failovers.push(outcome_name(&outcome));
                            self.last_failure = Some(failure);
                            if self.note_try(account) >= per_account {
                                self.excluded.push(account);
                            }
                            if self.record.attempts >= max_attempts {
                                return Ok(Delivery::Failure(
                                    self.give_up(None, Unavailable::AllTried),
                                ));
                            }
                        }
                    }
                }
                Decision::Wait {
                    until,
                    reason,
                    ticket,
                } => {
                    request.ticket = Some(ticket);
                    self.place.hold(ticket);
                    self.record.note_queued();
                    let now_instant = tokio::time::Instant::now();
                    if now_instant >= self.hold_deadline {
                        let retry = until.map(|u| now().until(u));
                        return Ok(Delivery::Failure(self.give_up(retry, reason)));
                    }
                    let wake = until
                        .map(|u| now_instant + now().until(u))
                        .unwrap_or(self.hold_deadline)
                        .min(self.hold_deadline);
                    let interval = self.app.config().queue.keepalive;
                    match keepalive {
                        None if self.facts.stream && wake > now_instant + interval => {
                            return Err(Held);
                        }
                        None => {
                            tokio::select! {
                                _ = &mut changed => {}
                                _ = tokio::time::sleep_until(wake) => {}
                            }
                        }
                        Some(sink) => {
                            let mut ticks =
                                tokio::time::interval_at(now_instant + interval, interval);
                            loop {
                                tokio::select! {
                                    _ = &mut changed => break,
                                    _ = tokio::time::sleep_until(wake) => break,
                                    _ = ticks.tick() => {
                                        if sink.send(self.provider.keepalive_event()).await.is_err() {
                                            let gone = ProxyError::new(ErrorKind::InvalidRequest, "client disconnected");
                                            return Ok(Delivery::Failure(Failure::Own(gone)));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Decision::Reject {
                    retry_after,
                    reason,
                } => return Ok(Delivery::Failure(self.give_up(retry_after, reason))),
            }
        }
    }

    fn note_try(&mut self, account: AccountId) -> u32 {
        match self.tries.iter_mut().find(|(id, _)| *id == account) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.tries.push((account, 1));
                1
            }
        }
    }

    /// Nothing more can be tried: the pool's refusal when untried accounts will recover,
    /// otherwise the last upstream failure as the upstream said it.
    fn give_up(&mut self, retry_after: Option<Duration>, reason: Unavailable) -> Failure {
        self.place.leave();
        let recoverable = reason.is_temporary();
        if let Some(failure) = self.last_failure.take()
            && !(recoverable && retry_after.is_some())
        {
            return failure;
        }
        let provider = self.pool_kind;
        Failure::Own(match reason {
            Unavailable::NoAccounts => ProxyError::new(
                ErrorKind::Unavailable,
                format!("sluice has no {provider} accounts configured"),
            ),
            Unavailable::Unusable => ProxyError::new(
                ErrorKind::Unavailable,
                format!("no {provider} account is usable (disabled, failing authentication or needing a new login)"),
            ),
            Unavailable::AllTried => ProxyError::new(
                ErrorKind::Upstream,
                "every account failed for this request",
            ),
            Unavailable::AtCapacity | Unavailable::Queued => ProxyError::new(
                ErrorKind::Overloaded,
                "every account is at its in-flight limit",
            )
            .retry_after(Some(retry_after.unwrap_or(Duration::from_secs(1)))),
            Unavailable::UpstreamThrottled => ProxyError::new(
                ErrorKind::RateLimited,
                format!(
                    "the {provider} upstream is throttling every account; retry in {}s",
                    retry_after.map_or(1, |d| d.as_secs().max(1))
                ),
            )
            .retry_after(Some(retry_after.unwrap_or(Duration::from_secs(1)))),
            Unavailable::RateLimited | Unavailable::CoolingDown | Unavailable::QuotaExhausted => {
                ProxyError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "every {provider} account is rate limited or out of quota; the soonest recovers in {}s",
                        retry_after.map_or(0, |d| d.as_secs().max(1))
                    ),
                )
                .retry_after(retry_after)
            }
        })
    }

    async fn try_account(&mut self, lease: Lease) -> Attempt {
        let mut guard = LeaseGuard::new(self.pool.clone(), lease);
        let account_id = guard.lease().map(|l| l.account);
        let account =
            account_id.and_then(|id| self.app.directory().get(self.pool_kind, id).cloned());
        let Some(account) = account else {
            // Removed between decision and send; let the loop pick again.
            let failure = Failure::Own(ProxyError::new(ErrorKind::Upstream, "account removed"));
            guard.finish(Outcome::Neutral);
            return Attempt::Failover(failure, Outcome::Neutral);
        };
        if !admits(&self.eligibility, &account) {
            // Joined (or changed) after the request arrived: not for this request.
            self.excluded.push(account.id);
            let failure = Failure::Own(ProxyError::new(
                ErrorKind::Unavailable,
                self.eligibility.describe(),
            ));
            guard.finish(Outcome::Neutral);
            return Attempt::Failover(failure, Outcome::Neutral);
        }
        self.record.account = Some(account.name.clone());
        // The provider that built the upstream request reads its answer.
        let upstream_side = account
            .adapter
            .clone()
            .unwrap_or_else(|| self.provider.clone());

        let (response_timeout, idle_timeout) = {
            let config = self.app.config();
            (
                config.upstream.response_timeout,
                config.upstream.idle_timeout,
            )
        };
        // A subscription's 401 gets one forced token refresh and a second try on the same
        // account before it counts as the account's failure.
        let mut refreshed_after_401 = false;
        let response = loop {
            let credential = refresh::usable_credential(&self.app, &account).await;
            if refresh::expired_beyond_refresh(&credential) {
                // Sending a token known to be dead would only earn a 401.
                guard.finish(Outcome::AuthRejected { status: 401 });
                let failure = Failure::Own(ProxyError::new(
                    ErrorKind::Authentication,
                    format!(
                        "the access token of account {} has expired and could not be refreshed",
                        account.name
                    ),
                ));
                return Attempt::Failover(failure, Outcome::AuthRejected { status: 401 });
            }
            if let Err(not_ready) = setup::ensure_ready(&self.app, &account, &credential).await {
                guard.finish(not_ready.outcome.clone());
                let failure = Failure::Own(ProxyError::new(
                    error_kind_for(&not_ready.outcome),
                    not_ready.message,
                ));
                return Attempt::Failover(failure, not_ready.outcome);
            }
            let upstream = match self.build(&account, &credential) {
                Ok(upstream) => upstream,
                Err(error) if error.kind == ErrorKind::InvalidRequest => {
                    // The client's mistake (a request that cannot be translated, say):
                    // answered as it is, no account is at fault.
                    guard.finish(Outcome::Neutral);
                    return Attempt::Passthrough(Failure::Own(error));
                }
                Err(error) => {
                    tracing::warn!(account = %account.name, error = %error.message, "could not build the upstream request");
                    guard.finish(Outcome::Neutral);
                    return Attempt::Failover(Failure::Own(error), Outcome::Neutral);
                }
            };
            let send = self
                .app
                .client()
                .request(upstream.method, upstream.url)
                .headers(upstream.headers)
                .body(upstream.body)
                .send();
            let sent = std::time::Instant::now();
            let answer = tokio::time::timeout(response_timeout, send).await;
            self.record.note_upstream_answer(sent);
            let response = match answer {
                Err(_) => {
                    return transport_failure(
                        guard,
                        Outcome::Timeout,
                        &account.name,
                        "timed out waiting for the upstream's response",
                    );
                }
                Ok(Err(error)) => {
                    let outcome = if error.is_timeout() {
                        Outcome::Timeout
                    } else {
                        Outcome::Connect
                    };
                    return transport_failure(
                        guard,
                        outcome,
                        &account.name,
                        "could not reach the upstream",
                    );
                }
                Ok(Ok(response)) => response,
            };
            if response.status() == StatusCode::UNAUTHORIZED
                && !refreshed_after_401
                && refresh::refresh_after_rejection(&self.app, &account, &credential).await
            {
                refreshed_after_401 = true;
                continue;
            }
            break response;
        };

        let at = now();
        let observation = upstream_side.observe_quota(response.headers(), at);
        if !observation.is_empty() {
            self.pool
                .with(|pool| pool.observe_quota(account.id, &observation, at));
        }
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, mut body) = response.into_parts();
        self.record.status = parts.status.as_u16();
        let mut headers = response_headers(&parts.headers, &account.name);

        if !parts.status.is_success() {
            let bytes = read_bounded(&mut body, MAX_ERROR_BODY, idle_timeout).await;
            let failure = Failure::Upstream {
                status: parts.status,
                headers,
                body: bytes.clone(),
            };
            return match upstream_side.classify_failure(parts.status, &parts.headers, &bytes, at) {
                Some(outcome) => {
                    guard.finish(outcome.clone());
                    Attempt::Failover(failure, outcome)
                }
                None => {
                    guard.finish(Outcome::Neutral);
                    Attempt::Passthrough(failure)
                }
            };
        }

        let sse = is_event_stream(&parts.headers);
        if let Some(translator) = self.translator.as_ref() {
            // The body is rewritten: its length is no longer the upstream's.
            headers.remove(http::header::CONTENT_LENGTH);
            if let Some(content_type) = translator.content_type(sse) {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type),
                );
            }
        }
        if !sse {
            let watch = if self.translator.is_some() {
                Watch::Whole(Vec::new())
            } else if self.route_kind == RouteKind::Generate && is_json(&parts.headers) {
                Watch::Json(Vec::new())
            } else {
                Watch::Opaque
            };
            guard.accepted();
            return Attempt::Deliver(Ready {
                status: parts.status,
                headers,
                first: None,
                body,
                watch,
                lease: guard,
            });
        }

        // A stream: its body will be reframed, so its length is no longer the upstream's.
        headers.remove(http::header::CONTENT_LENGTH);
        let first = match read_opening(upstream_side.as_ref(), &mut body, idle_timeout).await {
            Opened::Silent => {
                return transport_failure(
                    guard,
                    Outcome::Timeout,
                    &account.name,
                    "the upstream stream never started",
                );
            }
            Opened::Broken => {
                return transport_failure(
                    guard,
                    Outcome::StreamBroken,
                    &account.name,
                    "the upstream stream broke before its first event",
                );
            }
            Opened::Failed(outcome) => {
                let error = ProxyError::new(
                    error_kind_for(&outcome),
                    "the upstream failed before answering",
                );
                guard.finish(outcome.clone());
                return Attempt::Failover(Failure::Own(error), outcome);
            }
            Opened::Committed(first) => first,
        };
        guard.accepted();
        Attempt::Deliver(Ready {
            status: parts.status,
            headers,
            first,
            body,
            watch: Watch::Events(SseFramer::default()),
            lease: guard,
        })
    }

    /// The upstream request for `account`: built by the route's provider, or by the
    /// account's adapter (from the request in the upstream API's terms).
    fn build(
        &self,
        account: &UpstreamAccount,
        credential: &sluice_config::Credential,
    ) -> Result<UpstreamRequest, ProxyError> {
        let identity = account.identity.load();
        let context = AccountContext {
            base_url: &account.base_url,
            credential,
            identity: &identity,
        };
        let client = ClientRequest {
            method: &self.method,
            path_and_query: &self.path_and_query,
            headers: &self.client_headers,
            body: &self.body,
        };
        let Some(adapter) = &account.adapter else {
            return self.provider.upstream_request(&client, &context);
        };
        match self.provider.upstream_form(&client)? {
            None => adapter.upstream_request(&client, &context),
            Some(translated) => adapter.upstream_request(
                &ClientRequest {
                    method: &self.method,
                    path_and_query: &translated.path_and_query,
                    headers: &translated.headers,
                    body: &translated.body,
                },
                &context,
            ),
        }
    }
}

/// Whether `account` may serve a request of `eligibility`.
fn admits(eligibility: &Eligibility, account: &UpstreamAccount) -> bool {
    eligibility.admits(account.provider, account.credential.load().kind())
}

/// How a stream opened.
enum Opened {
    /// Nothing came within the idle timeout.
    Silent,
    /// The connection broke before a whole event arrived.
    Broken,
    /// The provider read the opening as a failure.
    Failed(Outcome),
    /// Worth committing to; these bytes (whole events and any partial one) go first.
    Committed(Option<Bytes>),
}

/// Read a stream's opening until an event the provider calls content (or a failure), past
/// at most a few bookkeeping events and a bounded number of bytes.
async fn read_opening(provider: &dyn Provider, body: &mut reqwest::Body, idle: Duration) -> Opened {
    let mut read = BytesMut::new();
    let mut framer = SseFramer::default();
    let mut events = 0;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) if read.is_empty() => return Opened::Silent,
            Err(_) => break,
            Ok(None) if read.is_empty() => return Opened::Committed(None),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Opened::Broken,
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        read.extend_from_slice(&frame);
        let mut verdict = None;
        framer.push(frame, |event| {
            if verdict.is_none() {
                events += 1;
                match provider.opening_event(event.name, &event.data) {
                    Opening::Preamble if events < MAX_PREAMBLE_EVENTS => {}
                    Opening::Failed(outcome) => verdict = Some(Some(outcome)),
                    Opening::Preamble | Opening::Content => verdict = Some(None),
                }
            }
        });
        match verdict {
            Some(Some(outcome)) => return Opened::Failed(outcome),
            Some(None) => break,
            None if read.len() >= MAX_OPENING => break,
            None => {}
        }
    }
    Opened::Committed(Some(read.freeze()))
}

fn transport_failure(guard: LeaseGuard, outcome: Outcome, account: &str, what: &str) -> Attempt {
    guard.finish(outcome.clone());
    let kind = if outcome == Outcome::Timeout {
        ErrorKind::Timeout
    } else {
        ErrorKind::Upstream
    };
    let failure = Failure::Own(ProxyError::new(kind, format!("{what} (account {account})")));
    Attempt::Failover(failure, outcome)
}

fn error_kind_for(outcome: &Outcome) -> ErrorKind {
    match outcome {
        Outcome::RateLimited { .. } => ErrorKind::RateLimited,
        Outcome::Overloaded { .. } => ErrorKind::Overloaded,
        Outcome::AuthRejected { .. } => ErrorKind::Authentication,
        _ => ErrorKind::Upstream,
    }
}

/// Upstream response headers that may travel to the client, plus which account served.
pub fn response_headers(upstream: &HeaderMap, account: &str) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len() + 1);
    for (name, value) in upstream {
        if crate::provider::is_hop_by_hop(name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Ok(value) = HeaderValue::from_str(account) {
        out.insert("x-sluice-account", value);
    }
    out
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// Read a (small) body completely, up to `max` bytes.
async fn read_bounded(body: &mut reqwest::Body, max: usize, idle: Duration) -> Bytes {
    let mut buffer = BytesMut::new();
    while buffer.len() < max {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let room = max - buffer.len();
                    buffer.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    buffer.freeze()
}
