//! Shared helpers of the integration tests: an HTTP client, request builders and an SSE reader that
//! keeps the arrival time of every read.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub fn body(stream: bool) -> Value {
    json!({
        "model": "claude-test-1",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "say pong"}],
    })
}

/// `POST /v1/messages?beta=true` with `x-api-key: key`.
pub async fn messages(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    stream: bool,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/messages?beta=true"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&body(stream))
        .send()
        .await
        .unwrap()
}

/// Every read of the body with its arrival time, and how the body ended.
pub struct Received {
    pub chunks: Vec<(Instant, Bytes)>,
    pub error: Option<reqwest::Error>,
}

impl Received {
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }

    /// The `event:` names in order.
    pub fn event_names(&self) -> Vec<String> {
        event_names(&self.text())
    }

    /// The `data:` JSON of every event, in order.
    pub fn event_data(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

pub fn event_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect()
}

pub async fn read_all(mut response: reqwest::Response) -> Received {
    let mut chunks = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(c)) => chunks.push((Instant::now(), c)),
            Ok(None) => {
                return Received {
                    chunks,
                    error: None,
                };
            }
            Err(e) => {
                return Received {
                    chunks,
                    error: Some(e),
                };
            }
        }
    }
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}
