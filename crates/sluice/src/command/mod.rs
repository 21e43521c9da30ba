//! The subcommands and their dispatch.

mod accounts;
mod clients;
mod config;
mod demo;
mod env;
mod import;
mod local;
mod login;
mod reload;
mod run;
mod serve;
mod simulate;
mod status;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Pool many AI-coding accounts behind one local endpoint"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(serve::Args),
    /// Run sluice against simulated accounts (no credentials needed), optionally with traffic.
    Demo(demo::Args),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(config::Command),
    /// Show a running sluice's pool.
    Status(status::Args),
    /// Compare routing strategies on a simulated pool (virtual clock, same scheduler).
    Simulate(simulate::Args),
    /// Add (or renew) a subscription (Claude, ChatGPT for Codex, Google for Gemini) by
    /// logging in with a browser.
    Login(login::Args),
    /// Take over an existing login (Claude Code's, the Codex CLI's, the Gemini CLI's).
    #[command(subcommand)]
    Import(import::Command),
    /// List and manage accounts (works whether or not sluice is running).
    Accounts(accounts::Args),
    /// Check the config file and make the running sluice apply it.
    Reload(reload::Args),
    /// Print the shell exports that point a CLI (claude, codex, gemini) at sluice.
    Env(env::Args),
    /// Start a CLI wired through sluice: `sluice run [claude|codex|gemini] -- [its args]`.
    Run(run::Args),
    /// What the pool used and what it would have cost, from the request log.
    Usage(usage::Args),
}

/// Where `--config` points, shared by subcommands that read the configuration.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArg {
    /// Config file (default: $SLUICE_CONFIG, else ~/.config/sluice/config.toml).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Config(command) => config::run(command),
        Command::Status(args) => status::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Login(args) => login::run(args),
        Command::Import(command) => import::run(command),
        Command::Accounts(args) => accounts::run(args),
        Command::Reload(args) => reload::run(args),
        Command::Env(args) => env::run(args),
        Command::Run(args) => run::run(args),
        Command::Usage(args) => usage::run(args),
    }
}

/// A multi-threaded runtime for the long-running subcommands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()?)
}

/// Resolve when the process is asked to stop or the user quits from the dashboard; either
/// way `quit` is cancelled then, so the dashboard shows the drain.
pub async fn quit_signal(quit: tokio_util::sync::CancellationToken) {
    tokio::select! {
        () = shutdown_signal() => {}
        () = quit.cancelled() => {}
    }
    quit.cancel();
}

/// Resolve when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
