//! What the new providers' request-path work costs per request, on the captured client
//! requests: conversation keys, Code Assist project substitution, the signed-thinking check,
//! the Chat Completions translation one way and the stream translation per event. The
//! Anthropic provider's inspection of the captured Claude Code request is the baseline.
//!
//! `cargo bench -p sluice-server --bench providers` (release build; a few seconds). Prints
//! the median and the 90th percentile of per-call times over batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Value, json};
use sluice_config::ProviderKind;
use sluice_server::provider::anthropic::Anthropic;
use sluice_server::provider::codex::Codex;
use sluice_server::provider::compatible::carries_anthropic_signatures;
use sluice_server::provider::gemini::{Dialect, Gemini, substitute_project};
use sluice_server::provider::{ClientRequest, Provider};
use sluice_server::translate::{ChatStream, RequestOptions, StreamOptions, chat_to_messages};

fn captured(name: &str) -> (HeaderMap, Bytes, String) {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/client-requests/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let mut headers = HeaderMap::new();
    for pair in value["headers"].as_array().unwrap() {
        headers.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().to_ascii_lowercase().as_bytes())
                .unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    (
        headers,
        Bytes::from(value["body"].to_string()),
        value["path"].as_str().unwrap().to_owned(),
    )
}

/// Median and p90 of the per-call time over `batches` batches of `per_batch` calls.
fn measure(name: &str, bytes: usize, mut f: impl FnMut()) {
    let per_batch = 200;
    let batches = 60;
    for _ in 0..per_batch {
        f();
    }
    let mut samples: Vec<Duration> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed() / per_batch
        })
        .collect();
    samples.sort();
    let median = samples[samples.len() / 2];
    let p90 = samples[samples.len() * 9 / 10];
    println!(
        "{name:<58} {:>6} B  median {:>8.2} µs  p90 {:>8.2} µs",
        bytes,
        median.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6
    );
}

fn main() {
    let pool = ProviderKind::Anthropic;

    let (headers, body, _) = captured("claude_code_messages.json");
    measure(
        "anthropic inspect, Claude Code request (baseline)",
        body.len(),
        || {
            black_box(Anthropic.inspect(&headers, &body));
        },
    );
    measure(
        "signed-thinking check, same request (no thinking)",
        body.len(),
        || {
            black_box(carries_anthropic_signatures(&body));
        },
    );
    let mut with_thinking: Value = serde_json::from_slice(&body).unwrap();
    with_thinking["messages"].as_array_mut().unwrap().push(json!({
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "EqQBCkgIARABGAIiQL"}, {"type": "text", "text": "pong"}]
    }));
    let with_thinking = Bytes::from(with_thinking.to_string());
    measure(
        "signed-thinking check, same request + a signed block",
        with_thinking.len(),
        || {
            black_box(carries_anthropic_signatures(&with_thinking));
        },
    );

    let (headers, body, _) = captured("codex_responses.json");
    let codex = Codex::new(pool);
    measure("codex inspect (prompt_cache_key)", body.len(), || {
        black_box(codex.inspect(&headers, &body));
    });

    let (headers, body, path) = captured("gemini_cli_codeassist_stream.json");
    let code_assist = Gemini::new(pool, Dialect::CodeAssist);
    let request = ClientRequest {
        method: &Method::POST,
        path_and_query: &path,
        headers: &headers,
        body: &body,
    };
    measure(
        "gemini code assist inspect (request.session_id)",
        body.len(),
        || {
            black_box(code_assist.inspect_request(&request));
        },
    );
    measure(
        "gemini code assist project substitution",
        body.len(),
        || {
            black_box(
                substitute_project(&body, "streamGenerateContent", Some("proj-pooled")).unwrap(),
            );
        },
    );

    let (headers, body, path) = captured("gemini_cli_apikey_stream.json");
    let api = Gemini::new(pool, Dialect::Api);
    let request = ClientRequest {
        method: &Method::POST,
        path_and_query: &path,
        headers: &headers,
        body: &body,
    };
    measure("gemini API inspect (opening key)", body.len(), || {
        black_box(api.inspect_request(&request));
    });

    let (_, body, _) = captured("openai_python_chat.json");
    let mut chat: Value = serde_json::from_slice(&body).unwrap();
    chat["model"] = json!("claude-sonnet-4-5");
    let chat = Bytes::from(chat.to_string());
    measure(
        "chat → messages request translation (captured)",
        chat.len(),
        || {
            black_box(chat_to_messages(&chat, &RequestOptions::default()).unwrap());
        },
    );
    let tools = std::fs::read(format!(
        "{}/../../fixtures/translation/tool-results/chat_request.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    measure(
        "chat → messages request translation (tool results)",
        tools.len(),
        || {
            black_box(chat_to_messages(&tools, &RequestOptions::default()).unwrap());
        },
    );

    let delta = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sure, here is the next piece of the answer"}}"#;
    let start = br#"{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":1}}}"#;
    let block =
        br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    let mut stream = ChatStream::new(StreamOptions {
        include_usage: true,
        created: 1,
    });
    let mut out = BytesMut::new();
    stream.push("message_start", start, &mut out);
    stream.push("content_block_start", block, &mut out);
    measure(
        "stream translation, one text_delta event → one chunk",
        delta.len(),
        || {
            out.clear();
            stream.push("content_block_delta", delta, &mut out);
            black_box(&out);
        },
    );
}
