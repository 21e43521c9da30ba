//! What one routing decision costs: `acquire` then `release` on a pool of 100 accounts in
//! varied states, with thousands of conversations bound, for each strategy.
//!
//! ```sh
//! cargo bench -p sluice-scheduler --bench decision
//! ```
//!
//! Prints, per strategy, the median and mean time of one acquire + release over several
//! rounds. The clock advances 10 ms per request, so benches, resets, load windows and
//! session eviction all happen as they would in a busy pool.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice_scheduler::{
    AccountSpec, ConversationKey, CredentialKind, Decision, Outcome, Pool, PoolConfig,
    QuotaObservation, RequestInfo, Strategy, Timestamp, TokenTotals,
};

const ACCOUNTS: usize = 100;
const CONVERSATIONS: u64 = 20_000;
const REQUESTS_PER_ROUND: u64 = 20_000;
const ROUNDS: usize = 7;

/// A small deterministic generator, so every run measures the same pool.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn pool(strategy: Strategy, start: Timestamp) -> Pool {
    let mut pool = Pool::new(PoolConfig {
        strategy,
        max_in_flight_total: 10_000,
        ..PoolConfig::default()
    });
    let mut rng = Lcg(42);
    for i in 0..ACCOUNTS {
        let id = pool.upsert_account(AccountSpec {
            name: format!("account-{i}"),
            provider: "anthropic".into(),
            kind: CredentialKind::OAuth,
            priority: (i % 3 == 0) as i32,
            weight: [1, 5, 20][i % 3],
            enabled: i % 17 != 0,
        });
        // Two readings a minute apart, so burn rates are known too.
        for step in 0..2 {
            let at = start + Duration::from_secs(60 * step);
            let observation = QuotaObservation {
                session_utilization: Some(rng.unit() * 0.95 + 0.02 * step as f64),
                session_reset: Some(
                    start + Duration::from_secs((rng.unit() * 18_000.0) as u64 + 600),
                ),
                weekly_utilization: Some(rng.unit() * 0.97),
                weekly_reset: Some(
                    start + Duration::from_secs((rng.unit() * 600_000.0) as u64 + 3600),
                ),
                ..QuotaObservation::default()
            };
            pool.observe_quota(id, &observation, at);
        }
    }
    pool
}

fn main() {
    let start = Timestamp::from_secs(1_800_000_000);
    println!(
        "one decision (acquire + release), {ACCOUNTS} accounts, {CONVERSATIONS} conversations, {REQUESTS_PER_ROUND} requests x {ROUNDS} rounds"
    );
    println!("{:<16} {:>12} {:>12}", "strategy", "median ns", "mean ns");
    for &strategy in Strategy::ALL {
        let mut pool = pool(strategy, start);
        let mut now = start + Duration::from_secs(120);
        let mut per_round = Vec::new();
        let mut total = Duration::ZERO;
        let mut n = 0u64;
        for round in 0..=ROUNDS {
            let began = Instant::now();
            for i in 0..REQUESTS_PER_ROUND {
                now = now + Duration::from_millis(10);
                let request = RequestInfo {
                    conversation: Some(ConversationKey((i * 7919) % CONVERSATIONS)),
                    weight: 1 + (i % 4) as u32,
                    ticket: None,
                };
                match black_box(pool.acquire(&request, &[], now)) {
                    Decision::Route(lease) => pool.release(
                        lease,
                        Outcome::Success {
                            tokens: TokenTotals::default(),
                        },
                        now,
                    ),
                    Decision::Wait { ticket, .. } => pool.leave_queue(ticket),
                    Decision::Reject { .. } => {}
                }
            }
            let elapsed = began.elapsed();
            if round > 0 {
                // Round 0 warms up (and binds the conversations).
                per_round.push(elapsed.as_nanos() as f64 / REQUESTS_PER_ROUND as f64);
                total += elapsed;
                n += REQUESTS_PER_ROUND;
            }
        }
        per_round.sort_by(f64::total_cmp);
        let median = per_round[per_round.len() / 2];
        let mean = total.as_nanos() as f64 / n as f64;
        println!("{:<16} {:>12.0} {:>12.0}", strategy.as_str(), median, mean);
    }
}
