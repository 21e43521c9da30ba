//! The body of a proxied response: upstream bytes on their way to the client.
//!
//! Each upstream chunk is forwarded the moment it arrives (whole SSE events, see
//! [`SseFramer`]); usage is read from the events as they pass, without delaying them. When
//! the body ends — cleanly, broken, silent for too long, or dropped because the client left —
//! the lease is released with what happened. A stream that breaks after it began is never
//! retried: the client gets the provider's `error` event and a clean end.
//!
//! When the client speaks another API than the upstream, a [`ResponseTranslator`] rewrites
//! the body on the way: each whole event as it arrives (nothing is held back beyond the event
//! being completed), or a whole non-streamed body once it is complete.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use sluice_scheduler::Outcome;
use tokio::time::Sleep;

use super::lease::LeaseGuard;
use super::log::RequestRecord;
use super::sse::SseFramer;
use crate::error::{ErrorKind, ProxyError};
use crate::provider::{Provider, ResponseTranslator, StreamReport};

/// Largest non-streamed body copied aside to read its usage at the end.
const MAX_OBSERVED_JSON: usize = 8 << 20;
/// Largest non-streamed body held to be translated whole.
const MAX_TRANSLATED_BODY: usize = 32 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the body's bytes are watched.
pub enum Watch {
    /// An SSE stream: framed into events, errors become an `error` event.
    Events(SseFramer),
    /// A JSON body: copied aside (bounded) and read once complete.
    Json(Vec<u8>),
    /// A body that is translated whole: held (bounded) and rewritten once complete.
    Whole(Vec<u8>),
    /// Anything else: passed through untouched.
    Opaque,
}

pub struct ProxyBody {
    upstream: Pin<Box<reqwest::Body>>,
    first: Option<Bytes>,
    watch: Watch,
    report: StreamReport,
    provider: Arc<dyn Provider>,
    lease: Option<LeaseGuard>,
    idle_timeout: Duration,
    last_activity: Instant,
    idle_timer: Pin<Box<Sleep>>,
    trailer: Option<Bytes>,
    done: bool,
    record: Option<RequestRecord>,
    translator: Option<Box<dyn ResponseTranslator>>,
    /// The upstream's declared length: hyper stops polling a body once it has sent that many
    /// bytes, so the end must be recognised by count, not by waiting for the upstream's EOF.
    expected_len: Option<u64>,
    received: u64,
}

impl ProxyBody {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: reqwest::Body,
        first: Option<Bytes>,
        watch: Watch,
        provider: Arc<dyn Provider>,
        lease: Option<LeaseGuard>,
        idle_timeout: Duration,
        record: RequestRecord,
    ) -> Self {
        let expected_len = upstream.size_hint().exact();
        ProxyBody {
            expected_len,
            received: 0,
            upstream: Box::pin(upstream),
            first,
            watch,
            report: StreamReport::default(),
            provider,
            lease,
            idle_timeout,
            last_activity: Instant::now(),
            idle_timer: Box::pin(tokio::time::sleep(idle_timeout)),
            trailer: None,
            done: false,
            record: Some(record),
            translator: None,
        }
    }

    /// Rewrite the body with `translator` (a client speaking another API than the upstream).
    pub fn translated_by(mut self, translator: Option<Box<dyn ResponseTranslator>>) -> Self {
        self.translator = translator;
        self
    }

    /// Pass one upstream chunk through the watcher; returns what to forward now.
    fn take_chunk(&mut self, chunk: Bytes) -> Option<Bytes> {
        if let Some(record) = self.record.as_mut() {
            record.note_first_byte();
        }
        match &mut self.watch {
            Watch::Events(framer) => {
                let provider = &self.provider;
                let report = &mut self.report;
                match self.translator.as_mut() {
                    None => framer.push(chunk, |event| {
                        provider.observe_event(event.name, &event.data, report)
                    }),
                    Some(translator) => {
                        let mut out = BytesMut::new();
                        framer.push(chunk, |event| {
                            provider.observe_event(event.name, &event.data, report);
                            translator.on_event(event.name, &event.data, &mut out);
                        });
                        (!out.is_empty()).then(|| out.freeze())
                    }
                }
            }
            Watch::Json(copy) => {
                if copy.len() + chunk.len() <= MAX_OBSERVED_JSON {
                    copy.extend_from_slice(&chunk);
                }
                Some(chunk)
            }
            Watch::Whole(held) => {
                if held.len() + chunk.len() <= MAX_TRANSLATED_BODY {
                    held.extend_from_slice(&chunk);
                }
                None
            }
            Watch::Opaque => Some(chunk),
        }
    }

    /// The upstream ended cleanly.
    fn end(&mut self) -> Option<Bytes> {
        let leftover = match &mut self.watch {
            Watch::Events(framer) => match self.translator.as_mut() {
                None => framer.finish(),
                Some(translator) => {
                    // A partial last event cannot be translated; what closes the client's
                    // stream can.
                    framer.discard();
                    let mut out = BytesMut::new();
                    translator.on_end(&mut out);
                    (!out.is_empty()).then(|| out.freeze())
                }
            },
            Watch::Json(copy) => {
                let copy = std::mem::take(copy);
                self.provider.observe_body(&copy, &mut self.report);
                None
            }
            Watch::Whole(held) => {
                let held = std::mem::take(held);
                self.provider.observe_body(&held, &mut self.report);
                match self.translator.as_mut() {
                    Some(translator) => Some(translator.on_body(&held)),
                    None => Some(Bytes::from(held)),
                }
            }
            Watch::Opaque => None,
        };
        let outcome = match self.report.error.clone() {
            Some(error) => error,
            None => Outcome::Success {
                tokens: self.report.tokens,
            },
        };
        self.settle(outcome, None);
        leftover
    }

    /// The stream broke (or went silent) after it began.
    fn fail(&mut self, outcome: Outcome, message: &str) -> Result<(), BoxError> {
        let sse = matches!(self.watch, Watch::Events(_));
        if let Watch::Events(framer) = &mut self.watch {
            framer.discard();
        }
        self.settle(outcome, Some(message));
        if sse {
            let error = ProxyError::new(ErrorKind::Upstream, message);
            self.trailer = Some(self.provider.error_event(&error));
            Ok(())
        } else {
            // Without an event format the only honest signal is an aborted body.
            self.done = true;
            Err(message.into())
        }
    }

    fn settle(&mut self, outcome: Outcome, error: Option<&str>) {
        if let Some(record) = self.record.as_mut() {
            record.finish(&outcome, self.report.tokens, error);
        }
        if let Some(lease) = self.lease.take() {
            lease.finish(outcome);
        }
        if let Some(record) = self.record.take() {
            record.emit();
        }
    }

    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle_timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_activity + self.idle_timeout;
            if Instant::now() >= deadline {
                return true;
            }
            self.idle_timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(trailer) = this.trailer.take() {
                this.done = true;
                return Poll::Ready(Some(Ok(Frame::data(trailer))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(first) = this.first.take() {
                if let Some(out) = this.take_chunk(first) {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                continue;
            }
            match this.upstream.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.last_activity = Instant::now();
                    match frame.into_data() {
                        Ok(chunk) => {
                            this.received += chunk.len() as u64;
                            let out = this.take_chunk(chunk);
                            if this.expected_len.is_some_and(|len| this.received >= len) {
                                // Done; a leftover, if any, goes out on the next poll.
                                this.done = true;
                                this.trailer = this.end();
                            }
                            if let Some(out) = out {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    let outcome = if error.is_timeout() {
                        Outcome::Timeout
                    } else {
                        Outcome::StreamBroken
                    };
                    if let Err(e) = this.fail(outcome, "the upstream stream broke off") {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(leftover) = this.end() {
                        return Poll::Ready(Some(Ok(Frame::data(leftover))));
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if !this.poll_idle(cx) {
                        return Poll::Pending;
                    }
                    if let Err(e) = this.fail(Outcome::Timeout, "the upstream stream went silent") {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailer.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.first.is_none()
            && self.translator.is_none()
            && matches!(self.watch, Watch::Opaque | Watch::Json(_))
        {
            self.upstream.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // The client left before the end: the account did nothing wrong.
        if self.lease.is_some() || self.record.is_some() {
            self.settle(Outcome::Neutral, Some("client disconnected"));
        }
    }
}
