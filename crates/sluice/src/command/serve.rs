//! `sluice serve`: run the proxy with the configured accounts.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use sluice_server::AppState;

use super::ConfigArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = sluice_config::load(args.config.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let _log = crate::logging::init(&config.log.level);
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let listen = listener.local_addr()?;
        let accounts = config.accounts.len();
        let state = AppState::new(config)?;
        tracing::info!(%listen, accounts, "sluice is serving");
        eprintln!("sluice listening on http://{listen} with {accounts} account(s)");
        eprintln!("point Claude Code at it:  export ANTHROPIC_BASE_URL=http://{listen}");
        sluice_server::serve(listener, state, super::shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}
