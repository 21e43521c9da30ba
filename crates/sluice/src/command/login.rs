//! `sluice login [--name NAME]`: add (or renew) a Claude subscription with an OAuth PKCE login.
//!
//! Prints the login URL and opens a browser when there is one. The code comes back either
//! through a one-shot listener on `localhost` (the browser is redirected to it) or pasted at
//! the prompt: the hosted callback page shows `code#state`, and the URL a browser ended on
//! works too. The code is exchanged for tokens, the profile names the account (its email,
//! unless `--name`), and the store gets it — a second login of the same user updates that
//! account instead of adding another. A running sluice picks it up within a second.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sluice_config::AnthropicEndpoints;
use sluice_server::accounts::oauth::{self, AccountProfile, Pkce, TokenGrant};
use sluice_store::{Login, OAuthTokens};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::ConfigArg;
use super::local::{Local, http_client, now_ms, small_runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
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
    let endpoints = local.config.providers.anthropic.clone();
    let client = http_client()?;
    let (grant, profile) = small_runtime()?.block_on(async {
        let grant = obtain_tokens(&client, &endpoints, args.no_browser).await?;
        let profile = oauth::profile(&client, &endpoints, &grant.access_token).await;
        Ok::<_, anyhow::Error>((grant, profile))
    })?;
    let profile = match profile {
        Ok(profile) => profile,
        Err(error) if args.name.is_some() => {
            eprintln!("sluice: could not read the account's profile ({error}); storing it without");
            AccountProfile::default()
        }
        Err(error) => {
            bail!("could not read the account's profile ({error}); pass --name to store it anyway")
        }
    };
    let now = sluice_scheduler::Timestamp::from_millis(now_ms());
    let saved = store_login(&local, args.name, grant.into_tokens(now, None), profile)?;
    report(&local, &saved);
    Ok(ExitCode::SUCCESS)
}

/// Store a completed login (or import) and return what was saved.
pub fn store_login(
    local: &Local,
    name: Option<String>,
    tokens: OAuthTokens,
    profile: AccountProfile,
) -> anyhow::Result<sluice_store::LoginSaved> {
    let default_name = match (&name, &profile.profile.email) {
        (Some(name), _) => name.clone(),
        (None, Some(email)) => email.clone(),
        (None, None) => bail!("the profile has no email to name the account after; pass --name"),
    };
    sluice_config::check_account_name(&default_name)
        .map_err(|e| anyhow!("account name {default_name:?} {e}; pass --name"))?;
    let config_fingerprint = local.config_fingerprint(&default_name)?;
    let weight = profile.weight();
    let login = Login {
        provider: "anthropic".to_owned(),
        name,
        default_name,
        tokens,
        profile: profile.profile,
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
            "Logged in as {who}{plan}: added account {:?}.",
            account.name
        );
    } else {
        println!(
            "Logged in as {who}{plan}: account {:?} has new tokens.",
            account.name
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

/// Run the browser part of the login and trade the code for tokens.
async fn obtain_tokens(
    client: &reqwest::Client,
    endpoints: &AnthropicEndpoints,
    no_browser: bool,
) -> anyhow::Result<TokenGrant> {
    let pkce = Pkce::generate();
    let browser = if no_browser { None } else { browser_command() };
    let callback = match browser {
        Some(_) => Some(
            TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("could not listen for the login's redirect")?,
        ),
        None => None,
    };
    let redirect_uri = match &callback {
        Some(listener) => format!(
            "http://localhost:{}/callback",
            listener.local_addr()?.port()
        ),
        None => endpoints.manual_redirect_url.to_string(),
    };
    let url = oauth::authorize_url(endpoints, &redirect_uri, &pkce);
    eprintln!("Log in to the Claude account to add, in a browser:\n\n  {url}\n");
    if let Some(command) = &browser {
        open_browser(command, url.as_str());
        eprintln!(
            "Waiting for the browser to come back. (If it cannot reach this machine, paste the address it ended on here and press Enter.)"
        );
    } else {
        eprintln!("Then paste the code the page shows (code#state) here and press Enter:");
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
            Some(listener) => wait_for_redirect(listener).await,
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
    oauth::exchange_code(client, endpoints, &code, &pkce, &redirect_uri)
        .await
        .map_err(|error| anyhow!("the login could not be completed: {error}"))
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

/// Answer requests on the login listener until one carries the code.
async fn wait_for_redirect(listener: TcpListener) -> anyhow::Result<(String, Option<String>)> {
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
        let on_callback = url.as_ref().is_some_and(|u| u.path() == "/callback");
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
