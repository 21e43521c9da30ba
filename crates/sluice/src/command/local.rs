//! What the account commands share: the configuration, the store in its data directory, the
//! running sluice (if any), and reading a secret from the terminal or stdin.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sluice_config::{Config, Credential};
use sluice_store::{DataDirLock, RunningServer, SqliteStore, Store};

use super::ConfigArg;

/// The config and the store the account commands work on.
pub struct Local {
    pub config: Config,
    pub store: Arc<SqliteStore>,
}

impl Local {
    pub fn open(config: &ConfigArg) -> anyhow::Result<Local> {
        let config = sluice_config::load(config.config.as_deref())?;
        let store = SqliteStore::open(&config.data_dir).with_context(|| {
            format!(
                "could not open sluice's database in {}",
                config.data_dir.display()
            )
        })?;
        Ok(Local {
            config,
            store: Arc::new(store),
        })
    }

    /// The sluice serving from this data directory, if one is running.
    pub fn running(&self) -> Option<RunningServer> {
        DataDirLock::running(&self.config.data_dir)
    }

    /// The config file's account called `name`, if any.
    pub fn declared(&self, name: &str) -> Option<&sluice_config::AccountConfig> {
        self.config.accounts.iter().find(|a| a.name == name)
    }

    /// Refuse to touch an account the config file declares.
    pub fn not_declared(&self, name: &str) -> anyhow::Result<()> {
        if self.declared(name).is_some() {
            anyhow::bail!(
                "account {name:?} is declared in {}; change it there (a running sluice applies the file when it is saved)",
                self.config_file()
            );
        }
        Ok(())
    }

    pub fn config_file(&self) -> String {
        match &self.config.source {
            sluice_config::ConfigSource::File(path) => path.display().to_string(),
            sluice_config::ConfigSource::Default => "the config file".to_owned(),
        }
    }

    /// For a login to an account the config file declares: the digest of the file's tokens,
    /// so the store's newer tokens win until the file changes. An error for an API-key account.
    pub fn config_fingerprint(&self, name: &str) -> anyhow::Result<Option<String>> {
        match self.declared(name).map(|a| &a.credential) {
            None => Ok(None),
            Some(Credential::OAuth {
                access_token,
                refresh_token,
                expires_at_ms,
            }) => Ok(Some(sluice_store::fingerprint(
                &sluice_store::OAuthTokens {
                    access_token: access_token.clone(),
                    refresh_token: refresh_token.clone(),
                    expires_at_ms: *expires_at_ms,
                },
            ))),
            Some(Credential::ApiKey(_)) => anyhow::bail!(
                "account {name:?} is an API-key account in {}; pick another --name",
                self.config_file()
            ),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// The base URL clients use to reach sluice: the running one's address, else the config's.
/// A wildcard listen address is reached through loopback.
pub fn base_url(config: &Config, running: Option<&RunningServer>) -> String {
    let mut addr = running.map_or(config.listen, |r| r.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// A current-thread runtime for a command's few network calls.
pub fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// An HTTP client for the OAuth endpoints (no redirects, rustls).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    sluice_server::upstream::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Read a secret: from the terminal without echo when there is one, else the first line of
/// stdin. Never from the command line, where it would land in shell history and `ps`.
pub fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
        let line = read_line_without_echo(&stdin)?;
        eprintln!();
        line
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("could not read stdin")?;
        line
    };
    let secret = line.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "nothing was entered");
    anyhow::ensure!(
        !secret.chars().any(|c| c.is_whitespace() || c.is_control()),
        "the key contains whitespace or control characters"
    );
    Ok(secret)
}

#[cfg(unix)]
fn read_line_without_echo(stdin: &std::io::Stdin) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let saved = tcgetattr(stdin).context("could not read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(stdin, OptionalActions::Now, &quiet).context("could not turn echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(stdin, OptionalActions::Now, &saved);
    read.context("could not read the terminal")?;
    Ok(line)
}

#[cfg(not(unix))]
fn read_line_without_echo(stdin: &std::io::Stdin) -> anyhow::Result<String> {
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line)
}

/// "in 3h 12m", "2m ago": a relative time for tables.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let delta = (at_ms - now_ms) / 1000;
    let magnitude = delta.unsigned_abs();
    let text = if magnitude >= 86_400 {
        format!("{}d {}h", magnitude / 86_400, magnitude % 86_400 / 3600)
    } else if magnitude >= 3600 {
        format!("{}h {}m", magnitude / 3600, magnitude % 3600 / 60)
    } else if magnitude >= 60 {
        format!("{}m", magnitude / 60)
    } else {
        format!("{magnitude}s")
    };
    if delta >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `path` exists, for friendlier errors.
pub fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1_000_000 + 90_000, 1_000_000), "in 1m");
        assert_eq!(relative(1_000_000 - 7_200_000, 1_000_000), "2h 0m ago");
        assert_eq!(relative(1_000_000 + 3 * 86_400_000, 1_000_000), "in 3d 0h");
        assert_eq!(relative(1_000_000, 1_000_000), "in 0s");
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_through_loopback() {
        let config = Config {
            listen: "0.0.0.0:9000".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(base_url(&config, None), "http://127.0.0.1:9000");
        let running = RunningServer {
            pid: 1,
            listen: "127.0.0.1:4242".parse().unwrap(),
        };
        assert_eq!(base_url(&config, Some(&running)), "http://127.0.0.1:4242");
    }
}
