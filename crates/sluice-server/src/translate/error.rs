//! Messages errors → OpenAI errors.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error_body(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    Bytes::from(
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            .to_string(),
    )
}

/// The OpenAI `type` and `code` for a Messages `error.type`.
fn openai_kind(anthropic_type: &str) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "permission_error" => ("invalid_request_error", Some("permission_denied")),
        "not_found_error" => ("invalid_request_error", Some("not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Some("server_is_overloaded")),
        _ => ("server_error", None),
    }
}

/// An Anthropic error response (or the data of an `error` event) as an OpenAI error
/// response. 529 becomes 503, which OpenAI clients know to retry. A body that is not an
/// Anthropic error keeps its status and gets a generic message.
pub fn anthropic_error_to_openai(status: StatusCode, body: &[u8]) -> (StatusCode, Bytes) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: Option<String>,
        message: Option<String>,
    }
    let status = if status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let (kind, message) = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => (
            error.kind.unwrap_or_default(),
            error.message.unwrap_or_default(),
        ),
        Err(_) => (
            String::new(),
            format!("the upstream answered HTTP {}", status.as_u16()),
        ),
    };
    let (openai_type, code) = if kind.is_empty() {
        match status.as_u16() {
            429 => openai_kind("rate_limit_error"),
            400..=499 => openai_kind("invalid_request_error"),
            _ => openai_kind("api_error"),
        }
    } else {
        openai_kind(&kind)
    };
    (status, openai_error_body(&message, openai_type, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn anthropic_errors_become_openai_errors() {
        let (status, body) = anthropic_error_to_openai(
            StatusCode::from_u16(529).unwrap(),
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let json = parse(&body);
        assert_eq!(json["error"]["type"], "server_error");
        assert_eq!(json["error"]["code"], "server_is_overloaded");
        assert_eq!(json["error"]["message"], "Overloaded");
        assert!(json["error"]["param"].is_null());

        let (status, body) = anthropic_error_to_openai(
            StatusCode::BAD_REQUEST,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(&body)["error"]["type"], "invalid_request_error");

        let (status, body) = anthropic_error_to_openai(StatusCode::TOO_MANY_REQUESTS, b"<html>");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(parse(&body)["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            parse(&body)["error"]["message"],
            "the upstream answered HTTP 429"
        );
    }
}
