//! Telling an account's own failure from the upstream's.
//!
//! A 429 that carries no evidence of the account's own quota, a 529 or a 5xx first excludes
//! only the account that answered it, provisionally. When the same failure shows up on a
//! second account within a short window it was not the first account's fault: the
//! provisional exclusions are lifted. If nothing has succeeded since the failure first
//! appeared, the upstream itself is throttling: the pool opens a breaker that holds every
//! request, and once its time is up lets exactly one recovery probe through. The probe's
//! success closes the breaker; its failure re-arms it.

use serde::{Deserialize, Serialize};

use crate::account::AccountId;
use crate::time::Timestamp;

/// A failure that may be the upstream's rather than the account's, compared across accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fingerprint {
    /// A 429 without evidence that the account's own quota ran out.
    RateLimited,
    /// 529 or an `overloaded_error`.
    Overloaded,
    /// Another 5xx, by status.
    ServerError { status: u16 },
}

impl Fingerprint {
    pub fn as_str(self) -> &'static str {
        match self {
            Fingerprint::RateLimited => "upstream_rate_limited",
            Fingerprint::Overloaded => "upstream_overloaded",
            Fingerprint::ServerError { .. } => "upstream_server_error",
        }
    }
}

/// One failure seen on one or more accounts recently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub fingerprint: Fingerprint,
    pub accounts: Vec<AccountId>,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

/// Recent incidents, forgotten once quiet for the incident window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incidents {
    open: Vec<Incident>,
}

impl Incidents {
    /// Record `fingerprint` on `account`; returns the incident as it now stands.
    pub fn note(
        &mut self,
        fingerprint: Fingerprint,
        account: AccountId,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Incident {
        self.open.retain(|i| now.since(i.last_at) <= window);
        let incident = match self.open.iter_mut().find(|i| i.fingerprint == fingerprint) {
            Some(incident) => incident,
            None => {
                self.open.push(Incident {
                    fingerprint,
                    accounts: Vec::new(),
                    first_at: now,
                    last_at: now,
                });
                self.open.last_mut().expect("just pushed")
            }
        };
        if !incident.accounts.contains(&account) {
            incident.accounts.push(account);
        }
        incident.last_at = now;
        incident.clone()
    }

    pub fn forget(&mut self, fingerprint: Fingerprint) {
        self.open.retain(|i| i.fingerprint != fingerprint);
    }

    pub fn forget_account(&mut self, account: AccountId) {
        for incident in &mut self.open {
            incident.accounts.retain(|a| *a != account);
        }
        self.open.retain(|i| !i.accounts.is_empty());
    }
}

/// The pool-wide breaker: open while the upstream throttles everyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Requests are held until then; afterwards one probe may go.
    pub until: Timestamp,
    pub probe_in_flight: bool,
    pub reason: Fingerprint,
    pub opened_at: Timestamp,
}

/// What the breaker allows right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// No breaker: route normally.
    Pass,
    /// The breaker's time is up and no probe is out: the next routed request is the probe.
    Probe,
    /// Held: until the breaker's time, or (`None`) until the probe in flight comes back.
    Held(Option<Timestamp>),
}

impl Breaker {
    pub(crate) fn gate(breaker: Option<&Breaker>, now: Timestamp) -> Gate {
        match breaker {
            None => Gate::Pass,
            Some(b) if now < b.until => Gate::Held(Some(b.until)),
            Some(b) if b.probe_in_flight => Gate::Held(None),
            Some(_) => Gate::Probe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn incidents_gather_accounts_and_age_out() {
        let mut incidents = Incidents::default();
        let t = Timestamp::from_secs(100);
        let w = Duration::from_secs(30);
        let i = incidents.note(Fingerprint::Overloaded, AccountId(1), t, w);
        assert_eq!(i.accounts, vec![AccountId(1)]);
        let i = incidents.note(
            Fingerprint::Overloaded,
            AccountId(2),
            t + Duration::from_secs(10),
            w,
        );
        assert_eq!(i.accounts, vec![AccountId(1), AccountId(2)]);
        assert_eq!(i.first_at, t);
        // A different failure is a different incident.
        let other = incidents.note(
            Fingerprint::ServerError { status: 500 },
            AccountId(2),
            t + Duration::from_secs(10),
            w,
        );
        assert_eq!(other.accounts.len(), 1);
        // Quiet for longer than the window: forgotten.
        let i = incidents.note(
            Fingerprint::Overloaded,
            AccountId(3),
            t + Duration::from_secs(60),
            w,
        );
        assert_eq!(i.accounts, vec![AccountId(3)]);
    }
}
