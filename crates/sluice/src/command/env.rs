//! `sluice env [claude|codex|gemini]`: the shell exports that point a CLI at sluice, for
//! `eval "$(sluice env codex)"` or a shell alias. What each CLI needs is [`super::clients`]'s.

use std::process::ExitCode;

use super::ConfigArg;
use super::clients::{Client, GeminiMode, Wiring, wire};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The CLI to wire: claude (the default), codex or gemini.
    #[arg(value_enum, default_value = "claude")]
    client: Client,
    /// Claude Code: also export a fresh per-terminal session header, so this shell's
    /// conversation keeps its account.
    #[arg(long)]
    session: bool,
    /// Gemini: code-assist (Google-login accounts) or api-key (Gemini API keys); by default
    /// the kind of account the pool has.
    #[arg(long, value_enum)]
    gemini_mode: Option<GeminiMode>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    let running = sluice_store::DataDirLock::running(&config.data_dir);
    let wiring = wire(args.client, &config, running.as_ref(), args.gemini_mode)?;
    print!("{}", exports(args.client, &wiring, args.session));
    Ok(ExitCode::SUCCESS)
}

/// A new session header for one terminal.
pub fn session_header() -> String {
    format!("x-sluice-session: {}", uuid::Uuid::new_v4())
}

fn exports(client: Client, wiring: &Wiring, session: bool) -> String {
    let command = match client {
        Client::Claude => "sluice env",
        Client::Codex => "sluice env codex",
        Client::Gemini => "sluice env gemini",
    };
    let mut out = format!(
        "# Point {} at sluice: eval \"$({command})\"\n",
        client.name()
    );
    for note in &wiring.notes {
        out.push_str(&format!("# {note}\n"));
    }
    for name in &wiring.unset {
        out.push_str(&format!("unset {name}\n"));
    }
    for (name, value) in &wiring.set {
        out.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    if session && client == Client::Claude {
        out.push_str(&format!(
            "export ANTHROPIC_CUSTOM_HEADERS={}\n",
            shell_quote(&session_header())
        ));
    }
    out
}

/// Single-quote for POSIX shells.
fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_point_at_the_configured_listen_address() {
        let dir = tempfile::tempdir().unwrap();
        let config = sluice_config::Config {
            listen: "127.0.0.1:9999".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            ..sluice_config::Config::default()
        };
        let wiring = wire(Client::Claude, &config, None, None).unwrap();
        let text = exports(Client::Claude, &wiring, true);
        assert!(
            text.contains("export ANTHROPIC_BASE_URL=http://127.0.0.1:9999\n"),
            "{text}"
        );
        assert!(
            text.contains("export ANTHROPIC_CUSTOM_HEADERS='x-sluice-session: "),
            "{text}"
        );
        assert!(!text.contains("ANTHROPIC_AUTH_TOKEN"));
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("http://a:1"), "http://a:1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
