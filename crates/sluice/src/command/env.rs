//! `sluice env`: the shell exports that point Claude Code (and any Anthropic client) at sluice,
//! for `eval "$(sluice env)"` or a shell alias.

use std::process::ExitCode;

use super::ConfigArg;
use super::local::base_url;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Also export a fresh per-terminal session header, so this shell's conversation keeps
    /// its account.
    #[arg(long)]
    session: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    let running = sluice_store::DataDirLock::running(&config.data_dir);
    print!("{}", exports(&config, running.as_ref(), args.session));
    Ok(ExitCode::SUCCESS)
}

/// The environment a client needs to go through sluice.
pub fn client_environment(
    config: &sluice_config::Config,
    running: Option<&sluice_store::RunningServer>,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![("ANTHROPIC_BASE_URL", base_url(config, running))];
    // With client keys configured, the client must present one; Claude Code sends
    // ANTHROPIC_AUTH_TOKEN as a bearer token, which sluice accepts.
    if let Some(key) = config.client_keys.first() {
        vars.push(("ANTHROPIC_AUTH_TOKEN", key.expose().clone()));
    }
    vars
}

/// A new session header for one terminal.
pub fn session_header() -> String {
    format!("x-sluice-session: {}", uuid::Uuid::new_v4())
}

fn exports(
    config: &sluice_config::Config,
    running: Option<&sluice_store::RunningServer>,
    session: bool,
) -> String {
    let mut out = String::from("# Point Claude Code at sluice: eval \"$(sluice env)\"\n");
    for (name, value) in client_environment(config, running) {
        out.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    if session {
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
        let config = sluice_config::Config {
            listen: "127.0.0.1:9999".parse().unwrap(),
            ..sluice_config::Config::default()
        };
        let text = exports(&config, None, true);
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
