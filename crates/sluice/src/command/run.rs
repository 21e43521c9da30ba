//! `sluice run [claude|codex|gemini] -- <its args>`: start a CLI wired through sluice.
//!
//! Sets what [`super::clients`] says the CLI needs (for Claude Code also a fresh
//! per-terminal session header, `ANTHROPIC_CUSTOM_HEADERS: x-sluice-session: <uuid>`, so
//! the conversation in this terminal keeps its account), clears the user's own credential
//! variables, then becomes the CLI (exec): signals, the terminal and the exit status are the
//! CLI's own. The user's own logins are not touched.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

use super::ConfigArg;
use super::clients::{Client, GeminiMode, wire};
use super::env::session_header;
use super::local::{base_url, http_client, small_runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The CLI to start: claude (the default), codex or gemini.
    #[arg(value_enum, default_value = "claude")]
    client: Client,
    /// The CLI's executable (default: $SLUICE_CLAUDE / $SLUICE_CODEX / $SLUICE_GEMINI, else
    /// `claude` / `codex` / `gemini` on PATH).
    #[arg(long, alias = "claude", value_name = "PATH")]
    program: Option<PathBuf>,
    /// Gemini: code-assist or api-key (default: the kind of account the pool has).
    #[arg(long, value_enum)]
    gemini_mode: Option<GeminiMode>,
    /// Arguments for the CLI (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    let running = sluice_store::DataDirLock::running(&config.data_dir);
    let base = base_url(&config, running.as_ref());
    if !reachable(&base) {
        bail!(
            "sluice is not answering at {base}; start it first (`sluice serve`, in another terminal or as a service)"
        );
    }
    let wiring = wire(args.client, &config, running.as_ref(), args.gemini_mode)?;
    let program = args.program.unwrap_or_else(|| args.client.program());
    let mut command = Command::new(&program);
    command.args(&args.args);
    for name in &wiring.unset {
        command.env_remove(name);
    }
    for (name, value) in &wiring.set {
        command.env(name, value);
    }
    if args.client == Client::Claude {
        let session = session_header();
        let headers = match std::env::var("ANTHROPIC_CUSTOM_HEADERS") {
            Ok(existing) if !existing.trim().is_empty() => format!("{existing}\n{session}"),
            _ => session,
        };
        command.env("ANTHROPIC_CUSTOM_HEADERS", headers);
    }
    for note in &wiring.notes {
        eprintln!("sluice: {note}");
    }
    become_(command, &program, args.client)
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
fn become_(
    mut command: Command,
    program: &std::path::Path,
    client: Client,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(error).with_context(|| {
        format!(
            "could not start {} (install {}, or pass --program PATH)",
            program.display(),
            client.name()
        )
    })
}

#[cfg(not(unix))]
fn become_(
    mut command: Command,
    program: &std::path::Path,
    client: Client,
) -> anyhow::Result<ExitCode> {
    let status = command.status().with_context(|| {
        format!(
            "could not start {} (install {}, or pass --program PATH)",
            program.display(),
            client.name()
        )
    })?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
