//! The dashboard's JSON API (see `openapi.json` for the shapes).
//!
//! * `GET /api/overview` — the pool (the `/status` document), throughput over the last
//!   minute and the request log's counters: what the live view polls.
//! * `GET /api/requests?limit=N` — the most recent requests, newest first (in memory).
//! * `GET /api/usage?since=24h&by=account` — usage from the request log, priced.
//! * `GET /api/series?range=hour|day|week` — requests and tokens per account over time.
//! * `PATCH /api/accounts/{name}` — enable, disable, set priority, rename.
//! * `DELETE /api/accounts/{name}` — remove an idle account.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sluice_store::{RequestLogRow, UsageKey, UsageQuery, UsageRow};

use crate::admin::{may_change, may_read, peer_of};
use crate::error::{ErrorKind, ProxyError};
use crate::manage::{self, AccountAction, ManageError};
use crate::observe::recent::{RECENT_REQUESTS, Throughput};
use crate::observe::usage::{self, UsageBy, UsageSummary};
use crate::proxy::error_response;
use crate::state::{AppState, now};
use crate::status::{self, Status};

/// The largest account-change body read.
const MAX_CHANGE_BODY: usize = 4 << 10;

fn refuse(app: &AppState, kind: ErrorKind, message: impl Into<String>) -> Response {
    let anthropic = app.providers().get(sluice_config::ProviderKind::Anthropic);
    error_response(anthropic.as_ref(), &ProxyError::new(kind, message))
}

fn unreadable(app: &AppState) -> Response {
    refuse(
        app,
        ErrorKind::Authentication,
        "the dashboard API answers clients on this machine, or with the admin_key (x-api-key or authorization: Bearer)",
    )
}

fn readable(app: &AppState, request: &Request) -> bool {
    may_read(app, request.headers(), peer_of(request))
}

#[derive(Serialize)]
pub struct Overview {
    pub now_ms: i64,
    pub status: Status,
    pub throughput: Throughput,
    pub request_log: RequestLogState,
    pub strategies: Vec<&'static str>,
}

#[derive(Serialize)]
pub struct RequestLogState {
    /// Rows are being kept (sluice runs with a store and `log.requests` is on).
    pub enabled: bool,
    pub written: u64,
    pub dropped: u64,
}

/// The live view: what the dashboard (and the terminal dashboard) show.
pub fn snapshot(app: &AppState) -> Overview {
    let log = app.telemetry().log();
    Overview {
        now_ms: now().as_millis(),
        status: status::status(app),
        throughput: app.telemetry().recent().throughput(now()),
        request_log: RequestLogState {
            enabled: log.enabled() && app.config().log.requests,
            written: log.written(),
            dropped: log.dropped(),
        },
        strategies: sluice_scheduler::Strategy::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
    }
}

pub async fn overview(State(app): State<AppState>, request: Request) -> Response {
    if !readable(&app, &request) {
        return unreadable(&app);
    }
    Json(snapshot(&app)).into_response()
}

#[derive(Deserialize)]
pub struct RequestsQuery {
    limit: Option<usize>,
}

/// The recent requests, newest first; each row serializes as the API shows it.
#[derive(Serialize)]
struct Requests<'a> {
    requests: Vec<&'a RequestLogRow>,
}

pub async fn requests(
    State(app): State<AppState>,
    Query(query): Query<RequestsQuery>,
    request: Request,
) -> Response {
    if !readable(&app, &request) {
        return unreadable(&app);
    }
    let limit = query.limit.unwrap_or(50).min(RECENT_REQUESTS);
    let requests = app.telemetry().recent().requests(limit);
    Json(Requests {
        requests: requests.iter().map(|row| &**row).collect(),
    })
    .into_response()
}

#[derive(Deserialize)]
pub struct UsageParams {
    since: Option<String>,
    by: Option<String>,
}

#[derive(Serialize)]
struct UsageReport {
    since_ms: i64,
    by: UsageBy,
    /// Whether there is a request log to read (sluice runs with a store).
    request_log: bool,
    rows: Vec<UsageSummary>,
    total: UsageSummary,
}

pub async fn usage(
    State(app): State<AppState>,
    Query(params): Query<UsageParams>,
    request: Request,
) -> Response {
    if !readable(&app, &request) {
        return unreadable(&app);
    }
    let since = match usage::parse_since(params.since.as_deref().unwrap_or("24h")) {
        Ok(since) => since,
        Err(message) => return refuse(&app, ErrorKind::InvalidRequest, message),
    };
    let by_name = params.by.as_deref().unwrap_or("account");
    let Some(by) = UsageBy::parse(by_name) else {
        return refuse(
            &app,
            ErrorKind::InvalidRequest,
            format!(
                "unknown grouping {by_name:?}; use one of {}",
                UsageBy::NAMES.join(", ")
            ),
        );
    };
    let since_ms = (now() - since).as_millis();
    let rows = match read_usage(&app, by.query(since_ms)).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let summaries = usage::summarize(&rows, by, &app.config().prices);
    Json(UsageReport {
        since_ms,
        by,
        request_log: app.accounts().store().is_some(),
        total: usage::total(&summaries),
        rows: summaries,
    })
    .into_response()
}

/// Sum the request log as `query` says; nothing when there is no store.
async fn read_usage(app: &AppState, query: UsageQuery) -> Result<Vec<UsageRow>, Response> {
    let Some(store) = app.accounts().store().cloned() else {
        return Ok(Vec::new());
    };
    match tokio::task::spawn_blocking(move || store.usage(&query)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(error)) => Err(refuse(
            app,
            ErrorKind::Internal,
            format!("could not read the request log: {error}"),
        )),
        Err(_) => Err(refuse(
            app,
            ErrorKind::Internal,
            "reading the request log failed",
        )),
    }
}

#[derive(Deserialize)]
pub struct SeriesParams {
    range: Option<String>,
}

#[derive(Serialize)]
pub struct Series {
    pub range: &'static str,
    pub since_ms: i64,
    pub bucket_ms: i64,
    /// Each bucket's start; every account's arrays line up with it.
    pub buckets: Vec<i64>,
    pub accounts: Vec<AccountSeries>,
    pub request_log: bool,
}

#[derive(Serialize)]
pub struct AccountSeries {
    pub account: String,
    pub requests: Vec<u64>,
    pub tokens: Vec<u64>,
}

/// (name, span, bucket): about sixty points each.
const RANGES: &[(&str, i64, i64)] = &[
    ("hour", 3_600_000, 60_000),
    ("day", 86_400_000, 30 * 60_000),
    ("week", 7 * 86_400_000, 3 * 3_600_000),
];

pub async fn series(
    State(app): State<AppState>,
    Query(params): Query<SeriesParams>,
    request: Request,
) -> Response {
    if !readable(&app, &request) {
        return unreadable(&app);
    }
    let wanted = params.range.as_deref().unwrap_or("hour");
    let Some(&(range, span, bucket)) = RANGES.iter().find(|(name, _, _)| *name == wanted) else {
        return refuse(
            &app,
            ErrorKind::InvalidRequest,
            format!("unknown range {wanted:?}; use hour, day or week"),
        );
    };
    let now_ms = now().as_millis();
    // Whole buckets, the current one last.
    let last = now_ms.div_euclid(bucket) * bucket;
    let count = span / bucket;
    let first = last - (count - 1) * bucket;
    let rows = match read_usage(
        &app,
        UsageQuery {
            since_ms: first,
            until_ms: None,
            by: UsageKey::Account,
            bucket_ms: Some(bucket),
        },
    )
    .await
    {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    Json(build_series(
        range,
        first,
        bucket,
        count,
        &rows,
        app.accounts().store().is_some(),
    ))
    .into_response()
}

fn build_series(
    range: &'static str,
    first: i64,
    bucket: i64,
    count: i64,
    rows: &[UsageRow],
    request_log: bool,
) -> Series {
    let slots = count.max(0) as usize;
    let mut accounts: BTreeMap<String, AccountSeries> = BTreeMap::new();
    for row in rows {
        let Some(at) = row.bucket_ms else { continue };
        let index = (at - first).div_euclid(bucket);
        if index < 0 || index as usize >= slots {
            continue;
        }
        let name = row.key.clone().unwrap_or_else(|| "(none)".to_owned());
        let series = accounts
            .entry(name.clone())
            .or_insert_with(|| AccountSeries {
                account: name,
                requests: vec![0; slots],
                tokens: vec![0; slots],
            });
        series.requests[index as usize] += row.requests;
        series.tokens[index as usize] += row.tokens();
    }
    Series {
        range,
        since_ms: first,
        bucket_ms: bucket,
        buckets: (0..count).map(|i| first + i * bucket).collect(),
        accounts: accounts.into_values().collect(),
        request_log,
    }
}

/// `PATCH /api/accounts/{name}`: any of these, applied in this order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    enabled: Option<bool>,
    priority: Option<i32>,
    /// A new name.
    name: Option<String>,
}

#[derive(Serialize)]
struct Changed {
    account: String,
    messages: Vec<String>,
}

pub async fn change_account(
    State(app): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    if !may_change(&app, request.headers(), peer_of(&request)) {
        return unchangeable(&app);
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_CHANGE_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                &app,
                ErrorKind::InvalidRequest,
                format!("the request body must be JSON of at most {MAX_CHANGE_BODY} bytes"),
            );
        }
    };
    let change: AccountChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => {
            return refuse(
                &app,
                ErrorKind::InvalidRequest,
                format!(
                    "expected {{\"enabled\": true|false, \"priority\": N, \"name\": \"new name\"}} (any of them): {error}"
                ),
            );
        }
    };
    let mut actions = Vec::new();
    match change.enabled {
        Some(true) => actions.push(AccountAction::Enable),
        Some(false) => actions.push(AccountAction::Disable),
        None => {}
    }
    if let Some(priority) = change.priority {
        actions.push(AccountAction::Priority(priority));
    }
    if let Some(new) = change.name {
        actions.push(AccountAction::Rename(new));
    }
    if actions.is_empty() {
        return refuse(
            &app,
            ErrorKind::InvalidRequest,
            "nothing to change: send enabled, priority or name",
        );
    }
    let mut current = name;
    let mut messages = Vec::new();
    for action in actions {
        let renamed = match &action {
            AccountAction::Rename(to) => Some(to.trim().to_owned()),
            _ => None,
        };
        match manage::apply(&app, &current, action).await {
            Ok(done) => messages.push(done.message),
            Err(error) => return manage_error(&app, &error),
        }
        if let Some(to) = renamed {
            current = to;
        }
    }
    Json(Changed {
        account: current,
        messages,
    })
    .into_response()
}

pub async fn remove_account(
    State(app): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    if !may_change(&app, request.headers(), peer_of(&request)) {
        return unchangeable(&app);
    }
    match manage::apply(&app, &name, AccountAction::Remove).await {
        Ok(done) => Json(Changed {
            account: done.account,
            messages: vec![done.message],
        })
        .into_response(),
        Err(error) => manage_error(&app, &error),
    }
}

fn unchangeable(app: &AppState) -> Response {
    refuse(
        app,
        ErrorKind::Authentication,
        "changing accounts needs the admin_key (x-api-key or authorization: Bearer), or a request from this machine with content-type: application/json",
    )
}

fn manage_error(app: &AppState, error: &ManageError) -> Response {
    let kind = match error {
        ManageError::NoSuchAccount(_) => ErrorKind::NotFound,
        ManageError::Store(_) => ErrorKind::Internal,
        _ => ErrorKind::InvalidRequest,
    };
    refuse(app, kind, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_line_up_with_their_buckets() {
        let rows = [
            UsageRow {
                bucket_ms: Some(60_000),
                key: Some("a".into()),
                requests: 2,
                input_tokens: 10,
                ..UsageRow::default()
            },
            UsageRow {
                bucket_ms: Some(60_000),
                key: Some("a".into()),
                model: Some("other".into()),
                requests: 1,
                output_tokens: 5,
                ..UsageRow::default()
            },
            UsageRow {
                bucket_ms: Some(180_000),
                key: Some("b".into()),
                requests: 1,
                ..UsageRow::default()
            },
            // Outside the range: ignored.
            UsageRow {
                bucket_ms: Some(0),
                key: Some("b".into()),
                requests: 9,
                ..UsageRow::default()
            },
        ];
        let series = build_series("hour", 60_000, 60_000, 3, &rows, true);
        assert_eq!(series.buckets, [60_000, 120_000, 180_000]);
        assert_eq!(series.accounts[0].account, "a");
        assert_eq!(series.accounts[0].requests, [3, 0, 0]);
        assert_eq!(series.accounts[0].tokens, [15, 0, 0]);
        assert_eq!(series.accounts[1].requests, [0, 0, 1]);
    }
}
