//! `sluice import claude|codex|gemini [--from PATH] [--name NAME]`: take over a CLI's login.
//!
//! - **claude**: Claude Code's `~/.claude/.credentials.json` (or `$CLAUDE_CONFIG_DIR`'s),
//!   named after its profile's email.
//! - **codex**: the Codex CLI's `~/.codex/auth.json` (or `$CODEX_HOME`'s); the ChatGPT
//!   account id, email and plan are claims of its `id_token`.
//! - **gemini**: the Gemini CLI's `~/.gemini/oauth_creds.json`; the email comes from its
//!   `id_token` (or Google's userinfo), the Code Assist project is looked up.
//!
//! Each is stored like a login (`--name` overrides the email). Claude's and ChatGPT's
//! refresh tokens rotate, so from here on only one of sluice and the CLI can keep that login
//! alive; the command says so plainly. Google's do not rotate: sharing is harmless.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use sluice_config::Secret;
use sluice_server::accounts::oauth::{self, AccountProfile, TokenGrant};
use sluice_server::accounts::{chatgpt, google};
use sluice_store::{OAuthTokens, Profile};

use super::ConfigArg;
use super::local::{Local, exists, http_client, now_ms, small_runtime};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Import Claude Code's login (~/.claude/.credentials.json).
    Claude(ClaudeArgs),
    /// Import the Codex CLI's ChatGPT login (~/.codex/auth.json).
    Codex(ImportArgs),
    /// Import the Gemini CLI's Google login (~/.gemini/oauth_creds.json).
    Gemini(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The credentials file (default: the CLI's own).
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Name of the account (default: its email).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
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
        Command::Codex(args) => codex(args),
        Command::Gemini(args) => gemini(args),
    }
}

/// `$VAR/file` when `VAR` is set, else `~/dir/file`.
fn cli_file(var: &str, dir: &str, file: &str) -> anyhow::Result<PathBuf> {
    if let Some(base) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(base).join(file));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; pass --from PATH"))?;
    Ok(PathBuf::from(home).join(dir).join(file))
}

fn default_path() -> anyhow::Result<PathBuf> {
    cli_file("CLAUDE_CONFIG_DIR", ".claude", ".credentials.json")
}

/// Read and parse a CLI's credentials file without ever quoting its values in an error.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
    hint: &str,
) -> anyhow::Result<T> {
    if !exists(path) {
        bail!(
            "{} does not exist; {hint}, or pass --from PATH",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        // The message itself may quote the file's values (tokens): only say where.
        anyhow!(
            "{} is not {what} ({:?} error at line {}, column {})",
            path.display(),
            error.classify(),
            error.line(),
            error.column()
        )
    })
}

#[derive(Deserialize)]
struct CodexAuthFile {
    #[serde(rename = "OPENAI_API_KEY")]
    api_key: Option<String>,
    tokens: Option<CodexTokens>,
}

#[derive(Deserialize)]
struct CodexTokens {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    account_id: Option<String>,
}

fn codex(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let local = Local::open(&args.config)?;
    if let Some(name) = &args.name {
        sluice_config::check_account_name(name).map_err(|e| anyhow!("--name {e}"))?;
    }
    let path = match args.from {
        Some(path) => path,
        None => cli_file("CODEX_HOME", ".codex", "auth.json")?,
    };
    let file: CodexAuthFile = read_json(
        &path,
        "a Codex auth.json",
        "log in with `codex login` first",
    )?;
    let Some(CodexTokens {
        id_token,
        access_token: Some(access_token),
        refresh_token,
        account_id,
    }) = file.tokens
    else {
        if file.api_key.is_some() {
            bail!(
                "{} holds an OpenAI API key, not a ChatGPT login; add the key with `sluice accounts add-key NAME --provider openai`",
                path.display()
            );
        }
        bail!("{} has no ChatGPT login (tokens)", path.display());
    };
    let access_token = Secret::new(access_token);
    let id_token = id_token.filter(|t| !t.is_empty()).map(Secret::new);
    let mut identity = id_token
        .as_ref()
        .and_then(chatgpt::identity_from_token)
        .or_else(|| chatgpt::identity_from_token(&access_token))
        .unwrap_or_default();
    if let Some(account_id) = account_id.filter(|a| !a.is_empty()) {
        identity.account_id = Some(account_id);
    }
    let expires_in = chatgpt::token_expiry_ms(&access_token)
        .map(|at| std::time::Duration::from_millis((at - now_ms()).max(0) as u64));
    let grant = TokenGrant {
        access_token,
        refresh_token: refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in,
        id_token,
    };
    let has_refresh = grant.refresh_token.is_some();
    let (tokens, profile, weight) = super::login::codex_login(grant, identity)?;
    let saved = super::login::store_login(&local, "codex", args.name, tokens, profile, weight)?;
    super::login::report(&local, &saved);
    println!();
    if has_refresh {
        println!(
            "The refresh token now belongs to sluice. ChatGPT refresh tokens rotate, and presenting a spent \
             one revokes the login: whichever of sluice and the Codex CLI refreshes first leaves the other \
             locked out. From now on use Codex through sluice (`sluice run codex`), or log the CLI in \
             afresh (`codex login`) so it has a login of its own."
        );
    } else {
        println!(
            "The file has no refresh token: sluice can use this access token until it expires, then the \
             account needs `sluice login --provider codex --name {}`.",
            saved.account.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct GeminiCredsFile {
    access_token: Option<String>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    /// Milliseconds since the epoch.
    expiry_date: Option<f64>,
}

fn gemini(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let local = Local::open(&args.config)?;
    if let Some(name) = &args.name {
        sluice_config::check_account_name(name).map_err(|e| anyhow!("--name {e}"))?;
    }
    let path = match args.from {
        Some(path) => path,
        // GEMINI_CLI_HOME names the home the CLI's `.gemini` directory lives in.
        None => cli_file("GEMINI_CLI_HOME", "", ".gemini/oauth_creds.json")?,
    };
    let file: GeminiCredsFile = read_json(
        &path,
        "a Gemini CLI oauth_creds.json",
        "log in with `gemini` (Login with Google) first",
    )?;
    let Some(access_token) = file.access_token.filter(|t| !t.is_empty()) else {
        bail!("{} has no Google login (access_token)", path.display());
    };
    let access_token = Secret::new(access_token);
    let expires_at_ms = file
        .expiry_date
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| ms as i64);
    let expired = expires_at_ms.is_some_and(|at| at <= now_ms());
    let client = http_client()?;
    let mut email = file
        .id_token
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .as_ref()
        .and_then(google::email_from_id_token);
    let profile = small_runtime()?.block_on(async {
        if email.is_none() && !expired {
            email = google::email(&client, &local.config.providers.gemini, &access_token)
                .await
                .ok()
                .flatten();
        }
        if expired {
            // Code Assist would refuse the expired token; the project is found on first use.
            Profile {
                email: email.clone(),
                account_uuid: email.clone(),
                ..Profile::default()
            }
        } else {
            super::login::gemini_profile(&client, &local.config, &access_token, email.clone()).await
        }
    });
    if profile.email.is_none() && args.name.is_none() {
        bail!("could not tell which Google account this is; pass --name");
    }
    let tokens = OAuthTokens {
        access_token,
        refresh_token: file
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        expires_at_ms,
    };
    let has_refresh = tokens.refresh_token.is_some();
    let saved = super::login::store_login(&local, "gemini", args.name, tokens, profile, 1)?;
    super::login::report(&local, &saved);
    if !has_refresh {
        println!(
            "\nThe file has no refresh token: sluice can use this access token until it expires (an hour at most), \
             then the account needs `sluice login --provider gemini --name {}`.",
            saved.account.name
        );
    } else {
        println!(
            "\nGoogle refresh tokens do not rotate, so the Gemini CLI keeps working with its own copy of this login."
        );
    }
    Ok(ExitCode::SUCCESS)
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
    let weight = profile.weight();
    let saved = super::login::store_login(
        &local,
        "anthropic",
        args.name,
        tokens,
        profile.profile,
        weight,
    )?;
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
