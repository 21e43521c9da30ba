//! The assistant message a successful reply carries, rendered either as the SSE event sequence or as the
//! non-streaming JSON body, byte-for-byte deterministic for a given spec and model.

use bytes::Bytes;
use serde_json::{Value, json};

/// Model reported when neither the reply nor the request names one.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// Token usage reported by a message (`message_start.message.usage`, `message_delta.usage`, JSON `usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens (the total, reported in `message_delta`).
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    fn start_json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens.min(1),
        })
    }

    fn full_json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
        })
    }
}

/// What a successful reply says: id, text deltas, usage, stop reason; the model is chosen at render time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MessageSpec {
    pub id: String,
    pub model: Option<String>,
    pub deltas: Vec<String>,
    pub usage: Usage,
    pub stop_reason: String,
}

/// Default message id of a reply that does not set one.
pub const DEFAULT_MESSAGE_ID: &str = "msg_fake_0000000000000000000001";
/// Default number of `content_block_delta` events.
pub const DEFAULT_DELTAS: usize = 3;

impl Default for MessageSpec {
    fn default() -> Self {
        Self {
            id: DEFAULT_MESSAGE_ID.to_owned(),
            model: None,
            deltas: generated_deltas(DEFAULT_DELTAS),
            usage: Usage {
                input_tokens: 25,
                output_tokens: DEFAULT_DELTAS as u64 * 2,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
            },
            stop_reason: "end_turn".to_owned(),
        }
    }
}

const WORDS: &[&str] = &[
    "Sure", "here", "is", "the", "fake", "answer", "from", "a", "pretend", "upstream", "that",
    "streams", "one", "small", "piece", "at", "a", "time", "so", "proxies", "can", "be", "tested",
    "properly",
];

/// `n` deterministic text deltas (`"Sure"`, `" here"`, `" is"`, …).
pub(crate) fn generated_deltas(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let word = WORDS[i % WORDS.len()];
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// One SSE event: `event: NAME\ndata: JSON\n\n`.
pub(crate) fn sse_event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

impl MessageSpec {
    pub(crate) fn model_for<'a>(&'a self, request_model: Option<&'a str>) -> &'a str {
        self.model
            .as_deref()
            .or(request_model)
            .unwrap_or(DEFAULT_MODEL)
    }

    pub(crate) fn text(&self) -> String {
        self.deltas.concat()
    }

    /// The full, successful event sequence, one `Bytes` per event.
    pub(crate) fn stream_events(&self, model: &str) -> Vec<Bytes> {
        let mut events = Vec::with_capacity(self.deltas.len() + 6);
        events.push(sse_event(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": self.usage.start_json(),
                },
            }),
        ));
        events.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        events.push(sse_event("ping", &json!({"type": "ping"})));
        for text in &self.deltas {
            events.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        events.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(sse_event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": self.usage.output_tokens},
            }),
        ));
        events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
        events
    }

    /// The non-streaming `{"id","type":"message",…}` body.
    pub(crate) fn json_body(&self, model: &str) -> Bytes {
        let body = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": self.text()}],
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage.full_json(),
        });
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_names(events: &[Bytes]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let s = std::str::from_utf8(e).unwrap();
                s.lines()
                    .next()
                    .unwrap()
                    .trim_start_matches("event: ")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn event_order() {
        let spec = MessageSpec {
            deltas: generated_deltas(2),
            ..MessageSpec::default()
        };
        let names = event_names(&spec.stream_events("m"));
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
    }

    #[test]
    fn events_are_well_formed() {
        for event in MessageSpec::default().stream_events("m") {
            let s = std::str::from_utf8(&event).unwrap();
            assert!(s.ends_with("\n\n"));
            let data = s.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            assert!(v["type"].is_string());
        }
    }

    #[test]
    fn model_choice() {
        let mut spec = MessageSpec::default();
        assert_eq!(spec.model_for(None), DEFAULT_MODEL);
        assert_eq!(spec.model_for(Some("req")), "req");
        spec.model = Some("fixed".into());
        assert_eq!(spec.model_for(Some("req")), "fixed");
    }

    #[test]
    fn json_body_has_text_and_usage() {
        let v: Value = serde_json::from_slice(&MessageSpec::default().json_body("m")).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "Sure here is");
        assert_eq!(v["usage"]["input_tokens"], 25);
        assert_eq!(v["model"], "m");
    }
}
