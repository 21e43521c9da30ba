//! Human-friendly quantities in the config: durations (`"10s"`, `"5m"`) and
//! byte sizes (`"32MiB"`), parsed for validation and formatted for rendering.

use std::time::Duration;

const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

/// Largest unit first, binary before decimal, so rendering picks the
/// shortest exact spelling and prefers the units people write for limits.
const FORMAT_UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
];

/// Parses a humantime duration such as `"10s"` or `"1h 30m"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("invalid duration {text:?}: {error} (write e.g. \"500ms\", \"10s\", \"5m\")")
    })
}

/// Formats a duration so that [`parse_duration`] reads it back unchanged.
pub(crate) fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses `"32MiB"`, `"1 GB"`, `"4096"` (bytes). Units are matched
/// case-insensitively; a size that overflows `u64` is rejected.
pub(crate) fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let unit = unit.trim();
    let accepted = || {
        BYTE_UNITS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if digits.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number with an optional unit ({})",
            accepted()
        ));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        BYTE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, multiplier)| *multiplier)
            .ok_or_else(|| {
                format!(
                    "invalid size {text:?}: unknown unit {unit:?} (accepted: {})",
                    accepted()
                )
            })?
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(multiplier))
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Formats a byte count as the largest exact unit (`"32MiB"`), else bytes (`"1000001B"`).
pub(crate) fn format_byte_size(bytes: u64) -> String {
    FORMAT_UNITS
        .iter()
        .find(|(_, multiplier)| bytes != 0 && bytes.is_multiple_of(*multiplier))
        .map_or_else(
            || format!("{bytes}B"),
            |(name, multiplier)| format!("{}{name}", bytes / multiplier),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_byte_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_byte_size("32 MiB"), Ok(32 << 20));
        assert_eq!(parse_byte_size("1kb"), Ok(1_000));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_byte_size("7B"), Ok(7));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
    }

    #[test]
    fn bad_byte_sizes_are_rejected() {
        assert!(parse_byte_size("").is_err());
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("1.5MiB").is_err());
        assert!(parse_byte_size("10TB").is_err());
        assert!(parse_byte_size("-1").is_err());
        assert!(parse_byte_size("99999999999999999999GiB").is_err());
        assert!(parse_byte_size("18446744073709551615KB").is_err());
    }

    #[test]
    fn byte_sizes_round_trip() {
        for bytes in [0, 1, 1000, 1024, 32 << 20, 5_000_000, 1_000_001, u64::MAX] {
            let text = format_byte_size(bytes);
            assert_eq!(parse_byte_size(&text), Ok(bytes), "{text}");
        }
        assert_eq!(format_byte_size(32 << 20), "32MiB");
        assert_eq!(format_byte_size(0), "0B");
    }

    #[test]
    fn durations_round_trip() {
        for text in ["10s", "5m", "90s", "1h 30m", "250ms"] {
            let duration = parse_duration(text).expect("valid");
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten seconds").is_err());
    }
}
