//! A simulated subscription account upstream: a 5-hour window that opens with the first
//! request after the previous one ended, a weekly window that resets at a fixed instant every
//! seven days, and a prompt cache per conversation. It answers like the real API: quota
//! headers on every response (`anthropic-ratelimit-unified-*`, epoch-second resets, statuses
//! and the representative claim), and a 429 with `rejected` status once a window is full.

use std::collections::HashMap;
use std::time::Duration;

use sluice_scheduler::Timestamp;
use sluice_scheduler::pace::{FIVE_HOURS, WEEK};

use crate::tier::{CACHE_READ_WEIGHT, CACHE_WRITE_WEIGHT, OUTPUT_WEIGHT};
use crate::workload::AccountPlan;

/// How long the upstream keeps a conversation's prompt cache after its last use.
pub const PROMPT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Response headers as (name, value) pairs.
pub type Headers = Vec<(String, String)>;

/// What one served request cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Served {
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    /// Quota units charged to both windows.
    pub units: f64,
}

#[derive(Clone, Copy, Debug)]
struct CacheEntry {
    tokens: u64,
    expires: Timestamp,
}

/// Quota that went unused when windows reset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Leftovers {
    pub unused_5h: f64,
    pub ended_5h: f64,
    pub unused_7d: f64,
    pub ended_7d: f64,
}

pub struct SimUpstream {
    capacity_5h: f64,
    capacity_7d: f64,
    /// When the current 5-hour window opened; `None` until the next request opens one.
    session_start: Option<Timestamp>,
    session_used: f64,
    weekly_reset: Timestamp,
    weekly_used: f64,
    cache: HashMap<usize, CacheEntry>,
    pub leftovers: Leftovers,
}

impl SimUpstream {
    pub fn new(plan: &AccountPlan, start: Timestamp) -> Self {
        let capacity_5h = plan.five_hour_capacity();
        let capacity_7d = plan.weekly_capacity();
        let session_start = plan
            .five_hour_reset_in_hours
            .filter(|_| plan.used_5h > 0.0)
            .map(|hours| start + Duration::from_secs_f64(hours * 3600.0) - FIVE_HOURS);
        SimUpstream {
            capacity_5h,
            capacity_7d,
            session_start,
            session_used: if session_start.is_some() {
                plan.used_5h * capacity_5h
            } else {
                0.0
            },
            weekly_reset: start + Duration::from_secs_f64(plan.weekly_reset_in_hours * 3600.0),
            weekly_used: plan.used_7d * capacity_7d,
            cache: HashMap::new(),
            leftovers: Leftovers::default(),
        }
    }

    /// Close the windows whose time is up, noting what they left unused.
    pub fn roll(&mut self, now: Timestamp) {
        if let Some(start) = self.session_start
            && start + FIVE_HOURS <= now
        {
            self.leftovers.unused_5h += (self.capacity_5h - self.session_used).max(0.0);
            self.leftovers.ended_5h += self.capacity_5h;
            self.session_start = None;
            self.session_used = 0.0;
        }
        while self.weekly_reset <= now {
            self.leftovers.unused_7d += (self.capacity_7d - self.weekly_used).max(0.0);
            self.leftovers.ended_7d += self.capacity_7d;
            self.weekly_used = 0.0;
            self.weekly_reset = self.weekly_reset + WEEK;
        }
    }

    pub fn session_utilization(&self) -> f64 {
        self.session_used / self.capacity_5h
    }

    pub fn weekly_utilization(&self) -> f64 {
        self.weekly_used / self.capacity_7d
    }

    /// The fraction used of whichever window binds harder.
    pub fn binding_use(&self) -> f64 {
        self.session_utilization().max(self.weekly_utilization())
    }

    fn session_reset(&self, now: Timestamp) -> Timestamp {
        self.session_start.unwrap_or(now) + FIVE_HOURS
    }

    /// Serve a turn of conversation `conversation`, whose context holds `context` tokens
    /// before this turn's `input`; or refuse it with the 429's headers and `retry-after`.
    pub fn serve(
        &mut self,
        now: Timestamp,
        conversation: usize,
        context: u64,
        input: u64,
        output: u64,
    ) -> Result<(Served, Headers), (Headers, Duration)> {
        self.roll(now);
        let session_full = self.session_used >= self.capacity_5h;
        let weekly_full = self.weekly_used >= self.capacity_7d;
        if session_full || weekly_full {
            let reset = if weekly_full {
                self.weekly_reset
            } else {
                self.session_reset(now)
            };
            return Err((self.headers(now), now.until(reset)));
        }
        let prompt = context + input;
        let cache_read = match self.cache.get(&conversation) {
            Some(entry) if entry.expires > now => entry.tokens.min(prompt),
            _ => 0,
        };
        let cache_write = prompt - cache_read;
        let units = cache_write as f64 * CACHE_WRITE_WEIGHT
            + cache_read as f64 * CACHE_READ_WEIGHT
            + output as f64 * OUTPUT_WEIGHT;
        self.session_start.get_or_insert(now);
        self.session_used += units;
        self.weekly_used += units;
        self.cache.insert(
            conversation,
            CacheEntry {
                tokens: prompt,
                expires: now + PROMPT_CACHE_TTL,
            },
        );
        let served = Served {
            cache_read,
            cache_write,
            output,
            units,
        };
        Ok((served, self.headers(now)))
    }

    /// The `anthropic-ratelimit-unified-*` headers as the real API sends them.
    pub fn headers(&self, now: Timestamp) -> Headers {
        let u5 = self.session_utilization();
        let u7 = self.weekly_utilization();
        let r5 = epoch_secs_ceil(self.session_reset(now));
        let r7 = epoch_secs_ceil(self.weekly_reset);
        let (s5, s7) = (status(u5), status(u7));
        let seven_day = severity(s7) > severity(s5) || (s7 == s5 && u7 > u5);
        let (overall, claim, reset) = if seven_day {
            (s7, "seven_day", r7)
        } else {
            (s5, "five_hour", r5)
        };
        let p = "anthropic-ratelimit-unified-";
        vec![
            (format!("{p}status"), overall.to_owned()),
            (format!("{p}reset"), reset.to_string()),
            (format!("{p}representative-claim"), claim.to_owned()),
            (format!("{p}5h-utilization"), fraction(u5)),
            (format!("{p}5h-reset"), r5.to_string()),
            (format!("{p}5h-status"), s5.to_owned()),
            (format!("{p}7d-utilization"), fraction(u7)),
            (format!("{p}7d-reset"), r7.to_string()),
            (format!("{p}7d-status"), s7.to_owned()),
        ]
    }
}

fn status(utilization: f64) -> &'static str {
    if utilization >= 1.0 {
        "rejected"
    } else if utilization >= 0.8 {
        "allowed_warning"
    } else {
        "allowed"
    }
}

fn severity(status: &str) -> u8 {
    match status {
        "rejected" => 2,
        "allowed_warning" => 1,
        _ => 0,
    }
}

fn fraction(u: f64) -> String {
    format!("{}", (u * 10_000.0).round() / 10_000.0)
}

/// Resets are sent as whole epoch seconds; round up so a window never looks reset early.
fn epoch_secs_ceil(t: Timestamp) -> i64 {
    (t.as_millis() + 999).div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    #[test]
    fn windows_fill_reject_and_reset_and_the_cache_saves_quota() {
        let start = Timestamp::from_secs(1_767_571_200);
        let plan = AccountPlan {
            capacity_5h: Some(1_000_000.0),
            ..AccountPlan::new("a", Tier::Pro, 24.0, 0.0)
        };
        let mut up = SimUpstream::new(&plan, start);
        let (first, _) = up.serve(start, 0, 100_000, 1_000, 100).unwrap();
        assert_eq!(first.cache_read, 0);
        assert_eq!(first.cache_write, 101_000);
        let later = start + Duration::from_secs(60);
        let (second, headers) = up.serve(later, 0, 101_100, 1_000, 100).unwrap();
        assert_eq!(
            second.cache_read, 101_000,
            "the previous prompt is read from cache"
        );
        assert!(second.units < first.units / 3.0);
        let five_h_reset = headers
            .iter()
            .find(|(n, _)| n == "anthropic-ratelimit-unified-5h-reset")
            .unwrap();
        assert_eq!(five_h_reset.1, (1_767_571_200 + 5 * 3600).to_string());
        // Past the cache lifetime, the whole prompt is written again.
        let cold = later + PROMPT_CACHE_TTL + Duration::from_secs(1);
        let (third, _) = up.serve(cold, 0, 102_200, 1_000, 100).unwrap();
        assert_eq!(third.cache_read, 0);
        // Fill the window: the next request is refused until the window resets.
        while up.session_utilization() < 1.0 {
            up.serve(cold, 1, 200_000, 0, 0).unwrap();
        }
        let (headers, retry) = up.serve(cold, 0, 1, 1, 1).unwrap_err();
        assert!(headers.contains(&(
            "anthropic-ratelimit-unified-status".to_owned(),
            "rejected".to_owned()
        )));
        assert_eq!(start + FIVE_HOURS, cold + retry);
        up.roll(start + FIVE_HOURS);
        assert_eq!(up.session_utilization(), 0.0);
        assert!(up.leftovers.ended_5h > 0.0);
        assert!(up.serve(start + FIVE_HOURS, 0, 1, 1, 1).is_ok());
    }
}
