//! Local endpoints: the preflight answer, `/healthz` and `/status`.
//!
//! `/status` is the pool's state as JSON: every account's name, provider, kind, state,
//! load, counters, last error, cooldowns and learned quota, plus pool totals. It is built
//! from scheduler snapshots, which hold no credentials by construction, and from each
//! account's credential *metadata* (kind, origin, plan, token expiry, refresh state) —
//! never the credential.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_config::Credential;
use sluice_scheduler::{AccountSnapshot, SchedulerSnapshot, Timestamp, TokenTotals};

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
    pub accounts: Vec<AccountStatus>,
}

/// One account: the scheduler's view plus what is known about its credential.
#[derive(Serialize)]
pub struct AccountStatus {
    #[serde(flatten)]
    pub snapshot: AccountSnapshot,
    /// The account was removed (from the config or the store) while requests were in
    /// flight: it takes no new ones and leaves when they end.
    pub leaving: bool,
    pub credential: CredentialStatus,
}

/// What `/status` says about a credential. No secret: the kind, where it came from, when
/// the access token expires and how refreshing it goes.
#[derive(Serialize, Default)]
pub struct CredentialStatus {
    /// `api_key` or `oauth`.
    pub kind: &'static str,
    /// `config` (the config file) or `cli` (`sluice login`, `import`, `accounts add-key`).
    pub origin: &'static str,
    pub plan: Option<String>,
    /// When the access token expires (epoch ms).
    pub expires_at: Option<Timestamp>,
    /// Whether sluice can refresh it (a subscription with a refresh token and a store).
    pub refreshable: bool,
    pub needs_relogin: bool,
    pub relogin_reason: Option<String>,
    /// A refresh had an unknown outcome; the refresh token may be dead.
    pub refresh_in_doubt: bool,
    pub refreshed_at: Option<Timestamp>,
    pub last_refresh_error: Option<String>,
    pub usage_probed_at: Option<Timestamp>,
}

/// The credential metadata of the account behind `snapshot`; `None` if it is leaving.
fn credential_status(app: &AppState, snapshot: &AccountSnapshot) -> Option<CredentialStatus> {
    let directory = app.directory();
    let account = directory
        .iter()
        .find(|a| a.id == snapshot.id && a.provider.as_str() == snapshot.provider)?;
    let credential = account.credential.load();
    let (expires_at, has_refresh) = match &**credential {
        Credential::ApiKey(_) => (None, false),
        Credential::OAuth {
            expires_at_ms,
            refresh_token,
            ..
        } => (
            expires_at_ms.map(Timestamp::from_millis),
            refresh_token.is_some(),
        ),
    };
    let auth = account.auth.state();
    Some(CredentialStatus {
        kind: credential.kind().as_str(),
        origin: account.origin.source.as_str(),
        plan: account.origin.plan.clone(),
        expires_at,
        refreshable: has_refresh
            && account.origin.store_id.is_some()
            && app.accounts().store().is_some(),
        needs_relogin: auth.needs_relogin,
        relogin_reason: auth.relogin_reason,
        refresh_in_doubt: auth.in_doubt,
        refreshed_at: auth.refreshed_at,
        last_refresh_error: auth.last_refresh_error,
        usage_probed_at: auth.probed_at,
    })
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
        accounts.extend(snapshot.accounts.into_iter().map(|snapshot| {
            let credential = credential_status(app, &snapshot);
            AccountStatus {
                leaving: credential.is_none(),
                credential: credential.unwrap_or_else(|| CredentialStatus {
                    kind: snapshot.kind,
                    origin: "-",
                    ..CredentialStatus::default()
                }),
                snapshot,
            }
        }));
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
