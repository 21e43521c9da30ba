//! Loading and validating sluice's TOML configuration.
//!
//! Text goes through two stages: serde structs in `raw` that mirror the file
//! (every key optional, unknown keys rejected), then `validate`, which applies
//! defaults and rules and produces a [`Config`] of plain, already-checked
//! values. Every error names the key path and, when there is a file, the line.
//!
//! The environment is always read through a lookup function, so tests can
//! supply their own instead of mutating the (shared) process environment.

mod error;
mod locate;
mod model;
mod overrides;
mod paths;
mod prices;
mod raw;
mod render;
mod secret;
mod units;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ErrorKind, Position};
pub use model::{
    AccountConfig, AccountOptions, AnthropicEndpoints, AuthStyle, COMPATIBLE_DEFAULT_PRIORITY,
    CodexEndpoints, Config, ConfigSource, Credential, CredentialKind, GeminiEndpoints,
    KNOWN_STRATEGIES, Limits, LogSettings, OAuthSettings, OpenAIEndpoints, ProviderKind, Providers,
    QueueSettings, RetrySettings, SchedulerSettings, ShutdownSettings, UnknownProvider,
    UpstreamSettings,
};
pub use overrides::{DATA_DIR_VAR, LISTEN_VAR, LOG_VAR};
pub use paths::{CONFIG_PATH_VAR, ResolvedPath, resolve_path, resolve_path_with_env};
pub use prices::{IncompletePrice, OTHER_FAMILY, Price, PriceOverride, PriceTable};
pub use secret::{MASK, Secret};
pub use validate::check_account_name;

/// A commented example config covering every key.
pub const EXAMPLE: &str = include_str!("../example.toml");

/// Reads a variable from the process environment; non-UTF-8 values count as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Finds (see [`resolve_path`]), reads and validates the config, then applies
/// `SLUICE_*` overrides from the process environment.
pub fn load(cli: Option<&Path>) -> Result<Config, ConfigError> {
    load_with_env(cli, &process_env)
}

/// [`load`] with the environment supplied by `env`.
pub fn load_with_env(
    cli: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let resolved = resolve_path_with_env(cli, env);
    let Some(path) = resolved.path() else {
        return parse_str("", None, env);
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, Some(path), env),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if resolved.must_exist() {
                Err(ConfigError::new(
                    ErrorKind::NotFound,
                    format!(
                        "config file does not exist (named by {})",
                        resolved.origin()
                    ),
                )
                .with_file(Some(path.to_path_buf())))
            } else {
                parse_str("", None, env)
            }
        }
        Err(error) => Err(ConfigError::io(
            path.to_path_buf(),
            "cannot read config file",
            &error,
        )),
    }
}

/// Parses and validates config text, then applies `SLUICE_*` overrides.
///
/// `path` is only used for error messages and [`Config::source`]; `env`
/// supplies `*_env` secrets, the default `data_dir` and the overrides.
pub fn parse_str(
    source: &str,
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let map = locate::SourceMap::parse(source)
        .map_err(|error| error::syntax_error(source, path, &error))?;
    let raw: raw::RawConfig =
        toml::from_str(source).map_err(|error| error::schema_error(&map, source, path, &error))?;
    let checker = validate::Checker {
        map: &map,
        file: path,
        env,
    };
    let mut config = checker.validate(raw)?;
    config.source = path.map_or(ConfigSource::Default, |path| {
        ConfigSource::File(path.to_path_buf())
    });
    overrides::apply_overrides(&mut config, env)?;
    Ok(config)
}

#[cfg(test)]
mod test_support {
    use std::path::Path;

    use crate::{Config, ConfigError};

    /// Variables every test environment has; `*_env` tests refer to these.
    pub(crate) const TEST_ENV: &[(&str, &str)] = &[
        ("HOME", "/home/tester"),
        ("API", "sk-env-api"),
        ("TOKEN", "sk-env-token"),
        ("REFRESH", "sk-env-refresh"),
        ("EMPTY", ""),
        ("NEWLINE_KEY", "sk-env-newline\n"),
    ];

    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    pub(crate) fn parse(source: &str) -> Result<Config, ConfigError> {
        crate::parse_str(
            source,
            Some(Path::new("/etc/sluice/config.toml")),
            &env_of(TEST_ENV),
        )
    }

    pub(crate) fn error_in(source: &str) -> ConfigError {
        match parse(source) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use url::Url;

    use super::test_support::{TEST_ENV, env_of, parse};
    use super::*;

    const EXAMPLE_ENV: &[(&str, &str)] = &[
        ("HOME", "/home/tester"),
        ("SLUICE_TEAM_ACCESS_TOKEN", "sk-ant-oat01-team"),
        ("SLUICE_TEAM_REFRESH_TOKEN", "sk-ant-ort01-team"),
        ("SLUICE_CI_API_KEY", "sk-ant-api03-ci"),
        ("SLUICE_CODEX_ACCESS_TOKEN", "codex-at"),
        ("SLUICE_CODEX_REFRESH_TOKEN", "codex-rt"),
        ("SLUICE_GEMINI_ACCESS_TOKEN", "ya29.at"),
        ("SLUICE_GEMINI_REFRESH_TOKEN", "1//rt"),
        ("SLUICE_GEMINI_API_KEY", "AIza-key"),
        ("SLUICE_OPENAI_API_KEY", "sk-proj-key"),
        ("SLUICE_GLM_API_KEY", "glm-key"),
    ];

    #[test]
    fn example_parses_and_covers_every_kind_of_account() {
        let config = parse_str(EXAMPLE, None, &env_of(EXAMPLE_ENV)).expect("example is valid");
        let kinds: Vec<_> = config
            .accounts
            .iter()
            .map(|a| (a.provider, a.credential.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ProviderKind::Anthropic, CredentialKind::ApiKey),
                (ProviderKind::Anthropic, CredentialKind::OAuth),
                (ProviderKind::Anthropic, CredentialKind::OAuth),
                (ProviderKind::Anthropic, CredentialKind::ApiKey),
                (ProviderKind::Codex, CredentialKind::OAuth),
                (ProviderKind::Gemini, CredentialKind::OAuth),
                (ProviderKind::Gemini, CredentialKind::ApiKey),
                (ProviderKind::OpenAI, CredentialKind::ApiKey),
                (ProviderKind::AnthropicCompatible, CredentialKind::ApiKey),
            ]
        );
        let glm = &config.accounts[8];
        assert_eq!(glm.priority, COMPATIBLE_DEFAULT_PRIORITY);
        assert_eq!(glm.options.auth, AuthStyle::Bearer);
        assert_eq!(
            glm.options.model_map,
            [
                ("claude-opus-*".to_owned(), "glm-4.6".to_owned()),
                ("*".to_owned(), "glm-4.5-air".to_owned())
            ]
        );
        assert_eq!(
            config.accounts[4].options.account_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(
            config.accounts[5].options.project.as_deref(),
            Some("my-code-assist-project")
        );
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sluice"));
        assert_eq!(config.client_keys.len(), 1);
        assert!(config.admin_key.is_some());
        assert!(!config.accounts[3].enabled);
        assert!(config.accounts[3].upstream.is_some());
        // Besides the paths above, the example spells out every default.
        let mut expected = Config::defaults_with_env(&env_of(EXAMPLE_ENV));
        expected.data_dir.clone_from(&config.data_dir);
        assert_eq!(config.providers, expected.providers);
        assert_eq!(config.limits, expected.limits);
        assert_eq!(config.upstream, expected.upstream);
        assert_eq!(config.retry, expected.retry);
        assert_eq!(config.queue, expected.queue);
        assert_eq!(config.scheduler, expected.scheduler);
        assert_eq!(config.log, expected.log);
        assert_eq!(config.oauth, expected.oauth);
        assert_eq!(config.shutdown, expected.shutdown);
    }

    #[test]
    fn example_mentions_every_key_the_renderer_writes() {
        let config = parse_str(EXAMPLE, None, &env_of(EXAMPLE_ENV)).expect("example is valid");
        for line in config.to_masked_toml().lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    EXAMPLE.contains(&format!("\n{key} = ")),
                    "example lacks {key}"
                );
            }
        }
        for key in ["api_key_env", "access_token_env", "refresh_token_env"] {
            assert!(
                EXAMPLE.contains(&format!("\n{key} = ")),
                "example lacks {key}"
            );
        }
    }

    #[test]
    fn overrides_apply_after_the_file() {
        let env = env_of(&[
            ("HOME", "/home/tester"),
            ("SLUICE_LISTEN", "0.0.0.0:9999"),
            ("SLUICE_DATA_DIR", "/srv/sluice"),
            ("SLUICE_LOG", "debug"),
        ]);
        let config = parse_str(
            "listen = \"127.0.0.1:1\"\n[log]\nlevel = \"warn\"\n",
            None,
            &env,
        )
        .expect("valid");
        assert_eq!(config.listen.to_string(), "0.0.0.0:9999");
        assert!(!config.is_loopback_listen());
        assert_eq!(config.data_dir, PathBuf::from("/srv/sluice"));
        assert_eq!(config.log.level, "debug");

        let env = env_of(&[("SLUICE_LISTEN", ""), ("SLUICE_LOG", "")]);
        let config = parse_str("[log]\nlevel = \"warn\"\n", None, &env).expect("valid");
        assert_eq!(config.log.level, "warn", "empty variables are ignored");
    }

    #[test]
    fn bad_override_names_the_variable() {
        let env = env_of(&[("SLUICE_LISTEN", "localhost")]);
        let error = parse_str("", None, &env).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Environment);
        assert_eq!(error.key.as_deref(), Some("SLUICE_LISTEN"));
        assert!(
            error
                .to_string()
                .starts_with("SLUICE_LISTEN: invalid address"),
            "{error}"
        );
    }

    #[test]
    fn load_reads_the_resolved_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[[accounts]]\nname = \"a\"\napi_key = \"k\"\n").expect("write");
        let path_text = path.to_string_lossy().into_owned();

        let config = load_with_env(Some(&path), &env_of(TEST_ENV)).expect("loads");
        assert_eq!(config.source, ConfigSource::File(path.clone()));
        assert_eq!(config.accounts.len(), 1);

        let env = env_of(&[("SLUICE_CONFIG", path_text.as_str())]);
        let config = load_with_env(None, &env).expect("loads via SLUICE_CONFIG");
        assert_eq!(config.source, ConfigSource::File(path.clone()));
    }

    #[test]
    fn load_errors_carry_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[queue]\nkeepalive = \"0s\"\n").expect("write");
        let error = load_with_env(Some(&path), &env_of(TEST_ENV)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:2:1: queue.keepalive: must be longer than zero",
                path.display()
            )
        );
    }

    #[test]
    fn named_file_must_exist_but_default_may_be_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.toml");

        let error = load_with_env(Some(&missing), &env_of(TEST_ENV)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(error.to_string().contains("--config"), "{error}");

        let missing_text = missing.to_string_lossy().into_owned();
        let env = env_of(&[("SLUICE_CONFIG", missing_text.as_str())]);
        let error = load_with_env(None, &env).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(error.to_string().contains("$SLUICE_CONFIG"), "{error}");

        let home = dir.path().to_string_lossy().into_owned();
        let env = env_of(&[("HOME", home.as_str()), ("SLUICE_LOG", "trace")]);
        let config = load_with_env(None, &env).expect("defaults");
        assert_eq!(config.source, ConfigSource::Default);
        assert!(config.accounts.is_empty());
        assert_eq!(config.log.level, "trace", "overrides apply without a file");
        assert_eq!(config.data_dir, dir.path().join(".local/share/sluice"));
    }

    #[test]
    fn unreadable_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = load_with_env(Some(dir.path()), &env_of(TEST_ENV)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Io);
        assert_eq!(error.file.as_deref(), Some(dir.path()));
    }

    const SECRETS: &[&str] = &[
        "sk-sluice-client-one",
        "sk-sluice-client-two",
        "admin-very-secret",
        "sk-ant-api03-inline",
        "sk-ant-oat01-inline",
        "sk-ant-ort01-inline",
        "sk-env-api",
        "sk-env-token",
        "sk-env-refresh",
        "url-password",
    ];

    const WITH_SECRETS: &str = r#"
client_keys = ["sk-sluice-client-one", "sk-sluice-client-two"]
admin_key = "admin-very-secret"

[[accounts]]
name = "inline-api"
api_key = "sk-ant-api03-inline"
priority = -3
weight = 7

[[accounts]]
name = "inline-oauth"
access_token = "sk-ant-oat01-inline"
refresh_token = "sk-ant-ort01-inline"
expires_at = 1767225600000
upstream = "https://user:url-password@gateway.example.com/base"
enabled = false

[[accounts]]
name = "env-api"
api_key_env = "API"

[[accounts]]
name = "env-oauth"
access_token_env = "TOKEN"
refresh_token_env = "REFRESH"

[limits]
max_request_body = 1000001

[scheduler]
switch_threshold = 0.75
cooldown = "1m 30s"
max_cooldown = "1h"

[log]
retention = "14d"

[prices."claude-sonnet-4"]
cache_read = 0.25

[prices.glm-4]
input = 0.6
output = 2.2
"#;

    #[test]
    fn masked_toml_and_debug_show_no_secret() {
        let config = parse(WITH_SECRETS).expect("valid");
        let rendered = config.to_masked_toml();
        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");
        for secret in SECRETS {
            assert!(
                !rendered.contains(secret),
                "rendered TOML leaks {secret}:\n{rendered}"
            );
            assert!(!debug.contains(secret), "Debug leaks {secret}");
            assert!(!pretty.contains(secret), "pretty Debug leaks {secret}");
        }
        let body = rendered.split_once('\n').map_or("", |(_, body)| body);
        assert_eq!(
            body.matches("\"****\"").count(),
            9,
            "every secret shows up masked"
        );
    }

    #[test]
    fn masked_toml_parses_back_to_the_same_config() {
        let config = parse(WITH_SECRETS).expect("valid");
        let rendered = config.to_masked_toml();
        let reparsed = parse_str(&rendered, None, &env_of(&[])).expect("rendered TOML is valid");

        assert_eq!(
            reparsed
                .to_masked_toml()
                .lines()
                .skip(1)
                .collect::<Vec<_>>(),
            rendered.lines().skip(1).collect::<Vec<_>>()
        );
        assert_eq!(reparsed.listen, config.listen);
        assert_eq!(reparsed.data_dir, config.data_dir);
        assert_eq!(reparsed.client_keys.len(), config.client_keys.len());
        assert_eq!(reparsed.providers, config.providers);
        assert_eq!(reparsed.limits, config.limits);
        assert_eq!(reparsed.upstream, config.upstream);
        assert_eq!(reparsed.retry, config.retry);
        assert_eq!(reparsed.queue, config.queue);
        assert_eq!(reparsed.scheduler, config.scheduler);
        assert_eq!(reparsed.log, config.log);
        assert_eq!(reparsed.prices, config.prices);
        assert_eq!(reparsed.oauth, config.oauth);
        assert_eq!(reparsed.shutdown, config.shutdown);
        for (before, after) in config.accounts.iter().zip(&reparsed.accounts) {
            assert_eq!(after.name, before.name);
            assert_eq!(after.provider, before.provider);
            assert_eq!(after.credential.kind(), before.credential.kind());
            assert_eq!(
                after.upstream.as_ref().map(Url::host_str),
                before.upstream.as_ref().map(Url::host_str)
            );
            assert_eq!(
                (after.priority, after.weight, after.enabled),
                (before.priority, before.weight, before.enabled)
            );
        }
        assert_eq!(reparsed.accounts.len(), config.accounts.len());
    }

    #[test]
    fn masked_toml_spells_out_defaults() {
        let config = parse_str("", None, &env_of(&[("HOME", "/h")])).expect("valid");
        let rendered = config.to_masked_toml();
        for line in [
            "listen = \"127.0.0.1:8787\"",
            "data_dir = \"/h/.local/share/sluice\"",
            "client_keys = []",
            "[providers.anthropic]",
            "max_request_body = \"32MiB\"",
            "response_timeout = \"10m\"",
            "attempts_per_account = 1",
            "switch_threshold = 0.9",
            "strategy = \"adaptive\"",
            "level = \"info\"",
        ] {
            assert!(
                rendered.lines().any(|l| l == line),
                "missing {line:?} in:\n{rendered}"
            );
        }
        assert!(!rendered.contains("admin_key"));
        assert!(rendered.starts_with("# Effective sluice configuration (from built-in defaults)"));
    }
}
