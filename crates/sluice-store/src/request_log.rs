//! The request log's records and queries: one row per proxied request, and the aggregates
//! `sluice usage` and the dashboard's charts read back. Plain data, like [`crate::model`]:
//! every backend speaks the same language.
//!
//! A row holds no secret by construction: the client is an identifier derived from its key
//! (never the key), the conversation is the scheduler's hash of its id, and there are no
//! headers or bodies.

use serde::Serialize;

use crate::model::StoreId;

/// One proxied request. Serialized as the dashboard API shows it: without the store's account
/// id, and with the conversation hash as 16 hex digits (a 64-bit number does not survive
/// JavaScript).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestLogRow {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub provider: String,
    /// The account's store row, when it has one: usage follows it across renames.
    #[serde(skip)]
    pub account_id: Option<StoreId>,
    /// The account that served (or last failed) it, as it was named then.
    pub account: Option<String>,
    /// Which client key was presented (an identifier derived from it), when keys are in use.
    pub client: Option<String>,
    /// The conversation's hashed key.
    #[serde(serialize_with = "conversation_as_hex")]
    pub conversation: Option<u64>,
    pub model: Option<String>,
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The status the client got (a held stream that failed shows 200 and an error).
    pub status: u16,
    /// Accounts tried.
    pub attempts: u32,
    /// Why each earlier attempt moved on (`rate_limited`, `overloaded`, …).
    pub failovers: Vec<String>,
    pub latency_ms: f64,
    /// Time until the first byte of the response body reached the client.
    pub ttfb_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cache_read_tokens: u64,
    /// A bounded error class (`rate_limited`, `client_error`, `client_gone`, …) when the
    /// request did not end well.
    pub error: Option<String>,
}

fn conversation_as_hex<S: serde::Serializer>(
    conversation: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match conversation {
        Some(hash) => serializer.serialize_str(&format!("{hash:016x}")),
        None => serializer.serialize_none(),
    }
}

/// What usage is grouped by (besides the model, which every row keeps for pricing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageKey {
    /// The whole pool.
    Total,
    Account,
    Provider,
    Model,
    Client,
}

/// Which requests to sum up, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    /// Requests that arrived at or after this instant (ms since the epoch).
    pub since_ms: i64,
    /// …and before this one, if given.
    pub until_ms: Option<i64>,
    pub by: UsageKey,
    /// Also group by time, in buckets this long (aligned to the epoch, so UTC days for a
    /// day).
    pub bucket_ms: Option<i64>,
}

/// The sums over one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageRow {
    /// The bucket's start, when grouped by time.
    pub bucket_ms: Option<i64>,
    /// The group's key (account, provider, model or client); `None` for the whole pool, or
    /// for requests that had none (no account reached, no model named, no client key).
    pub key: Option<String>,
    /// The model within the group (usage is always split by model, to price it).
    pub model: Option<String>,
    pub requests: u64,
    /// Requests that ended with an error.
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cache_read_tokens: u64,
    /// Sum of latencies, for averages.
    pub latency_ms_sum: f64,
}

impl UsageRow {
    /// Add another row's sums to this one.
    pub fn add(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.latency_ms_sum += other.latency_ms_sum;
    }

    /// Every token, of whatever kind.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
    }
}
