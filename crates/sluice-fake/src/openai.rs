//! `FakeOpenAI`: a fake OpenAI API for API-key accounts.
//!
//! - `POST /v1/chat/completions`: `chat.completion` JSON, or with `"stream": true` SSE
//!   `data:` chunks (role, one per text delta, the `finish_reason`, a usage chunk with empty
//!   `choices` when `stream_options.include_usage`) ending `data: [DONE]`.
//! - `POST /v1/responses`: the Responses API, streamed or whole.
//! - `GET /v1/models`.
//!
//! Keys travel as `authorization: Bearer`; an unknown one is 401 `invalid_api_key`. Every
//! answer carries `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; a scripted 429
//! is `rate_limit_exceeded` with `retry-after` (or, with `.code("insufficient_quota")`, the
//! billing refusal).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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
    ApiRequest, bearer, data_event, json as json_response, read_and_record, serve_plan,
};

/// How to start a [`FakeOpenAI`].
#[derive(Debug, Clone)]
pub struct FakeOpenAIConfig {
    pub addr: SocketAddr,
    pub clock: Clock,
    pub max_recorded_requests: usize,
}

impl Default for FakeOpenAIConfig {
    fn default() -> Self {
        FakeOpenAIConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clock: Clock::system(),
            max_recorded_requests: crate::DEFAULT_MAX_RECORDED_REQUESTS,
        }
    }
}

/// The `x-ratelimit-*` headers of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAILimits {
    pub limit_requests: u64,
    pub remaining_requests: u64,
    /// A Go-style delay (`"1s"`, `"6m0s"`, `"20ms"`).
    pub reset_requests: String,
    pub limit_tokens: u64,
    pub remaining_tokens: u64,
    pub reset_tokens: String,
}

impl Default for OpenAILimits {
    fn default() -> Self {
        OpenAILimits {
            limit_requests: 500,
            remaining_requests: 499,
            reset_requests: "120ms".into(),
            limit_tokens: 30_000,
            remaining_tokens: 29_000,
            reset_tokens: "2s".into(),
        }
    }
}

impl OpenAILimits {
    fn headers(&self) -> Vec<(String, String)> {
        vec![
            (
                "x-ratelimit-limit-requests".into(),
                self.limit_requests.to_string(),
            ),
            (
                "x-ratelimit-remaining-requests".into(),
                self.remaining_requests.to_string(),
            ),
            (
                "x-ratelimit-reset-requests".into(),
                self.reset_requests.clone(),
            ),
            (
                "x-ratelimit-limit-tokens".into(),
                self.limit_tokens.to_string(),
            ),
            (
                "x-ratelimit-remaining-tokens".into(),
                self.remaining_tokens.to_string(),
            ),
            ("x-ratelimit-reset-tokens".into(), self.reset_tokens.clone()),
        ]
    }
}

#[derive(Debug, Default)]
struct KeyState {
    script: VecDeque<ApiReply>,
    default: ApiReply,
    limits: OpenAILimits,
}

#[derive(Debug)]
struct Shared {
    keys: Mutex<HashMap<String, KeyState>>,
    log: RequestLog,
    clock: Clock,
    cancel: CancellationToken,
}

/// A fake OpenAI API. Dropping it (or [`FakeOpenAI::shutdown`]) stops it.
#[derive(Debug)]
pub struct FakeOpenAI {
    running: Running,
    shared: Arc<Shared>,
}

impl FakeOpenAI {
    /// Bind and serve. Must be called from within a tokio runtime.
    pub fn start(config: FakeOpenAIConfig) -> io::Result<FakeOpenAI> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            keys: Mutex::default(),
            log: RequestLog::new(config.max_recorded_requests),
            clock: config.clock,
            cancel: cancel.clone(),
        });
        let handler = handler(shared.clone(), |shared, req| async move {
            handle(&shared, req).await
        });
        let running = Running::start(config.addr, cancel, handler, "openai")?;
        Ok(FakeOpenAI { running, shared })
    }

    pub fn new() -> io::Result<FakeOpenAI> {
        FakeOpenAI::start(FakeOpenAIConfig::default())
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `http://127.0.0.1:PORT` (requests go to `/v1/...` below it).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// Make `key` a valid API key.
    pub fn add_key(&self, key: &str) {
        self.shared.keys.lock().entry(key.to_owned()).or_default();
    }

    pub fn script<I: IntoIterator<Item = ApiReply>>(&self, key: &str, replies: I) {
        self.with(key, |k| k.script.extend(replies));
    }

    pub fn set_default(&self, key: &str, reply: ApiReply) {
        self.with(key, |k| k.default = reply);
    }

    pub fn set_limits(&self, key: &str, limits: OpenAILimits) {
        self.with(key, |k| k.limits = limits);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    pub fn requests_for(&self, key: &str) -> Vec<RecordedRequest> {
        self.shared.log.for_credential(key)
    }

    pub fn request_count(&self) -> usize {
        self.shared.log.total()
    }

    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared.log.wait_for(n, timeout).await
    }

    pub fn shutdown(&self) {
        self.running.shutdown();
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(&mut KeyState) -> R) -> R {
        f(self.shared.keys.lock().entry(key.to_owned()).or_default())
    }
}

fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> io::Result<Response<FakeBody>> {
    let req = read_and_record(&shared.log, shared.clock.now(), "openai", req, |h, _| {
        bearer(h)
    })
    .await?;
    let key = bearer(&req.headers);
    let state = key.as_deref().and_then(|k| {
        let mut keys = shared.keys.lock();
        keys.get_mut(k).map(|s| {
            let reply = s.script.pop_front().unwrap_or_else(|| s.default.clone());
            (reply, s.limits.clone())
        })
    });
    let Some((reply, limits)) = state else {
        return Ok(json_response(
            401,
            &req.request_id,
            &[],
            &openai_error(
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
        ));
    };
    match (&req.method, req.path.as_str()) {
        (&Method::GET, "/v1/models") => Ok(json_response(
            200,
            &req.request_id,
            &limits.headers(),
            &json!({"object": "list", "data": [{"id": "gpt-5", "object": "model", "owned_by": "openai"}]}),
        )),
        (&Method::POST, "/v1/chat/completions") => {
            answer(shared, &req, reply, limits, Api::Chat).await
        }
        (&Method::POST, "/v1/responses") => {
            answer(shared, &req, reply, limits, Api::Responses).await
        }
        _ => Ok(json_response(
            404,
            &req.request_id,
            &[],
            &openai_error("fake: unknown URL", "invalid_request_error", None),
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Responses,
}

fn chat_usage(reply: &ApiReply) -> Value {
    let u = reply.usage;
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

async fn answer(
    shared: &Shared,
    req: &ApiRequest,
    reply: ApiReply,
    mut limits: OpenAILimits,
    api: Api,
) -> io::Result<Response<FakeBody>> {
    let body = req.json();
    let mut plan = reply.base_plan();
    let secs = reply.reset_secs();
    if reply.error().is_some_and(|(status, _)| status == 429) {
        limits.remaining_requests = 0;
        limits.reset_requests = format!("{secs}s");
    }
    plan.headers = limits.headers();
    plan.headers.extend(reply.headers.iter().cloned());
    if let Some((status, override_body)) = reply.error() {
        plan.status = status;
        plan.headers
            .push(("content-type".into(), "application/json".into()));
        let error = match (status, reply.code.as_deref()) {
            (429, Some("insufficient_quota")) => openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            (429, _) => {
                plan.headers.push(("retry-after".into(), secs.to_string()));
                openai_error(
                    &format!("Rate limit reached for requests. Please try again in {secs}s."),
                    "requests",
                    Some("rate_limit_exceeded"),
                )
            }
            (401, _) => openai_error(
                "Incorrect API key provided.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            (503, code) => openai_error(
                "The server is overloaded or not ready yet.",
                "server_error",
                Some(code.unwrap_or("server_is_overloaded")),
            ),
            (500..=599, code) => openai_error(
                "The server had an error while processing your request.",
                "server_error",
                code,
            ),
            (_, code) => openai_error("fake: invalid request", "invalid_request_error", code),
        };
        plan.frames = vec![
            override_body
                .cloned()
                .unwrap_or_else(|| Bytes::from(error.to_string())),
        ];
        return serve_plan(plan, &req.request_id, &shared.cancel).await;
    }
    let model = reply
        .model_for(body.get("model").and_then(Value::as_str), "gpt-5")
        .to_owned();
    let created = shared.clock.epoch_secs();
    let id = format!(
        "chatcmpl-fake{}",
        req.request_id.trim_start_matches("req_openai_")
    );
    let stream = wants_stream(&body);
    match (api, stream) {
        (Api::Responses, _) => {
            let response_id = format!(
                "resp_fake{}",
                req.request_id.trim_start_matches("req_openai_")
            );
            let ids = ResponseIds {
                response_id: &response_id,
                item_id: "msg_fake_0001",
                model: &model,
                created_at: created,
            };
            if stream {
                plan.headers.push((
                    "content-type".into(),
                    "text/event-stream; charset=utf-8".into(),
                ));
                let events = stream_events(&reply, &ids);
                let failure = failed_event(&reply, &ids, events.len());
                reply.stream_into(&mut plan, events, failure);
            } else {
                plan.headers
                    .push(("content-type".into(), "application/json".into()));
                let object = response_object(&reply, &ids, "completed");
                reply.body_into(&mut plan, Bytes::from(object.to_string()));
            }
        }
        (Api::Chat, true) => {
            let include_usage = body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let chunk = |delta: Value, finish: Option<&str>| {
                let mut c = json!({
                    "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                });
                if include_usage {
                    c["usage"] = Value::Null;
                }
                data_event(&c, false)
            };
            let mut events = vec![chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            )];
            events.extend(
                reply
                    .deltas
                    .iter()
                    .map(|d| chunk(json!({"content": d}), None)),
            );
            events.push(chunk(json!({}), Some("stop")));
            if include_usage {
                events.push(data_event(
                    &json!({
                        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "system_fingerprint": "fp_fake", "choices": [], "usage": chat_usage(&reply),
                    }),
                    false,
                ));
            }
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
            let failure = data_event(
                &openai_error(
                    "The server had an error while processing your request.",
                    "server_error",
                    reply.code.as_deref(),
                ),
                false,
            );
            plan.headers.push((
                "content-type".into(),
                "text/event-stream; charset=utf-8".into(),
            ));
            reply.stream_into(&mut plan, events, failure);
        }
        (Api::Chat, false) => {
            plan.headers
                .push(("content-type".into(), "application/json".into()));
            let completion = json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.full_text(), "refusal": null, "annotations": []},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": chat_usage(&reply),
                "service_tier": "default",
            });
            reply.body_into(&mut plan, Bytes::from(completion.to_string()));
        }
    }
    serve_plan(plan, &req.request_id, &shared.cancel).await
}
