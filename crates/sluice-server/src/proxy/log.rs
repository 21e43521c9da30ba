//! One line per proxied request: what was asked, which account served it, how it went.
//!
//! Fields are bounded and secret-free by construction: account names, statuses, error
//! classes, token counts, timings. Never headers, bodies or keys.

use std::time::{Duration, Instant};

use sluice_scheduler::{Outcome, TokenTotals};

#[derive(Debug)]
pub struct RequestRecord {
    started: Instant,
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
}

impl RequestRecord {
    pub fn new(method: &str, path: &str, provider: &'static str, model: Option<String>) -> Self {
        RequestRecord {
            started: Instant::now(),
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
        }
    }

    pub fn note_first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed());
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

    pub fn emit(self) {
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let ttfb_ms = self.first_byte.map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            target: "sluice::request",
            method = %self.method,
            path = %self.path,
            provider = self.provider,
            model = self.model.as_deref().unwrap_or("-"),
            account = self.account.as_deref().unwrap_or("-"),
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
