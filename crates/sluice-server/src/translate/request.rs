//! Chat Completions request → Messages request.
//!
//! System and developer messages become the top-level `system`; consecutive messages of one
//! role merge into one turn (tool results join the user turn that follows the assistant's
//! tool calls, as Messages requires); images become `image` blocks from base64 data URLs or
//! from http(s) URLs; tools, tool choice, stop sequences, limits and the user id map onto
//! their Messages equivalents. `reasoning_effort` turns on extended thinking where Messages
//! allows it.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::TranslateError;

/// `max_tokens` when the client sets none (Messages requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 8192;
/// Thinking budgets for `reasoning_effort` `low`, `medium`, `high`.
pub const THINKING_BUDGETS: [(&str, u32); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];
/// The smallest thinking budget Messages accepts.
const MIN_THINKING_BUDGET: u32 = 1024;

/// Choices the translation cannot take from the request alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// `max_tokens` when the client sets neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: u32,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<Stop>,
    tools: Option<Vec<ChatTool>>,
    tool_choice: Option<ToolChoice>,
    parallel_tool_calls: Option<bool>,
    user: Option<String>,
    safety_identifier: Option<String>,
    metadata: Option<Map<String, Value>>,
    reasoning_effort: Option<String>,
    n: Option<u32>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    response_format: Option<ResponseFormat>,
    functions: Option<Value>,
    function_call: Option<Value>,
    audio: Option<Value>,
    modalities: Option<Vec<String>>,
    web_search_options: Option<Value>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<ChatContent>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    tool_call_id: Option<String>,
    function_call: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    refusal: Option<String>,
    image_url: Option<ImageUrl>,
    file: Option<FilePart>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ImageUrl {
    Object { url: String },
    Bare(String),
}

impl ImageUrl {
    fn url(&self) -> &str {
        match self {
            ImageUrl::Object { url } | ImageUrl::Bare(url) => url,
        }
    }
}

#[derive(Deserialize)]
struct FilePart {
    file_data: Option<String>,
    file_id: Option<String>,
}

#[derive(Deserialize)]
struct ToolCall {
    id: String,
    function: FunctionCall,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: String,
    function: Option<FunctionDef>,
}

#[derive(Deserialize)]
struct FunctionDef {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Deserialize)]
struct NamedFunction {
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
}

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(message.into())
}

fn unsupported(message: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported(message.into())
}

/// Translate a Chat Completions request body into a Messages request.
pub fn chat_to_messages(body: &[u8], options: &RequestOptions) -> Result<Value, TranslateError> {
    let request: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not a valid Chat Completions request: {e}")))?;
    refuse_unsupported(&request)?;

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        match message.role.as_str() {
            "system" | "developer" => {
                for text in text_parts(message.content.as_ref(), index)? {
                    system.push(json!({"type": "text", "text": text}));
                }
            }
            "user" => {
                let blocks = user_blocks(message.content.as_ref(), index)?;
                if blocks.is_empty() {
                    return Err(invalid(format!("messages[{index}] has no content")));
                }
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                if message.function_call.is_some() {
                    return Err(unsupported(format!(
                        "messages[{index}].function_call is the legacy functions API; use tool_calls"
                    )));
                }
                let blocks = assistant_blocks(message, index)?;
                // An assistant turn with nothing in it says nothing; Messages rejects it.
                if !blocks.is_empty() {
                    push_turn(&mut turns, "assistant", blocks);
                }
            }
            "tool" => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    invalid(format!("messages[{index}] (role tool) needs tool_call_id"))
                })?;
                let content = tool_result_content(message.content.as_ref(), index)?;
                push_turn(
                    &mut turns,
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})],
                );
            }
            "function" => {
                return Err(unsupported(format!(
                    "messages[{index}] uses the legacy function role; use tool messages"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "messages[{index}] has unknown role {other:?}"
                )));
            }
        }
    }
    if turns.is_empty() {
        return Err(invalid("messages must contain at least one user message"));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(request.model));
    out.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let client_max = request.max_completion_tokens.or(request.max_tokens);
    let mut max_tokens = client_max.unwrap_or(options.default_max_tokens).max(1);
    if let Some(t) = request.temperature {
        // OpenAI allows 0..=2, Messages 0..=1.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = request.top_p {
        out.insert("top_p".into(), json!(p));
    }
    match &request.stop {
        Some(Stop::One(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Stop::Many(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), json!(list));
        }
        _ => {}
    }
    if request.stream {
        out.insert("stream".into(), json!(true));
    }
    let tools = translate_tools(request.tools.as_deref())?;
    let tool_choice = translate_tool_choice(
        request.tool_choice.as_ref(),
        request.parallel_tool_calls,
        !tools.is_empty(),
    )?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &tool_choice {
        out.insert("tool_choice".into(), choice.clone());
    }
    let user = request
        .user
        .as_deref()
        .or(request.safety_identifier.as_deref())
        .or_else(|| request.metadata.as_ref()?.get("user_id")?.as_str());
    if let Some(user) = user {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(budget) = thinking_budget(&request, client_max, max_tokens, tool_choice.as_ref())? {
        if client_max.is_none() {
            max_tokens = max_tokens.saturating_add(budget);
        }
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
        // Messages refuses a temperature (and a low top_p) alongside thinking.
        out.remove("temperature");
        out.remove("top_p");
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    Ok(Value::Object(out))
}

fn refuse_unsupported(request: &ChatRequest) -> Result<(), TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(unsupported("n > 1 is not supported for Claude models"));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some() {
        return Err(unsupported("logprobs are not supported for Claude models"));
    }
    if let Some(format) = &request.response_format
        && format.kind != "text"
    {
        return Err(unsupported(format!(
            "response_format {:?} is not supported for Claude models; describe the format in the prompt",
            format.kind
        )));
    }
    if request.functions.is_some() || request.function_call.is_some() {
        return Err(unsupported(
            "functions/function_call are the legacy functions API; use tools",
        ));
    }
    if request.audio.is_some()
        || request
            .modalities
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m != "text"))
    {
        return Err(unsupported(
            "audio output is not supported for Claude models",
        ));
    }
    if request.web_search_options.is_some() {
        return Err(unsupported(
            "web_search_options is not supported through the Chat Completions bridge",
        ));
    }
    Ok(())
}

/// Append blocks to the last turn if it has the same role, else start a new turn.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    match turns.last_mut() {
        Some((last, content)) if *last == role => content.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// The texts of a system or developer message.
fn text_parts(content: Option<&ChatContent>, index: usize) -> Result<Vec<String>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(text)) => Ok((!text.is_empty())
            .then(|| text.clone())
            .into_iter()
            .collect()),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| match part.kind.as_str() {
                "text" => part
                    .text
                    .clone()
                    .filter(|t| !t.is_empty())
                    .map(Ok),
                other => Some(Err(invalid(format!(
                    "messages[{index}].content[{i}]: a system message holds only text, not {other:?}"
                )))),
            })
            .collect(),
    }
}

fn user_blocks(content: Option<&ChatContent>, index: usize) -> Result<Vec<Value>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(text)) => Ok(text_block(text).into_iter().collect()),
        Some(ChatContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                let at = || format!("messages[{index}].content[{i}]");
                match part.kind.as_str() {
                    "text" => blocks.extend(text_block(part.text.as_deref().unwrap_or(""))),
                    "image_url" => {
                        let url = part
                            .image_url
                            .as_ref()
                            .ok_or_else(|| invalid(format!("{}: image_url is missing", at())))?;
                        blocks.push(image_block(url.url()).map_err(|e| prefix(&at(), e))?);
                    }
                    "file" => {
                        let file = part
                            .file
                            .as_ref()
                            .ok_or_else(|| invalid(format!("{}: file is missing", at())))?;
                        blocks.push(file_block(file).map_err(|e| prefix(&at(), e))?);
                    }
                    "input_audio" => {
                        return Err(unsupported(format!(
                            "{}: audio input is not supported for Claude models",
                            at()
                        )));
                    }
                    other => {
                        return Err(invalid(format!(
                            "{}: unknown content part type {other:?}",
                            at()
                        )));
                    }
                }
            }
            Ok(blocks)
        }
    }
}

fn prefix(at: &str, error: TranslateError) -> TranslateError {
    match error {
        TranslateError::Invalid(m) => TranslateError::Invalid(format!("{at}: {m}")),
        TranslateError::Unsupported(m) => TranslateError::Unsupported(format!("{at}: {m}")),
    }
}

/// A text block, or nothing for empty text (Messages rejects empty text blocks).
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// An `image_url` part: a base64 data URL, or an http(s) URL the upstream fetches.
fn image_block(url: &str) -> Result<Value, TranslateError> {
    if let Some((media_type, data)) = parse_data_url(url)? {
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid(
        "an image URL must be a base64 data URL or an http(s) URL",
    ))
}

/// A `file` part: PDFs sent inline as base64 data URLs become `document` blocks.
fn file_block(file: &FilePart) -> Result<Value, TranslateError> {
    if file.file_id.is_some() {
        return Err(unsupported(
            "uploaded files (file_id) are not supported; send file_data",
        ));
    }
    let data = file
        .file_data
        .as_deref()
        .ok_or_else(|| invalid("file needs file_data"))?;
    match parse_data_url(data)? {
        Some((media_type, data)) if media_type == "application/pdf" => Ok(json!({
            "type": "document",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        })),
        Some((media_type, _)) => Err(unsupported(format!(
            "files of type {media_type:?} are not supported; only PDF"
        ))),
        None => Err(invalid("file_data must be a base64 data URL")),
    }
}

/// `data:<media type>;base64,<data>` → (media type, data). `Ok(None)` when `url` is not a
/// data URL at all.
fn parse_data_url(url: &str) -> Result<Option<(&str, &str)>, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| invalid("a data URL needs a comma before its data"))?;
    let media_type = meta
        .strip_suffix(";base64")
        .ok_or_else(|| invalid("only base64 data URLs are supported"))?;
    if media_type.is_empty() || data.is_empty() {
        return Err(invalid("a data URL needs a media type and data"));
    }
    Ok(Some((media_type, data)))
}

fn assistant_blocks(message: &ChatMessage, index: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match &message.content {
        None => {}
        Some(ChatContent::Text(text)) => blocks.extend(text_block(text)),
        Some(ChatContent::Parts(parts)) => {
            for (i, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => blocks.extend(text_block(part.text.as_deref().unwrap_or(""))),
                    "refusal" => blocks.extend(text_block(part.refusal.as_deref().unwrap_or(""))),
                    other => {
                        return Err(invalid(format!(
                            "messages[{index}].content[{i}]: an assistant message holds text, not {other:?}"
                        )));
                    }
                }
            }
        }
    }
    for (i, call) in message.tool_calls.iter().flatten().enumerate() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| {
                invalid(format!(
                    "messages[{index}].tool_calls[{i}].function.arguments is not valid JSON"
                ))
            })?
        };
        if !input.is_object() {
            return Err(invalid(format!(
                "messages[{index}].tool_calls[{i}].function.arguments must be a JSON object"
            )));
        }
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.function.name,
            "input": input,
        }));
    }
    Ok(blocks)
}

/// A tool message's content: its text, or text and image blocks.
fn tool_result_content(
    content: Option<&ChatContent>,
    index: usize,
) -> Result<Value, TranslateError> {
    match content {
        None => Ok(json!("")),
        Some(ChatContent::Text(text)) => Ok(json!(text)),
        Some(ChatContent::Parts(_)) => {
            let blocks = user_blocks(content, index)?;
            Ok(Value::Array(blocks))
        }
    }
}

fn translate_tools(tools: Option<&[ChatTool]>) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    for (i, tool) in tools.unwrap_or_default().iter().enumerate() {
        if tool.kind != "function" {
            return Err(unsupported(format!(
                "tools[{i}] has type {:?}; only function tools are supported",
                tool.kind
            )));
        }
        let function = tool
            .function
            .as_ref()
            .ok_or_else(|| invalid(format!("tools[{i}] needs a function")))?;
        let mut entry = Map::new();
        entry.insert("name".into(), json!(function.name));
        if let Some(description) = &function.description {
            entry.insert("description".into(), json!(description));
        }
        entry.insert(
            "input_schema".into(),
            function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        );
        out.push(Value::Object(entry));
    }
    Ok(out)
}

fn translate_tool_choice(
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
    has_tools: bool,
) -> Result<Option<Value>, TranslateError> {
    if !has_tools {
        return Ok(None);
    }
    let mut out = match choice {
        None => json!({"type": "auto"}),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => return Err(invalid(format!("unknown tool_choice {other:?}"))),
        },
        Some(ToolChoice::Named { function }) => json!({"type": "tool", "name": function.name}),
    };
    if parallel == Some(false) && out["type"] != "none" {
        out["disable_parallel_tool_use"] = json!(true);
    } else if choice.is_none() {
        // Nothing to say beyond the default.
        return Ok(None);
    }
    Ok(Some(out))
}

/// The thinking budget for `reasoning_effort`, when Messages can think for this request:
/// not with a forced tool choice, and not in the middle of a tool loop (the assistant's
/// last turn called tools), where Messages would demand the signed thinking that preceded
/// those calls and the Chat Completions history cannot carry it.
fn thinking_budget(
    request: &ChatRequest,
    client_max: Option<u32>,
    max_tokens: u32,
    tool_choice: Option<&Value>,
) -> Result<Option<u32>, TranslateError> {
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let budget = match effort {
        "none" | "minimal" => return Ok(None),
        other => THINKING_BUDGETS
            .iter()
            .find(|(name, _)| *name == other)
            .map(|(_, budget)| *budget)
            .ok_or_else(|| invalid(format!("unknown reasoning_effort {other:?}")))?,
    };
    let forced = tool_choice.is_some_and(|c| c["type"] == "any" || c["type"] == "tool");
    let in_tool_loop = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant")
        .is_some_and(|m| m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()));
    if forced || in_tool_loop {
        return Ok(None);
    }
    // The client's limit covers thinking too (as OpenAI's covers reasoning): think within it.
    let budget = match client_max {
        Some(_) => budget.min(max_tokens / 2),
        None => budget,
    };
    Ok((budget >= MIN_THINKING_BUDGET).then_some(budget))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<Value, TranslateError> {
        chat_to_messages(body.to_string().as_bytes(), &RequestOptions::default())
    }

    #[test]
    fn refuses_what_messages_cannot_express() {
        let base = || json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("response_format", json!({"type": "json_object"})),
            ("functions", json!([])),
            ("audio", json!({"voice": "alloy"})),
            ("web_search_options", json!({})),
        ] {
            let mut body = base();
            body[field] = value;
            assert!(
                matches!(translate(body), Err(TranslateError::Unsupported(_))),
                "{field}"
            );
        }
        let mut text_format = base();
        text_format["response_format"] = json!({"type": "text"});
        assert!(translate(text_format).is_ok());
    }

    #[test]
    fn invalid_requests_say_where() {
        let err = translate(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("messages[0].content[0]"),
            "{err}"
        );
        let err = translate(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}))
        .unwrap_err();
        assert!(
            err.to_string().contains("tool_calls[0].function.arguments"),
            "{err}"
        );
        assert!(translate(json!({"model": "m", "messages": []})).is_err());
        assert!(
            translate(json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}))
                .is_err()
        );
        assert!(
            translate(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
                .is_err()
        );
        assert!(matches!(
            chat_to_messages(b"{", &RequestOptions::default()),
            Err(TranslateError::Invalid(_))
        ));
    }

    #[test]
    fn limits_and_sampling() {
        let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "max_completion_tokens": 50, "temperature": 1.7, "stop": "END"})).unwrap();
        assert_eq!(out["max_tokens"], 50, "max_completion_tokens wins");
        assert_eq!(out["temperature"], 1.0, "clamped into Messages' range");
        assert_eq!(out["stop_sequences"], json!(["END"]));
        let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn thinking_follows_reasoning_effort_where_allowed() {
        let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "medium", "temperature": 0.2})).unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 4096})
        );
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS + 4096);
        assert!(out.get("temperature").is_none());
        // Within the client's own limit.
        let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high", "max_completion_tokens": 10000})).unwrap();
        assert_eq!(out["thinking"]["budget_tokens"], 5000);
        assert_eq!(out["max_tokens"], 10000);
        let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low", "max_tokens": 1500})).unwrap();
        assert!(
            out.get("thinking").is_none(),
            "too small a limit to think in"
        );
        // Not mid tool loop, not with a forced tool.
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let out = translate(json!({"model": "m", "tools": tools, "reasoning_effort": "high", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ]})).unwrap();
        assert!(out.get("thinking").is_none());
        let out = translate(json!({"model": "m", "tools": tools, "tool_choice": "required", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert!(out.get("thinking").is_none());
        assert!(translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "extreme"})).is_err());
    }

    #[test]
    fn tool_choice_variants() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |c: Value, parallel: Option<bool>| {
            let mut body = json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": "hi"}]});
            if !c.is_null() {
                body["tool_choice"] = c;
            }
            if let Some(p) = parallel {
                body["parallel_tool_calls"] = json!(p);
            }
            translate(body).unwrap()
        };
        assert!(choice(Value::Null, None).get("tool_choice").is_none());
        assert_eq!(
            choice(json!("auto"), None)["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            choice(json!("none"), None)["tool_choice"],
            json!({"type": "none"})
        );
        assert_eq!(
            choice(json!("required"), None)["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            choice(
                json!({"type": "function", "function": {"name": "f"}}),
                Some(false)
            )["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            choice(Value::Null, Some(false))["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            choice(Value::Null, None)["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
        let err = translate(json!({"model": "m", "tools": [{"type": "code_interpreter"}], "messages": [{"role": "user", "content": "hi"}]})).unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported(_)));
    }

    #[test]
    fn turns_merge_and_empty_ones_vanish() {
        let out = translate(json!({"model": "m", "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": null},
            {"role": "user", "content": "c"}
        ]}))
        .unwrap();
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}
            ]}])
        );
        let pdf = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
        ]}]}))
        .unwrap();
        assert_eq!(pdf["messages"][0]["content"][0]["type"], "document");
        let err = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-1"}}
            ]}]}),
        )
        .unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported(_)));
    }
}
