//! One record per proxied request: what was asked, which account served it, how it went.
//!
//! The record travels with the request and is emitted exactly once: as a structured log
//! line, and — once [`RequestRecord::attach`]ed to a running sluice — to its telemetry
//! ([`crate::observe`]): metrics, the recent-requests list, the request log.
//!
//! Fields are bounded and secret-free by construction: account names, statuses, error
//! classes, token counts, timings, a client identifier derived from its key, the
//! conversation's hash. Never headers, bodies or keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use sluice_scheduler::{ConversationKey, Outcome, Timestamp, TokenTotals};
use sluice_store::RequestLogRow;

use crate::observe::{Finished, Telemetry};
use crate::state::{AppState, now};

#[derive(Debug)]
pub struct RequestRecord {
    started: Instant,
    started_at: Timestamp,
    pub method: String,
    pub path: String,
    pub provider: &'static str,
    pub model: Option<String>,
    pub account: Option<String>,
    pub status: u16,
    pub attempts: u32,
    /// Why earlier attempts moved on to another account.
    pub failovers: Vec<&'static str>,
    pub first_byte: Option<Duration>,
    pub outcome: &'static str,
    pub tokens: TokenTotals,
    pub error: Option<String>,
    /// Which client key was presented (its identifier, never the key).
    pub client: Option<Arc<str>>,
    pub conversation: Option<ConversationKey>,
    timing: Timing,
    observer: Option<Observer>,
}

/// Where the request's time went: upstream, queued, or sluice's own.
#[derive(Debug, Default)]
struct Timing {
    upstream: Duration,
    /// The upstream's answer arrived then; its body streams until the record finishes.
    answered_at: Option<Instant>,
    queued: Duration,
    queued_since: Option<Instant>,
}

/// The telemetry a record reports to, and the model's bounded label there.
struct Observer {
    telemetry: Arc<Telemetry>,
    family: Arc<str>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl RequestRecord {
    pub fn new(method: &str, path: &str, provider: &'static str, model: Option<String>) -> Self {
        RequestRecord {
            started: Instant::now(),
            started_at: now(),
            method: method.to_owned(),
            path: path.to_owned(),
            provider,
            model,
            account: None,
            status: 0,
            attempts: 0,
            failovers: Vec::new(),
            first_byte: None,
            outcome: "pending",
            tokens: TokenTotals::default(),
            error: None,
            client: None,
            conversation: None,
            timing: Timing::default(),
            observer: None,
        }
    }

    /// Report to `app`'s telemetry when emitted; note the client and the conversation.
    pub fn attach(
        &mut self,
        app: &AppState,
        headers: &HeaderMap,
        conversation: Option<ConversationKey>,
    ) {
        self.client = app.client_keys().identify(headers);
        self.conversation = conversation;
        let telemetry = app.telemetry().clone();
        let family = {
            let config = app.config();
            telemetry.family(config.prices.family(self.model.as_deref().unwrap_or("")))
        };
        self.observer = Some(Observer { telemetry, family });
    }

    pub fn note_first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed());
        }
    }

    /// The upstream answered (headers in) a request sent at `sent`.
    pub fn note_upstream_answer(&mut self, sent: Instant) {
        let at = Instant::now();
        self.timing.upstream += at.saturating_duration_since(sent);
        // An earlier attempt's answer was read and dropped; only the last one streams on.
        self.timing.answered_at = Some(at);
    }

    /// The request joined the admission queue (or is still in it).
    pub fn note_queued(&mut self) {
        self.timing.queued_since.get_or_insert_with(Instant::now);
    }

    /// The request left the admission queue.
    pub fn note_dequeued(&mut self) {
        if let Some(since) = self.timing.queued_since.take() {
            self.timing.queued += since.elapsed();
        }
    }

    pub fn finish(&mut self, outcome: &Outcome, tokens: TokenTotals, error: Option<&str>) {
        self.outcome = outcome_name(outcome);
        self.tokens = tokens;
        if let Some(error) = error {
            self.error = Some(error.to_owned());
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A bounded class for a request that did not end well; `None` for one that did.
    pub fn error_class(&self) -> Option<&'static str> {
        match self.outcome {
            "ok" | "pending" if self.status < 400 && self.error.is_none() => None,
            "neutral" => Some("client_gone"),
            "ok" | "pending" | "failed" => Some(match self.status {
                429 => "rate_limited",
                529 => "overloaded",
                401 | 403 => "auth_rejected",
                408 | 504 => "timeout",
                503 => "unavailable",
                413 => "too_large",
                400..=499 => "client_error",
                500..=599 => "upstream_error",
                // A held stream that failed after its 200: the last account's reason.
                _ => self.failovers.last().copied().unwrap_or("unavailable"),
            }),
            other => Some(other),
        }
    }

    pub fn emit(mut self) {
        let total = self.started.elapsed();
        if let Some(answered) = self.timing.answered_at.take() {
            self.timing.upstream += answered.elapsed();
        }
        self.note_dequeued();
        let latency_ms = total.as_secs_f64() * 1000.0;
        let ttfb_ms = self.first_byte.map(|d| d.as_secs_f64() * 1000.0);
        let error_class = self.error_class();
        tracing::info!(
            target: "sluice::request",
            method = %self.method,
            path = %self.path,
            provider = self.provider,
            model = self.model.as_deref().unwrap_or("-"),
            account = self.account.as_deref().unwrap_or("-"),
            client = self.client.as_deref().unwrap_or("-"),
            status = self.status,
            attempts = self.attempts,
            failovers = %self.failovers.join(","),
            outcome = self.outcome,
            latency_ms = format_args!("{latency_ms:.1}"),
            ttfb_ms = format_args!("{:.1}", ttfb_ms.unwrap_or(0.0)),
            input_tokens = self.tokens.input,
            output_tokens = self.tokens.output,
            cache_read_tokens = self.tokens.cache_read,
            cache_creation_tokens = self.tokens.cache_creation,
            error = self.error.as_deref().unwrap_or(""),
            "request"
        );
        let Some(observer) = self.observer.take() else {
            return;
        };
        let row = RequestLogRow {
            at_ms: self.started_at.as_millis(),
            provider: self.provider.to_owned(),
            account_id: None,
            account: self.account.take(),
            client: self.client.as_deref().map(str::to_owned),
            conversation: self.conversation.map(|c| c.0),
            model: self.model.take(),
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            status: self.status,
            attempts: self.attempts,
            failovers: self.failovers.iter().map(|r| (*r).to_owned()).collect(),
            latency_ms,
            ttfb_ms,
            input_tokens: self.tokens.input,
            output_tokens: self.tokens.output,
            cache_creation_tokens: self.tokens.cache_creation,
            cache_read_tokens: self.tokens.cache_read,
            error: error_class.map(str::to_owned),
        };
        observer.telemetry.finish(Finished {
            row,
            family: &observer.family,
            total,
            upstream: self.timing.upstream,
            queued: self.timing.queued,
            first_byte: self.first_byte,
            failovers: &self.failovers,
            provider: self.provider,
        });
    }
}

/// A short, bounded name for an outcome (log field, failover reason).
pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Success { .. } => "ok",
        Outcome::RateLimited { .. } => "rate_limited",
        Outcome::Overloaded { .. } => "overloaded",
        Outcome::ServerError { .. } => "server_error",
        Outcome::Connect => "connect",
        Outcome::Timeout => "timeout",
        Outcome::StreamBroken => "stream_broken",
        Outcome::AuthRejected { .. } => "auth_rejected",
        Outcome::Neutral => "neutral",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &'static str, status: u16) -> RequestRecord {
        let mut record = RequestRecord::new("POST", "/v1/messages", "anthropic", None);
        record.outcome = outcome;
        record.status = status;
        record
    }

    #[test]
    fn error_classes_are_a_bounded_set() {
        assert_eq!(record("ok", 200).error_class(), None);
        assert_eq!(record("neutral", 200).error_class(), Some("client_gone"));
        assert_eq!(
            record("stream_broken", 200).error_class(),
            Some("stream_broken")
        );
        assert_eq!(record("failed", 429).error_class(), Some("rate_limited"));
        assert_eq!(record("failed", 400).error_class(), Some("client_error"));
        assert_eq!(record("failed", 502).error_class(), Some("upstream_error"));
        assert_eq!(record("failed", 503).error_class(), Some("unavailable"));
        let mut held = record("failed", 200);
        assert_eq!(held.error_class(), Some("unavailable"));
        held.failovers.push("overloaded");
        assert_eq!(held.error_class(), Some("overloaded"));
    }
}
