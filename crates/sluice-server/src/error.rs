//! Errors sluice itself answers with, in the client's own wire format.
//!
//! Every refusal sluice makes (bad key, body too large, no account, upstream unreachable) is
//! rendered by the provider the request was addressed to, so an Anthropic SDK sees an
//! Anthropic error body it already knows how to handle. Messages never carry credentials,
//! upstream bodies or internal details.

use std::time::Duration;

use http::StatusCode;

/// The kinds of error sluice reports, mapped by each provider onto its own error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    NotFound,
    RequestTooLarge,
    RateLimited,
    /// No account could be reached, or the upstream failed in a way sluice could not hide.
    Upstream,
    /// The upstream did not answer in time.
    Timeout,
    /// No account can serve at all (none configured, all disabled or failing auth).
    Unavailable,
    Overloaded,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Overloaded => {
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error sluice answers itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProxyError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}
