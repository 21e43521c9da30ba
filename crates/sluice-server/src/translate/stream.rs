//! Messages stream → Chat Completions stream, one event at a time.
//!
//! Each Anthropic event that carries something a Chat client can use becomes one
//! `chat.completion.chunk` `data:` line the moment it is fed in: the role on
//! `message_start`, text deltas as `content`, tool calls as `tool_calls` (name on the
//! block's start, arguments as their JSON streams in), thinking as `reasoning_content`, the
//! `finish_reason` on `message_delta`, then the usage chunk (when the client asked with
//! `stream_options.include_usage`) and `data: [DONE]` on `message_stop`. Pings become SSE
//! comments, so the connection stays alive without a chunk the client must parse. An
//! `error` event becomes an OpenAI error chunk, which the OpenAI SDKs raise.

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{anthropic_error_to_openai, openai_error_body};
use super::response::{Usage, chat_id, finish_reason, messages_to_chat};
use crate::provider::ResponseTranslator;

/// What the client asked of the stream, and the `created` stamp for its chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `stream_options.include_usage`: send a final chunk with `usage` (and `"usage": null`
    /// on every other chunk, as OpenAI does).
    pub include_usage: bool,
    /// Epoch seconds.
    pub created: i64,
}

impl StreamOptions {
    /// Read `stream_options.include_usage` from a Chat Completions request body.
    pub fn from_request(body: &[u8], created: i64) -> StreamOptions {
        #[derive(Deserialize)]
        struct Peek {
            stream_options: Option<Inner>,
        }
        #[derive(Deserialize)]
        struct Inner {
            include_usage: Option<bool>,
        }
        let include_usage = serde_json::from_slice::<Peek>(body)
            .ok()
            .and_then(|p| p.stream_options?.include_usage)
            .unwrap_or(false);
        StreamOptions {
            include_usage,
            created,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    /// A tool call, with its position among the message's tool calls.
    Tool(usize),
    Other,
}

/// The incremental translator. Feed it every event of one Messages stream in order.
pub struct ChatStream {
    options: StreamOptions,
    id: String,
    model: String,
    blocks: Vec<(usize, BlockKind)>,
    tool_calls: usize,
    usage: Usage,
    finished: bool,
}

impl ChatStream {
    pub fn new(options: StreamOptions) -> ChatStream {
        ChatStream {
            options,
            id: chat_id("unknown"),
            model: String::new(),
            blocks: Vec::new(),
            tool_calls: 0,
            usage: Usage::default(),
            finished: false,
        }
    }

    /// Whether `message_stop` (or an error) ended the stream.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn block(&self, index: usize) -> BlockKind {
        self.blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(BlockKind::Other, |(_, kind)| *kind)
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.options.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.options.include_usage {
            chunk["usage"] = Value::Null;
        }
        data_line(&chunk, out);
    }

    /// Translate one event. Unknown events and malformed data produce nothing.
    pub fn push(&mut self, event: &str, data: &[u8], out: &mut BytesMut) {
        if self.finished {
            return;
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match event {
            "message_start" => {
                let message = &value["message"];
                if let Some(id) = message["id"].as_str() {
                    self.id = chat_id(id);
                }
                if let Some(model) = message["model"].as_str() {
                    self.model = model.to_owned();
                }
                if let Ok(usage) = serde_json::from_value::<Usage>(message["usage"].clone()) {
                    self.usage.merge(&usage);
                }
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            "content_block_start" => {
                let index = value["index"].as_u64().unwrap_or(0) as usize;
                let block = &value["content_block"];
                let kind = match block["type"].as_str() {
                    Some("text") => BlockKind::Text,
                    Some("thinking") => BlockKind::Thinking,
                    Some("tool_use") => {
                        let position = self.tool_calls;
                        self.tool_calls += 1;
                        BlockKind::Tool(position)
                    }
                    _ => BlockKind::Other,
                };
                self.blocks.push((index, kind));
                match kind {
                    BlockKind::Text => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            self.chunk(json!({"content": text}), None, out);
                        }
                    }
                    BlockKind::Thinking => {
                        if let Some(text) = block["thinking"].as_str().filter(|t| !t.is_empty()) {
                            self.chunk(json!({"reasoning_content": text}), None, out);
                        }
                    }
                    BlockKind::Tool(position) => self.chunk(
                        json!({"tool_calls": [{
                            "index": position,
                            "id": block["id"],
                            "type": "function",
                            "function": {"name": block["name"], "arguments": ""},
                        }]}),
                        None,
                        out,
                    ),
                    BlockKind::Other => {}
                }
            }
            "content_block_delta" => {
                let index = value["index"].as_u64().unwrap_or(0) as usize;
                let delta = &value["delta"];
                match (self.block(index), delta["type"].as_str()) {
                    (BlockKind::Text, Some("text_delta")) => {
                        if let Some(text) = delta["text"].as_str() {
                            self.chunk(json!({"content": text}), None, out);
                        }
                    }
                    (BlockKind::Thinking, Some("thinking_delta")) => {
                        if let Some(text) = delta["thinking"].as_str() {
                            self.chunk(json!({"reasoning_content": text}), None, out);
                        }
                    }
                    (BlockKind::Tool(position), Some("input_json_delta")) => {
                        if let Some(json) = delta["partial_json"].as_str().filter(|j| !j.is_empty())
                        {
                            self.chunk(
                                json!({"tool_calls": [{"index": position, "function": {"arguments": json}}]}),
                                None,
                                out,
                            );
                        }
                    }
                    // Signatures, citations, server tools: nothing for a Chat client.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Ok(usage) = serde_json::from_value::<Usage>(value["usage"].clone()) {
                    self.usage.merge(&usage);
                }
                if let Some(reason) = value["delta"]["stop_reason"].as_str() {
                    self.chunk(json!({}), Some(finish_reason(reason)), out);
                }
            }
            "message_stop" => {
                if self.options.include_usage {
                    data_line(
                        &json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.options.created,
                            "model": self.model,
                            "choices": [],
                            "usage": self.usage.to_chat(),
                        }),
                        out,
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.finished = true;
            }
            "ping" => out.extend_from_slice(b": ping\n\n"),
            "error" => {
                let (_, body) = anthropic_error_to_openai(StatusCode::INTERNAL_SERVER_ERROR, data);
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\n\n");
                self.finished = true;
            }
            _ => {}
        }
    }
}

fn data_line(value: &Value, out: &mut BytesMut) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl ResponseTranslator for ChatStream {
    fn on_event(&mut self, event: &str, data: &[u8], out: &mut BytesMut) {
        self.push(event, data, out);
    }

    fn on_body(&mut self, body: &[u8]) -> Bytes {
        match messages_to_chat(body, self.options.created) {
            Ok(chat) => Bytes::from(chat.to_string()),
            Err(error) => openai_error_body(&error.to_string(), "server_error", None),
        }
    }

    fn on_error(&mut self, status: StatusCode, body: &[u8]) -> (StatusCode, Bytes) {
        anthropic_error_to_openai(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stream: &mut ChatStream, event: &str, data: Value) -> String {
        let mut out = BytesMut::new();
        stream.push(event, data.to_string().as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn each_event_is_translated_as_it_arrives() {
        let mut stream = ChatStream::new(StreamOptions {
            include_usage: false,
            created: 7,
        });
        let start = feed(
            &mut stream,
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        );
        assert!(start.starts_with("data: {") && start.ends_with("\n\n"));
        assert!(start.contains(r#""role":"assistant""#));
        assert!(!start.contains("usage"), "no usage field unless asked");
        assert_eq!(
            feed(
                &mut stream,
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            ),
            "",
            "an empty block start says nothing"
        );
        let delta = feed(
            &mut stream,
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "po"}}),
        );
        assert_eq!(delta.matches("data: ").count(), 1);
        assert!(delta.contains(r#""content":"po""#));
        assert_eq!(
            feed(&mut stream, "ping", json!({"type": "ping"})),
            ": ping\n\n"
        );
        let stop = feed(&mut stream, "message_stop", json!({"type": "message_stop"}));
        assert_eq!(stop, "data: [DONE]\n\n");
        assert!(stream.is_finished());
        assert_eq!(
            feed(
                &mut stream,
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "text_delta", "text": "late"}})
            ),
            ""
        );
    }

    #[test]
    fn an_error_event_becomes_an_error_chunk_and_ends_the_stream() {
        let mut stream = ChatStream::new(StreamOptions::default());
        let out = feed(
            &mut stream,
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert!(out.starts_with("data: {\"error\":"));
        assert!(out.contains("server_is_overloaded"));
        assert!(!out.contains("[DONE]"));
        assert!(stream.is_finished());
    }

    #[test]
    fn include_usage_is_read_from_the_request() {
        assert!(
            StreamOptions::from_request(br#"{"stream_options":{"include_usage":true}}"#, 1)
                .include_usage
        );
        assert!(!StreamOptions::from_request(br#"{"stream":true}"#, 1).include_usage);
        assert!(!StreamOptions::from_request(b"garbage", 1).include_usage);
    }
}
