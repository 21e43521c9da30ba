//! Named workloads, generated from a seed.
//!
//! The presets were written down from how Claude Code is used, before any strategy was tuned
//! against them, and are not changed to flatter one:
//!
//! * A Claude Code session starts with 15–25k tokens of system prompt, tools and project
//!   memory. Each user prompt starts an agentic loop of requests (most loops 1–12 requests, a
//!   few up to 30) separated by tool runs of a few seconds; a request adds the user's message
//!   or tool results (mostly a few hundred to a few thousand tokens, sometimes a whole file)
//!   and produces mostly short tool calls, sometimes long edits. Between prompts the developer
//!   reads and types for half a minute to several minutes, often longer than the 5-minute
//!   prompt-cache lifetime. A session ends after 30–120 minutes of work or when its context
//!   passes 150k tokens (Claude Code compacts; we start a new conversation).
//! * Developers work office hours (starting 08:30–09:30, a lunch break, ending 17:00–18:30)
//!   with occasional meetings, Monday to Friday.
//! * Tiers and quota as in [`crate::tier`]; each account starts the run part-way through its
//!   week, with its weekly reset at a different time.
//!
//! | preset | pool | workload |
//! |---|---|---|
//! | `team` | Pro, Max 5x, Max 20x | six developers, one conversation each at a time, for a week (Monday to Sunday) |
//! | `solo-bursty` | Max 5x, Pro | one developer for three days: one conversation most of the time, and two or three bursts a day of three to five parallel sessions |
//! | `nearly-exhausted` | three Max 5x, one of them at 93 % of its week | four developers for three days |

use std::time::Duration;

use crate::rng::Rng;
use crate::tier::Tier;
use crate::workload::{AccountPlan, Conversation, Scenario, Turn};

pub const PRESETS: &[&str] = &["team", "solo-bursty", "nearly-exhausted"];

/// The preset called `name`, generated from `seed`.
pub fn preset(name: &str, seed: u64) -> Option<Scenario> {
    let rng = Rng::new(seed);
    match name {
        "team" => Some(team(&rng)),
        "solo-bursty" => Some(solo_bursty(&rng)),
        "nearly-exhausted" => Some(nearly_exhausted(&rng)),
        _ => None,
    }
}

const HOUR: f64 = 3600.0;
const DAY: f64 = 24.0 * HOUR;

fn team(rng: &Rng) -> Scenario {
    let accounts = vec![
        AccountPlan::new("pro", Tier::Pro, 60.0, 0.35),
        AccountPlan::new("max5", Tier::Max5, 100.0, 0.20),
        AccountPlan::new("max20", Tier::Max20, 144.0, 0.05),
    ];
    let mut conversations = Vec::new();
    for dev in 0..6 {
        let mut r = rng.fork(dev);
        for day in 0..5 {
            office_day(&mut r, &format!("dev{dev}"), day, &mut conversations);
        }
    }
    finish(
        "team",
        accounts,
        conversations,
        Duration::from_secs(7 * 24 * 3600),
    )
}

fn solo_bursty(rng: &Rng) -> Scenario {
    let accounts = vec![
        AccountPlan::new("max5", Tier::Max5, 70.0, 0.30),
        AccountPlan::new("pro", Tier::Pro, 34.0, 0.45),
    ];
    let mut conversations = Vec::new();
    let mut r = rng.fork(1);
    for day in 0..3 {
        let (start, end) = office_hours(&mut r, day);
        // The main thread of work: one conversation after another all day.
        sessions(&mut r, "solo", start, end, &mut conversations);
        // Bursts: several parallel sessions (agents in separate worktrees, a review, a
        // spike) started together.
        let bursts = r.int(2, 3);
        for b in 0..bursts {
            let at = r.range(start + HOUR, end - 2.0 * HOUR);
            let width = r.int(3, 5);
            for lane in 0..width {
                let length = r.range(30.0 * 60.0, 90.0 * 60.0);
                let id = format!("solo-d{day}-burst{b}-{lane}");
                let arrival = at + r.range(0.0, 120.0);
                conversations.push(conversation(&mut r, id, arrival, length));
            }
        }
    }
    finish(
        "solo-bursty",
        accounts,
        conversations,
        Duration::from_secs(3 * 24 * 3600),
    )
}

fn nearly_exhausted(rng: &Rng) -> Scenario {
    let mut nearly = AccountPlan::new("max5-a", Tier::Max5, 50.0, 0.93);
    nearly.used_5h = 0.5;
    nearly.five_hour_reset_in_hours = Some(2.0);
    let accounts = vec![
        nearly,
        AccountPlan::new("max5-b", Tier::Max5, 110.0, 0.30),
        AccountPlan::new("max5-c", Tier::Max5, 80.0, 0.50),
    ];
    let mut conversations = Vec::new();
    for dev in 0..4 {
        let mut r = rng.fork(100 + dev);
        for day in 0..3 {
            office_day(&mut r, &format!("dev{dev}"), day, &mut conversations);
        }
    }
    finish(
        "nearly-exhausted",
        accounts,
        conversations,
        Duration::from_secs(3 * 24 * 3600),
    )
}

fn finish(
    name: &str,
    accounts: Vec<AccountPlan>,
    mut conversations: Vec<Conversation>,
    horizon: Duration,
) -> Scenario {
    conversations.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s).then(a.id.cmp(&b.id)));
    Scenario {
        name: name.to_owned(),
        accounts,
        conversations,
        horizon,
    }
}

/// Start and end of a working day, in seconds from the start of the run.
fn office_hours(r: &mut Rng, day: u64) -> (f64, f64) {
    let base = day as f64 * DAY;
    (
        base + r.range(8.5, 9.5) * HOUR,
        base + r.range(17.0, 18.5) * HOUR,
    )
}

/// One developer's day: a morning and an afternoon of back-to-back sessions around lunch,
/// with the odd meeting.
fn office_day(r: &mut Rng, who: &str, day: u64, out: &mut Vec<Conversation>) {
    let (start, end) = office_hours(r, day);
    let lunch = day as f64 * DAY + r.range(12.0, 12.75) * HOUR;
    let back = lunch + r.range(45.0, 75.0) * 60.0;
    for (from, to) in [(start, lunch), (back, end)] {
        let mut from = from;
        let mut to = to;
        if r.chance(0.3) {
            // A meeting takes a bite out of this half-day.
            let length = r.range(30.0, 60.0) * 60.0;
            if r.chance(0.5) {
                from += length;
            } else {
                to -= length;
            }
        }
        sessions(r, &format!("{who}-d{day}"), from, to, out);
    }
}

/// Back-to-back sessions from `from` until `to`.
fn sessions(r: &mut Rng, who: &str, from: f64, to: f64, out: &mut Vec<Conversation>) {
    let mut at = from;
    let mut n = 0;
    while at < to - 10.0 * 60.0 {
        let length = r.range(30.0 * 60.0, 120.0 * 60.0).min(to - at);
        let conv = conversation(r, format!("{who}-{n}"), at, length);
        let spent = estimated_length(&conv);
        out.push(conv);
        n += 1;
        // Between sessions: reading, a review, a coffee.
        at += spent + r.range(60.0, 600.0);
    }
}

/// A Claude Code session that works for about `length` seconds.
fn conversation(r: &mut Rng, id: String, arrival_s: f64, length: f64) -> Conversation {
    let initial = r.int(15_000, 25_000);
    let mut context = initial;
    let mut elapsed = 0.0;
    let mut turns = Vec::new();
    let mut first_prompt = true;
    'session: while elapsed < length {
        let think = if first_prompt {
            0.0
        } else {
            20.0 + r.exp(150.0)
        };
        first_prompt = false;
        let loop_length = match r.unit() {
            x if x < 0.40 => r.int(1, 4),
            x if x < 0.85 => r.int(5, 12),
            _ => r.int(13, 30),
        };
        for step in 0..loop_length {
            let (think_s, input) = if step == 0 {
                (think, r.int(50, 800))
            } else {
                (1.0 + r.exp(5.0), tool_result(r))
            };
            let output = match r.unit() {
                x if x < 0.60 => r.int(80, 400),
                x if x < 0.95 => r.int(400, 2_000),
                _ => r.int(2_000, 6_000),
            };
            if context + input + output > 150_000 {
                break 'session;
            }
            turns.push(Turn {
                think_s: (think_s * 10.0).round() / 10.0,
                input,
                output,
            });
            elapsed += think_s + 0.8 + (context + input) as f64 / 40_000.0 + output as f64 / 60.0;
            context += input + output;
        }
    }
    if turns.is_empty() {
        turns.push(Turn {
            think_s: 0.0,
            input: 200,
            output: 200,
        });
    }
    Conversation {
        id,
        arrival_s: (arrival_s * 10.0).round() / 10.0,
        context: initial,
        turns,
    }
}

fn tool_result(r: &mut Rng) -> u64 {
    match r.unit() {
        x if x < 0.70 => r.int(200, 2_500),
        x if x < 0.95 => r.int(2_500, 12_000),
        _ => r.int(12_000, 30_000),
    }
}

/// Roughly how long a conversation takes without any waiting.
fn estimated_length(c: &Conversation) -> f64 {
    let mut context = c.context;
    let mut total = 0.0;
    for t in &c.turns {
        total += t.think_s + 0.8 + (context + t.input) as f64 / 40_000.0 + t.output as f64 / 60.0;
        context += t.input + t.output;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_deterministic_and_plausible() {
        for name in PRESETS {
            let a = preset(name, 1).unwrap();
            assert_eq!(a, preset(name, 1).unwrap());
            assert_ne!(a, preset(name, 2).unwrap());
            assert!(!a.conversations.is_empty());
            for c in &a.conversations {
                let mut context = c.context;
                for t in &c.turns {
                    context += t.input + t.output;
                }
                assert!(context <= 150_000, "{}: context {context}", c.id);
            }
        }
        assert!(preset("nope", 1).is_none());
    }
}
