//! `sluice serve`: run the proxy with the configured accounts and those in the store.
//!
//! Takes the data directory's lock (one serving sluice per data directory: two would refresh
//! the same rotating tokens), opens the store, starts the account upkeep tasks, and serves
//! until SIGINT or SIGTERM: then it stops accepting, lets requests and streams in flight
//! finish (up to `shutdown.drain`), lets token refreshes under way commit, saves what it
//! learned and exits 0. SIGHUP reloads the config file. In a terminal it shows the live
//! dashboard (`q` quits the same way); `--no-tui`, or no terminal, gives plain log lines.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sluice_server::AppState;
use sluice_store::{DataDirLock, SqliteStore};
use tokio_util::sync::CancellationToken;

use super::ConfigArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Plain log lines instead of the live terminal dashboard.
    #[arg(long)]
    no_tui: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = sluice_config::load(args.config.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    // Before binding the address or opening the store: neither should happen for a
    // configuration that will be refused anyway.
    sluice_server::state::refuse_exposure(&config)?;
    let mut screen = crate::screen::Screen::init(&config.log.level, args.no_tui);
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let listen = listener.local_addr()?;
        let _lock = DataDirLock::acquire(&config.data_dir, listen)?;
        let store = SqliteStore::open(&config.data_dir)?;
        let drain = config.shutdown.drain;
        let state = AppState::with_store(config, Arc::new(store))?;
        let accounts = state.directory().iter().count();
        let cancel = CancellationToken::new();
        let tasks = sluice_server::accounts::spawn_tasks(&state, cancel.clone());
        let observe = sluice_server::observe::spawn_tasks(&state, cancel.clone());
        let hangups = tokio::spawn(reload_on_hangup(state.clone(), cancel.clone()));
        tracing::info!(%listen, accounts, "sluice is serving");
        if !screen.is_dashboard() {
            eprintln!("sluice listening on http://{listen} with {accounts} account(s)");
            eprintln!("point Claude Code at it:  eval \"$(sluice env)\"   or   sluice run");
            eprintln!("dashboard: http://{listen}/dashboard");
        }
        let quit = CancellationToken::new();
        screen.start(&state, quit.clone());
        sluice_server::serve_with_drain(listener, state.clone(), super::quit_signal(quit), drain)
            .await?;
        cancel.cancel();
        let _ = hangups.await;
        observe.shutdown().await;
        tasks.shutdown(&state).await;
        screen.finish();
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reload the config file on every SIGHUP (what `sluice reload` sends).
async fn reload_on_hangup(state: AppState, cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the config file watcher still reloads");
            return;
        };
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    sluice_server::accounts::reload_and_log(&state, "SIGHUP").await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    cancel.cancelled().await;
}
