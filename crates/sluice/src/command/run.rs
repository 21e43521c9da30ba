//! `sluice run -- <claude args>`: start Claude Code wired through sluice.
//!
//! Sets `ANTHROPIC_BASE_URL` (and the client key, when sluice wants one) and a fresh
//! per-terminal session header (`ANTHROPIC_CUSTOM_HEADERS: x-sluice-session: <uuid>`), so the
//! conversation in this terminal keeps its account, then becomes Claude Code (exec): signals,
//! the terminal and the exit status are Claude Code's own. The user's normal `claude` login is
//! not touched.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

use super::ConfigArg;
use super::env::{client_environment, session_header};
use super::local::{http_client, small_runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The Claude Code executable (default: $SLUICE_CLAUDE, else `claude` on PATH).
    #[arg(long, value_name = "PATH")]
    claude: Option<PathBuf>,
    /// Arguments for Claude Code (after `--`).
    #[arg(last = true, value_name = "CLAUDE ARGS")]
    args: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    let running = sluice_store::DataDirLock::running(&config.data_dir);
    let vars = client_environment(&config, running.as_ref());
    let base = vars[0].1.clone();
    if !reachable(&base) {
        bail!(
            "sluice is not answering at {base}; start it first (`sluice serve`, in another terminal or as a service)"
        );
    }
    let program = args
        .claude
        .or_else(|| std::env::var_os("SLUICE_CLAUDE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("claude"));
    let mut command = Command::new(&program);
    command.args(&args.args);
    // Claude Code's own credentials stay out of it: sluice sends the account's.
    command.env_remove("ANTHROPIC_API_KEY");
    for (name, value) in vars {
        command.env(name, value);
    }
    let session = session_header();
    let headers = match std::env::var("ANTHROPIC_CUSTOM_HEADERS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing}\n{session}"),
        _ => session,
    };
    command.env("ANTHROPIC_CUSTOM_HEADERS", headers);
    become_(command, &program)
}

fn reachable(base: &str) -> bool {
    let Ok(client) = http_client() else {
        return false;
    };
    let Ok(runtime) = small_runtime() else {
        return false;
    };
    runtime.block_on(async {
        client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

#[cfg(unix)]
fn become_(mut command: Command, program: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(error).with_context(|| {
        format!(
            "could not start {} (install Claude Code, or pass --claude PATH)",
            program.display()
        )
    })
}

#[cfg(not(unix))]
fn become_(mut command: Command, program: &std::path::Path) -> anyhow::Result<ExitCode> {
    let status = command.status().with_context(|| {
        format!(
            "could not start {} (install Claude Code, or pass --claude PATH)",
            program.display()
        )
    })?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
