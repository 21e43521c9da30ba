//! `sluice login [--provider anthropic|codex|gemini] [--name NAME]`: add (or renew) a
//! subscription with an OAuth PKCE login in a browser.
//!
//! Prints the login URL and opens a browser when there is one. The code comes back either
//! through a one-shot listener (the browser is redirected to it) or pasted at the prompt.
//! Per provider:
//! - **anthropic** (Claude): a listener on a free `localhost` port; without one the hosted
//!   page shows `code#state` to paste. The profile names the account (email) and its plan.
//! - **codex** (ChatGPT): the Codex CLI's client only returns to
//!   `http://localhost:1455/auth/callback` (`[providers.codex] redirect_uri`), so sluice
//!   listens there; if the port is taken, paste the address the browser ended on. The
//!   `id_token`'s claims name the account: email, ChatGPT account id, plan.
//! - **gemini** (Google): a listener on a free `127.0.0.1` port; without one Google's page
//!   shows a code to paste. The email comes from the `id_token` (or userinfo), and the
//!   account's Code Assist project is discovered and remembered.
//!
//! The store gets the account — a second login of the same user updates it instead of adding
//! another. A running sluice picks it up within a second.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sluice_config::{Config, Secret};
use sluice_server::accounts::oauth::{self, AccountProfile, Pkce, TokenGrant, TokenServer};
use sluice_server::accounts::{chatgpt, google};
use sluice_store::{Login, OAuthTokens, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::ConfigArg;
use super::local::{Local, http_client, now_ms, small_runtime};

/// The providers whose subscriptions `sluice login` adds.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginProvider {
    /// A Claude subscription (Claude Code).
    #[value(alias = "claude")]
    Anthropic,
    /// A ChatGPT subscription (Codex CLI).
    #[value(alias = "chatgpt", alias = "openai")]
    Codex,
    /// A Google login (Gemini CLI, Code Assist).
    #[value(alias = "google")]
    Gemini,
}

impl LoginProvider {
    fn name(self) -> &'static str {
        match self {
            LoginProvider::Anthropic => "anthropic",
            LoginProvider::Codex => "codex",
            LoginProvider::Gemini => "gemini",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Whose subscription: anthropic (Claude), codex (ChatGPT), gemini (Google).
    #[arg(long, value_enum, default_value = "anthropic")]
    provider: LoginProvider,
    /// Name of the account to add or renew (default: the account's email).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Do not open a browser or listen for its redirect: paste the code the page shows.
    #[arg(long)]
    no_browser: bool,
}

/// How long a login may take before sluice gives up waiting.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let local = Local::open(&args.config)?;
    if let Some(name) = &args.name {
        sluice_config::check_account_name(name).map_err(|e| anyhow!("--name {e}"))?;
    }
    let client = http_client()?;
    let runtime = small_runtime()?;
    let (tokens, profile, weight) = match args.provider {
        LoginProvider::Anthropic => runtime.block_on(anthropic(
            &client,
            &local.config,
            args.name.is_some(),
            args.no_browser,
        ))?,
        LoginProvider::Codex => runtime.block_on(codex(&client, &local.config, args.no_browser))?,
        LoginProvider::Gemini => {
            runtime.block_on(gemini(&client, &local.config, args.no_browser))?
        }
    };
    let saved = store_login(
        &local,
        args.provider.name(),
        args.name,
        tokens,
        profile,
        weight,
    )?;
    report(&local, &saved);
    Ok(ExitCode::SUCCESS)
}

async fn anthropic(
    client: &reqwest::Client,
    config: &Config,
    named: bool,
    no_browser: bool,
) -> anyhow::Result<(OAuthTokens, Profile, u32)> {
    let endpoints = &config.providers.anthropic;
    let pkce = Pkce::generate();
    let (listener, redirect_uri) = redirect_target(
        no_browser,
        "localhost",
        "/callback",
        endpoints.manual_redirect_url.as_str(),
    )
    .await?;
    let url = oauth::authorize_url(endpoints, &redirect_uri, &pkce);
    let code = obtain_code(
        &url,
        "Claude",
        listener,
        &pkce,
        "the code the page shows (code#state)",
    )
    .await?;
    let grant = oauth::exchange_code(client, endpoints, &code, &pkce, &redirect_uri)
        .await
        .map_err(|error| anyhow!("the login could not be completed: {error}"))?;
    let profile = match oauth::profile(client, endpoints, &grant.access_token).await {
        Ok(profile) => profile,
        Err(error) if named => {
            eprintln!("sluice: could not read the account's profile ({error}); storing it without");
            AccountProfile::default()
        }
        Err(error) => {
            bail!("could not read the account's profile ({error}); pass --name to store it anyway")
        }
    };
    let weight = profile.weight();
    let now = sluice_scheduler::Timestamp::from_millis(now_ms());
    Ok((grant.into_tokens(now, None), profile.profile, weight))
}

async fn codex(
    client: &reqwest::Client,
    config: &Config,
    no_browser: bool,
) -> anyhow::Result<(OAuthTokens, Profile, u32)> {
    let endpoints = &config.providers.codex;
    let pkce = Pkce::generate();
    let redirect = &endpoints.redirect_uri;
    let listener = if no_browser {
        None
    } else {
        let port = redirect.port_or_known_default().unwrap_or(1455);
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => Some((listener, redirect.path().to_owned())),
            Err(error) => {
                eprintln!(
                    "sluice: cannot listen on port {port} for the login's redirect ({error}; is a `codex login` running?). \
                     Paste the address the browser ends on instead."
                );
                None
            }
        }
    };
    let url = chatgpt::authorize_url(endpoints, &pkce);
    let code = obtain_code(
        &url,
        "ChatGPT",
        listener,
        &pkce,
        "the address the browser ended on (http://localhost:1455/auth/callback?code=…)",
    )
    .await?;
    let grant = oauth::exchange_code_with(
        client,
        &TokenServer::codex(endpoints),
        &code,
        &pkce,
        redirect.as_str(),
        None,
    )
    .await
    .map_err(|error| anyhow!("the login could not be completed: {error}"))?;
    let identity = grant
        .id_token
        .as_ref()
        .and_then(chatgpt::identity_from_token)
        .or_else(|| chatgpt::identity_from_token(&grant.access_token))
        .ok_or_else(|| anyhow!("the login answered no id_token naming the ChatGPT account"))?;
    codex_login(grant, identity)
}

/// The tokens, profile and weight of a ChatGPT login.
pub fn codex_login(
    grant: TokenGrant,
    identity: chatgpt::ChatGptIdentity,
) -> anyhow::Result<(OAuthTokens, Profile, u32)> {
    if identity.account_id.is_none() {
        bail!("the login's id_token names no ChatGPT account id (chatgpt_account_id)");
    }
    let now = sluice_scheduler::Timestamp::from_millis(now_ms());
    let mut tokens = grant.into_tokens(now, None);
    if tokens.expires_at_ms.is_none() {
        tokens.expires_at_ms = chatgpt::token_expiry_ms(&tokens.access_token);
    }
    let profile = Profile {
        email: identity.email.clone(),
        plan: identity.plan.clone(),
        account_uuid: identity.login_key(),
        upstream_account: identity.account_id.clone(),
        ..Profile::default()
    };
    Ok((tokens, profile, identity.weight()))
}

/// Where the login page sends the browser back. With a browser to open, a loopback listener
/// (the redirect URI names it as `http://{host}:{port}{path}`); without one, the provider's
/// page that shows the code for the user to paste.
async fn redirect_target(
    no_browser: bool,
    host: &str,
    path: &str,
    manual_redirect_url: &str,
) -> anyhow::Result<(Option<(TcpListener, String)>, String)> {
    if no_browser || browser_command().is_none() {
        return Ok((None, manual_redirect_url.to_owned()));
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("could not listen for the login's redirect")?;
    let redirect_uri = format!("http://{host}:{}{path}", listener.local_addr()?.port());
    Ok((Some((listener, path.to_owned())), redirect_uri))
}

async fn gemini(
    client: &reqwest::Client,
    config: &Config,
    no_browser: bool,
) -> anyhow::Result<(OAuthTokens, Profile, u32)> {
    let endpoints = &config.providers.gemini;
    let pkce = Pkce::generate();
    let (listener, redirect_uri) = redirect_target(
        no_browser,
        "127.0.0.1",
        "/oauth2callback",
        endpoints.manual_redirect_url.as_str(),
    )
    .await?;
    let url = google::authorize_url(endpoints, &redirect_uri, &pkce);
    let code = obtain_code(&url, "Google", listener, &pkce, "the code the page shows").await?;
    let grant = oauth::exchange_code_with(
        client,
        &TokenServer::google(endpoints),
        &code,
        &pkce,
        &redirect_uri,
        None,
    )
    .await
    .map_err(|error| anyhow!("the login could not be completed: {error}"))?;
    let now = sluice_scheduler::Timestamp::from_millis(now_ms());
    let email = match grant
        .id_token
        .as_ref()
        .and_then(google::email_from_id_token)
    {
        Some(email) => Some(email),
        None => google::email(client, endpoints, &grant.access_token)
            .await
            .ok()
            .flatten(),
    };
    let tokens = grant.into_tokens(now, None);
    let profile = gemini_profile(client, config, &tokens.access_token, email).await;
    Ok((tokens, profile, 1))
}

/// A Google login's profile: its email, and its Code Assist project and tier when Code
/// Assist answers (else the project is discovered on first use).
pub async fn gemini_profile(
    client: &reqwest::Client,
    config: &Config,
    access_token: &Secret<String>,
    email: Option<String>,
) -> Profile {
    let setup = google::discover_project(
        client,
        &config.providers.gemini.code_assist_url,
        access_token,
    )
    .await;
    let (project, plan) = match setup {
        Ok(setup) => (setup.project, setup.tier),
        Err(error) => {
            eprintln!(
                "sluice: could not look up the account's Code Assist project ({error}); it is looked up when the account is first used"
            );
            (None, None)
        }
    };
    Profile {
        email: email.clone(),
        plan,
        account_uuid: email,
        project,
        ..Profile::default()
    }
}

/// Store a completed login (or import) and return what was saved.
pub fn store_login(
    local: &Local,
    provider: &str,
    name: Option<String>,
    tokens: OAuthTokens,
    profile: Profile,
    weight: u32,
) -> anyhow::Result<sluice_store::LoginSaved> {
    let default_name = match (&name, &profile.email) {
        (Some(name), _) => name.clone(),
        (None, Some(email)) => email.clone(),
        (None, None) => bail!("the login names no email to call the account after; pass --name"),
    };
    sluice_config::check_account_name(&default_name)
        .map_err(|e| anyhow!("account name {default_name:?} {e}; pass --name"))?;
    if let Some(declared) = local.declared(&default_name)
        && declared.provider.as_str() != provider
    {
        bail!(
            "{} declares {default_name:?} as a {} account; pick another --name",
            local.config_file(),
            declared.provider
        );
    }
    let config_fingerprint = local.config_fingerprint(&default_name)?;
    let login = Login {
        provider: provider.to_owned(),
        name,
        default_name,
        tokens,
        profile,
        weight,
        config_fingerprint,
    };
    local
        .store()
        .save_login(login)
        .context("could not store the account")
}

pub fn report(local: &Local, saved: &sluice_store::LoginSaved) {
    let account = &saved.account;
    let who = account.profile.email.as_deref().unwrap_or("the account");
    let plan = account
        .profile
        .plan
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    if saved.created {
        println!(
            "Logged in as {who}{plan}: added account {:?} ({}).",
            account.name, account.provider
        );
    } else {
        println!(
            "Logged in as {who}{plan}: account {:?} ({}) has new tokens.",
            account.name, account.provider
        );
    }
    match local.running() {
        Some(server) => println!(
            "The running sluice (pid {}) uses it within a second.",
            server.pid
        ),
        None => println!("Start sluice with `sluice serve` to use it."),
    }
}

/// Run the browser part of a login: print (and open) `url`, then take the code from the
/// redirect to `callback` (a listener and the path it expects) or from the terminal.
async fn obtain_code(
    url: &url::Url,
    whose: &str,
    callback: Option<(TcpListener, String)>,
    pkce: &Pkce,
    paste_hint: &str,
) -> anyhow::Result<String> {
    let browser = callback.as_ref().and_then(|_| browser_command());
    eprintln!("Log in to the {whose} account to add, in a browser:\n\n  {url}\n");
    match (&callback, &browser) {
        (Some(_), Some(command)) => {
            open_browser(command, url.as_str());
            eprintln!(
                "Waiting for the browser to come back. (If it cannot reach this machine, paste the address it ended on here and press Enter.)"
            );
        }
        (Some(_), None) => eprintln!(
            "Waiting for the browser to come back (or paste the address it ended on here and press Enter)."
        ),
        (None, _) => eprintln!("Then paste {paste_hint} here and press Enter:"),
    }
    let pasted = async {
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })
        .await??;
        if line.trim().is_empty() {
            // No terminal (or nothing typed): leave it to the redirect.
            std::future::pending::<()>().await;
        }
        parse_pasted(&line)
    };
    let redirected = async {
        match callback {
            Some((listener, path)) => wait_for_redirect(listener, &path).await,
            None => std::future::pending().await,
        }
    };
    let (code, state) = tokio::select! {
        received = redirected => received?,
        pasted = pasted => pasted?,
        () = tokio::time::sleep(LOGIN_TIMEOUT) => bail!("gave up waiting for the login"),
    };
    if let Some(state) = state
        && state != pkce.state
    {
        bail!(
            "that code belongs to another login attempt (its state does not match); run `sluice login` again"
        );
    }
    Ok(code)
}

/// `code#state`, a URL with `?code=…&state=…`, or a bare code.
fn parse_pasted(text: &str) -> anyhow::Result<(String, Option<String>)> {
    let text = text.trim();
    if let Ok(url) = url::Url::parse(text)
        && let Some(code) = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v)
    {
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        return Ok((code.into_owned(), state));
    }
    let (code, state) = match text.split_once('#') {
        Some((code, state)) => (code.trim(), Some(state.trim().to_owned())),
        None => (text, None),
    };
    if code.is_empty() || code.chars().any(char::is_whitespace) {
        bail!("that does not look like a login code (expected code#state)");
    }
    Ok((code.to_owned(), state.filter(|s| !s.is_empty())))
}

/// Answer requests on the login listener until one to `path` carries the code.
async fn wait_for_redirect(
    listener: TcpListener,
    path: &str,
) -> anyhow::Result<(String, Option<String>)> {
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut head = Vec::with_capacity(1024);
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                let n = socket.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buffer[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let url = url::Url::parse(&format!("http://localhost{target}")).ok();
        let query = |key: &str| {
            url.as_ref().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.into_owned())
            })
        };
        let on_callback = url.as_ref().is_some_and(|u| u.path() == path);
        let (status, body, outcome) = match (on_callback, query("code"), query("error")) {
            (true, Some(code), _) => (
                "200 OK",
                "sluice: login received. You can close this tab.",
                Some(Ok((code, query("state")))),
            ),
            (true, None, Some(error)) => (
                "400 Bad Request",
                "sluice: the login was refused.",
                Some(Err(anyhow!("the login was refused ({error})"))),
            ),
            _ => ("404 Not Found", "not found", None),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// How to open a URL in a browser here, if there is a way: `$BROWSER`, `open` on macOS,
/// `xdg-open` in a graphical session.
fn browser_command() -> Option<Vec<String>> {
    if let Ok(browser) = std::env::var("BROWSER") {
        let parts: Vec<String> = browser.split_whitespace().map(str::to_owned).collect();
        return (!parts.is_empty()).then_some(parts);
    }
    if cfg!(target_os = "macos") {
        return Some(vec!["open".to_owned()]);
    }
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    (cfg!(unix) && graphical).then(|| vec!["xdg-open".to_owned()])
}

fn open_browser(command: &[String], url: &str) {
    let spawned = std::process::Command::new(&command[0])
        .args(&command[1..])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("(could not open a browser; open the URL above yourself)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_codes_are_read_in_every_shape() {
        assert_eq!(
            parse_pasted("abc#st\n").unwrap(),
            ("abc".to_owned(), Some("st".to_owned()))
        );
        assert_eq!(
            parse_pasted("http://localhost:5/callback?code=abc&state=st").unwrap(),
            ("abc".to_owned(), Some("st".to_owned()))
        );
        assert_eq!(parse_pasted("abc").unwrap(), ("abc".to_owned(), None));
        assert!(parse_pasted("#st").is_err());
        assert!(parse_pasted("a b#c").is_err());
    }
}
