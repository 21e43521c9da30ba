//! Messages response → Chat Completions response (non-streaming).

use serde::Deserialize;
use serde_json::{Value, json};

use super::TranslateError;

/// The Chat Completions `finish_reason` for a Messages `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer: the turn ended.
        _ => "stop",
    }
}

#[derive(Deserialize)]
pub(super) struct Message {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub content: Vec<Block>,
    pub stop_reason: Option<String>,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(super) struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub thinking: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub input: Option<Value>,
}

/// Messages usage; every field optional because streamed events carry parts of it.
#[derive(Deserialize, Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Later reports restate totals: each field present replaces the old one.
    pub(super) fn merge(&mut self, other: &Usage) {
        let fields = [
            (&mut self.input_tokens, other.input_tokens),
            (&mut self.output_tokens, other.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                other.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                other.cache_read_input_tokens,
            ),
        ];
        for (slot, value) in fields {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    /// The Chat Completions `usage` object: prompt tokens count every input token, cached
    /// or not, with the cache reads repeated under `prompt_tokens_details`.
    pub(super) fn to_chat(self) -> Value {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + self.cache_creation_input_tokens.unwrap_or(0) + cached;
        let completion = self.output_tokens.unwrap_or(0);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }
}

/// The Chat Completions id for a Messages id.
pub(super) fn chat_id(message_id: &str) -> String {
    format!("chatcmpl-{message_id}")
}

/// Translate a complete Messages response into a `chat.completion`. `created` is the epoch
/// second to stamp it with.
pub fn messages_to_chat(body: &[u8], created: i64) -> Result<Value, TranslateError> {
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        TranslateError::Invalid(format!("the upstream answered an unreadable message: {e}"))
    })?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.kind.as_str() {
            "text" => text.push_str(block.text.as_deref().unwrap_or("")),
            "thinking" => reasoning.push_str(block.thinking.as_deref().unwrap_or("")),
            "tool_use" => tool_calls.push(json!({
                "id": block.id,
                "type": "function",
                "function": {
                    "name": block.name,
                    "arguments": block.input.as_ref().unwrap_or(&json!({})).to_string(),
                },
            })),
            // redacted_thinking, server tool blocks: nothing a Chat client can use.
            _ => {}
        }
    }
    let mut reply = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !reasoning.is_empty() {
        reply["reasoning_content"] = json!(reasoning);
    }
    if !tool_calls.is_empty() {
        reply["tool_calls"] = Value::Array(tool_calls);
    }
    Ok(json!({
        "id": chat_id(&message.id),
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason(message.stop_reason.as_deref().unwrap_or("end_turn")),
        }],
        "usage": message.usage.unwrap_or_default().to_chat(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("pause_turn"), "stop");
        assert_eq!(finish_reason("something_new"), "stop");
    }

    #[test]
    fn usage_counts_every_input_token() {
        let usage = Usage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_creation_input_tokens: Some(100),
            cache_read_input_tokens: Some(1000),
        };
        assert_eq!(
            usage.to_chat(),
            json!({"prompt_tokens": 1110, "completion_tokens": 5, "total_tokens": 1115, "prompt_tokens_details": {"cached_tokens": 1000}})
        );
        let mut merged = Usage {
            input_tokens: Some(3),
            ..Usage::default()
        };
        merged.merge(&Usage {
            output_tokens: Some(9),
            ..Usage::default()
        });
        assert_eq!(
            (merged.input_tokens, merged.output_tokens),
            (Some(3), Some(9))
        );
    }

    #[test]
    fn unreadable_answers_are_errors() {
        assert!(messages_to_chat(b"{}", 0).is_err());
        assert!(messages_to_chat(b"nope", 0).is_err());
    }
}
