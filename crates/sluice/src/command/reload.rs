//! `sluice reload`: check the config file, then ask the running sluice to apply it (SIGHUP).
//! A file with a mistake is reported here and never sent: the running sluice keeps serving
//! the configuration it has.

use std::process::ExitCode;

use anyhow::bail;

use super::ConfigArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match sluice_config::load(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            eprintln!("not reloading: the running sluice keeps its current configuration");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(server) = sluice_store::DataDirLock::running(&config.data_dir) else {
        bail!(
            "no sluice is serving from {}; nothing to reload",
            config.data_dir.display()
        );
    };
    signal_reload(server.pid)?;
    println!(
        "Asked sluice (pid {}) to reload its configuration; it logs what changed, or why it refused.",
        server.pid
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn signal_reload(pid: u32) -> anyhow::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        bail!("the lock file names an impossible pid {pid}");
    };
    kill_process(pid, Signal::HUP)
        .map_err(|error| anyhow::anyhow!("could not signal sluice (pid {pid:?}): {error}"))
}

#[cfg(not(unix))]
fn signal_reload(_pid: u32) -> anyhow::Result<()> {
    bail!("reloading a running sluice needs SIGHUP, which this platform lacks; restart it instead")
}
