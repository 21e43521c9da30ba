//! Per-credential account state: the FIFO reply script, the default reply, static quota headers, an
//! optional quota simulation, and whether OAuth-style requests must carry the OAuth beta flag.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::quota::QuotaHeaders;
use crate::reply::Reply;
use crate::sim::SimState;

#[derive(Debug, Default)]
pub(crate) struct Account {
    pub script: VecDeque<Reply>,
    pub default: Reply,
    pub quota: Option<QuotaHeaders>,
    pub sim: Option<SimState>,
    pub require_oauth_beta: bool,
}

/// All accounts, keyed by credential.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    map: Mutex<HashMap<String, Account>>,
}

impl Accounts {
    /// Run `f` on the account of `key`, creating it first if it is unknown and `create` is set.
    /// `None` when the account is unknown and not created.
    pub(crate) fn with<R>(
        &self,
        key: &str,
        create: bool,
        f: impl FnOnce(&mut Account) -> R,
    ) -> Option<R> {
        let mut map = self.map.lock();
        if let Some(account) = map.get_mut(key) {
            return Some(f(account));
        }
        if !create {
            return None;
        }
        Some(f(map.entry(key.to_owned()).or_default()))
    }

    /// Run `f` on the account of `key`, creating it if needed.
    pub(crate) fn upsert<R>(&self, key: &str, f: impl FnOnce(&mut Account) -> R) -> R {
        f(self.map.lock().entry(key.to_owned()).or_default())
    }

    pub(crate) fn remove(&self, key: &str) -> bool {
        self.map.lock().remove(key).is_some()
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.map.lock().keys().cloned().collect();
        keys.sort();
        keys
    }
}
