//! Anthropic error kinds: the `error.type` strings, their HTTP statuses and the JSON error body.

use bytes::Bytes;

/// The error types the Anthropic API answers with (the `error.type` field of an error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400 `invalid_request_error`.
    InvalidRequest,
    /// 401 `authentication_error`.
    Authentication,
    /// 403 `permission_error`.
    Permission,
    /// 404 `not_found_error`.
    NotFound,
    /// 413 `request_too_large`.
    RequestTooLarge,
    /// 429 `rate_limit_error`.
    RateLimit,
    /// 500 `api_error`.
    Api,
    /// 529 `overloaded_error`.
    Overloaded,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::InvalidRequest,
        Self::Authentication,
        Self::Permission,
        Self::NotFound,
        Self::RequestTooLarge,
        Self::RateLimit,
        Self::Api,
        Self::Overloaded,
    ];

    /// The `error.type` string.
    pub fn type_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::Api => "api_error",
            Self::Overloaded => "overloaded_error",
        }
    }

    /// The kind whose `error.type` is `type_str`.
    pub fn from_type_str(type_str: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.type_str() == type_str)
    }

    /// The HTTP status the real API uses for this kind.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::Permission => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimit => 429,
            Self::Api => 500,
            Self::Overloaded => 529,
        }
    }

    /// The kind the real API would use for `status` (other 4xx → invalid request, other 5xx → api error).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 => Self::NotFound,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimit,
            529 => Self::Overloaded,
            500..=599 => Self::Api,
            _ => Self::InvalidRequest,
        }
    }

    /// A short human-readable message used when a reply does not set its own.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::InvalidRequest => "fake: invalid request",
            Self::Authentication => "fake: invalid x-api-key",
            Self::Permission => "fake: this credential is not allowed to use this resource",
            Self::NotFound => "fake: not found",
            Self::RequestTooLarge => "fake: request exceeds the maximum allowed size",
            Self::RateLimit => "fake: this request would exceed the rate limit for your account",
            Self::Api => "fake: internal server error",
            Self::Overloaded => "Overloaded",
        }
    }

    /// The `retry-after` seconds a reply of this kind carries unless told otherwise (429 and 529 only).
    pub fn default_retry_after(self) -> Option<u64> {
        match self {
            Self::RateLimit => Some(DEFAULT_RETRY_AFTER_429),
            Self::Overloaded => Some(DEFAULT_RETRY_AFTER_529),
            _ => None,
        }
    }
}

/// `retry-after` of a 429 reply that does not set one.
pub const DEFAULT_RETRY_AFTER_429: u64 = 30;
/// `retry-after` of a 529 reply that does not set one.
pub const DEFAULT_RETRY_AFTER_529: u64 = 5;

/// The `{"type":"error","error":{"type":T,"message":M}}` JSON value.
pub fn error_json(error_type: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "error",
        "error": { "type": error_type, "message": message },
    })
}

/// The serialized error body.
pub fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(error_json(error_type, message).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
            assert_eq!(ErrorKind::from_type_str(kind.type_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_status(502), ErrorKind::Api);
        assert_eq!(ErrorKind::from_status(418), ErrorKind::InvalidRequest);
    }

    #[test]
    fn body_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body("api_error", "boom")).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(v["error"]["message"], "boom");
    }
}
