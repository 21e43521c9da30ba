//! `LoadGen`: sends Claude-Code-like `/v1/messages` traffic at a fixed rate to a base URL (the proxy under
//! demo, or the fake itself), reads every response to its end and keeps [`LoadStats`].

mod conversation;
mod stats;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use stats::LoadStats;

use conversation::{Conversation, system_padding};
use stats::Outcome;

/// What traffic to send.
#[derive(Debug, Clone)]
pub struct LoadGenConfig {
    /// Requests per second (≤ 0 sends nothing).
    pub rps: f64,
    /// Number of conversations (session ids) the requests cycle through at random.
    pub conversations: usize,
    /// Ask for SSE streams (`stream: true`, as Claude Code always does).
    pub stream: bool,
    /// `model` of every request.
    pub model: String,
    /// `max_tokens` of every request.
    pub max_tokens: u64,
    /// Sent as `x-api-key` when set.
    pub api_key: Option<String>,
    /// Sent as `authorization: Bearer` when set.
    pub auth_token: Option<String>,
    /// Approximate size of the system-prompt filler (Claude Code bodies are 70–90 KB).
    pub system_prompt_bytes: usize,
    /// Most requests running at once; further ticks are skipped and counted.
    pub max_in_flight: usize,
    /// Whole-request timeout (headers and body).
    pub request_timeout: Duration,
    /// Request path and query.
    pub path: String,
    /// Seed of session ids and conversation choice.
    pub seed: u64,
}

impl Default for LoadGenConfig {
    fn default() -> Self {
        Self {
            rps: 2.0,
            conversations: 8,
            stream: true,
            model: crate::DEFAULT_MODEL.to_owned(),
            max_tokens: 4096,
            api_key: None,
            auth_token: None,
            system_prompt_bytes: 24 * 1024,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(120),
            path: "/v1/messages?beta=true".to_owned(),
            seed: 7,
        }
    }
}

/// Starts load generators.
#[derive(Debug, Clone, Copy)]
pub struct LoadGen;

/// A running load generator. Dropping it stops it.
#[derive(Debug)]
pub struct LoadGenHandle {
    stats: Arc<Mutex<LoadStats>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LoadGen {
    /// Start sending to `target_base_url` (e.g. `http://127.0.0.1:8080`) until `shutdown` is cancelled or
    /// the handle is stopped or dropped. Must be called from within a tokio runtime.
    pub fn spawn(
        target_base_url: &str,
        config: LoadGenConfig,
        shutdown: CancellationToken,
    ) -> io::Result<LoadGenHandle> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .build()
            .map_err(io::Error::other)?;
        let url = format!("{}{}", target_base_url.trim_end_matches('/'), config.path);
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let cancel = shutdown.child_token();
        let task = tokio::spawn(run(client, url, config, stats.clone(), cancel.clone()));
        Ok(LoadGenHandle {
            stats,
            cancel,
            task: Some(task),
        })
    }
}

impl LoadGenHandle {
    /// The counters so far.
    pub fn snapshot(&self) -> LoadStats {
        self.stats.lock().clone()
    }

    /// Stop sending and abort requests in flight.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Wait until the generator has stopped (after [`LoadGenHandle::stop`] or the shutdown token) and
    /// return the final counters.
    pub async fn join(mut self) -> LoadStats {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.snapshot()
    }

    /// Stop and wait.
    pub async fn stop_and_join(self) -> LoadStats {
        self.stop();
        self.join().await
    }
}

impl Drop for LoadGenHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(
    client: reqwest::Client,
    url: String,
    config: LoadGenConfig,
    stats: Arc<Mutex<LoadStats>>,
    cancel: CancellationToken,
) {
    if config.rps <= 0.0 || !config.rps.is_finite() {
        cancel.cancelled().await;
        return;
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut conversations: Vec<Conversation> = (0..config.conversations.max(1))
        .map(|_| Conversation::new(&mut rng))
        .collect();
    let padding = system_padding(config.system_prompt_bytes);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rps));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = ticker.tick() => {
                if in_flight.len() >= config.max_in_flight.max(1) {
                    stats.lock().skipped += 1;
                    continue;
                }
                let conversation = &mut conversations[rng.random_range(0..config.conversations.max(1))];
                let body = conversation.next_body(&config.model, config.max_tokens, config.stream, &padding);
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .header("anthropic-version", "2023-06-01")
                    .header("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
                    .header("user-agent", "claude-cli/2.1.0 (external, sluice-loadgen)")
                    .header("x-app", "cli")
                    .header("x-claude-code-session-id", conversation.session_id.as_str())
                    .body(body.to_string());
                if let Some(key) = &config.api_key {
                    request = request.header("x-api-key", key.as_str());
                }
                if let Some(token) = &config.auth_token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                {
                    let mut s = stats.lock();
                    s.sent += 1;
                    s.in_flight += 1;
                }
                let stats = stats.clone();
                let stream = config.stream;
                in_flight.spawn(async move {
                    let (outcome, status, bytes, latency) = send(request, stream).await;
                    stats.lock().record(outcome, status, bytes, latency);
                });
            }
        }
    }
    let aborted = in_flight.len() as u64;
    in_flight.shutdown().await;
    let mut s = stats.lock();
    s.in_flight = s.in_flight.saturating_sub(aborted);
    s.aborted += aborted;
}

/// Most body bytes kept for classifying a response (the rest is only counted).
const MAX_KEPT_BODY: usize = 1 << 20;

async fn send(
    request: reqwest::RequestBuilder,
    stream: bool,
) -> (Outcome, Option<u16>, u64, Option<Duration>) {
    let start = Instant::now();
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            debug!(error = %e, "loadgen: request failed");
            return (Outcome::Transport, None, 0, None);
        }
    };
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut bytes = 0u64;
    let mut broken = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes += chunk.len() as u64;
                if body.len() < MAX_KEPT_BODY {
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "loadgen: body broke off");
                broken = true;
                break;
            }
        }
    }
    let latency = Some(start.elapsed());
    let outcome = if status != 200 {
        Outcome::Status
    } else if broken {
        Outcome::Truncated
    } else if stream {
        classify_stream(&body)
    } else if serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|v| v["type"] == "message")
    {
        Outcome::Ok
    } else {
        Outcome::Truncated
    };
    (outcome, Some(status), bytes, latency)
}

/// A 200 stream is ok when it reaches `message_stop` without an `event: error`.
fn classify_stream(body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let mut stopped = false;
    for line in text.lines() {
        match line.strip_prefix("event:").map(str::trim) {
            Some("error") => return Outcome::StreamError,
            Some("message_stop") => stopped = true,
            _ => {}
        }
    }
    if stopped {
        Outcome::Ok
    } else {
        Outcome::Truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_classification() {
        assert_eq!(
            classify_stream(b"event: message_start\ndata: {}\n\nevent: message_stop\ndata: {}\n\n"),
            Outcome::Ok
        );
        assert_eq!(
            classify_stream(b"event: message_start\ndata: {}\n\n"),
            Outcome::Truncated
        );
        assert_eq!(
            classify_stream(b"event: error\ndata: {}\n\nevent: message_stop\n\n"),
            Outcome::StreamError
        );
    }
}
