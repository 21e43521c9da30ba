//! How each coding CLI is pointed at sluice: the environment it needs and, for Codex and
//! Gemini, the sluice-managed files it reads. Shared by `sluice env` (prints it) and
//! `sluice run` (starts the CLI with it). No file written here ever holds a credential: the
//! CLI presents sluice's client key (or a placeholder), and sluice sends the account's.
//!
//! - **claude**: `ANTHROPIC_BASE_URL`, and `ANTHROPIC_AUTH_TOKEN` when client keys are set.
//! - **codex**: `CODEX_HOME` pointing at `data_dir/clients/codex`, whose `config.toml` is the
//!   user's own (from `$CODEX_HOME` or `~/.codex`, when there is one) with a custom provider
//!   `sluice` selected: `base_url = "http://…/v1"`, `wire_api = "responses"`, its key from
//!   `SLUICE_API_KEY`; `chatgpt_base_url` points the CLI's usage queries at sluice too.
//! - **gemini**: Code Assist mode (Google-login accounts) sets `CODE_ASSIST_ENDPOINT`; the
//!   CLI keeps its own Google login, whose token sluice replaces. API-key mode (Gemini API
//!   keys) sets `GOOGLE_GEMINI_BASE_URL` and `GEMINI_API_KEY`. Either way a system settings
//!   file (`GEMINI_CLI_SYSTEM_SETTINGS_PATH`) selects the matching auth type.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sluice_config::{Config, Credential, ProviderKind};
use sluice_store::{RunningServer, SqliteStore, Store, StoredCredential};

use super::local::base_url;

/// The CLIs sluice wires.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Client {
    /// Claude Code.
    #[default]
    Claude,
    /// OpenAI's Codex CLI (ChatGPT accounts).
    Codex,
    /// Google's Gemini CLI.
    Gemini,
}

impl Client {
    /// The executable, unless `$SLUICE_<CLIENT>` names another.
    pub fn program(self) -> PathBuf {
        let (var, default) = match self {
            Client::Claude => ("SLUICE_CLAUDE", "claude"),
            Client::Codex => ("SLUICE_CODEX", "codex"),
            Client::Gemini => ("SLUICE_GEMINI", "gemini"),
        };
        std::env::var_os(var)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(default), PathBuf::from)
    }

    pub fn name(self) -> &'static str {
        match self {
            Client::Claude => "Claude Code",
            Client::Codex => "Codex",
            Client::Gemini => "the Gemini CLI",
        }
    }
}

/// Which of its two APIs the Gemini CLI uses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeminiMode {
    /// Code Assist, served by Google-login accounts (the CLI keeps its own Google login).
    CodeAssist,
    /// The Gemini API, served by Gemini API keys.
    ApiKey,
}

/// The environment a CLI runs with to go through sluice.
#[derive(Debug, Default)]
pub struct Wiring {
    /// Variables to set.
    pub set: Vec<(&'static str, String)>,
    /// Variables to clear (the user's own credentials, which must not be used).
    pub unset: Vec<&'static str>,
    /// What the user should know, as shell comments.
    pub notes: Vec<String>,
}

/// The key the CLI presents to sluice: the first client key, or a placeholder sluice ignores.
fn client_key(config: &Config) -> String {
    config
        .client_keys
        .first()
        .map_or_else(|| "sluice".to_owned(), |key| key.expose().clone())
}

/// Wire `client` to the sluice of `config` (the running one's address when there is one),
/// writing the files it needs under `data_dir/clients`.
pub fn wire(
    client: Client,
    config: &Config,
    running: Option<&RunningServer>,
    gemini_mode: Option<GeminiMode>,
) -> anyhow::Result<Wiring> {
    let base = base_url(config, running);
    let mut wiring = Wiring::default();
    match client {
        Client::Claude => {
            wiring.set.push(("ANTHROPIC_BASE_URL", base));
            // With client keys configured, the client must present one; Claude Code sends
            // ANTHROPIC_AUTH_TOKEN as a bearer token, which sluice accepts.
            if let Some(key) = config.client_keys.first() {
                wiring
                    .set
                    .push(("ANTHROPIC_AUTH_TOKEN", key.expose().clone()));
            }
            wiring.unset.push("ANTHROPIC_API_KEY");
        }
        Client::Codex => {
            let home = clients_dir(config)?.join("codex");
            write_codex_home(&home, &base, &user_codex_config(&home))?;
            wiring.set.push(("CODEX_HOME", home.display().to_string()));
            wiring.set.push(("SLUICE_API_KEY", client_key(config)));
            wiring.notes.push(format!(
                "Codex's sessions and history for these runs live in {}",
                home.display()
            ));
        }
        Client::Gemini => {
            let mode = match gemini_mode {
                Some(mode) => mode,
                None => default_gemini_mode(config),
            };
            let settings = clients_dir(config)?.join("gemini").join("settings.json");
            let auth_type = match mode {
                GeminiMode::CodeAssist => "oauth-personal",
                GeminiMode::ApiKey => "gemini-api-key",
            };
            write_private(
                &settings,
                &format!(
                    "{}\n",
                    serde_json::json!({"security": {"auth": {"selectedType": auth_type}}})
                ),
            )?;
            wiring.set.push((
                "GEMINI_CLI_SYSTEM_SETTINGS_PATH",
                settings.display().to_string(),
            ));
            match mode {
                GeminiMode::CodeAssist => {
                    wiring.set.push(("CODE_ASSIST_ENDPOINT", base));
                    wiring.unset.push("GOOGLE_GEMINI_BASE_URL");
                    wiring.notes.push(
                        "Code Assist mode: the Gemini CLI must be logged in with Google (any account; \
                         its token is replaced by the pooled account's)"
                            .to_owned(),
                    );
                    if !config.client_keys.is_empty() {
                        wiring.notes.push(
                            "client_keys are configured, and in Code Assist mode the CLI cannot present one: \
                             use `--gemini-mode api-key`"
                                .to_owned(),
                        );
                    }
                }
                GeminiMode::ApiKey => {
                    wiring.set.push(("GOOGLE_GEMINI_BASE_URL", base));
                    wiring.set.push(("GEMINI_API_KEY", client_key(config)));
                    wiring.unset.push("CODE_ASSIST_ENDPOINT");
                    wiring.unset.push("GOOGLE_API_KEY");
                }
            }
        }
    }
    Ok(wiring)
}

/// `data_dir/clients`, private to the user.
fn clients_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let dir = config.data_dir.join("clients");
    create_private_dir(&dir)?;
    Ok(dir)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("could not create {}", dir.display()))
}

/// Write `text` to `path` (0600), replacing it whole: a temporary file renamed over it.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("could not write {}", temporary.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("could not write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("could not write {}", path.display()))
}

/// The user's own Codex config (`$CODEX_HOME/config.toml`, else `~/.codex/config.toml`),
/// unless `$CODEX_HOME` is already sluice's (then `~/.codex`'s).
fn user_codex_config(managed: &Path) -> Option<String> {
    let own = std::env::var_os("CODEX_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .filter(|d| d != managed)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".codex"))
        })?;
    std::fs::read_to_string(own.join("config.toml")).ok()
}

/// Codex's `config.toml` for sluice: the user's settings (when given) with the `sluice`
/// provider added and selected.
pub fn codex_config(base: &str, user: Option<&str>) -> anyhow::Result<String> {
    let mut document: toml_edit::DocumentMut = match user {
        Some(text) => text
            .parse()
            .context("your Codex config.toml is not valid TOML; fix it or move it aside")?,
        None => toml_edit::DocumentMut::new(),
    };
    document["model_provider"] = toml_edit::value("sluice");
    document["chatgpt_base_url"] = toml_edit::value(format!("{base}/backend-api"));
    let mut provider = toml_edit::Table::new();
    provider["name"] = toml_edit::value("sluice");
    provider["base_url"] = toml_edit::value(format!("{base}/v1"));
    provider["wire_api"] = toml_edit::value("responses");
    provider["env_key"] = toml_edit::value("SLUICE_API_KEY");
    if !document.contains_table("model_providers") {
        let mut providers = toml_edit::Table::new();
        providers.set_implicit(true);
        document["model_providers"] = toml_edit::Item::Table(providers);
    }
    document["model_providers"]["sluice"] = toml_edit::Item::Table(provider);
    Ok(format!(
        "# Written by sluice for Codex through the pool at {base}; rewritten on every\n\
         # `sluice env codex` / `sluice run codex` (your own settings come from ~/.codex/config.toml).\n{document}"
    ))
}

fn write_codex_home(home: &Path, base: &str, user: &Option<String>) -> anyhow::Result<()> {
    create_private_dir(home)?;
    write_private(
        &home.join("config.toml"),
        &codex_config(base, user.as_deref())?,
    )
}

/// Code Assist when the pool has Google-login Gemini accounts (in the config or the
/// store), the Gemini API when it has only Gemini API keys.
fn default_gemini_mode(config: &Config) -> GeminiMode {
    let mut logins = false;
    let mut keys = false;
    for account in config
        .accounts
        .iter()
        .filter(|a| a.provider == ProviderKind::Gemini)
    {
        match account.credential {
            Credential::OAuth { .. } => logins = true,
            Credential::ApiKey(_) => keys = true,
        }
    }
    if let Ok(stored) = SqliteStore::open(&config.data_dir).and_then(|store| store.accounts()) {
        for account in stored.iter().filter(|a| a.provider == "gemini") {
            match account.credential {
                StoredCredential::OAuth(_) => logins = true,
                StoredCredential::ApiKey(_) => keys = true,
            }
        }
    }
    if keys && !logins {
        GeminiMode::ApiKey
    } else {
        GeminiMode::CodeAssist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_keeps_the_users_settings_and_selects_the_sluice_provider() {
        let user = "model = \"gpt-5-codex\"\nmodel_provider = \"openai\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n\n[model_providers.other]\nname = \"x\"\nbase_url = \"http://x\"\n";
        let text = codex_config("http://127.0.0.1:9999", Some(user)).unwrap();
        let parsed: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(parsed["model_provider"].as_str(), Some("sluice"));
        assert_eq!(parsed["model"].as_str(), Some("gpt-5-codex"));
        assert_eq!(
            parsed["mcp_servers"]["docs"]["command"].as_str(),
            Some("docs-mcp")
        );
        let sluice = &parsed["model_providers"]["sluice"];
        assert_eq!(
            sluice["base_url"].as_str(),
            Some("http://127.0.0.1:9999/v1")
        );
        assert_eq!(sluice["wire_api"].as_str(), Some("responses"));
        assert_eq!(sluice["env_key"].as_str(), Some("SLUICE_API_KEY"));
        assert_eq!(
            parsed["model_providers"]["other"]["name"].as_str(),
            Some("x")
        );
        assert_eq!(
            parsed["chatgpt_base_url"].as_str(),
            Some("http://127.0.0.1:9999/backend-api")
        );
        let fresh = codex_config("http://127.0.0.1:1", None).unwrap();
        assert!(fresh.contains("[model_providers.sluice]"), "{fresh}");
        assert!(codex_config("http://h", Some("not = [toml")).is_err());
    }
}
