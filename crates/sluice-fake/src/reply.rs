//! `Reply`: what the fake answers to one `/v1/messages` request (success, error status, slow, hang, or a
//! stream that breaks), and the response plan it turns into for a given request.

use std::time::Duration;

use bytes::Bytes;

use crate::error_kind::{ErrorKind, error_body, error_json};
use crate::message::{MessageSpec, Usage, generated_deltas, sse_event};
use crate::quota::QuotaHeaders;

/// One scripted (or default) answer to a `/v1/messages` request. Build with [`Reply::ok`], [`Reply::status`],
/// [`Reply::error`], [`Reply::slow`], [`Reply::hang`], [`Reply::error_event_first`], then chain modifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub(crate) outcome: Outcome,
    pub(crate) message: MessageSpec,
    explicit_output_tokens: bool,
    pub(crate) head_delay: Duration,
    pub(crate) event_delay: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) quota: Option<QuotaHeaders>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Ok(StreamEnd),
    Error {
        status: u16,
        error: ErrorSpec,
        retry_after: Option<u64>,
    },
    Hang,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorSpec {
    pub error_type: String,
    pub message: String,
}

impl ErrorSpec {
    fn of(kind: ErrorKind) -> Self {
        Self {
            error_type: kind.type_str().to_owned(),
            message: kind.default_message().to_owned(),
        }
    }
}

/// How a successful stream ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamEnd {
    /// All events, then a clean end.
    Complete,
    /// The first K events, then the connection is aborted (truncated chunked body).
    DropAfter(usize),
    /// The first K events, then `event: error`, then a clean end.
    ErrorAfter(usize, ErrorSpec),
}

/// How the response body ends once its frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    Clean,
    Abort,
}

/// A reply resolved against one request: what to send and when.
#[derive(Debug)]
pub(crate) struct Plan {
    pub head_delay: Duration,
    pub hang: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub frames: Vec<Bytes>,
    pub frame_delay: Duration,
    pub end: BodyEnd,
    pub streaming: bool,
}

impl Default for Reply {
    fn default() -> Self {
        Self::ok()
    }
}

impl Reply {
    /// A successful message: SSE when the request has `stream: true`, else a JSON message.
    pub fn ok() -> Self {
        Self {
            outcome: Outcome::Ok(StreamEnd::Complete),
            message: MessageSpec::default(),
            explicit_output_tokens: false,
            head_delay: Duration::ZERO,
            event_delay: Duration::ZERO,
            headers: Vec::new(),
            quota: None,
        }
    }

    /// An error response with the Anthropic error body whose type matches `status`
    /// (429 and 529 carry a default `retry-after`; change it with [`Reply::retry_after`]).
    /// A 2xx status gives [`Reply::ok`].
    pub fn status(status: u16) -> Self {
        if (200..300).contains(&status) {
            return Self::ok();
        }
        let kind = ErrorKind::from_status(status);
        Self {
            outcome: Outcome::Error {
                status,
                error: ErrorSpec::of(kind),
                retry_after: kind.default_retry_after(),
            },
            ..Self::ok()
        }
    }

    /// An error response of `kind` with its real status.
    pub fn error(kind: ErrorKind) -> Self {
        Self::status(kind.status())
    }

    /// A successful reply whose headers come only after `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self::ok().delay(delay)
    }

    /// Never answer: the request stays pending until the client gives up or the fake shuts down.
    pub fn hang() -> Self {
        Self {
            outcome: Outcome::Hang,
            ..Self::ok()
        }
    }

    /// A 200 stream whose very first event is `event: error` of `kind`.
    pub fn error_event_first(kind: ErrorKind) -> Self {
        Self::ok().error_event_after(0, kind)
    }

    /// Make this a successful stream that is cut (connection aborted, no terminating chunk) after the
    /// first `events` events. For a non-streaming request the JSON body is cut halfway.
    pub fn drop_after(mut self, events: usize) -> Self {
        self.outcome = Outcome::Ok(StreamEnd::DropAfter(events));
        self
    }

    /// Make this a successful stream that sends `event: error` of `kind` after the first `events` events
    /// and then ends cleanly. For a non-streaming request the error is answered as a plain error status.
    pub fn error_event_after(mut self, events: usize, kind: ErrorKind) -> Self {
        self.outcome = Outcome::Ok(StreamEnd::ErrorAfter(events, ErrorSpec::of(kind)));
        self
    }

    /// Number of `content_block_delta` events (deterministic generated text).
    pub fn events(mut self, deltas: usize) -> Self {
        self.message.deltas = generated_deltas(deltas);
        if !self.explicit_output_tokens {
            self.message.usage.output_tokens = deltas as u64 * 2;
        }
        self
    }

    /// Exact text deltas, one `content_block_delta` each.
    pub fn deltas<I, S>(mut self, deltas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.message.deltas = deltas.into_iter().map(Into::into).collect();
        if !self.explicit_output_tokens {
            self.message.usage.output_tokens = self.message.deltas.len() as u64 * 2;
        }
        self
    }

    /// Delay between consecutive SSE events (the first event goes out right after the headers).
    pub fn event_delay(mut self, delay: Duration) -> Self {
        self.event_delay = delay;
        self
    }

    /// Delay before the response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.head_delay = delay;
        self
    }

    /// Add (or replace) a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// Report this usage.
    pub fn usage(mut self, usage: Usage) -> Self {
        self.message.usage = usage;
        self.explicit_output_tokens = true;
        self
    }

    /// Report `input` uncached input tokens and `output` output tokens.
    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.message.usage.input_tokens = input;
        self.message.usage.output_tokens = output;
        self.explicit_output_tokens = true;
        self
    }

    /// Report prompt-cache tokens.
    pub fn cache_tokens(mut self, creation: u64, read: u64) -> Self {
        self.message.usage.cache_creation_input_tokens = creation;
        self.message.usage.cache_read_input_tokens = read;
        self
    }

    /// Report this model instead of echoing the request's `model`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.message.model = Some(model.into());
        self
    }

    /// The message id (default [`crate::DEFAULT_MESSAGE_ID`]).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message.id = id.into();
        self
    }

    /// The stop reason (default `end_turn`).
    pub fn stop_reason(mut self, reason: impl Into<String>) -> Self {
        self.message.stop_reason = reason.into();
        self
    }

    /// `retry-after` seconds of an error reply.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let Outcome::Error { retry_after, .. } = &mut self.outcome {
            *retry_after = Some(secs);
        }
        self
    }

    /// No `retry-after` on this error reply.
    pub fn no_retry_after(mut self) -> Self {
        if let Outcome::Error { retry_after, .. } = &mut self.outcome {
            *retry_after = None;
        }
        self
    }

    /// The `error.message` of an error reply or error event.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        if let Some(e) = self.error_spec_mut() {
            e.message = message.into();
        }
        self
    }

    /// The `error.type` of an error reply or error event.
    pub fn error_type(mut self, error_type: impl Into<String>) -> Self {
        if let Some(e) = self.error_spec_mut() {
            e.error_type = error_type.into();
        }
        self
    }

    /// Quota headers for this reply only, replacing the account's.
    pub fn quota(mut self, quota: impl Into<QuotaHeaders>) -> Self {
        self.quota = Some(quota.into());
        self
    }

    fn error_spec_mut(&mut self) -> Option<&mut ErrorSpec> {
        match &mut self.outcome {
            Outcome::Error { error, .. } | Outcome::Ok(StreamEnd::ErrorAfter(_, error)) => {
                Some(error)
            }
            _ => None,
        }
    }

    /// The HTTP status this reply answers with (`None` for [`Reply::hang`]).
    pub fn status_code(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Ok(_) => Some(200),
            Outcome::Error { status, .. } => Some(*status),
            Outcome::Hang => None,
        }
    }

    /// The usage this reply reports.
    pub fn reported_usage(&self) -> Usage {
        self.message.usage
    }

    /// The SSE events (one `Bytes` per event, exactly as written) a streaming request whose `model` is
    /// `request_model` receives. Empty for error and hang replies.
    pub fn expected_stream_events_for_model(&self, request_model: &str) -> Vec<Bytes> {
        let Outcome::Ok(end) = &self.outcome else {
            return Vec::new();
        };
        let mut events = self
            .message
            .stream_events(self.message.model_for(Some(request_model)));
        match end {
            StreamEnd::Complete => {}
            StreamEnd::DropAfter(k) => events.truncate(*k),
            StreamEnd::ErrorAfter(k, error) => {
                events.truncate(*k);
                events.push(sse_event(
                    "error",
                    &error_json(&error.error_type, &error.message),
                ));
            }
        }
        events
    }

    /// The exact body bytes a streaming request whose `model` is `request_model` receives.
    pub fn expected_stream_bytes_for_model(&self, request_model: &str) -> Bytes {
        Bytes::from(
            self.expected_stream_events_for_model(request_model)
                .concat(),
        )
    }

    /// The exact body bytes a streaming request receives when the reported model does not depend on the
    /// request: the reply's [`Reply::model`] if set, else a request for [`crate::DEFAULT_MODEL`].
    pub fn expected_stream_bytes(&self) -> Bytes {
        let model = self.message.model_for(None).to_owned();
        self.expected_stream_bytes_for_model(&model)
    }

    /// The exact JSON body a non-streaming request whose `model` is `request_model` receives
    /// (the error body for an error reply).
    pub fn expected_json_body_for_model(&self, request_model: &str) -> Bytes {
        match &self.outcome {
            Outcome::Ok(StreamEnd::ErrorAfter(_, e)) | Outcome::Error { error: e, .. } => {
                error_body(&e.error_type, &e.message)
            }
            Outcome::Ok(StreamEnd::DropAfter(_)) => {
                let full = self
                    .message
                    .json_body(self.message.model_for(Some(request_model)));
                full.slice(..full.len() / 2)
            }
            Outcome::Ok(StreamEnd::Complete) => self
                .message
                .json_body(self.message.model_for(Some(request_model))),
            Outcome::Hang => Bytes::new(),
        }
    }

    /// Resolve against one request.
    pub(crate) fn plan(&self, streaming: bool, request_model: Option<&str>) -> Plan {
        let mut plan = Plan {
            head_delay: self.head_delay,
            hang: false,
            status: 200,
            headers: Vec::new(),
            frames: Vec::new(),
            frame_delay: Duration::ZERO,
            end: BodyEnd::Clean,
            streaming: false,
        };
        let model = self.message.model_for(request_model);
        let error_reply =
            |plan: &mut Plan, status: u16, e: &ErrorSpec, retry_after: Option<u64>| {
                plan.status = status;
                plan.headers
                    .push(("content-type".into(), "application/json".into()));
                if let Some(secs) = retry_after {
                    plan.headers.push(("retry-after".into(), secs.to_string()));
                }
                plan.frames.push(error_body(&e.error_type, &e.message));
            };
        match &self.outcome {
            Outcome::Hang => plan.hang = true,
            Outcome::Error {
                status,
                error,
                retry_after,
            } => error_reply(&mut plan, *status, error, *retry_after),
            Outcome::Ok(end) if streaming => {
                plan.streaming = true;
                plan.headers.push((
                    "content-type".into(),
                    "text/event-stream; charset=utf-8".into(),
                ));
                plan.headers
                    .push(("cache-control".into(), "no-cache".into()));
                plan.frames = self.expected_stream_events_for_model(model);
                plan.frame_delay = self.event_delay;
                if matches!(end, StreamEnd::DropAfter(_)) {
                    plan.end = BodyEnd::Abort;
                }
            }
            Outcome::Ok(StreamEnd::ErrorAfter(_, e)) => {
                let kind = ErrorKind::from_type_str(&e.error_type);
                let status = kind.map_or(500, ErrorKind::status);
                error_reply(
                    &mut plan,
                    status,
                    e,
                    kind.and_then(ErrorKind::default_retry_after),
                );
            }
            Outcome::Ok(StreamEnd::DropAfter(_)) => {
                plan.streaming = true;
                plan.headers
                    .push(("content-type".into(), "application/json".into()));
                plan.frames.push(self.expected_json_body_for_model(model));
                plan.end = BodyEnd::Abort;
            }
            Outcome::Ok(StreamEnd::Complete) => {
                plan.headers
                    .push(("content-type".into(), "application/json".into()));
                plan.frames.push(self.message.json_body(model));
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_defaults() {
        assert_eq!(
            Reply::status(429).outcome,
            Outcome::Error {
                status: 429,
                error: ErrorSpec::of(ErrorKind::RateLimit),
                retry_after: Some(30)
            }
        );
        let r = Reply::status(529).retry_after(7).message("busy");
        let plan = r.plan(true, None);
        assert_eq!(plan.status, 529);
        assert!(plan.headers.contains(&("retry-after".into(), "7".into())));
        let v: serde_json::Value = serde_json::from_slice(&plan.frames[0]).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["error"]["message"], "busy");
        assert!(
            !Reply::status(500)
                .plan(false, None)
                .headers
                .iter()
                .any(|(n, _)| n == "retry-after")
        );
    }

    #[test]
    fn drop_and_error_event_truncate() {
        let full = Reply::ok().events(4).expected_stream_events_for_model("m");
        assert_eq!(full.len(), 10);
        let dropped = Reply::ok()
            .events(4)
            .drop_after(3)
            .expected_stream_events_for_model("m");
        assert_eq!(dropped, full[..3]);
        let errored = Reply::ok()
            .events(4)
            .error_event_after(5, ErrorKind::Overloaded);
        let events = errored.expected_stream_events_for_model("m");
        assert_eq!(events.len(), 6);
        assert!(events[5].starts_with(b"event: error\ndata: {"));
        let first =
            Reply::error_event_first(ErrorKind::Overloaded).expected_stream_events_for_model("m");
        assert_eq!(first.len(), 1);
    }

    #[test]
    fn stream_bytes_follow_model() {
        let r = Reply::ok();
        assert_eq!(
            r.expected_stream_bytes(),
            r.expected_stream_bytes_for_model(crate::DEFAULT_MODEL)
        );
        let fixed = Reply::ok().model("x");
        assert_eq!(
            fixed.expected_stream_bytes(),
            fixed.expected_stream_bytes_for_model("other")
        );
    }

    #[test]
    fn events_sets_output_tokens_unless_explicit() {
        assert_eq!(Reply::ok().events(7).reported_usage().output_tokens, 14);
        assert_eq!(
            Reply::ok()
                .tokens(1, 99)
                .events(7)
                .reported_usage()
                .output_tokens,
            99
        );
    }
}
