//! A request's relative cost, from what the proxy can see before sending it.
//!
//! The weight approximates how much of an account a request occupies while in flight and how
//! much quota it is likely to spend: the prompt it carries (body size; about four bytes per
//! token), the output it may produce (`max_tokens`) and extended thinking (its budget). A
//! small chat message weighs 1; a Claude Code turn with a long context, a 32k output cap and
//! thinking weighs several. The proxy computes it from the request; the simulator from its
//! turns, with the same function.

/// Heaviest weight a single request can have.
pub const MAX_WEIGHT: u32 = 16;

/// Body bytes per extra unit of weight (about 50k tokens of prompt).
const BODY_BYTES_PER_UNIT: u64 = 200_000;
/// Output or thinking tokens per extra unit of weight.
const OUTPUT_TOKENS_PER_UNIT: u64 = 16_000;

pub fn request_weight(
    body_bytes: u64,
    max_tokens: Option<u64>,
    thinking_budget: Option<u64>,
) -> u32 {
    let units = 1
        + body_bytes / BODY_BYTES_PER_UNIT
        + max_tokens.unwrap_or(0) / OUTPUT_TOKENS_PER_UNIT
        + thinking_budget.unwrap_or(0) / OUTPUT_TOKENS_PER_UNIT;
    units.min(u64::from(MAX_WEIGHT)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_weigh_one_and_big_ones_more_but_bounded() {
        assert_eq!(request_weight(300, Some(64), None), 1);
        // A Claude Code turn: ~300 kB of context, 32k output cap, 16k thinking budget.
        assert_eq!(request_weight(300_000, Some(32_000), Some(16_000)), 5);
        assert_eq!(
            request_weight(u64::MAX / 2, Some(u64::MAX / 2), None),
            MAX_WEIGHT
        );
    }
}
