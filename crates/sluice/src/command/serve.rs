//! `sluice serve`: run the proxy with the configured accounts.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use sluice_server::AppState;
use sluice_server::persist::{self, JsonQuotaFile};
use tokio_util::sync::CancellationToken;

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
        let store = Arc::new(JsonQuotaFile::in_data_dir(&config.data_dir));
        let state = AppState::new(config)?;
        persist::restore_from(&state, store.as_ref());
        // Background work, stopped together once serving has drained.
        let background = CancellationToken::new();
        let saver = persist::spawn_saver(
            state.clone(),
            store,
            persist::SAVE_EVERY,
            background.child_token(),
        );
        tracing::info!(%listen, accounts, "sluice is serving");
        eprintln!("sluice listening on http://{listen} with {accounts} account(s)");
        eprintln!("point Claude Code at it:  export ANTHROPIC_BASE_URL=http://{listen}");
        let served = sluice_server::serve(listener, state, super::shutdown_signal()).await;
        background.cancel();
        if saver.await.is_err() {
            tracing::warn!("the quota saver did not finish cleanly");
        }
        served?;
        Ok(ExitCode::SUCCESS)
    })
}
