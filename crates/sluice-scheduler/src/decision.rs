//! The scheduler's answers, returned as data for the proxy to carry out.

use std::time::Duration;

use serde::Serialize;

use crate::account::AccountId;
use crate::queue::Ticket;
use crate::session::ConversationKey;
use crate::time::Timestamp;

/// What the proxy knows about a request when it asks for an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub conversation: Option<ConversationKey>,
    /// Relative cost of the request (at least 1).
    pub weight: u32,
    /// The request's place in the admission queue, once it has had to wait.
    pub ticket: Option<Ticket>,
}

/// Permission to send one request on one account. Hand it back exactly once through
/// [`crate::Pool::release`]; the pool counts it in flight until then.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a lease must be released, or the account stays counted in flight"]
pub struct Lease {
    pub account: AccountId,
    pub weight: u32,
    pub started_at: Timestamp,
    pub conversation: Option<ConversationKey>,
    /// Whether this placement moved the conversation off the account it was on.
    pub moved_conversation: bool,
    /// This request is the single recovery probe of an open upstream breaker.
    pub probe: bool,
}

/// Why no account could take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// The pool has no accounts for this provider.
    NoAccounts,
    /// Every account was already tried for this request.
    AllTried,
    /// Accounts are benched by their rate limits.
    RateLimited,
    /// Accounts are cooling down after transient failures.
    CoolingDown,
    /// Accounts are at their quota thresholds.
    QuotaExhausted,
    /// Accounts are at their in-flight safety caps.
    AtCapacity,
    /// Every remaining account is disabled or failing authentication.
    Unusable,
    /// The upstream is throttling every account; requests are held until a probe succeeds.
    UpstreamThrottled,
    /// Earlier requests are waiting for capacity first.
    Queued,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::NoAccounts => "no_accounts",
            Unavailable::AllTried => "all_tried",
            Unavailable::RateLimited => "rate_limited",
            Unavailable::CoolingDown => "cooling_down",
            Unavailable::QuotaExhausted => "quota_exhausted",
            Unavailable::AtCapacity => "at_capacity",
            Unavailable::Unusable => "unusable",
            Unavailable::UpstreamThrottled => "upstream_throttled",
            Unavailable::Queued => "queued",
        }
    }

    /// Whether waiting can help: the refusal is temporary.
    pub fn is_temporary(self) -> bool {
        !matches!(
            self,
            Unavailable::NoAccounts | Unavailable::AllTried | Unavailable::Unusable
        )
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the request on this account.
    Route(Lease),
    /// Nothing can serve now, but something will soon: hold the request and ask again at
    /// `until`, or earlier when the pool signals a change (`None`: only on a change). The
    /// request is queued: ask again with `ticket` in [`RequestInfo::ticket`], or give the
    /// place up with [`crate::Pool::leave_queue`].
    Wait {
        until: Option<Timestamp>,
        reason: Unavailable,
        ticket: Ticket,
    },
    /// Nothing can serve within the hold window: refuse, telling the client when to retry.
    Reject {
        retry_after: Option<Duration>,
        reason: Unavailable,
    },
}
