//! What happened to a request on an account, as the proxy reports it back.
//!
//! The proxy classifies; the pool decides what that means for the account (bench, cooldown,
//! auth failure, nothing). Client mistakes and client disconnects are neutral: they say
//! nothing about the account's health.

use std::time::Duration;

use crate::account::TokenTotals;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream served the request (the stream, if any, ran to its end).
    Success { tokens: TokenTotals },
    /// 429: the account's own limit. Benched until its reset or `retry_after`.
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 529 or an `overloaded_error` event: service-wide, not the account's quota.
    Overloaded { retry_after: Option<Duration> },
    /// Any other 5xx.
    ServerError { status: u16 },
    /// The upstream could not be reached.
    Connect,
    /// No response headers, or silence inside a stream, for too long.
    Timeout,
    /// The upstream broke the stream after it began.
    StreamBroken,
    /// 401/403: the upstream refused the credential.
    AuthRejected { status: u16 },
    /// The request failed for reasons that are not the account's (client error, client gone).
    Neutral,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }
}
