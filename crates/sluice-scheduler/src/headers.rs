//! Reading quota signals out of response headers, leniently.
//!
//! Upstreams have been seen to send resets as epoch seconds, epoch milliseconds, delay
//! seconds, RFC 3339 dates and HTTP dates, sometimes as comma lists; a header this code
//! cannot read is ignored rather than trusted. The input is plain `(name, value)` pairs with
//! lowercase names so this crate needs no HTTP library, and the simulator can feed the very
//! same parser.

use std::time::Duration;

use crate::quota::{Bucket, QuotaObservation, UnifiedStatus};
use crate::time::Timestamp;

/// Longest `retry-after` we honour: a day. Longer values are clamped, not ignored.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest `retry-after` we honour.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Parse the Anthropic quota headers (unified and API-key) of one response.
pub fn parse_anthropic_headers<'a, I>(headers: I, now: Timestamp) -> QuotaObservation
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut obs = QuotaObservation::default();
    let mut buckets = BucketParts::default();
    for (name, value) in headers {
        let Some(rest) = name.strip_prefix("anthropic-ratelimit-") else {
            continue;
        };
        match rest {
            "unified-status" => obs.status = Some(UnifiedStatus::parse(value)),
            "unified-reset" => obs.status_reset = parse_reset(value, now),
            "unified-representative-claim" => {
                obs.representative_claim = Some(value.trim().to_owned())
            }
            "unified-5h-utilization" => obs.session_utilization = parse_fraction(value),
            "unified-5h-reset" => obs.session_reset = parse_reset(value, now),
            "unified-5h-status" => obs.session_status = Some(UnifiedStatus::parse(value)),
            "unified-7d-utilization" => obs.weekly_utilization = parse_fraction(value),
            "unified-7d-reset" => obs.weekly_reset = parse_reset(value, now),
            "unified-7d-status" => obs.weekly_status = Some(UnifiedStatus::parse(value)),
            other => buckets.note(other, value, now),
        }
    }
    obs.requests = buckets.requests.finish();
    obs.tokens = buckets.tokens.finish();
    obs.input_tokens = buckets.input_tokens.finish();
    obs.output_tokens = buckets.output_tokens.finish();
    obs
}

#[derive(Default)]
struct BucketParts {
    requests: PartialBucket,
    tokens: PartialBucket,
    input_tokens: PartialBucket,
    output_tokens: PartialBucket,
}

impl BucketParts {
    fn note(&mut self, rest: &str, value: &str, now: Timestamp) {
        let Some((kind, field)) = rest.rsplit_once('-') else {
            return;
        };
        let bucket = match kind {
            "requests" => &mut self.requests,
            "tokens" => &mut self.tokens,
            "input-tokens" => &mut self.input_tokens,
            "output-tokens" => &mut self.output_tokens,
            _ => return,
        };
        match field {
            "limit" => bucket.limit = parse_first_u64(value),
            "remaining" => bucket.remaining = parse_first_u64(value),
            "reset" => bucket.reset = parse_reset(value, now),
            _ => {}
        }
    }
}

#[derive(Default)]
struct PartialBucket {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Timestamp>,
}

impl PartialBucket {
    fn finish(&self) -> Option<Bucket> {
        Some(Bucket {
            limit: self.limit?,
            remaining: self.remaining?,
            resets_at: self.reset,
        })
    }
}

fn first_item(value: &str) -> &str {
    value.split(',').next().unwrap_or("").trim()
}

fn parse_fraction(value: &str) -> Option<f64> {
    let n: f64 = first_item(value).parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    // Some upstreams report percentages; a window cannot be 5000 % used.
    Some(if n > 50.0 { n / 100.0 } else { n })
}

fn parse_first_u64(value: &str) -> Option<u64> {
    let item = first_item(value);
    item.parse::<u64>().ok().or_else(|| {
        item.parse::<f64>()
            .ok()
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
    })
}

/// Parse a reset instant: epoch seconds, epoch milliseconds, a delay in seconds, an RFC 3339
/// timestamp or an HTTP date. Comma lists use their first item.
pub fn parse_reset(value: &str, now: Timestamp) -> Option<Timestamp> {
    let item = first_item(value);
    if item.is_empty() {
        return None;
    }
    if let Ok(n) = item.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        return Some(if n > 10_000_000_000.0 {
            Timestamp::from_millis(n as i64)
        } else if n > 1_000_000_000.0 {
            Timestamp::from_millis((n * 1000.0) as i64)
        } else {
            now + Duration::from_secs_f64(n)
        });
    }
    parse_date(value.trim()).or_else(|| parse_date(item))
}

fn parse_date(text: &str) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(Timestamp::from_millis(ts.as_millisecond()));
    }
    httpdate::parse_http_date(text)
        .ok()
        .map(Timestamp::from_system_time)
}

/// Parse `retry-after` (delay seconds, possibly fractional, or an HTTP date) and clamp it to
/// `[MIN_RETRY_AFTER, MAX_RETRY_AFTER]`. `None` when the value is unreadable.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let item = value.trim();
    let delay = if let Ok(secs) = item.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        Duration::from_secs_f64(secs.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        now.until(parse_date(item)?)
    };
    Some(clamp_retry_after(delay))
}

/// Clamp a retry delay into the range sluice honours.
pub fn clamp_retry_after(delay: Duration) -> Duration {
    delay.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_767_000_000);

    fn parse(pairs: &[(&str, &str)]) -> QuotaObservation {
        parse_anthropic_headers(pairs.iter().copied(), NOW)
    }

    #[test]
    fn unified_headers_are_read() {
        let obs = parse(&[
            ("anthropic-ratelimit-unified-status", "allowed_warning"),
            ("anthropic-ratelimit-unified-reset", "1767003600"),
            (
                "anthropic-ratelimit-unified-representative-claim",
                "five_hour",
            ),
            ("anthropic-ratelimit-unified-5h-utilization", "0.56"),
            ("anthropic-ratelimit-unified-5h-reset", "1767003600"),
            ("anthropic-ratelimit-unified-5h-status", "allowed"),
            ("anthropic-ratelimit-unified-7d-utilization", "1.07"),
            ("anthropic-ratelimit-unified-7d-reset", "1767500000"),
            ("anthropic-ratelimit-unified-7d-status", "rejected"),
            ("content-type", "text/event-stream"),
        ]);
        assert_eq!(obs.status, Some(UnifiedStatus::AllowedWarning));
        assert_eq!(obs.status_reset, Some(Timestamp::from_secs(1_767_003_600)));
        assert_eq!(obs.representative_claim.as_deref(), Some("five_hour"));
        assert_eq!(obs.session_utilization, Some(0.56));
        assert_eq!(obs.weekly_utilization, Some(1.07), "overage is kept raw");
        assert_eq!(obs.weekly_status, Some(UnifiedStatus::Rejected));
        assert_eq!(obs.weekly_reset, Some(Timestamp::from_secs(1_767_500_000)));
    }

    #[test]
    fn api_key_buckets_need_limit_and_remaining() {
        let obs = parse(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:30Z"),
            ("anthropic-ratelimit-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "100"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
        ]);
        let requests = obs.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (50, 49));
        assert_eq!(
            requests.resets_at,
            Some(Timestamp::from_secs(1_767_225_630))
        );
        assert!(
            obs.tokens.is_none(),
            "limit without remaining is not a bucket"
        );
        assert!(obs.input_tokens.is_none());
        assert_eq!(obs.output_tokens.unwrap().used(), 1.0);
    }

    #[test]
    fn garbage_is_ignored_not_trusted() {
        let obs = parse(&[
            ("anthropic-ratelimit-unified-5h-utilization", "lots"),
            ("anthropic-ratelimit-unified-5h-reset", "soon"),
            ("anthropic-ratelimit-unified-7d-utilization", "-0.5"),
            ("anthropic-ratelimit-unified-7d-utilization", "NaN"),
            ("anthropic-ratelimit-requests-limit", "x"),
            ("anthropic-ratelimit-requests-remaining", "3"),
        ]);
        assert_eq!(obs, QuotaObservation::default());
    }

    #[test]
    fn resets_in_every_seen_shape() {
        let at = Timestamp::from_secs(1_767_003_600);
        assert_eq!(parse_reset("1767003600", NOW), Some(at));
        assert_eq!(parse_reset("1767003600000", NOW), Some(at));
        assert_eq!(parse_reset("1767003600.0, 1767009999", NOW), Some(at));
        assert_eq!(
            parse_reset("3600", NOW),
            Some(NOW + Duration::from_secs(3600))
        );
        assert_eq!(parse_reset("2025-12-29T10:20:00Z", NOW), Some(at));
        assert_eq!(parse_reset("2025-12-29T11:20:00+01:00", NOW), Some(at));
        assert_eq!(parse_reset("Mon, 29 Dec 2025 10:20:00 GMT", NOW), Some(at));
        assert_eq!(parse_reset("", NOW), None);
        assert_eq!(parse_reset("tomorrow", NOW), None);
        assert_eq!(parse_reset("-5", NOW), None);
    }

    #[test]
    fn percentages_are_read_as_fractions() {
        let obs = parse(&[("anthropic-ratelimit-unified-5h-utilization", "87")]);
        assert_eq!(obs.session_utilization, Some(0.87));
    }

    #[test]
    fn retry_after_is_clamped_and_lenient() {
        assert_eq!(parse_retry_after("7", NOW), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 2.5 ", NOW),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_retry_after("0", NOW), Some(MIN_RETRY_AFTER));
        assert_eq!(parse_retry_after("-3", NOW), Some(MIN_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999", NOW), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Mon, 29 Dec 2025 10:20:00 GMT", NOW),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(parse_retry_after("later", NOW), None);
        assert_eq!(parse_retry_after("inf", NOW), None);
    }

    #[test]
    fn edge_cases_are_read_leniently() {
        let obs = parse(&[
            ("anthropic-ratelimit-unified-status", "  REJECTED "),
            ("anthropic-ratelimit-unified-5h-status", "something_new"),
            (
                "anthropic-ratelimit-unified-representative-claim",
                " seven_day ",
            ),
            ("anthropic-ratelimit-unified-5h-utilization", " 0.25 , 0.9"),
            ("anthropic-ratelimit-unified-7d-utilization", "0"),
            // A reset already in the past is kept as such (and forgotten on first use).
            ("anthropic-ratelimit-unified-7d-reset", "1766990000"),
            ("anthropic-ratelimit-unified-reset", "0"),
            ("anthropic-ratelimit-unified-5h-reset", ""),
        ]);
        assert_eq!(obs.status, Some(UnifiedStatus::Rejected));
        assert_eq!(obs.session_status, Some(UnifiedStatus::Unknown));
        assert_eq!(obs.representative_claim.as_deref(), Some("seven_day"));
        assert_eq!(obs.session_utilization, Some(0.25));
        assert_eq!(obs.weekly_utilization, Some(0.0));
        assert_eq!(obs.weekly_reset, Some(Timestamp::from_secs(1_766_990_000)));
        assert_eq!(obs.status_reset, Some(NOW), "a zero delay is now");
        assert_eq!(obs.session_reset, None, "an empty value is no value");

        let mut quota = crate::quota::QuotaState::default();
        quota.apply(&obs, NOW);
        quota.clear_expired(NOW);
        assert!(quota.weekly.is_none(), "the stale weekly window is dropped");

        // When a header repeats, the later value wins.
        let obs = parse(&[
            ("anthropic-ratelimit-unified-5h-utilization", "0.1"),
            ("anthropic-ratelimit-unified-5h-utilization", "0.2"),
        ]);
        assert_eq!(obs.session_utilization, Some(0.2));
        // Names outside the family, or a family this version does not know, are ignored.
        let obs = parse(&[
            ("anthropic-ratelimit-widgets-limit", "5"),
            ("anthropic-ratelimit-widgets-remaining", "1"),
            ("x-ratelimit-remaining", "0"),
        ]);
        assert!(obs.is_empty());
    }

    #[test]
    fn retry_after_edge_cases() {
        assert_eq!(parse_retry_after("0.2", NOW), Some(MIN_RETRY_AFTER));
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("NaN", NOW), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW),
            Some(MIN_RETRY_AFTER),
            "a date in the past waits the minimum"
        );
        assert_eq!(
            parse_retry_after("1e9", NOW),
            Some(MAX_RETRY_AFTER),
            "absurd delays are clamped, not ignored"
        );
    }
}
