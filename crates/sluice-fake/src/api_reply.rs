//! `ApiReply`: one scripted answer of the Codex, Gemini and OpenAI fakes. Each fake renders
//! it in its own wire format (Responses events, Gemini chunks, Chat Completions chunks) and
//! gives an error status the body its real upstream would send.

use std::time::Duration;

use bytes::Bytes;

use crate::message::generated_deltas;
use crate::reply::{BodyEnd, Plan};

/// Token usage a reply reports. `input_tokens` counts every input token, cached or not, as
/// OpenAI and Google report it; `cached_tokens` is the cached part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Reasoning (thinking) tokens, part of `output_tokens`.
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiOutcome {
    Ok(ApiEnd),
    Status { status: u16, body: Option<Bytes> },
    Hang,
}

/// How a successful stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiEnd {
    Complete,
    /// The first K events, then the connection is aborted.
    DropAfter(usize),
    /// The first K events, then the dialect's in-stream failure event, then a clean end.
    FailAfter(usize),
}

/// One scripted (or default) answer. Build with [`ApiReply::ok`], [`ApiReply::status`],
/// [`ApiReply::hang`] or [`ApiReply::slow`], then chain modifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    pub(crate) outcome: ApiOutcome,
    pub(crate) deltas: Vec<String>,
    pub(crate) usage: ApiUsage,
    explicit_output: bool,
    pub(crate) model: Option<String>,
    pub(crate) head_delay: Duration,
    pub(crate) event_delay: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) code: Option<String>,
    pub(crate) daily: bool,
}

/// Seconds an error reply's reset is away unless [`ApiReply::retry_after`] says otherwise.
pub const DEFAULT_RESET_SECS: u64 = 30;

impl Default for ApiReply {
    fn default() -> Self {
        Self::ok()
    }
}

impl ApiReply {
    /// A successful answer: a stream when the request asks for one, else a whole body.
    pub fn ok() -> Self {
        let deltas = generated_deltas(3);
        ApiReply {
            outcome: ApiOutcome::Ok(ApiEnd::Complete),
            usage: ApiUsage {
                input_tokens: 25,
                output_tokens: deltas.len() as u64 * 2,
                cached_tokens: 0,
                reasoning_tokens: 0,
            },
            deltas,
            explicit_output: false,
            model: None,
            head_delay: Duration::ZERO,
            event_delay: Duration::ZERO,
            headers: Vec::new(),
            retry_after: None,
            code: None,
            daily: false,
        }
    }

    /// An error status with the body the fake's real upstream sends for it (a 2xx gives
    /// [`ApiReply::ok`]).
    pub fn status(status: u16) -> Self {
        if (200..300).contains(&status) {
            return Self::ok();
        }
        ApiReply {
            outcome: ApiOutcome::Status { status, body: None },
            ..Self::ok()
        }
    }

    /// Never answer (until the client gives up or the fake shuts down).
    pub fn hang() -> Self {
        ApiReply {
            outcome: ApiOutcome::Hang,
            ..Self::ok()
        }
    }

    /// A successful answer whose headers come only after `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self::ok().delay(delay)
    }

    /// Exact text deltas, one event each.
    pub fn text<I, S>(mut self, deltas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.deltas = deltas.into_iter().map(Into::into).collect();
        if !self.explicit_output {
            self.usage.output_tokens = self.deltas.len() as u64 * 2;
        }
        self
    }

    /// `n` generated text deltas.
    pub fn events(self, n: usize) -> Self {
        self.text(generated_deltas(n))
    }

    /// Report `input` input tokens (cached included) and `output` output tokens.
    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.usage.input_tokens = input;
        self.usage.output_tokens = output;
        self.explicit_output = true;
        self
    }

    /// Report `cached` of the input tokens as read from the prompt cache.
    pub fn cached(mut self, cached: u64) -> Self {
        self.usage.cached_tokens = cached;
        self
    }

    /// Report `reasoning` of the output tokens as reasoning.
    pub fn reasoning(mut self, reasoning: u64) -> Self {
        self.usage.reasoning_tokens = reasoning;
        self
    }

    /// Report this model instead of echoing the request's.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Delay before the response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.head_delay = delay;
        self
    }

    /// Delay between consecutive stream events.
    pub fn event_delay(mut self, delay: Duration) -> Self {
        self.event_delay = delay;
        self
    }

    /// Cut the connection after the first `events` events of the stream.
    pub fn drop_after(mut self, events: usize) -> Self {
        self.outcome = ApiOutcome::Ok(ApiEnd::DropAfter(events));
        self
    }

    /// After the first `events` events, send the dialect's failure event and end cleanly.
    pub fn fail_after(mut self, events: usize) -> Self {
        self.outcome = ApiOutcome::Ok(ApiEnd::FailAfter(events));
        self
    }

    /// Add (or replace) a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// The exact body of an error reply, instead of the upstream's usual one.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let ApiOutcome::Status { body: slot, .. } = &mut self.outcome {
            *slot = Some(body.into());
        }
        self
    }

    /// Seconds until the limit of an error reply resets (`retry-after`, `resets_in_seconds`,
    /// `retryDelay`, …; default [`DEFAULT_RESET_SECS`]).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The error code of an error reply or failure event (`insufficient_quota`, …).
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Make a 429 a per-day quota (Gemini: reset at midnight Pacific, no retry delay).
    pub fn daily(mut self) -> Self {
        self.daily = true;
        self
    }

    /// The text the deltas add up to.
    pub fn full_text(&self) -> String {
        self.deltas.concat()
    }

    /// The usage this reply reports.
    pub fn reported_usage(&self) -> ApiUsage {
        self.usage
    }

    /// The HTTP status this reply answers with (`None` for a hang).
    pub fn status_code(&self) -> Option<u16> {
        match &self.outcome {
            ApiOutcome::Ok(_) => Some(200),
            ApiOutcome::Status { status, .. } => Some(*status),
            ApiOutcome::Hang => None,
        }
    }

    pub(crate) fn reset_secs(&self) -> u64 {
        self.retry_after.unwrap_or(DEFAULT_RESET_SECS)
    }

    /// The model to report for a request that asked for `requested`.
    pub(crate) fn model_for<'a>(
        &'a self,
        requested: Option<&'a str>,
        fallback: &'a str,
    ) -> &'a str {
        self.model.as_deref().or(requested).unwrap_or(fallback)
    }

    /// A plan carrying this reply's delays and extra headers, for the fake to fill in.
    pub(crate) fn base_plan(&self) -> Plan {
        let mut plan = crate::wire::plan(200);
        plan.head_delay = self.head_delay;
        plan.hang = self.outcome == ApiOutcome::Hang;
        plan.frame_delay = self.event_delay;
        plan
    }

    /// Fill `plan` with a streamed body: `events` (all of them for a complete stream),
    /// truncated and ended as this reply says; `failure` is the dialect's failure event.
    pub(crate) fn stream_into(&self, plan: &mut Plan, mut events: Vec<Bytes>, failure: Bytes) {
        plan.streaming = true;
        match self.outcome {
            ApiOutcome::Ok(ApiEnd::DropAfter(k)) => {
                events.truncate(k);
                plan.end = BodyEnd::Abort;
            }
            ApiOutcome::Ok(ApiEnd::FailAfter(k)) => {
                events.truncate(k);
                events.push(failure);
            }
            _ => {}
        }
        plan.frames = events;
    }

    /// Fill `plan` with a whole body (cut halfway for [`ApiReply::drop_after`]).
    pub(crate) fn body_into(&self, plan: &mut Plan, body: Bytes) {
        if matches!(self.outcome, ApiOutcome::Ok(ApiEnd::DropAfter(_))) {
            plan.frames = vec![body.slice(..body.len() / 2)];
            plan.end = BodyEnd::Abort;
        } else {
            plan.frames = vec![body];
        }
    }

    /// The scripted error status and body override, if this is an error reply.
    pub(crate) fn error(&self) -> Option<(u16, Option<&Bytes>)> {
        match &self.outcome {
            ApiOutcome::Status { status, body } => Some((*status, body.as_ref())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        let r = ApiReply::ok().text(["a", "b"]);
        assert_eq!(r.full_text(), "ab");
        assert_eq!(r.reported_usage().output_tokens, 4);
        assert_eq!(
            ApiReply::ok()
                .tokens(9, 99)
                .events(5)
                .reported_usage()
                .output_tokens,
            99
        );
        assert_eq!(ApiReply::status(429).status_code(), Some(429));
        assert_eq!(ApiReply::status(204).status_code(), Some(200));
        assert_eq!(ApiReply::hang().status_code(), None);
        assert_eq!(ApiReply::status(429).reset_secs(), DEFAULT_RESET_SECS);
        assert_eq!(ApiReply::status(429).retry_after(7).reset_secs(), 7);
        let r = ApiReply::status(500).body("x");
        assert_eq!(r.error(), Some((500, Some(&Bytes::from("x")))));
    }

    #[test]
    fn streams_are_cut_as_told() {
        let events: Vec<Bytes> = (0..5).map(|i| Bytes::from(format!("e{i}\n\n"))).collect();
        let mut plan = crate::wire::plan(200);
        ApiReply::ok().drop_after(2).stream_into(
            &mut plan,
            events.clone(),
            Bytes::from("fail\n\n"),
        );
        assert_eq!(plan.frames, events[..2]);
        assert_eq!(plan.end, BodyEnd::Abort);
        let mut plan = crate::wire::plan(200);
        ApiReply::ok().fail_after(1).stream_into(
            &mut plan,
            events.clone(),
            Bytes::from("fail\n\n"),
        );
        assert_eq!(
            plan.frames,
            vec![events[0].clone(), Bytes::from("fail\n\n")]
        );
        assert_eq!(plan.end, BodyEnd::Clean);
    }
}
