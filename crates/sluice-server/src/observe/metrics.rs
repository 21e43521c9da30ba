//! Prometheus metrics: `GET /metrics`.
//!
//! Events (requests, tokens, failovers, refreshes, latencies) go to a Prometheus recorder of
//! this sluice's own (not the process-global one: tests run several servers in a process),
//! through handles resolved once per label set and cached, so a finished request costs a few
//! atomic adds and no label strings. State (in-flight, queue, account states, utilization)
//! is read from the pools at scrape time and written after the recorder's output, so a
//! removed account's gauges vanish with it.
//!
//! Every label value is bounded: provider and account names come from configuration, models
//! are reduced to the price table's families (`other` for the rest), statuses are HTTP codes,
//! reasons and states are fixed sets. No conversation ids, client keys or paths.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use parking_lot::{Mutex, RwLock};
use sluice_scheduler::TokenTotals;

use crate::state::AppState;

/// `GET /metrics`: needs a client key when client keys are configured, like `/status`
/// (Prometheus sends one as `authorization: Bearer`).
pub async fn handler(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !app.client_keys().admits(request.headers()) {
        let anthropic = app.providers().get(sluice_config::ProviderKind::Anthropic);
        return crate::proxy::error_response(
            anthropic.as_ref(),
            &crate::error::ProxyError::new(
                crate::error::ErrorKind::Authentication,
                "metrics need a client key",
            ),
        );
    }
    let body = app.telemetry().metrics().render(&app);
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Every state an account can be in (`Availability::name`), so each gets a 0/1 series.
const ACCOUNT_STATES: &[&str] = &[
    "available",
    "disabled",
    "needs_relogin",
    "auth_failed",
    "rate_limited",
    "cooling_down",
    "quota_exhausted",
    "over_threshold",
    "at_capacity",
];

/// The account label of a request no account took (refused, or failed before routing).
pub const NO_ACCOUNT: &str = "none";

/// Upstream and total latencies: 10 ms to 10 minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// sluice's own time per request: 25 µs to 250 ms.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,
];
/// Queue waits: 10 ms to the longest `queue.max_wait` anyone sets.
const WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static METADATA: Metadata<'static> = Metadata::new(
    "sluice::metrics",
    metrics::Level::INFO,
    Some(module_path!()),
);

/// What one finished request contributes.
pub struct RequestSample<'a> {
    pub provider: &'static str,
    pub account: Option<&'a str>,
    pub status: u16,
    /// The model's family label.
    pub family: &'a str,
    pub tokens: TokenTotals,
    pub total: Duration,
    pub upstream: Duration,
    pub queued: Duration,
    pub first_byte: Option<Duration>,
    pub failovers: &'a [&'static str],
}

/// Handles of one account.
struct AccountHandles {
    provider: &'static str,
    name: Arc<str>,
    tokens: [Counter; 4],
    upstream: Histogram,
    first_token: Histogram,
    /// Requests by (status, model family): a handful per account.
    requests: Mutex<Vec<(u16, Arc<str>, Counter)>>,
    refreshes_ok: Counter,
    refreshes_failed: Counter,
}

/// Handles of one provider's pool.
struct PoolHandles {
    total: Histogram,
    overhead: Histogram,
    queue_wait: Histogram,
    failovers: Mutex<Vec<(&'static str, Counter)>>,
}

type AccountsOf = HashMap<Box<str>, Arc<AccountHandles>>;

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// By provider, then account name.
    accounts: RwLock<HashMap<&'static str, AccountsOf>>,
    pools: RwLock<HashMap<&'static str, Arc<PoolHandles>>>,
    log_dropped: Counter,
    log_written: Counter,
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect::<Vec<_>>(),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let built = builder
            .set_buckets_for_metric(
                Matcher::Full("sluice_overhead_seconds".into()),
                OVERHEAD_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("sluice_queue_wait_seconds".into()),
                    WAIT_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            });
        // The bucket lists are constants and not empty, so this never fails; fall back to
        // summaries rather than give up on metrics if it ever did.
        let recorder = built
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let log_dropped = recorder.register_counter(
            &Key::from_static_name("sluice_request_log_dropped_total"),
            &METADATA,
        );
        let log_written = recorder.register_counter(
            &Key::from_static_name("sluice_request_log_written_total"),
            &METADATA,
        );
        Metrics {
            recorder,
            handle,
            accounts: RwLock::new(HashMap::new()),
            pools: RwLock::new(HashMap::new()),
            log_dropped,
            log_written,
        }
    }

    fn account(&self, provider: &'static str, name: &str) -> Arc<AccountHandles> {
        if let Some(found) = self.accounts.read().get(provider).and_then(|m| m.get(name)) {
            return found.clone();
        }
        let labels = [("provider", provider), ("account", name)];
        let kinds = ["input", "output", "cache_creation", "cache_read"];
        let tokens = kinds.map(|kind| {
            self.recorder.register_counter(
                &key(
                    "sluice_tokens_total",
                    &[("provider", provider), ("account", name), ("kind", kind)],
                ),
                &METADATA,
            )
        });
        let refreshes = |result: &str| {
            self.recorder.register_counter(
                &key(
                    "sluice_token_refreshes_total",
                    &[
                        ("provider", provider),
                        ("account", name),
                        ("result", result),
                    ],
                ),
                &METADATA,
            )
        };
        let handles = Arc::new(AccountHandles {
            provider,
            name: Arc::from(name),
            tokens,
            upstream: self
                .recorder
                .register_histogram(&key("sluice_upstream_duration_seconds", &labels), &METADATA),
            first_token: self.recorder.register_histogram(
                &key("sluice_time_to_first_token_seconds", &labels),
                &METADATA,
            ),
            requests: Mutex::new(Vec::new()),
            refreshes_ok: refreshes("ok"),
            refreshes_failed: refreshes("failed"),
        });
        self.accounts
            .write()
            .entry(provider)
            .or_default()
            .entry(Box::from(name))
            .or_insert(handles)
            .clone()
    }

    fn pool(&self, provider: &'static str) -> Arc<PoolHandles> {
        if let Some(found) = self.pools.read().get(provider) {
            return found.clone();
        }
        let labels = [("provider", provider)];
        let handles = Arc::new(PoolHandles {
            total: self
                .recorder
                .register_histogram(&key("sluice_request_duration_seconds", &labels), &METADATA),
            overhead: self
                .recorder
                .register_histogram(&key("sluice_overhead_seconds", &labels), &METADATA),
            queue_wait: self
                .recorder
                .register_histogram(&key("sluice_queue_wait_seconds", &labels), &METADATA),
            failovers: Mutex::new(Vec::new()),
        });
        self.pools
            .write()
            .entry(provider)
            .or_insert(handles)
            .clone()
    }

    /// Count a finished request.
    pub fn request(&self, sample: &RequestSample<'_>) {
        let account = self.account(sample.provider, sample.account.unwrap_or(NO_ACCOUNT));
        account.count_request(&self.recorder, sample.status, sample.family);
        let TokenTotals {
            input,
            output,
            cache_creation,
            cache_read,
        } = sample.tokens;
        for (counter, value) in
            account
                .tokens
                .iter()
                .zip([input, output, cache_creation, cache_read])
        {
            if value > 0 {
                counter.increment(value);
            }
        }
        if !sample.upstream.is_zero() {
            account.upstream.record(sample.upstream.as_secs_f64());
        }
        if let Some(first) = sample.first_byte {
            account.first_token.record(first.as_secs_f64());
        }

        let pool = self.pool(sample.provider);
        pool.total.record(sample.total.as_secs_f64());
        let own = sample
            .total
            .saturating_sub(sample.upstream)
            .saturating_sub(sample.queued);
        pool.overhead.record(own.as_secs_f64());
        if !sample.queued.is_zero() {
            pool.queue_wait.record(sample.queued.as_secs_f64());
        }
        if !sample.failovers.is_empty() {
            let mut failovers = pool.failovers.lock();
            for reason in sample.failovers {
                let counter = match failovers.iter().find(|(r, _)| r == reason) {
                    Some((_, counter)) => counter.clone(),
                    None => {
                        let counter = self.recorder.register_counter(
                            &key(
                                "sluice_failovers_total",
                                &[("provider", sample.provider), ("reason", reason)],
                            ),
                            &METADATA,
                        );
                        failovers.push((reason, counter.clone()));
                        counter
                    }
                };
                counter.increment(1);
            }
        }
    }

    /// Count a token refresh that ended.
    pub fn token_refresh(&self, provider: &'static str, account: &str, ok: bool) {
        let handles = self.account(provider, account);
        if ok {
            handles.refreshes_ok.increment(1);
        } else {
            handles.refreshes_failed.increment(1);
        }
    }

    pub fn log_dropped(&self) {
        self.log_dropped.increment(1);
    }

    pub fn log_written(&self, rows: u64) {
        self.log_written.increment(rows);
    }

    /// Fold recorded histogram samples into their buckets (bounded memory between scrapes).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The whole exposition: recorded events, then the pools' live state.
    pub fn render(&self, app: &AppState) -> String {
        let mut out = self.handle.render();
        render_state(app, &mut out);
        out
    }
}

impl AccountHandles {
    fn count_request(&self, recorder: &PrometheusRecorder, status: u16, family: &str) {
        let mut requests = self.requests.lock();
        if let Some((_, _, counter)) = requests
            .iter()
            .find(|(s, f, _)| *s == status && &**f == family)
        {
            counter.increment(1);
            return;
        }
        let counter = recorder.register_counter(
            &key(
                "sluice_requests_total",
                &[
                    ("provider", self.provider),
                    ("account", &self.name),
                    ("status", &status.to_string()),
                    ("model", family),
                ],
            ),
            &METADATA,
        );
        counter.increment(1);
        requests.push((status, Arc::from(family), counter));
    }
}

fn describe(recorder: &PrometheusRecorder) {
    let counters: &[(&'static str, &'static str)] = &[
        (
            "sluice_requests_total",
            "Requests finished, by account, status and model family.",
        ),
        ("sluice_tokens_total", "Tokens served, by account and kind."),
        (
            "sluice_failovers_total",
            "Attempts that moved on to another account, by reason.",
        ),
        (
            "sluice_token_refreshes_total",
            "OAuth token refreshes, by account and result.",
        ),
        (
            "sluice_request_log_dropped_total",
            "Request-log rows dropped because the writer fell behind.",
        ),
        (
            "sluice_request_log_written_total",
            "Request-log rows written to the store.",
        ),
    ];
    for (name, help) in counters {
        recorder.describe_counter(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }
    let histograms: &[(&'static str, &'static str)] = &[
        (
            "sluice_request_duration_seconds",
            "Whole requests as the client saw them, streams to their end.",
        ),
        (
            "sluice_upstream_duration_seconds",
            "Time spent waiting on and streaming from the upstream.",
        ),
        (
            "sluice_overhead_seconds",
            "sluice's own time per request: total minus upstream time minus queue wait.",
        ),
        (
            "sluice_time_to_first_token_seconds",
            "Time until the first byte of the answer reached the client.",
        ),
        (
            "sluice_queue_wait_seconds",
            "Time requests waited in the admission queue (only those that waited).",
        ),
    ];
    for (name, help) in histograms {
        recorder.describe_histogram(
            KeyName::from_const_str(name),
            Some(Unit::Seconds),
            SharedString::const_str(help),
        );
    }
}

/// The pools' live state in the text format, read from scheduler snapshots.
fn render_state(app: &AppState, out: &mut String) {
    let mut gauges = GaugeWriter::new(out);
    gauges.family("sluice_in_flight", "Requests in flight, by account.");
    let pools: Vec<_> = app
        .pools()
        .map(|p| (p.provider.as_str(), p.snapshot()))
        .collect();
    for (provider, snapshot) in &pools {
        for account in &snapshot.accounts {
            gauges.sample(
                &[("provider", provider), ("account", &account.name)],
                f64::from(account.in_flight),
            );
        }
    }
    gauges.family(
        "sluice_queue_length",
        "Requests waiting in the admission queue.",
    );
    for (provider, snapshot) in &pools {
        gauges.sample(&[("provider", provider)], snapshot.scheduler.queued as f64);
    }
    gauges.family(
        "sluice_upstream_breaker_open",
        "1 while the pool-wide breaker holds requests.",
    );
    for (provider, snapshot) in &pools {
        let open = snapshot.scheduler.breaker.is_some();
        gauges.sample(&[("provider", provider)], if open { 1.0 } else { 0.0 });
    }
    gauges.family(
        "sluice_account_state",
        "1 for the state each account is in, 0 for the others.",
    );
    for (provider, snapshot) in &pools {
        for account in &snapshot.accounts {
            for state in ACCOUNT_STATES {
                let value = if account.state == *state { 1.0 } else { 0.0 };
                gauges.sample(
                    &[
                        ("provider", provider),
                        ("account", &account.name),
                        ("state", state),
                    ],
                    value,
                );
            }
        }
    }
    gauges.family(
        "sluice_account_utilization",
        "Learned use of each account's quota window (0-1): 5h and 7d for subscriptions.",
    );
    for (provider, snapshot) in &pools {
        for account in &snapshot.accounts {
            let windows = [
                ("5h", &account.quota.session),
                ("7d", &account.quota.weekly),
            ];
            for (window, usage) in windows {
                if let Some(usage) = usage {
                    gauges.sample(
                        &[
                            ("provider", provider),
                            ("account", &account.name),
                            ("window", window),
                        ],
                        usage.utilization,
                    );
                }
            }
        }
    }
    gauges.family(
        "sluice_uptime_seconds",
        "Seconds since this sluice started.",
    );
    gauges.sample(&[], app.uptime().as_secs_f64());
}

/// Writes gauge families in the Prometheus text format.
struct GaugeWriter<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> GaugeWriter<'a> {
    fn new(out: &'a mut String) -> Self {
        GaugeWriter { out, name: "" }
    }

    fn family(&mut self, name: &'static str, help: &str) {
        self.name = name;
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"");
                escape_label(value, self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label("a\"b\\c\nd", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_request_lands_in_counters_and_histograms() {
        let metrics = Metrics::new();
        let sample = RequestSample {
            provider: "anthropic",
            account: Some("max"),
            status: 200,
            family: "claude-sonnet-4",
            tokens: TokenTotals {
                input: 10,
                output: 20,
                cache_creation: 0,
                cache_read: 5,
            },
            total: Duration::from_millis(120),
            upstream: Duration::from_millis(100),
            queued: Duration::ZERO,
            first_byte: Some(Duration::from_millis(30)),
            failovers: &["rate_limited"],
        };
        metrics.request(&sample);
        metrics.request(&sample);
        let text = metrics.handle.render();
        assert!(
            text.contains(
                "sluice_requests_total{provider=\"anthropic\",account=\"max\",status=\"200\",model=\"claude-sonnet-4\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "sluice_tokens_total{provider=\"anthropic\",account=\"max\",kind=\"output\"} 40"
        ));
        assert!(
            text.contains(
                "sluice_failovers_total{provider=\"anthropic\",reason=\"rate_limited\"} 2"
            )
        );
        assert!(
            text.contains("sluice_overhead_seconds_bucket{provider=\"anthropic\",le=\"0.025\"} 2")
        );
        assert!(text.contains("# TYPE sluice_upstream_duration_seconds histogram"));
    }
}
