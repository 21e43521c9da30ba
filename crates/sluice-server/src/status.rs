//! Local endpoints: the preflight answer, `/healthz` and `/status`.
//!
//! `/status` is the pool's state as JSON: every account's name, provider, kind, state,
//! load, counters, last error, cooldowns and learned quota, plus pool totals. It is built
//! from scheduler snapshots, which hold no credentials by construction.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_scheduler::{AccountSnapshot, SchedulerSnapshot, TokenTotals};

use crate::error::{ErrorKind, ProxyError};
use crate::proxy::error_response;
use crate::state::AppState;

/// Claude Code checks connectivity with `HEAD /` before its first call; answer it here,
/// never upstream.
pub async fn root() -> impl IntoResponse {
    (StatusCode::OK, "sluice\n")
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    accounts: usize,
    available: usize,
}

pub async fn healthz(State(app): State<AppState>) -> Json<impl Serialize> {
    let mut accounts = 0;
    let mut available = 0;
    for pool in app.pools() {
        let totals = pool.snapshot().totals;
        accounts += totals.accounts;
        available += totals.available;
    }
    Json(Health {
        status: "ok",
        accounts,
        available,
    })
}

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub listen: String,
    pub uptime_seconds: u64,
    pub strategy: String,
    pub totals: Totals,
    pub pools: Vec<PoolStatus>,
    pub accounts: Vec<AccountSnapshot>,
}

#[derive(Serialize, Default)]
pub struct Totals {
    pub accounts: usize,
    pub available: usize,
    pub in_flight: u32,
    pub completed: u64,
    pub failed: u64,
    pub conversations: usize,
    pub tokens: TokenTotals,
}

#[derive(Serialize)]
pub struct PoolStatus {
    pub provider: &'static str,
    pub accounts: usize,
    pub available: usize,
    pub in_flight: u32,
    pub conversations: usize,
    /// Strategy, preferred account, admission queue and upstream breaker.
    pub scheduler: SchedulerSnapshot,
}

/// The whole pool's state, as served by `GET /status`.
pub fn status(app: &AppState) -> Status {
    let config = app.config();
    let mut totals = Totals::default();
    let mut pools = Vec::new();
    let mut accounts = Vec::new();
    for pool in app.pools() {
        let snapshot = pool.snapshot();
        let t = &snapshot.totals;
        totals.accounts += t.accounts;
        totals.available += t.available;
        totals.in_flight += t.in_flight;
        totals.completed += t.completed;
        totals.failed += t.failed;
        totals.conversations += t.conversations;
        totals.tokens.add(&t.tokens);
        pools.push(PoolStatus {
            provider: pool.provider.as_str(),
            accounts: t.accounts,
            available: t.available,
            in_flight: t.in_flight,
            conversations: t.conversations,
            scheduler: snapshot.scheduler,
        });
        accounts.extend(snapshot.accounts);
    }
    Status {
        version: env!("CARGO_PKG_VERSION"),
        listen: config.listen.to_string(),
        uptime_seconds: app.uptime().as_secs(),
        strategy: crate::admin::view(app).strategy.to_string(),
        totals,
        pools,
        accounts,
    }
}

pub async fn status_handler(State(app): State<AppState>, request: Request) -> Response {
    if !app.client_keys().admits(request.headers()) {
        let anthropic = app.providers().get(sluice_config::ProviderKind::Anthropic);
        return error_response(
            anthropic.as_ref(),
            &ProxyError::new(ErrorKind::Authentication, "status needs a client key"),
        );
    }
    Json(status(&app)).into_response()
}
