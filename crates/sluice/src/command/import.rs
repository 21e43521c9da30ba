//! `sluice import claude [--from PATH] [--name NAME]`: take over Claude Code's login.
//!
//! Reads Claude Code's `~/.claude/.credentials.json` (or `$CLAUDE_CONFIG_DIR`'s), names the
//! account after its profile's email unless `--name`, and stores it like a login. Refresh
//! tokens rotate, so from here on only one of sluice and Claude Code can keep this login
//! alive; the command says so plainly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use sluice_config::Secret;
use sluice_server::accounts::oauth::{self, AccountProfile};
use sluice_store::{OAuthTokens, Profile};

use super::ConfigArg;
use super::local::{Local, exists, http_client, now_ms, small_runtime};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Import Claude Code's login (~/.claude/.credentials.json).
    Claude(ClaudeArgs),
}

#[derive(clap::Args)]
pub struct ClaudeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The credentials file (default: $CLAUDE_CONFIG_DIR/.credentials.json, else
    /// ~/.claude/.credentials.json).
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Name of the account (default: its email).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsFile {
    claude_ai_oauth: Option<ClaudeOAuth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaudeOAuth {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
    subscription_type: Option<String>,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Claude(args) => claude(args),
    }
}

fn default_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join(".credentials.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; pass --from PATH"))?;
    Ok(PathBuf::from(home)
        .join(".claude")
        .join(".credentials.json"))
}

fn claude(args: ClaudeArgs) -> anyhow::Result<ExitCode> {
    let local = Local::open(&args.config)?;
    if let Some(name) = &args.name {
        sluice_config::check_account_name(name).map_err(|e| anyhow!("--name {e}"))?;
    }
    let path = match args.from {
        Some(path) => path,
        None => default_path()?,
    };
    if !exists(&path) {
        let mut message = format!("{} does not exist", path.display());
        if cfg!(target_os = "macos") {
            message.push_str(
                "; on macOS Claude Code keeps its login in the keychain. Export it with\n  \
                 security find-generic-password -s 'Claude Code-credentials' -w > claude-credentials.json\n\
                 and run `sluice import claude --from claude-credentials.json` (then delete that file)",
            );
        } else {
            message.push_str("; log in with `claude` first, or pass --from PATH");
        }
        bail!(message);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let file: CredentialsFile = serde_json::from_str(&text).map_err(|error| {
        // The message itself may quote the file's values (tokens): only say where.
        anyhow!(
            "{} is not a Claude Code credentials file ({:?} error at line {}, column {})",
            path.display(),
            error.classify(),
            error.line(),
            error.column()
        )
    })?;
    let Some(ClaudeOAuth {
        access_token: Some(access_token),
        refresh_token,
        expires_at,
        subscription_type,
    }) = file.claude_ai_oauth
    else {
        bail!(
            "{} has no claudeAiOauth login (an API-key login cannot be imported; use `sluice accounts add-key`)",
            path.display()
        );
    };
    let access_token = Secret::new(access_token);

    let endpoints = local.config.providers.anthropic.clone();
    let client = http_client()?;
    let expired = expires_at.is_some_and(|at| at <= now_ms());
    let looked_up = if expired {
        None
    } else {
        small_runtime()?
            .block_on(oauth::profile(&client, &endpoints, &access_token))
            .ok()
    };
    let profile = match (looked_up, &args.name) {
        (Some(profile), _) => profile,
        (None, Some(_)) => AccountProfile {
            profile: Profile {
                plan: subscription_type.clone(),
                ..Profile::default()
            },
            rate_limit_tier: None,
        },
        (None, None) => bail!(
            "could not read the account's profile to name it (the access token is {}); pass --name",
            if expired { "expired" } else { "not accepted" }
        ),
    };
    let mut profile = profile;
    if profile.profile.plan.is_none() {
        profile.profile.plan = subscription_type;
    }
    let tokens = OAuthTokens {
        access_token,
        refresh_token: refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_at_ms: expires_at,
    };
    let has_refresh = tokens.refresh_token.is_some();
    let saved = super::login::store_login(&local, args.name, tokens, profile)?;
    super::login::report(&local, &saved);
    println!();
    if has_refresh {
        println!(
            "The refresh token now belongs to sluice. Refresh tokens rotate: whichever of sluice and \
             Claude Code refreshes first makes the other's copy useless (the loser needs a new login). \
             From now on use Claude Code through sluice (`sluice run`), or log Claude Code in afresh \
             (`claude` then /login) so it has a login of its own."
        );
    } else {
        println!(
            "The file has no refresh token: sluice can use this access token until it expires, then \
             the account needs `sluice login --name {}`.",
            saved.account.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
