//! Subscription tiers and how quota is spent, as the simulator models them.
//!
//! Capacities are in *quota units*: tokens weighted the way they are priced (input 1, cache
//! write 1.25, cache read 0.1, output 5). The 5-hour capacities follow Anthropic's published
//! ratios (Pro : Max 5x : Max 20x = 1 : 5 : 20, "about 10–40 Claude Code prompts per 5 hours"
//! on Pro); the weekly ones follow the published weekly hours (Pro 40–80, Max 5x 140–280,
//! Max 20x 240–480 hours of Sonnet: 1 : 3.5 : 6), so a Max 20x account is bound by its week
//! long before its 5-hour windows.

use serde::{Deserialize, Serialize};

/// Quota units per token, by kind.
pub const INPUT_WEIGHT: f64 = 1.0;
pub const CACHE_WRITE_WEIGHT: f64 = 1.25;
pub const CACHE_READ_WEIGHT: f64 = 0.1;
pub const OUTPUT_WEIGHT: f64 = 5.0;

/// Pro's 5-hour capacity: about 25 Claude Code prompts of ~6 requests at ~13k units each.
const PRO_FIVE_HOUR: f64 = 2.0e6;
/// Pro's weekly capacity: fifteen full 5-hour windows.
const PRO_WEEKLY: f64 = 15.0 * PRO_FIVE_HOUR;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Pro,
    Max5,
    Max20,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Pro => "pro",
            Tier::Max5 => "max5",
            Tier::Max20 => "max20",
        }
    }

    /// The `weight` an operator would configure for the account.
    pub fn weight(self) -> u32 {
        match self {
            Tier::Pro => 1,
            Tier::Max5 => 5,
            Tier::Max20 => 20,
        }
    }

    pub fn five_hour_capacity(self) -> f64 {
        PRO_FIVE_HOUR * f64::from(self.weight())
    }

    pub fn weekly_capacity(self) -> f64 {
        PRO_WEEKLY
            * match self {
                Tier::Pro => 1.0,
                Tier::Max5 => 3.5,
                Tier::Max20 => 6.0,
            }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pro" => Ok(Tier::Pro),
            "max5" | "max-5x" | "max5x" => Ok(Tier::Max5),
            "max20" | "max-20x" | "max20x" => Ok(Tier::Max20),
            other => Err(format!(
                "unknown tier {other:?}; accepted values: \"pro\", \"max5\", \"max20\""
            )),
        }
    }
}
