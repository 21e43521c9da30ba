//! The OpenAI Responses API wire format, shared by the Codex and OpenAI fakes: the SSE event
//! sequence of a streamed response and the whole `response` object.
//!
//! Event order: `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per text delta,
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
//! `response.completed` (with `usage`). A failure is `response.failed` with `error`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::api_reply::ApiReply;
use crate::wire::named_event;

/// Ids and time of one rendered response.
pub(crate) struct ResponseIds<'a> {
    pub response_id: &'a str,
    pub item_id: &'a str,
    pub model: &'a str,
    pub created_at: u64,
}

fn usage_json(reply: &ApiReply) -> Value {
    let u = reply.usage;
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

fn message_item(ids: &ResponseIds<'_>, text: Option<&str>) -> Value {
    match text {
        None => json!({
            "id": ids.item_id, "type": "message", "status": "in_progress",
            "role": "assistant", "content": [],
        }),
        Some(text) => json!({
            "id": ids.item_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
    }
}

/// The `response` object in `status`, with its output when completed.
pub(crate) fn response_object(reply: &ApiReply, ids: &ResponseIds<'_>, status: &str) -> Value {
    let done = status == "completed";
    let text = reply.full_text();
    json!({
        "id": ids.response_id,
        "object": "response",
        "created_at": ids.created_at,
        "status": status,
        "model": ids.model,
        "output": if done { json!([message_item(ids, Some(&text))]) } else { json!([]) },
        "usage": if done { usage_json(reply) } else { Value::Null },
        "error": null,
        "store": false,
    })
}

/// Every event of a complete streamed response.
pub(crate) fn stream_events(reply: &ApiReply, ids: &ResponseIds<'_>) -> Vec<Bytes> {
    let text = reply.full_text();
    let mut seq = 0u64;
    let mut events = Vec::with_capacity(reply.deltas.len() + 8);
    let mut push = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(named_event(name, &data));
    };
    push(
        "response.created",
        json!({"response": response_object(reply, ids, "in_progress")}),
    );
    push(
        "response.in_progress",
        json!({"response": response_object(reply, ids, "in_progress")}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(ids, None)}),
    );
    push(
        "response.content_part.added",
        json!({"item_id": ids.item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for delta in &reply.deltas {
        push(
            "response.output_text.delta",
            json!({"item_id": ids.item_id, "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []}),
        );
    }
    push(
        "response.output_text.done",
        json!({"item_id": ids.item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    push(
        "response.content_part.done",
        json!({"item_id": ids.item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": text, "annotations": []}}),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": message_item(ids, Some(&text))}),
    );
    push(
        "response.completed",
        json!({"response": response_object(reply, ids, "completed")}),
    );
    events
}

/// The `response.failed` event a stream ends with when it fails (`code` defaults to
/// `server_error`).
pub(crate) fn failed_event(reply: &ApiReply, ids: &ResponseIds<'_>, sequence: usize) -> Bytes {
    let mut response = response_object(reply, ids, "failed");
    response["error"] = json!({
        "code": reply.code.as_deref().unwrap_or("server_error"),
        "message": "fake: the response failed",
    });
    named_event(
        "response.failed",
        &json!({"type": "response.failed", "sequence_number": sequence, "response": response}),
    )
}

/// Whether a request body asks for a stream.
pub(crate) fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ResponseIds<'static> {
        ResponseIds {
            response_id: "resp_1",
            item_id: "msg_1",
            model: "gpt-5",
            created_at: 1,
        }
    }

    #[test]
    fn event_order_and_usage() {
        let reply = ApiReply::ok().text(["po", "ng"]).tokens(100, 7).cached(60);
        let events = stream_events(&reply, &ids());
        let names: Vec<String> = events
            .iter()
            .map(|e| {
                std::str::from_utf8(e).unwrap().lines().next().unwrap()["event: ".len()..]
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let last = std::str::from_utf8(events.last().unwrap()).unwrap();
        let data: Value =
            serde_json::from_str(last.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["sequence_number"], 9);
        assert_eq!(data["response"]["usage"]["input_tokens"], 100);
        assert_eq!(
            data["response"]["usage"]["input_tokens_details"]["cached_tokens"],
            60
        );
        assert_eq!(data["response"]["output"][0]["content"][0]["text"], "pong");
    }
}
