//! Chat Completions ⇄ Messages: OpenAI-style clients served by the Anthropic pool.
//!
//! `POST /v1/chat/completions` naming a Claude model is translated into a Messages request
//! ([`chat_to_messages`]), and the answer back: a whole message ([`messages_to_chat`]), a
//! stream event by event ([`ChatStream`], which holds nothing back beyond the event it is
//! given), or an error ([`anthropic_error_to_openai`]). Everything here is pure: no I/O, no
//! clock (the `created` timestamp is passed in), so the golden tests under
//! `fixtures/translation/` pin the exact output.
//!
//! What does not translate is refused with a clear error rather than dropped silently:
//! `n > 1`, log probabilities, `response_format`, audio, legacy `functions`, non-function
//! tools. Lossy mappings are documented where they happen (temperature above 1 is clamped;
//! thinking comes back as `reasoning_content` and its signature is not kept).

mod error;
mod request;
mod response;
mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use sluice_scheduler::ConversationKey;

pub use error::{anthropic_error_to_openai, openai_error_body};
pub use request::{DEFAULT_MAX_TOKENS, RequestOptions, THINKING_BUDGETS, chat_to_messages};
pub use response::{finish_reason, messages_to_chat};
pub use stream::{ChatStream, StreamOptions};

/// Why a request or response could not be translated. Always the client's to fix (or, for
/// a response, a sign the upstream answered something unexpected).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request is not a valid Chat Completions request.
    #[error("{0}")]
    Invalid(String),
    /// A valid request using something Messages cannot express.
    #[error("{0}")]
    Unsupported(String),
}

impl From<TranslateError> for crate::error::ProxyError {
    fn from(error: TranslateError) -> Self {
        crate::error::ProxyError::new(crate::error::ErrorKind::InvalidRequest, error.to_string())
    }
}

/// A conversation key for a Chat Completions request that names none: its opening (the
/// first system or developer message and the first user message), which every later turn
/// resends unchanged. `None` when the body has no user message.
pub fn opening_fingerprint(body: &[u8]) -> Option<ConversationKey> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(default, borrow)]
        messages: Vec<MessagePeek<'a>>,
    }
    #[derive(Deserialize)]
    struct MessagePeek<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(default, borrow)]
        content: Option<&'a serde_json::value::RawValue>,
    }
    let peek: Peek<'_> = serde_json::from_slice(body).ok()?;
    let content = |roles: &[&str]| {
        peek.messages
            .iter()
            .find(|m| roles.contains(&m.role.as_ref()))
            .and_then(|m| m.content)
            .map(|c| c.get())
    };
    let user = content(&["user"])?;
    let system = content(&["system", "developer"]).unwrap_or("");
    Some(ConversationKey::from_raw(&format!(
        "chat-opening\u{1f}{system}\u{1f}{user}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings_key_conversations() {
        let first = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"say pong"}]}"#;
        let second = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"say pong"},{"role":"assistant","content":"pong"},{"role":"user","content":"again"}]}"#;
        let other = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"say ping"}]}"#;
        assert!(opening_fingerprint(first).is_some());
        assert_eq!(opening_fingerprint(first), opening_fingerprint(second));
        assert_ne!(opening_fingerprint(first), opening_fingerprint(other));
        assert_eq!(opening_fingerprint(br#"{"messages":[]}"#), None);
        assert_eq!(opening_fingerprint(b"nope"), None);
    }
}
