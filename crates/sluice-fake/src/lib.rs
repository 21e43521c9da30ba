//! Fake upstreams for sluice's tests, benchmarks and `sluice demo`, plus a load generator.
//!
//! [`FakeCodex`] (ChatGPT-account Codex and its OAuth token endpoint), [`FakeGemini`] (Code
//! Assist, the Gemini API and Google's token endpoint) and [`FakeOpenAI`] (Chat Completions
//! and Responses with API keys) are scripted per account with [`ApiReply`]s and record every
//! request; each is its own server, started on `127.0.0.1:0`. [`CodexTransport`] opens a
//! turn the way the Codex CLI does (WebSocket first, its fallback policy), to measure what a
//! proxy's answer to the WebSocket attempt costs; [`UpgradeIgnorer`] is a server that
//! ignores the upgrade.
//!
//! [`FakeAnthropic`] speaks the real wire format (SSE event order, error shapes and statuses, quota
//! headers), identifies accounts by credential, records every request, and answers each account from a
//! FIFO script of [`Reply`]s, a default reply, or a quota simulation ([`SimAccount`]).
//! [`LoadGen`] sends Claude-Code-like streaming traffic at a fixed rate. The same server fakes
//! the OAuth side of subscriptions (login page, token endpoint with rotating refresh tokens,
//! profile, usage), so sluice's account upkeep is tested against the real wire format too.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use sluice_fake::{FakeAnthropic, FakeConfig, Reply};
//!
//! let fake = FakeAnthropic::start(FakeConfig::default().account("sk-a"))?;
//! fake.script("sk-a", [Reply::status(429).retry_after(7), Reply::ok().events(5)]);
//! fake.set_default("sk-a", Reply::ok().event_delay(Duration::from_millis(20)));
//! // point the proxy at fake.base_url() ...
//! assert!(fake.requests_for("sk-a").is_empty());
//! # Ok(()) }
//! ```

mod accounts;
mod api_reply;
mod body;
mod clock;
mod codex;
mod codex_cli;
mod error_kind;
mod gemini;
mod handler;
mod listen;
mod loadgen;
mod message;
mod oauth;
mod openai;
mod quota;
mod record;
mod reply;
mod responses_wire;
mod server;
mod sim;
mod wire;

pub use api_reply::{ApiReply, ApiUsage, DEFAULT_RESET_SECS};
pub use codex::{
    CODEX_ACCESS_TOKEN_SECS, CodexQuota, CodexWindow, DEFAULT_CODEX_BASE_PATH, FakeCodex,
    FakeCodexConfig, id_token,
};
pub use codex_cli::{CodexTransport, TurnOpening, UpgradeIgnorer};
pub use gemini::{FakeGemini, FakeGeminiConfig, GOOGLE_ACCESS_TOKEN_SECS, GeminiQuotaBucket};
pub use openai::{FakeOpenAI, FakeOpenAIConfig, OpenAILimits};

pub use clock::{Clock, epoch_secs};
pub use error_kind::{
    DEFAULT_RETRY_AFTER_429, DEFAULT_RETRY_AFTER_529, ErrorKind, error_body, error_json,
};
pub use handler::OAUTH_BETA;
pub use loadgen::{LoadGen, LoadGenConfig, LoadGenHandle, LoadStats};
pub use message::{DEFAULT_DELTAS, DEFAULT_MESSAGE_ID, DEFAULT_MODEL, Usage};
pub use oauth::{
    AUTHORIZE_PATH, CALLBACK_PATH, DEFAULT_CLIENT_ID, IssuedTokens, OAuthCounts, OAuthUser,
    PROFILE_PATH, TOKEN_PATH, TokenFault, USAGE_PATH, UsageFault, pkce_challenge,
};
pub use quota::{
    ApiKeyLimits, QuotaHeaders, RateLimit, UnifiedQuota, WARNING_UTILIZATION, window_status,
};
pub use record::RecordedRequest;
pub use reply::Reply;
pub use server::{DEFAULT_MAX_RECORDED_REQUESTS, DEFAULT_MODELS, FakeAnthropic, FakeConfig};
pub use sim::{SimAccount, SimStyle, SimUsage};
