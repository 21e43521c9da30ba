//! What the screen shows, as plain data: captured from a running sluice once per frame, or
//! built by hand in tests. Drawing never reads the server; it reads a [`View`].

use sluice_server::AppState;
use sluice_server::dashboard::api;

/// One frame's worth of the pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The clock every countdown is measured from (ms since the epoch).
    pub now_ms: i64,
    pub version: String,
    pub listen: String,
    pub strategy: String,
    pub strategies: Vec<String>,
    pub preferred_account: Option<String>,
    pub requests_per_minute: u64,
    pub failed_per_minute: u64,
    pub tokens_per_minute: u64,
    pub queued: usize,
    pub in_flight: u32,
    pub available: usize,
    pub breaker_open: bool,
    /// Shutting down: no longer accepting, waiting for requests in flight.
    pub draining: bool,
    pub accounts: Vec<AccountRow>,
    /// Newest first.
    pub requests: Vec<RequestRow>,
    /// Oldest first.
    pub log: Vec<String>,
    /// Rows written and dropped, when the request log is on.
    pub request_log: Option<(u64, u64)>,
}

/// One account's line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountRow {
    pub name: String,
    pub provider: String,
    /// The plan (`max`, `pro`) when known, else the credential kind.
    pub plan: String,
    pub state: String,
    /// When the account is expected back, if it is out for a known time.
    pub until: Option<i64>,
    pub enabled: bool,
    /// Declared in the config file (changed there, not from the dashboard).
    pub from_config: bool,
    pub leaving: bool,
    pub priority: i32,
    pub session: Option<Window>,
    pub weekly: Option<Window>,
    pub in_flight: u32,
    pub requests_15m: u64,
    pub requests_1h: u64,
    pub last_error: Option<String>,
}

/// A quota window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Fraction used (may exceed 1 in overage).
    pub used: f64,
    pub resets_at: Option<i64>,
}

/// One finished request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestRow {
    pub at_ms: i64,
    pub provider: String,
    pub account: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub error: Option<String>,
    pub failovers: Vec<String>,
}

/// How many recent requests a frame carries (more than any screen shows).
const REQUESTS: usize = 50;

impl View {
    /// The pool as it is now.
    pub fn capture(app: &AppState, log: Vec<String>, draining: bool) -> View {
        let overview = api::snapshot(app);
        let status = &overview.status;
        let scheduler = status.pools.iter().map(|p| &p.scheduler);
        let accounts = status
            .accounts
            .iter()
            .map(|account| {
                let s = &account.snapshot;
                let window = |w: &Option<sluice_scheduler::quota::WindowUsage>| {
                    w.as_ref().map(|w| Window {
                        used: w.utilization,
                        resets_at: w.resets_at.map(|t| t.as_millis()),
                    })
                };
                AccountRow {
                    name: s.name.clone(),
                    provider: s.provider.clone(),
                    plan: account
                        .credential
                        .plan
                        .clone()
                        .unwrap_or_else(|| s.kind.replace('_', " ")),
                    state: s.state.to_owned(),
                    until: s.until.map(|t| t.as_millis()),
                    enabled: s.enabled,
                    from_config: account.credential.origin == "config",
                    leaving: account.leaving,
                    priority: s.priority,
                    session: window(&s.quota.session),
                    weekly: window(&s.quota.weekly),
                    in_flight: s.in_flight,
                    requests_15m: s.load_15m.requests,
                    requests_1h: s.load_1h.requests,
                    last_error: s.last_error.clone(),
                }
            })
            .collect();
        let requests = app
            .telemetry()
            .recent()
            .requests(REQUESTS)
            .iter()
            .map(|r| RequestRow {
                at_ms: r.at_ms,
                provider: r.provider.clone(),
                account: r.account.clone(),
                model: r.model.clone(),
                status: r.status,
                latency_ms: r.latency_ms,
                input_tokens: r.input_tokens + r.cache_creation_tokens + r.cache_read_tokens,
                output_tokens: r.output_tokens,
                error: r.error.clone(),
                failovers: r.failovers.clone(),
            })
            .collect();
        View {
            now_ms: overview.now_ms,
            version: status.version.to_owned(),
            listen: status.listen.clone(),
            strategy: status.strategy.clone(),
            strategies: overview
                .strategies
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            preferred_account: scheduler.clone().find_map(|s| s.preferred_account.clone()),
            requests_per_minute: overview.throughput.requests_per_minute,
            failed_per_minute: overview.throughput.failed_per_minute,
            tokens_per_minute: overview.throughput.tokens_per_minute,
            queued: scheduler.clone().map(|s| s.queued).sum(),
            in_flight: status.totals.in_flight,
            available: status.totals.available,
            breaker_open: scheduler.clone().any(|s| s.breaker.is_some()),
            draining,
            accounts,
            requests,
            log,
            request_log: overview
                .request_log
                .enabled
                .then_some((overview.request_log.written, overview.request_log.dropped)),
        }
    }
}
