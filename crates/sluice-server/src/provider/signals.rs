//! Reading the quota and retry signals the non-Anthropic providers send, leniently.
//!
//! OpenAI writes delays the Go way (`6m0s`, `20ms`), Google writes protobuf durations
//! (`37s`, `0.5s`) and sometimes composite ones (`2h13m45.1s`), Codex sends percentages,
//! and Google's daily quotas reset at midnight Pacific time. A value this code cannot read
//! is ignored rather than trusted, like the Anthropic header parser in the scheduler.

use std::time::Duration;

use http::HeaderMap;
use sluice_scheduler::Timestamp;
use sluice_scheduler::headers::parse_retry_after;

/// The delay a `retry-after` header asks for (seconds or an HTTP date), read leniently and
/// clamped like every other retry signal; `None` when absent or unreadable.
pub(crate) fn retry_after_header(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

/// Parse a duration written as one or more `<number><unit>` terms (`1h2m3.5s`, `900ms`,
/// `37s`, `0.5s`). A bare number is seconds. `None` for anything else.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    seconds(total)
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e10)))
}

/// A percentage (`"12.5"` = 12.5 %) as a fraction, unclamped (overage shows above 1).
pub(crate) fn percent_fraction(text: &str) -> Option<f64> {
    let n: f64 = text.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n / 100.0)
}

/// Epoch seconds (or milliseconds, when the number is that large) as a timestamp.
pub(crate) fn epoch(value: f64) -> Option<Timestamp> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    Some(if value > 10_000_000_000.0 {
        Timestamp::from_millis(value as i64)
    } else {
        Timestamp::from_millis((value * 1000.0) as i64)
    })
}

/// The first midnight in America/Los_Angeles strictly after `now`: when Google's "per day"
/// quotas reset. US daylight saving time (since 2007) runs from the second Sunday of March,
/// 02:00 PST, to the first Sunday of November, 02:00 PDT; computed here so sluice needs no
/// time-zone database.
pub fn next_pacific_midnight(now: Timestamp) -> Timestamp {
    let Ok(instant) = jiff::Timestamp::from_millisecond(now.as_millis()) else {
        return now + Duration::from_secs(24 * 3600);
    };
    let offset = pacific_offset(instant);
    let local = offset.to_datetime(instant);
    let Ok(tomorrow) = local.date().tomorrow() else {
        return now + Duration::from_secs(24 * 3600);
    };
    let midnight = tomorrow.to_datetime(jiff::civil::Time::midnight());
    // Midnight is never inside a transition (those happen at 02:00), but it may sit on the
    // other side of one from `now`: take the offset in force at the candidate instant.
    let candidate = offset.to_timestamp(midnight).unwrap_or(instant);
    let offset = pacific_offset(candidate);
    match offset.to_timestamp(midnight) {
        Ok(at) => Timestamp::from_millis(at.as_millisecond()),
        Err(_) => now + Duration::from_secs(24 * 3600),
    }
}

fn pacific_offset(instant: jiff::Timestamp) -> jiff::tz::Offset {
    let year = jiff::tz::Offset::UTC.to_datetime(instant).year();
    let starts = nth_sunday(year, 3, 2).and_then(|day| utc_at(day, 10)); // 02:00 PST
    let ends = nth_sunday(year, 11, 1).and_then(|day| utc_at(day, 9)); // 02:00 PDT
    match (starts, ends) {
        (Some(starts), Some(ends)) if starts <= instant && instant < ends => {
            jiff::tz::Offset::constant(-7)
        }
        _ => jiff::tz::Offset::constant(-8),
    }
}

fn nth_sunday(year: i16, month: i8, n: i8) -> Option<jiff::civil::Date> {
    let first = jiff::civil::Date::new(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().to_sunday_zero_offset()) % 7;
    jiff::civil::Date::new(year, month, 1 + to_sunday + 7 * (n - 1)).ok()
}

fn utc_at(day: jiff::civil::Date, hour: i8) -> Option<jiff::Timestamp> {
    let time = jiff::civil::Time::new(hour, 0, 0, 0).ok()?;
    jiff::tz::Offset::UTC
        .to_timestamp(day.to_datetime(time))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::from_millis(text.parse::<jiff::Timestamp>().unwrap().as_millisecond())
    }

    #[test]
    fn durations_in_every_seen_notation() {
        let d = |s: &str| parse_duration(s);
        assert_eq!(d("37s"), Some(Duration::from_secs(37)));
        assert_eq!(d("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(d("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(d("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(d("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(d("12"), Some(Duration::from_secs(12)));
        assert_eq!(d(" 2h "), Some(Duration::from_secs(7200)));
        for bad in ["", "soon", "5 minutes", "-3s", "3x", "s", "1h-2m", "NaN"] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percentages_and_epochs() {
        assert_eq!(percent_fraction("12.5"), Some(0.125));
        assert_eq!(percent_fraction("104"), Some(1.04));
        assert_eq!(percent_fraction("-1"), None);
        assert_eq!(
            epoch(1_767_000_000.0),
            Some(Timestamp::from_secs(1_767_000_000))
        );
        assert_eq!(
            epoch(1_767_000_000_123.0),
            Some(Timestamp::from_millis(1_767_000_000_123))
        );
        assert_eq!(epoch(0.0), None);
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        // Winter: PST, UTC-8.
        assert_eq!(
            next_pacific_midnight(at("2026-01-15T20:00:00Z")),
            at("2026-01-16T08:00:00Z")
        );
        // Just before local midnight in winter: the very next one.
        assert_eq!(
            next_pacific_midnight(at("2026-01-16T07:59:00Z")),
            at("2026-01-16T08:00:00Z")
        );
        // Summer: PDT, UTC-7.
        assert_eq!(
            next_pacific_midnight(at("2026-07-04T12:00:00Z")),
            at("2026-07-05T07:00:00Z")
        );
        // The spring-forward day (2026-03-08): the following midnight is already PDT.
        assert_eq!(
            next_pacific_midnight(at("2026-03-08T09:00:00Z")),
            at("2026-03-09T07:00:00Z")
        );
        // The fall-back day (2026-11-01): the following midnight is PST again.
        assert_eq!(
            next_pacific_midnight(at("2026-11-01T08:00:00Z")),
            at("2026-11-02T08:00:00Z")
        );
        // Exactly at midnight: the next day's.
        assert_eq!(
            next_pacific_midnight(at("2026-01-16T08:00:00Z")),
            at("2026-01-17T08:00:00Z")
        );
    }
}
