//! Usage read back from the request log and priced: what `sluice usage` prints and the
//! dashboard's usage table and charts show.
//!
//! The store sums tokens per group *and model*; each model's tokens are priced with the
//! price table, then the groups are folded. Tokens of a model without a price are counted
//! (and reported as unpriced) rather than guessed at.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sluice_config::PriceTable;
use sluice_store::{UsageKey, UsageQuery, UsageRow};

/// What usage is reported by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageBy {
    Account,
    Model,
    Provider,
    Client,
    /// UTC days.
    Day,
    Total,
}

impl UsageBy {
    pub const NAMES: &'static [&'static str] =
        &["account", "model", "provider", "client", "day", "total"];

    pub fn parse(text: &str) -> Option<UsageBy> {
        Some(match text {
            "account" => UsageBy::Account,
            "model" => UsageBy::Model,
            "provider" => UsageBy::Provider,
            "client" => UsageBy::Client,
            "day" => UsageBy::Day,
            "total" => UsageBy::Total,
            _ => return None,
        })
    }

    /// The store query for requests since `since_ms`.
    pub fn query(self, since_ms: i64) -> UsageQuery {
        let (by, bucket_ms) = match self {
            UsageBy::Account => (UsageKey::Account, None),
            UsageBy::Model => (UsageKey::Model, None),
            UsageBy::Provider => (UsageKey::Provider, None),
            UsageBy::Client => (UsageKey::Client, None),
            UsageBy::Day => (UsageKey::Total, Some(DAY_MS)),
            UsageBy::Total => (UsageKey::Total, None),
        };
        UsageQuery {
            since_ms,
            until_ms: None,
            by,
            bucket_ms,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// One group's usage, priced.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageSummary {
    /// The account, model, provider, client or day (`YYYY-MM-DD`, UTC); `None` for requests
    /// that had none (refused before any account, no model named, no client key).
    pub key: Option<String>,
    pub requests: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cache_read_tokens: u64,
    /// Estimated from the price table, in US dollars.
    pub cost_usd: f64,
    /// Requests whose model has no price (their tokens are not in `cost_usd`).
    pub unpriced_requests: u64,
    pub average_latency_ms: f64,
}

impl UsageSummary {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
    }

    fn add(&mut self, row: &UsageRow, prices: &PriceTable) {
        let latency_sum = self.average_latency_ms * self.requests as f64 + row.latency_ms_sum;
        self.requests += row.requests;
        self.failed += row.failed;
        self.input_tokens += row.input_tokens;
        self.output_tokens += row.output_tokens;
        self.cache_creation_tokens += row.cache_creation_tokens;
        self.cache_read_tokens += row.cache_read_tokens;
        self.average_latency_ms = if self.requests > 0 {
            latency_sum / self.requests as f64
        } else {
            0.0
        };
        match row.model.as_deref().and_then(|model| {
            prices.cost(
                model,
                row.input_tokens,
                row.output_tokens,
                row.cache_creation_tokens,
                row.cache_read_tokens,
            )
        }) {
            Some(cost) => self.cost_usd += cost,
            None if row.tokens() > 0 => self.unpriced_requests += row.requests,
            None => {}
        }
    }
}

/// Fold store rows (grouped by key or day, and model) into one priced summary per group,
/// largest cost first (days in date order).
pub fn summarize(rows: &[UsageRow], by: UsageBy, prices: &PriceTable) -> Vec<UsageSummary> {
    let mut groups: BTreeMap<Option<String>, UsageSummary> = BTreeMap::new();
    for row in rows {
        let key = match by {
            UsageBy::Day => row.bucket_ms.map(utc_date),
            UsageBy::Total => Some("total".to_owned()),
            _ => row.key.clone(),
        };
        let group = groups.entry(key.clone()).or_insert_with(|| UsageSummary {
            key,
            ..UsageSummary::default()
        });
        group.add(row, prices);
    }
    let mut summaries: Vec<UsageSummary> = groups.into_values().collect();
    if by != UsageBy::Day {
        summaries.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then(b.tokens().cmp(&a.tokens()))
                .then(b.requests.cmp(&a.requests))
        });
    }
    summaries
}

/// The sum of several summaries (a report's total line).
pub fn total(summaries: &[UsageSummary]) -> UsageSummary {
    let mut total = UsageSummary {
        key: Some("total".to_owned()),
        ..UsageSummary::default()
    };
    let mut latency_sum = 0.0;
    for s in summaries {
        total.requests += s.requests;
        total.failed += s.failed;
        total.input_tokens += s.input_tokens;
        total.output_tokens += s.output_tokens;
        total.cache_creation_tokens += s.cache_creation_tokens;
        total.cache_read_tokens += s.cache_read_tokens;
        total.cost_usd += s.cost_usd;
        total.unpriced_requests += s.unpriced_requests;
        latency_sum += s.average_latency_ms * s.requests as f64;
    }
    if total.requests > 0 {
        total.average_latency_ms = latency_sum / total.requests as f64;
    }
    total
}

/// `YYYY-MM-DD` of a UTC day starting at `ms`.
pub fn utc_date(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// Parse a look-back such as `24h`, `7d` or `90m`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    humantime_like(text).ok_or_else(|| {
        format!("invalid duration {text:?}: write e.g. \"90m\", \"24h\", \"7d\" or \"2w\"")
    })
}

fn humantime_like(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, model: &str, requests: u64, input: u64, output: u64) -> UsageRow {
        UsageRow {
            key: Some(key.to_owned()),
            model: Some(model.to_owned()),
            requests,
            input_tokens: input,
            output_tokens: output,
            latency_ms_sum: 100.0 * requests as f64,
            ..UsageRow::default()
        }
    }

    #[test]
    fn groups_are_priced_per_model_then_folded() {
        let prices = PriceTable::default();
        let rows = [
            row("a", "claude-sonnet-4-5", 2, 1_000_000, 0),
            row("a", "claude-opus-4-1", 1, 0, 1_000_000),
            row("b", "local-llama", 4, 500, 500),
        ];
        let summaries = summarize(&rows, UsageBy::Account, &prices);
        assert_eq!(summaries[0].key.as_deref(), Some("a"));
        assert!((summaries[0].cost_usd - 78.0).abs() < 1e-9);
        assert_eq!(summaries[0].requests, 3);
        assert_eq!(summaries[1].unpriced_requests, 4);
        assert_eq!(summaries[1].cost_usd, 0.0);
        let total = total(&summaries);
        assert_eq!(total.requests, 7);
        assert!((total.average_latency_ms - 100.0).abs() < 1e-9);
    }

    #[test]
    fn days_are_utc_dates_in_order() {
        let prices = PriceTable::default();
        let mut late = row("-", "claude-sonnet-4", 1, 1, 1);
        late.bucket_ms = Some(1_767_225_600_000 + DAY_MS);
        let mut early = row("-", "claude-sonnet-4", 1, 1, 1);
        early.bucket_ms = Some(1_767_225_600_000);
        let days = summarize(&[early, late], UsageBy::Day, &prices);
        let keys: Vec<_> = days.iter().map(|d| d.key.clone().unwrap()).collect();
        assert_eq!(keys, ["2026-01-01", "2026-01-02"]);
    }

    #[test]
    fn look_backs() {
        assert_eq!(parse_since("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_since("90m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_since("d").is_err());
        assert!(parse_since("3 fortnights").is_err());
    }
}
