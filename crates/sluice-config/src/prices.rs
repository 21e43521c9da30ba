//! What tokens cost, for the usage report's estimates: a built-in table of list prices per
//! model family, which the config file can override or extend (`[prices."model-prefix"]`).
//!
//! A model name is matched to the longest family prefix it starts with
//! (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`), after dropping a vendor path
//! (`anthropic/claude-…`). The families double as a bounded set of model labels for metrics:
//! a name that matches none is `other`, so a client cannot create unbounded series.
//!
//! Prices are estimates: public list prices in US dollars per million tokens, without batch
//! or long-context rates. Subscriptions are not billed per token; for them the figure says
//! what the same traffic would have cost on the API.

use std::collections::BTreeMap;

use serde::Serialize;

/// The label of a model that matches no family.
pub const OTHER_FAMILY: &str = "other";

/// US dollars per million tokens of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Writing the prompt cache (Anthropic's 5-minute cache write).
    pub cache_write: f64,
    /// Reading the prompt cache (OpenAI's and Gemini's cached input).
    pub cache_read: f64,
}

impl Price {
    const fn new(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Price {
        Price {
            input,
            output,
            cache_write,
            cache_read,
        }
    }

    /// The estimated cost in US dollars of these token counts.
    pub fn cost(&self, input: u64, output: u64, cache_write: u64, cache_read: u64) -> f64 {
        (input as f64 * self.input
            + output as f64 * self.output
            + cache_write as f64 * self.cache_write
            + cache_read as f64 * self.cache_read)
            / 1_000_000.0
    }
}

/// A price given in the config file: any field left out keeps the built-in family's value;
/// a new family needs `input` and `output` (cache prices then default to 1.25× and 0.1× the
/// input price, Anthropic's ratios).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PriceOverride {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_write: Option<f64>,
    pub cache_read: Option<f64>,
}

/// Built-in list prices (USD per million tokens), by model-name prefix.
const BUILTIN: &[(&str, Price)] = &[
    // Anthropic: input, output, 5-minute cache write, cache read.
    ("claude-opus-4-5", Price::new(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4-6", Price::new(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4", Price::new(15.0, 75.0, 18.75, 1.50)),
    ("claude-sonnet-4", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-haiku-4", Price::new(1.0, 5.0, 1.25, 0.10)),
    ("claude-3-7-sonnet", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-3-5-sonnet", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-3-5-haiku", Price::new(0.80, 4.0, 1.0, 0.08)),
    ("claude-3-opus", Price::new(15.0, 75.0, 18.75, 1.50)),
    ("claude-3-haiku", Price::new(0.25, 1.25, 0.30, 0.03)),
    // OpenAI and Codex: no cache-write charge.
    ("gpt-5", Price::new(1.25, 10.0, 0.0, 0.125)),
    ("gpt-5-mini", Price::new(0.25, 2.0, 0.0, 0.025)),
    ("gpt-5-nano", Price::new(0.05, 0.40, 0.0, 0.005)),
    ("gpt-4.1", Price::new(2.0, 8.0, 0.0, 0.50)),
    ("gpt-4.1-mini", Price::new(0.40, 1.60, 0.0, 0.10)),
    ("gpt-4o", Price::new(2.50, 10.0, 0.0, 1.25)),
    ("gpt-4o-mini", Price::new(0.15, 0.60, 0.0, 0.075)),
    ("o3", Price::new(2.0, 8.0, 0.0, 0.50)),
    ("o4-mini", Price::new(1.10, 4.40, 0.0, 0.275)),
    // Gemini (prompts up to 200k tokens).
    ("gemini-2.5-pro", Price::new(1.25, 10.0, 0.0, 0.125)),
    ("gemini-2.5-flash", Price::new(0.30, 2.50, 0.0, 0.03)),
    ("gemini-2.5-flash-lite", Price::new(0.10, 0.40, 0.0, 0.01)),
    ("gemini-3-pro", Price::new(2.0, 12.0, 0.0, 0.20)),
];

/// A family the built-in table does not know, given without its input or output price.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{prefix:?} is not a built-in model family, so it needs both `input` and `output` prices")]
pub struct IncompletePrice {
    /// The prefix as the config file wrote it.
    pub prefix: String,
}

/// Every family's price: the built-in table with the config's overrides applied.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    /// Longest prefix first, so the first match is the most specific.
    families: Vec<(String, Price)>,
    /// What the config file said, kept to print the effective config back.
    overrides: BTreeMap<String, PriceOverride>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::with_overrides(BTreeMap::new()).expect("the built-in table is complete")
    }
}

impl PriceTable {
    /// The built-in table with `overrides` applied. Fails when a new family lacks its input
    /// or output price.
    pub fn with_overrides(
        overrides: BTreeMap<String, PriceOverride>,
    ) -> Result<Self, IncompletePrice> {
        let mut families: BTreeMap<String, Price> = BUILTIN
            .iter()
            .map(|(prefix, price)| ((*prefix).to_owned(), *price))
            .collect();
        for (given, change) in &overrides {
            let prefix = normalize(given);
            let price = match families.get(&prefix) {
                Some(known) => Price {
                    input: change.input.unwrap_or(known.input),
                    output: change.output.unwrap_or(known.output),
                    cache_write: change.cache_write.unwrap_or(known.cache_write),
                    cache_read: change.cache_read.unwrap_or(known.cache_read),
                },
                None => {
                    let (Some(input), Some(output)) = (change.input, change.output) else {
                        return Err(IncompletePrice {
                            prefix: given.clone(),
                        });
                    };
                    Price {
                        input,
                        output,
                        cache_write: change.cache_write.unwrap_or(input * 1.25),
                        cache_read: change.cache_read.unwrap_or(input * 0.1),
                    }
                }
            };
            families.insert(prefix, price);
        }
        let mut families: Vec<(String, Price)> = families.into_iter().collect();
        families.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(PriceTable {
            families,
            overrides,
        })
    }

    /// The family `model` belongs to and its price, if any.
    pub fn lookup(&self, model: &str) -> Option<(&str, &Price)> {
        let name = model_name(model);
        self.families
            .iter()
            .find(|(prefix, _)| starts_with_ignore_case(name, prefix))
            .map(|(prefix, price)| (prefix.as_str(), price))
    }

    /// The bounded label for `model`: its family, or [`OTHER_FAMILY`].
    pub fn family(&self, model: &str) -> &str {
        self.lookup(model)
            .map_or(OTHER_FAMILY, |(family, _)| family)
    }

    /// Estimated cost of tokens spent on `model`; `None` when its price is unknown.
    pub fn cost(
        &self,
        model: &str,
        input: u64,
        output: u64,
        cache_write: u64,
        cache_read: u64,
    ) -> Option<f64> {
        self.lookup(model)
            .map(|(_, price)| price.cost(input, output, cache_write, cache_read))
    }

    /// Every family and its price, most specific first.
    pub fn families(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.families
            .iter()
            .map(|(prefix, price)| (prefix.as_str(), price))
    }

    /// The overrides the config file gave.
    pub fn overrides(&self) -> &BTreeMap<String, PriceOverride> {
        &self.overrides
    }
}

fn normalize(prefix: &str) -> String {
    prefix.trim().to_ascii_lowercase()
}

/// The model's own name: `anthropic/claude-x` and `models/gemini-x` become `claude-x` and
/// `gemini-x`.
fn model_name(model: &str) -> &str {
    let model = model.trim();
    model.rsplit_once('/').map_or(model, |(_, name)| name)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_family_wins() {
        let table = PriceTable::default();
        assert_eq!(
            table.family("claude-sonnet-4-5-20250929"),
            "claude-sonnet-4"
        );
        assert_eq!(table.family("claude-opus-4-5-20251101"), "claude-opus-4-5");
        assert_eq!(table.family("claude-opus-4-1-20250805"), "claude-opus-4");
        assert_eq!(table.family("gpt-5-mini-2025-08-07"), "gpt-5-mini");
        assert_eq!(table.family("gpt-5-codex"), "gpt-5");
        assert_eq!(
            table.family("models/gemini-2.5-flash-lite"),
            "gemini-2.5-flash-lite"
        );
        assert_eq!(table.family("Claude-Haiku-4-5"), "claude-haiku-4");
        assert_eq!(table.family("llama-3"), OTHER_FAMILY);
        assert_eq!(table.family(""), OTHER_FAMILY);
    }

    #[test]
    fn costs_are_per_million_tokens() {
        let table = PriceTable::default();
        let cost = table
            .cost("claude-sonnet-4-5", 1_000_000, 100_000, 200_000, 2_000_000)
            .unwrap();
        // 3 + 1.5 + 0.75 + 0.6
        assert!((cost - 5.85).abs() < 1e-9, "{cost}");
        assert_eq!(table.cost("mystery", 1, 1, 1, 1), None);
    }

    #[test]
    fn overrides_change_a_family_or_add_one() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "claude-sonnet-4".to_owned(),
            PriceOverride {
                input: Some(2.0),
                ..PriceOverride::default()
            },
        );
        overrides.insert(
            "GLM-4".to_owned(),
            PriceOverride {
                input: Some(0.6),
                output: Some(2.2),
                ..PriceOverride::default()
            },
        );
        let table = PriceTable::with_overrides(overrides).unwrap();
        let (_, sonnet) = table.lookup("claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.input, 2.0);
        assert_eq!(
            sonnet.output, 15.0,
            "fields left out keep the built-in price"
        );
        let (family, glm) = table.lookup("glm-4.6").unwrap();
        assert_eq!(family, "glm-4");
        assert!((glm.cache_write - 0.75).abs() < 1e-9);
        assert!((glm.cache_read - 0.06).abs() < 1e-9);

        let mut incomplete = BTreeMap::new();
        incomplete.insert(
            "kimi".to_owned(),
            PriceOverride {
                input: Some(1.0),
                ..PriceOverride::default()
            },
        );
        let error = PriceTable::with_overrides(incomplete).unwrap_err();
        assert_eq!(error.prefix, "kimi");
        assert!(error.to_string().contains("needs both"), "{error}");
    }
}
