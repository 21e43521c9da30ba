//! The routing strategies a pool can run, by name.
//!
//! `adaptive` is sluice's own; `maxpool` reproduces the seed proxy's scoring so it can be
//! measured against; the rest are the simple strategies other pools offer. Every strategy
//! shares the same availability rules (an account that is disabled, benched, cooling down or
//! out of quota is never chosen), the same pool-wide breaker and the same FIFO admission;
//! they differ only in which available account they pick.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Quota-aware, cache-aware least-cost routing (sluice's default).
    #[default]
    Adaptive,
    /// One account until it is limited, then the next.
    Sticky,
    /// Each request to the next account in turn.
    RoundRobin,
    /// The account that has served the fewest requests.
    LeastRequests,
    /// The fewest requests per unit of account `weight`.
    Weighted,
    /// Always the first account in configuration order that can serve.
    FillFirst,
    /// The account whose weekly window resets first.
    DrainSoonest,
    /// A faithful reproduction of maxpool's adaptive least-loaded scoring.
    Maxpool,
}

impl Strategy {
    /// Every strategy, the default first.
    pub const ALL: &'static [Strategy] = &[
        Strategy::Adaptive,
        Strategy::Sticky,
        Strategy::RoundRobin,
        Strategy::LeastRequests,
        Strategy::Weighted,
        Strategy::FillFirst,
        Strategy::DrainSoonest,
        Strategy::Maxpool,
    ];

    /// The name used in configuration, the admin API and the simulator.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Adaptive => "adaptive",
            Strategy::Sticky => "sticky",
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastRequests => "least-requests",
            Strategy::Weighted => "weighted",
            Strategy::FillFirst => "fill-first",
            Strategy::DrainSoonest => "drain-soonest",
            Strategy::Maxpool => "maxpool",
        }
    }

    /// Whether the strategy keeps a conversation on the account it used before.
    pub fn keeps_conversations(self) -> bool {
        matches!(self, Strategy::Adaptive | Strategy::Maxpool)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStrategy(pub String);

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown strategy {:?}; accepted values: ", self.0)?;
        for (i, s) in Strategy::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}", s.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownStrategy {}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim();
        Strategy::ALL
            .iter()
            .copied()
            .find(|s| s.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownStrategy(name.to_owned()))
    }
}

impl Serialize for Strategy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(*s));
            assert_eq!(s.to_string().to_uppercase().parse::<Strategy>(), Ok(*s));
        }
        let error = "random".parse::<Strategy>().unwrap_err();
        assert!(error.to_string().contains("\"round-robin\""));
    }
}
