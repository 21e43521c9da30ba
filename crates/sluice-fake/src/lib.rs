//! A fake Anthropic upstream for sluice's tests, benchmarks and `sluice demo`, plus a load generator.
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
mod body;
mod clock;
mod error_kind;
mod handler;
mod loadgen;
mod message;
mod oauth;
mod quota;
mod record;
mod reply;
mod server;
mod sim;

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
