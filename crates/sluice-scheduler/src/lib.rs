//! sluice's scheduler: the account state and routing decisions behind the proxy.
//!
//! This crate is pure logic. It does no I/O, never reads a clock (every call takes `now`),
//! and returns its decisions as data ([`Decision`]) for the proxy — or the simulator — to
//! carry out. One [`Pool`] holds one provider's accounts; the proxy keeps one pool per
//! provider. The whole pool is serializable.
//!
//! The request lifecycle: [`Pool::acquire`] → (send upstream) → [`Pool::observe_quota`]
//! with what the response headers said → [`Pool::release`] with the [`Outcome`]. A
//! [`Decision::Wait`] queues the request: ask again with its ticket, or
//! [`Pool::leave_queue`].

pub mod account;
pub mod availability;
pub mod burn;
mod config;
pub mod decision;
pub mod headers;
pub mod incident;
pub mod load;
pub mod outcome;
pub mod pace;
pub mod pool;
pub mod queue;
pub mod quota;
mod select;
pub mod session;
pub mod snapshot;
pub mod strategy;
pub mod time;
pub mod weight;

pub use account::{AccountId, AccountSpec, AccountState, CredentialKind, ErrorClass, TokenTotals};
pub use availability::Availability;
pub use decision::{Decision, Lease, RequestInfo, Unavailable};
pub use incident::{Breaker, Fingerprint};
pub use outcome::Outcome;
pub use pace::WeeklyTier;
pub use pool::{Pool, PoolConfig, RemoveError, SavedQuota};
pub use queue::Ticket;
pub use quota::{QuotaObservation, QuotaState, UnifiedStatus};
pub use session::ConversationKey;
pub use snapshot::{AccountSnapshot, PoolSnapshot, SchedulerSnapshot};
pub use strategy::{Strategy, UnknownStrategy};
pub use time::Timestamp;
