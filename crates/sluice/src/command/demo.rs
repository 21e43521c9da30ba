//! `sluice demo`: a live pool with no credentials. Simulated accounts of mixed tiers sit
//! behind a built-in simulated Anthropic upstream (real wire format, quota headers that fill
//! up and reset on a short clock, occasional 429/529/500), sluice serves them on `--listen`,
//! and an optional load generator drives Claude-Code-like traffic through it. Real clients
//! can be pointed at it too.
//!
//! The accounts live in a store in a temporary data directory (deleted at exit), as if added
//! with `sluice accounts add-key` or `sluice login`: the request log, `sluice usage`-style
//! charts and the dashboards' account actions all work as they do for `sluice serve`. In a
//! terminal the live dashboard shows the pool; `--no-tui` prints a status table instead.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_config::{Config, Secret};
use sluice_fake::{FakeAnthropic, FakeConfig, LoadGen, LoadGenConfig, SimAccount, SimStyle};
use sluice_server::AppState;
use sluice_store::{NewAccount, OAuthTokens, Profile, SqliteStore, Store, StoredCredential};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    /// Address for sluice to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    /// Number of simulated accounts.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    accounts: u32,
    /// Requests per second from the built-in load generator (0 = none; point your own client
    /// at sluice instead).
    #[arg(long, default_value_t = 4.0, value_name = "RPS")]
    traffic: f64,
    /// Seed for the simulated faults and token counts.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Seconds between status tables printed to stderr without the dashboard (0 = never).
    #[arg(long, default_value_t = 5)]
    report_every: u64,
    /// Plain output instead of the live terminal dashboard.
    #[arg(long)]
    no_tui: bool,
}

/// Tiers cycled through by the simulated accounts: (name, plan, weight, header style).
const TIERS: [(&str, &str, u32, SimStyle); 4] = [
    ("max20", "max", 20, SimStyle::Subscription),
    ("pro", "pro", 1, SimStyle::Subscription),
    ("max5", "max", 5, SimStyle::Subscription),
    ("api", "", 5, SimStyle::ApiKey),
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.traffic.is_finite() && args.traffic >= 0.0,
        "--traffic must be a number of requests per second, 0 or more"
    );
    let mut screen = crate::screen::Screen::init("info", args.no_tui);
    let runtime = super::runtime()?;
    runtime.block_on(demo(args, &mut screen))
}

async fn demo(args: Args, screen: &mut crate::screen::Screen) -> anyhow::Result<ExitCode> {
    let fake = FakeAnthropic::start(FakeConfig::default())
        .context("could not start the simulated upstream")?;
    let data_dir = tempfile::Builder::new()
        .prefix("sluice-demo-")
        .tempdir()
        .context("could not create a temporary data directory")?;
    let mut config = Config {
        listen: args.listen,
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    config.providers.anthropic.base_url =
        fake.base_url().parse().context("simulated upstream URL")?;
    // Every other Anthropic URL would be the real one: nothing here may call it.
    config.oauth.usage_probe_interval = Duration::ZERO;
    let store = SqliteStore::open(data_dir.path())?;
    for i in 0..args.accounts {
        let (tier, plan, weight, style) = TIERS[i as usize % TIERS.len()];
        let name = format!("demo-{tier}-{}", i + 1);
        let key = format!("sk-ant-demo-{}-{}", tier, i + 1);
        fake.add_account(&key);
        fake.set_sim(
            &key,
            simulated(weight, style, args.seed.wrapping_add(u64::from(i))),
        );
        let credential = match style {
            SimStyle::ApiKey => StoredCredential::ApiKey(Secret::from(key)),
            SimStyle::Subscription => {
                fake.set_oauth(&key, true);
                StoredCredential::OAuth(OAuthTokens {
                    access_token: Secret::from(key),
                    refresh_token: None,
                    expires_at_ms: None,
                })
            }
        };
        store.add_account(NewAccount {
            name,
            provider: "anthropic".to_owned(),
            credential,
            priority: 0,
            weight,
            enabled: true,
            profile: Profile {
                plan: (!plan.is_empty()).then(|| plan.to_owned()),
                ..Profile::default()
            },
        })?;
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "could not listen on {} (try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let listen = listener.local_addr()?;
    config.listen = listen;
    let state = AppState::with_store(config, Arc::new(store))?;
    let stop = CancellationToken::new();
    let cancel = CancellationToken::new();
    let tasks = sluice_server::accounts::spawn_tasks(&state, cancel.clone());
    let observe = sluice_server::observe::spawn_tasks(&state, cancel.clone());

    if !screen.is_dashboard() {
        eprintln!(
            "sluice demo: {} simulated accounts behind http://{listen}",
            args.accounts
        );
        eprintln!(
            "  simulated upstream: {} (quota windows: 5 min / 35 min)",
            fake.base_url()
        );
        eprintln!("  dashboard: http://{listen}/dashboard");
        eprintln!(
            "  try it:   curl -N http://{listen}/v1/messages -H 'content-type: application/json' \\"
        );
        eprintln!(
            "              -d '{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'"
        );
        eprintln!("  status:   curl http://{listen}/status   ·   Ctrl-C to stop");
    }
    tracing::info!(%listen, accounts = args.accounts, "sluice demo is serving (dashboard at /dashboard)");

    let traffic = if args.traffic > 0.0 {
        Some(LoadGen::spawn(
            &format!("http://{listen}"),
            LoadGenConfig {
                rps: args.traffic,
                seed: args.seed,
                ..LoadGenConfig::default()
            },
            stop.clone(),
        )?)
    } else {
        None
    };

    let reporter = {
        let state = state.clone();
        let stop = stop.clone();
        let every = if screen.is_dashboard() {
            Duration::ZERO
        } else {
            Duration::from_secs(args.report_every)
        };
        tokio::spawn(async move {
            if every.is_zero() {
                return;
            }
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {
                        let status = serde_json::to_value(sluice_server::status::status(&state)).unwrap_or_default();
                        eprint!("\n{}", super::status::render(&status));
                    }
                }
            }
        })
    };

    let quit = CancellationToken::new();
    screen.start(&state, quit.clone());
    let shutdown = {
        let stop = stop.clone();
        async move {
            super::quit_signal(quit).await;
            stop.cancel();
        }
    };
    sluice_server::serve(listener, state.clone(), shutdown).await?;
    reporter.abort();
    cancel.cancel();
    observe.shutdown().await;
    tasks.shutdown(&state).await;
    screen.finish();
    if let Some(traffic) = traffic {
        let stats = traffic.snapshot();
        eprintln!(
            "load generator: {} sent, {} ok, {} failed ({} error statuses, {} stream errors)",
            stats.sent, stats.ok, stats.failed, stats.error_statuses, stats.stream_errors
        );
    }
    fake.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// A simulated account whose quota scales with its tier weight, small enough that limits,
/// resets and failover show within minutes.
fn simulated(weight: u32, style: SimStyle, seed: u64) -> SimAccount {
    SimAccount {
        capacity_5h_tokens: 60_000 * u64::from(weight),
        capacity_7d_tokens: 300_000 * u64::from(weight),
        fail_529_probability: 0.02,
        fail_500_probability: 0.01,
        stream_error_probability: 0.005,
        style,
        seed,
        ..SimAccount::default()
    }
}
