//! Golden tests of the Chat Completions ⇄ Messages translation on the recorded pairs in
//! `fixtures/translation/` (see its README). Set `SLUICE_BLESS=1` to rewrite the expected
//! files instead of comparing.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use http::StatusCode;
use serde_json::Value;
use sluice_server::provider::ResponseTranslator;
use sluice_server::translate::{
    ChatStream, RequestOptions, StreamOptions, chat_to_messages, messages_to_chat,
};

const CREATED: i64 = 1_767_225_600;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/translation");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 6,
        "the golden pairs are missing from {root:?}"
    );
    dirs
}

fn bless() -> bool {
    std::env::var_os("SLUICE_BLESS").is_some()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn json_file(path: &Path) -> Option<Value> {
    read(path).map(|text| serde_json::from_str(&text).unwrap())
}

/// Compare `actual` with the JSON in `path`, or write it there when blessing.
fn check_json(path: &Path, actual: &Value) {
    if bless() {
        std::fs::write(path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected = json_file(path).unwrap_or_else(|| panic!("{path:?} is missing (bless?)"));
    assert_eq!(
        actual,
        &expected,
        "{path:?} differs:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

fn check_text(path: &Path, actual: &str) {
    if bless() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = read(path).unwrap_or_else(|| panic!("{path:?} is missing (bless?)"));
    assert_eq!(actual, expected, "{path:?} differs");
}

/// The events of an SSE file: (`event:` name, `data:` payload).
fn sse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

#[test]
fn requests_translate_to_the_recorded_messages_requests() {
    for case in cases() {
        let request = read(&case.join("chat_request.json")).unwrap();
        let translated = chat_to_messages(request.as_bytes(), &RequestOptions::default())
            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
        check_json(&case.join("messages_request.json"), &translated);
    }
}

#[test]
fn answers_translate_to_the_recorded_chat_completions() {
    let mut seen = 0;
    for case in cases() {
        let Some(answer) = read(&case.join("messages_response.json")) else {
            continue;
        };
        seen += 1;
        let translated = messages_to_chat(answer.as_bytes(), CREATED)
            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
        check_json(&case.join("chat_response.json"), &translated);
    }
    assert!(seen >= 5);
}

#[test]
fn streams_translate_event_by_event_to_the_recorded_chunks() {
    let mut seen = 0;
    for case in cases() {
        let Some(stream) = read(&case.join("messages_stream.sse")) else {
            continue;
        };
        seen += 1;
        let request = read(&case.join("chat_request.json")).unwrap();
        let mut translator =
            ChatStream::new(StreamOptions::from_request(request.as_bytes(), CREATED));
        let mut all = String::new();
        for (name, data) in sse_events(&stream) {
            let mut out = BytesMut::new();
            translator.on_event(&name, data.as_bytes(), &mut out);
            let out = String::from_utf8(out.to_vec()).unwrap();
            // Every event that carries something for the client produces it at once, as
            // exactly one chunk (nothing is held back for later events).
            let carries = match name.as_str() {
                "content_block_delta" => {
                    let delta: Value = serde_json::from_str(&data).unwrap();
                    ["text_delta", "thinking_delta"]
                        .contains(&delta["delta"]["type"].as_str().unwrap())
                        || delta["delta"]["partial_json"]
                            .as_str()
                            .is_some_and(|j| !j.is_empty())
                }
                "message_start" | "message_delta" | "error" => true,
                _ => false,
            };
            if carries {
                assert_eq!(
                    out.matches("data: ").count(),
                    1,
                    "{case:?}: {name} must produce one chunk at once, got {out:?}"
                );
            }
            all.push_str(&out);
        }
        translator.on_end(&mut BytesMut::new());
        check_text(&case.join("chat_stream.sse"), &all);
    }
    assert!(seen >= 5);
}

/// A client that assembles the streamed chunks gets the same message as the non-streamed
/// translation of the same answer.
#[test]
fn assembled_streams_agree_with_whole_answers() {
    for case in cases() {
        let (Some(stream), Some(whole)) = (
            read(&case.join("chat_stream.sse")),
            json_file(&case.join("chat_response.json")),
        ) else {
            continue;
        };
        let mut content = String::new();
        let mut reasoning = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finish = Value::Null;
        let mut usage = Value::Null;
        let mut done = false;
        for (_, data) in sse_events(&stream) {
            if data == "[DONE]" {
                done = true;
                continue;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], whole["id"], "{case:?}");
            assert_eq!(chunk["model"], whole["model"], "{case:?}");
            if !chunk["usage"].is_null() {
                usage = chunk["usage"].clone();
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            content.push_str(delta["content"].as_str().unwrap_or(""));
            reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if index == calls.len() {
                    calls.push((
                        call["id"].as_str().unwrap().to_owned(),
                        call["function"]["name"].as_str().unwrap().to_owned(),
                        String::new(),
                    ));
                }
                calls[index]
                    .2
                    .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
        assert!(done, "{case:?}: the stream ends with [DONE]");
        let message = &whole["choices"][0]["message"];
        assert_eq!(
            content,
            message["content"].as_str().unwrap_or(""),
            "{case:?}"
        );
        assert_eq!(
            reasoning,
            message["reasoning_content"].as_str().unwrap_or(""),
            "{case:?}"
        );
        assert_eq!(finish, whole["choices"][0]["finish_reason"], "{case:?}");
        let whole_calls = message["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(calls.len(), whole_calls.len(), "{case:?}");
        for ((id, name, arguments), expected) in calls.iter().zip(&whole_calls) {
            assert_eq!(id, expected["id"].as_str().unwrap());
            assert_eq!(name, expected["function"]["name"].as_str().unwrap());
            let streamed: Value = serde_json::from_str(arguments).unwrap();
            let whole_args: Value =
                serde_json::from_str(expected["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(streamed, whole_args, "{case:?}: tool arguments");
        }
        if !usage.is_null() {
            assert_eq!(usage, whole["usage"], "{case:?}");
        }
    }
}

#[test]
fn upstream_errors_translate_to_openai_errors() {
    let mut seen = 0;
    for case in cases() {
        let Some(error) = json_file(&case.join("messages_error.json")) else {
            continue;
        };
        seen += 1;
        let status = StatusCode::from_u16(error["status"].as_u64().unwrap() as u16).unwrap();
        let body = error["body"].to_string();
        let request = read(&case.join("chat_request.json")).unwrap();
        let mut translator =
            ChatStream::new(StreamOptions::from_request(request.as_bytes(), CREATED));
        let (status, body) = translator.on_error(status, body.as_bytes());
        let actual = serde_json::json!({
            "status": status.as_u16(),
            "body": serde_json::from_slice::<Value>(&body).unwrap(),
        });
        check_json(&case.join("chat_error.json"), &actual);
    }
    assert!(seen >= 1);
}
