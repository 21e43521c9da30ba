//! Simulated account quota for demos: two token windows (demo-scaled "5 hours" and "7 days") that fill up
//! with every served request, report their utilization in the quota headers, reject with 429 when full and
//! reset on their clock; plus seeded random latency and 529/500/mid-stream faults.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::{epoch_secs, secs_until};
use crate::error_kind::ErrorKind;
use crate::message::Usage;
use crate::quota::{QuotaHeaders, window_status};
use crate::reply::Reply;

/// How a simulated account reports its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimStyle {
    /// Subscription account: `anthropic-ratelimit-unified-*` headers.
    #[default]
    Subscription,
    /// API-key account: `anthropic-ratelimit-tokens-*` headers for the short window (RFC 3339 reset).
    ApiKey,
}

/// Configuration of one simulated account. `Default` is demo-scaled: a 5-minute "5h" window and a
/// 35-minute "7d" window.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAccount {
    /// Tokens the short window holds.
    pub capacity_5h_tokens: u64,
    /// Tokens the long window holds.
    pub capacity_7d_tokens: u64,
    /// Length of the short window (starts at the first request after a reset).
    pub window_5h: Duration,
    /// Length of the long window.
    pub window_7d: Duration,
    /// Chance a request is answered 529 `overloaded_error` (no quota spent).
    pub fail_529_probability: f64,
    /// Chance a request is answered 500 `api_error` (no quota spent).
    pub fail_500_probability: f64,
    /// Chance a successful stream carries an `overloaded_error` error event partway.
    pub stream_error_probability: f64,
    /// Delay before the response headers, uniformly drawn from this range.
    pub latency: (Duration, Duration),
    /// Delay between SSE events.
    pub event_delay: Duration,
    /// Output tokens per `content_block_delta` event.
    pub tokens_per_event: u64,
    /// Most `content_block_delta` events in one stream.
    pub max_events: usize,
    /// Output tokens are drawn from this range, capped by the request's `max_tokens`.
    pub output_tokens: (u64, u64),
    /// Input tokens are `body bytes / 4`, capped here.
    pub max_input_tokens: u64,
    /// Simulate the prompt cache: the first request of a session writes 90 % of its input to the cache,
    /// later requests of the same session on this account read it.
    pub prompt_cache: bool,
    /// Weight of cache-read tokens in quota consumption (input, cache writes and output weigh 1).
    pub cache_read_weight: f64,
    /// Header style.
    pub style: SimStyle,
    /// RNG seed (mixed with the credential, so accounts sharing a seed still differ).
    pub seed: u64,
}

impl Default for SimAccount {
    fn default() -> Self {
        Self {
            capacity_5h_tokens: 1_000_000,
            capacity_7d_tokens: 5_000_000,
            window_5h: Duration::from_secs(5 * 60),
            window_7d: Duration::from_secs(35 * 60),
            fail_529_probability: 0.0,
            fail_500_probability: 0.0,
            stream_error_probability: 0.0,
            latency: (Duration::from_millis(20), Duration::from_millis(120)),
            event_delay: Duration::from_millis(15),
            tokens_per_event: 40,
            max_events: 24,
            output_tokens: (50, 1_500),
            max_input_tokens: 200_000,
            prompt_cache: true,
            cache_read_weight: 0.1,
            style: SimStyle::Subscription,
            seed: 0x5eed,
        }
    }
}

/// A point-in-time view of a simulated account.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUsage {
    /// Tokens used in the short window.
    pub used_5h: u64,
    /// Short window capacity.
    pub capacity_5h: u64,
    /// `used_5h / capacity_5h`.
    pub utilization_5h: f64,
    /// When the short window resets (epoch seconds; `now + window` if it has not started).
    pub reset_5h_epoch_s: u64,
    /// Tokens used in the long window.
    pub used_7d: u64,
    /// Long window capacity.
    pub capacity_7d: u64,
    /// `used_7d / capacity_7d`.
    pub utilization_7d: f64,
    /// When the long window resets.
    pub reset_7d_epoch_s: u64,
    /// Requests answered successfully.
    pub served: u64,
    /// Requests rejected with 429 for quota.
    pub rejected: u64,
    /// Requests answered with a random 529/500.
    pub faults: u64,
}

/// What the simulation needs from a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimRequest {
    pub body_len: usize,
    pub max_tokens: Option<u64>,
    pub session: Option<String>,
}

#[derive(Debug)]
struct Window {
    length: Duration,
    capacity: u64,
    started: Option<SystemTime>,
    used: u64,
}

impl Window {
    fn new(length: Duration, capacity: u64) -> Self {
        Self {
            length,
            capacity,
            started: None,
            used: 0,
        }
    }

    fn roll(&mut self, now: SystemTime) {
        if self.started.is_some_and(|s| now >= s + self.length) {
            self.started = None;
            self.used = 0;
        }
    }

    fn reset_at(&self, now: SystemTime) -> SystemTime {
        self.started.unwrap_or(now) + self.length
    }

    fn utilization(&self) -> f64 {
        if self.capacity == 0 {
            1.0
        } else {
            self.used as f64 / self.capacity as f64
        }
    }

    fn is_full(&self) -> bool {
        self.used >= self.capacity
    }

    fn consume(&mut self, now: SystemTime, tokens: u64) {
        self.started.get_or_insert(now);
        self.used = self.used.saturating_add(tokens);
    }
}

/// Live state of one simulated account.
#[derive(Debug)]
pub(crate) struct SimState {
    config: SimAccount,
    w5: Window,
    w7: Window,
    rng: StdRng,
    sessions: HashSet<String>,
    served: u64,
    rejected: u64,
    faults: u64,
    tag: u64,
}

const MAX_REMEMBERED_SESSIONS: usize = 10_000;

/// Stable FNV-1a, so seeds mix with credentials the same way on every run.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SimState {
    pub(crate) fn new(credential: &str, config: SimAccount) -> Self {
        let tag = fnv1a(credential);
        Self {
            w5: Window::new(config.window_5h, config.capacity_5h_tokens),
            w7: Window::new(config.window_7d, config.capacity_7d_tokens),
            rng: StdRng::seed_from_u64(config.seed ^ tag),
            config,
            sessions: HashSet::new(),
            served: 0,
            rejected: 0,
            faults: 0,
            tag,
        }
    }

    pub(crate) fn usage(&mut self, now: SystemTime) -> SimUsage {
        self.w5.roll(now);
        self.w7.roll(now);
        SimUsage {
            used_5h: self.w5.used,
            capacity_5h: self.w5.capacity,
            utilization_5h: self.w5.utilization(),
            reset_5h_epoch_s: epoch_secs(self.w5.reset_at(now)),
            used_7d: self.w7.used,
            capacity_7d: self.w7.capacity,
            utilization_7d: self.w7.utilization(),
            reset_7d_epoch_s: epoch_secs(self.w7.reset_at(now)),
            served: self.served,
            rejected: self.rejected,
            faults: self.faults,
        }
    }

    /// The quota headers right now, without spending anything.
    pub(crate) fn headers_now(&mut self, now: SystemTime) -> QuotaHeaders {
        self.w5.roll(now);
        self.w7.roll(now);
        self.headers(now)
    }

    fn headers(&self, now: SystemTime) -> QuotaHeaders {
        match self.config.style {
            SimStyle::Subscription => {
                let unified = QuotaHeaders::unified(
                    self.w5.utilization(),
                    epoch_secs(self.w5.reset_at(now)),
                    self.w7.utilization(),
                    epoch_secs(self.w7.reset_at(now)),
                );
                unified.into()
            }
            SimStyle::ApiKey => QuotaHeaders::api_key()
                .tokens(
                    self.w5.capacity,
                    self.w5.capacity.saturating_sub(self.w5.used),
                    epoch_secs(self.w5.reset_at(now)),
                )
                .into(),
        }
    }

    fn draw(&mut self, (lo, hi): (u64, u64)) -> u64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    /// Decide the reply to one `/v1/messages` request, spending quota when it succeeds.
    pub(crate) fn decide(
        &mut self,
        now: SystemTime,
        request: &SimRequest,
    ) -> (Reply, QuotaHeaders) {
        self.w5.roll(now);
        self.w7.roll(now);

        if self.w5.is_full() || self.w7.is_full() {
            self.rejected += 1;
            let blocking_reset = match (self.w5.is_full(), self.w7.is_full()) {
                (_, true) => self.w7.reset_at(now),
                _ => self.w5.reset_at(now),
            };
            let reply = Reply::error(ErrorKind::RateLimit)
                .retry_after(secs_until(now, blocking_reset))
                .message(
                    "This request would exceed your account's rate limit. Please try again later.",
                );
            return (reply, self.headers(now));
        }

        let latency = Duration::from_micros(self.draw((
            self.config.latency.0.as_micros() as u64,
            self.config.latency.1.as_micros() as u64,
        )));
        let roll: f64 = self.rng.random();
        let (p529, p500) = (
            self.config.fail_529_probability,
            self.config.fail_500_probability,
        );
        if roll < p529 + p500 {
            self.faults += 1;
            let kind = if roll < p529 {
                ErrorKind::Overloaded
            } else {
                ErrorKind::Api
            };
            return (Reply::error(kind).delay(latency), self.headers(now));
        }

        let usage = self.usage_for(request);
        let spent = usage.input_tokens
            + usage.cache_creation_input_tokens
            + usage.output_tokens
            + (usage.cache_read_input_tokens as f64 * self.config.cache_read_weight).round() as u64;
        self.w5.consume(now, spent);
        self.w7.consume(now, spent);
        self.served += 1;

        let per_event = self.config.tokens_per_event.max(1);
        let events = usage
            .output_tokens
            .div_ceil(per_event)
            .clamp(1, self.config.max_events.max(1) as u64) as usize;
        let mut reply = Reply::ok()
            .events(events)
            .usage(usage)
            .delay(latency)
            .event_delay(self.config.event_delay)
            .message_id(format!(
                "msg_sim_{:08x}{:016x}",
                self.tag as u32, self.served
            ));
        if self.config.stream_error_probability > 0.0
            && self
                .rng
                .random_bool(self.config.stream_error_probability.min(1.0))
        {
            let after = self.rng.random_range(1..=events + 5);
            reply = reply.error_event_after(after, ErrorKind::Overloaded);
        }
        (reply, self.served_headers(now))
    }

    /// Headers of a request that was served: a window this request filled reports `allowed_warning`
    /// (the request went through); the next request sees `rejected`.
    fn served_headers(&self, now: SystemTime) -> QuotaHeaders {
        match self.headers(now) {
            QuotaHeaders::Unified(u) => {
                let cap = |util: f64| match window_status(util) {
                    "rejected" => "allowed_warning",
                    other => other,
                };
                let (s5, s7) = (cap(u.utilization_5h), cap(u.utilization_7d));
                let overall = if s5 == "allowed" && s7 == "allowed" {
                    "allowed"
                } else {
                    "allowed_warning"
                };
                u.status_5h(s5).status_7d(s7).status(overall).into()
            }
            other => other,
        }
    }

    fn usage_for(&mut self, request: &SimRequest) -> Usage {
        let input_total =
            ((request.body_len / 4) as u64).clamp(1, self.config.max_input_tokens.max(1));
        let (lo, hi) = self.config.output_tokens;
        let cap = request.max_tokens.unwrap_or(hi).max(1);
        let output = self.draw((lo.min(cap), hi.min(cap)));
        let mut usage = Usage {
            input_tokens: input_total,
            output_tokens: output,
            ..Usage::default()
        };
        if let Some(session) = request
            .session
            .as_ref()
            .filter(|_| self.config.prompt_cache)
        {
            let cached = input_total * 9 / 10;
            usage.input_tokens = input_total - cached;
            if self.sessions.contains(session) {
                usage.cache_read_input_tokens = cached;
            } else {
                if self.sessions.len() >= MAX_REMEMBERED_SESSIONS {
                    self.sessions.clear();
                }
                self.sessions.insert(session.clone());
                usage.cache_creation_input_tokens = cached;
            }
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn tiny() -> SimAccount {
        SimAccount {
            capacity_5h_tokens: 1_000,
            capacity_7d_tokens: 10_000,
            window_5h: Duration::from_secs(60),
            window_7d: Duration::from_secs(600),
            latency: (Duration::ZERO, Duration::ZERO),
            output_tokens: (100, 100),
            prompt_cache: false,
            ..SimAccount::default()
        }
    }

    fn req() -> SimRequest {
        SimRequest {
            body_len: 400,
            max_tokens: Some(1000),
            session: None,
        }
    }

    #[test]
    fn fills_rejects_and_resets() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut s = SimState::new("k", tiny());
        for i in 1..=5 {
            let (reply, _) = s.decide(t0, &req());
            assert_eq!(reply.status_code(), Some(200));
            assert_eq!(s.usage(t0).used_5h, i * 200);
        }
        let (reply, headers) = s.decide(t0 + Duration::from_secs(10), &req());
        assert_eq!(reply.status_code(), Some(429));
        let h = headers.to_headers();
        assert!(h.contains(&(
            "anthropic-ratelimit-unified-status".into(),
            "rejected".into()
        )));
        let plan = reply.plan(true, None);
        assert!(plan.headers.contains(&("retry-after".into(), "50".into())));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(s.usage(later).used_5h, 0);
        assert_eq!(s.usage(later).used_7d, 1000);
        assert_eq!(s.decide(later, &req()).0.status_code(), Some(200));
    }

    #[test]
    fn faults_follow_probabilities_and_spend_nothing() {
        let t0 = UNIX_EPOCH;
        let mut s = SimState::new(
            "k",
            SimAccount {
                fail_529_probability: 1.0,
                ..tiny()
            },
        );
        let (reply, _) = s.decide(t0, &req());
        assert_eq!(reply.status_code(), Some(529));
        assert_eq!(s.usage(t0).used_5h, 0);
        let mut s = SimState::new(
            "k",
            SimAccount {
                fail_500_probability: 1.0,
                ..tiny()
            },
        );
        assert_eq!(s.decide(t0, &req()).0.status_code(), Some(500));
    }

    #[test]
    fn deterministic_given_seed() {
        let cfg = SimAccount {
            output_tokens: (1, 5000),
            fail_529_probability: 0.3,
            ..SimAccount::default()
        };
        let run = |key: &str| {
            let mut s = SimState::new(key, cfg.clone());
            (0..20)
                .map(|_| s.decide(UNIX_EPOCH, &req()).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run("a"), run("a"));
        assert_ne!(run("a"), run("b"));
    }

    #[test]
    fn prompt_cache_reads_on_repeat_session() {
        let mut s = SimState::new(
            "k",
            SimAccount {
                prompt_cache: true,
                ..tiny()
            },
        );
        let r = SimRequest {
            session: Some("s1".into()),
            ..req()
        };
        let first = s.decide(UNIX_EPOCH, &r).0.reported_usage();
        assert_eq!(first.cache_creation_input_tokens, 90);
        let second = s.decide(UNIX_EPOCH, &r).0.reported_usage();
        assert_eq!(second.cache_read_input_tokens, 90);
        assert_eq!(second.input_tokens, 10);
    }

    #[test]
    fn warning_status_past_80_percent() {
        let mut s = SimState::new("k", tiny());
        for _ in 0..4 {
            s.decide(UNIX_EPOCH, &req());
        }
        let h = s.headers(UNIX_EPOCH).to_headers();
        assert!(h.contains(&(
            "anthropic-ratelimit-unified-status".into(),
            "allowed_warning".into()
        )));
        assert_eq!(window_status(s.w5.utilization()), "allowed_warning");
    }
}
