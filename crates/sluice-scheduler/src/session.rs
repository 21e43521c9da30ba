//! Conversation affinity: which account a conversation calls home, and where it is now.
//!
//! Prompt caches are per account, so a conversation that stays on one account keeps its cache
//! warm. A binding remembers the *home* (the best-priority account the conversation has
//! used) and the *current* account (where it went last, e.g. while home was benched), so a
//! displaced conversation does not bounce between accounts and returns home once home
//! recovers. Conversation identities are hashed before they get here: no raw session ids are
//! kept.
//! Home moves only to an account of strictly better priority, for every strategy.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::account::AccountId;
use crate::time::Timestamp;

/// A hashed conversation identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationKey(pub u64);

impl ConversationKey {
    /// Hash a raw conversation id (a session header or `metadata.user_id` session).
    pub fn from_raw(raw: &str) -> Self {
        ConversationKey(xxhash_rust::xxh3::xxh3_64_with_seed(
            raw.as_bytes(),
            0x736c_7569_6365,
        ))
    }
}

/// Where one conversation lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub home: AccountId,
    pub home_priority: i32,
    pub current: AccountId,
    pub last_seen: Timestamp,
    /// How many times the conversation moved to an account it was not on.
    pub moves: u32,
}

/// All bindings, bounded in age and number.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionTable {
    bindings: HashMap<ConversationKey, Binding>,
}

impl SessionTable {
    pub fn get(&self, key: ConversationKey) -> Option<&Binding> {
        self.bindings.get(&key)
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Record that `key` was routed to `account`. Returns true when this moved the
    /// conversation off the account it was last on. Home changes only to an account of
    /// strictly better priority: a conversation displaced to a peer returns home once home
    /// recovers.
    pub fn bind(
        &mut self,
        key: ConversationKey,
        account: AccountId,
        priority: i32,
        now: Timestamp,
    ) -> bool {
        match self.bindings.get_mut(&key) {
            Some(binding) => {
                let moved = binding.current != account;
                if moved {
                    binding.moves = binding.moves.saturating_add(1);
                }
                if account == binding.home || priority < binding.home_priority {
                    binding.home = account;
                    binding.home_priority = priority;
                }
                binding.current = account;
                binding.last_seen = now;
                moved
            }
            None => {
                self.bindings.insert(
                    key,
                    Binding {
                        home: account,
                        home_priority: priority,
                        current: account,
                        last_seen: now,
                        moves: 0,
                    },
                );
                false
            }
        }
    }

    /// Forget conversations idle for longer than `ttl`, then the oldest ones beyond `max`.
    pub fn evict(&mut self, now: Timestamp, ttl: Duration, max: usize) {
        let cutoff = now - ttl;
        self.bindings.retain(|_, b| b.last_seen >= cutoff);
        if self.bindings.len() > max {
            let mut ages: Vec<(Timestamp, ConversationKey)> = self
                .bindings
                .iter()
                .map(|(k, b)| (b.last_seen, *k))
                .collect();
            ages.sort_unstable();
            let excess = self.bindings.len() - max;
            for (_, key) in ages.into_iter().take(excess) {
                self.bindings.remove(&key);
            }
        }
    }

    /// Drop every binding that points at a removed account.
    pub fn forget_account(&mut self, account: AccountId) {
        self.bindings
            .retain(|_, b| b.home != account && b.current != account);
    }

    /// Update the recorded priority of bindings homed on `account`.
    pub fn reprioritize(&mut self, account: AccountId, priority: i32) {
        for binding in self.bindings.values_mut() {
            if binding.home == account {
                binding.home_priority = priority;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_stays_until_a_better_priority_serves() {
        let mut table = SessionTable::default();
        let key = ConversationKey::from_raw("conv");
        let t = Timestamp::from_secs(1);
        assert!(!table.bind(key, AccountId(1), 5, t));
        assert!(table.bind(key, AccountId(2), 5, t), "moved to a peer");
        assert_eq!(table.get(key).unwrap().home, AccountId(1));
        assert_eq!(table.get(key).unwrap().current, AccountId(2));
        table.bind(key, AccountId(3), 0, t);
        assert_eq!(table.get(key).unwrap().home, AccountId(3));
        assert_eq!(table.get(key).unwrap().moves, 2);
        // Neither an equal nor a worse priority takes over home.
        table.bind(key, AccountId(4), 0, t);
        assert_eq!(table.get(key).unwrap().home, AccountId(3));
        table.bind(key, AccountId(5), 3, t);
        assert_eq!(table.get(key).unwrap().home, AccountId(3));
        assert_eq!(table.get(key).unwrap().current, AccountId(5));
    }

    #[test]
    fn eviction_bounds_age_and_size() {
        let mut table = SessionTable::default();
        for i in 0..10 {
            table.bind(
                ConversationKey(i),
                AccountId(0),
                0,
                Timestamp::from_secs(i as i64),
            );
        }
        table.evict(Timestamp::from_secs(10), Duration::from_secs(5), 100);
        assert_eq!(table.len(), 5);
        table.evict(Timestamp::from_secs(10), Duration::from_secs(50), 2);
        assert_eq!(table.len(), 2);
        assert!(table.get(ConversationKey(9)).is_some());
    }
}
