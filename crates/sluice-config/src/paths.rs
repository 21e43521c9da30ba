//! Where the config file and the data directory live by default (XDG base
//! directories). The environment is passed in, so tests never have to touch
//! the process environment.

use std::path::{Path, PathBuf};

/// Names a config file, taking precedence over the default location.
pub const CONFIG_PATH_VAR: &str = "SLUICE_CONFIG";

/// Where the config file should be read from, and on whose say-so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedPath {
    /// Given with `--config`; must exist.
    CommandLine(PathBuf),
    /// Given with `$SLUICE_CONFIG`; must exist.
    Environment(PathBuf),
    /// The XDG default location; a missing file means built-in defaults.
    DefaultLocation(PathBuf),
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` is set, so there is no default file.
    NoDefaultLocation,
}

impl ResolvedPath {
    /// The file to read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ResolvedPath::CommandLine(path)
            | ResolvedPath::Environment(path)
            | ResolvedPath::DefaultLocation(path) => Some(path),
            ResolvedPath::NoDefaultLocation => None,
        }
    }

    /// Whether a missing file is an error rather than "use the defaults".
    pub fn must_exist(&self) -> bool {
        matches!(
            self,
            ResolvedPath::CommandLine(_) | ResolvedPath::Environment(_)
        )
    }

    /// Who chose this path, for messages: `--config`, `$SLUICE_CONFIG`, ….
    pub fn origin(&self) -> &'static str {
        match self {
            ResolvedPath::CommandLine(_) => "--config",
            ResolvedPath::Environment(_) => "$SLUICE_CONFIG",
            ResolvedPath::DefaultLocation(_) => "the default location",
            ResolvedPath::NoDefaultLocation => "no location",
        }
    }
}

/// Picks the config file: `--config`, else `$SLUICE_CONFIG`, else
/// `$XDG_CONFIG_HOME/sluice/config.toml`, else `$HOME/.config/sluice/config.toml`.
pub fn resolve_path(cli: Option<&Path>) -> ResolvedPath {
    resolve_path_with_env(cli, &crate::process_env)
}

/// [`resolve_path`] reading variables through `env` instead of the process.
pub fn resolve_path_with_env(
    cli: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> ResolvedPath {
    if let Some(path) = cli {
        return ResolvedPath::CommandLine(path.to_path_buf());
    }
    if let Some(path) = non_empty(env, CONFIG_PATH_VAR) {
        return ResolvedPath::Environment(PathBuf::from(path));
    }
    match xdg_base_dir(env, "XDG_CONFIG_HOME", ".config") {
        Some(base) => ResolvedPath::DefaultLocation(base.join("sluice").join("config.toml")),
        None => ResolvedPath::NoDefaultLocation,
    }
}

/// `$XDG_DATA_HOME/sluice`, else `~/.local/share/sluice`; with neither
/// variable set there is no home to anchor to, so fall back to `./.sluice`.
pub(crate) fn default_data_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    xdg_base_dir(env, "XDG_DATA_HOME", ".local/share")
        .map_or_else(|| PathBuf::from(".sluice"), |base| base.join("sluice"))
}

/// The XDG spec says relative values are invalid and must be ignored.
fn xdg_base_dir(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    under_home: &str,
) -> Option<PathBuf> {
    non_empty(env, var)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| non_empty(env, "HOME").map(|home| PathBuf::from(home).join(under_home)))
}

fn non_empty(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    env(var).filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn command_line_wins() {
        let env = env_of(&[("SLUICE_CONFIG", "/env.toml"), ("HOME", "/home/u")]);
        let resolved = resolve_path_with_env(Some(Path::new("/cli.toml")), &env);
        assert_eq!(
            resolved,
            ResolvedPath::CommandLine(PathBuf::from("/cli.toml"))
        );
        assert!(resolved.must_exist());
    }

    #[test]
    fn env_var_beats_default_location() {
        let env = env_of(&[("SLUICE_CONFIG", "/env.toml"), ("XDG_CONFIG_HOME", "/xdg")]);
        let resolved = resolve_path_with_env(None, &env);
        assert_eq!(
            resolved,
            ResolvedPath::Environment(PathBuf::from("/env.toml"))
        );
        assert!(resolved.must_exist());
    }

    #[test]
    fn xdg_config_home_then_home() {
        let env = env_of(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/u")]);
        let resolved = resolve_path_with_env(None, &env);
        assert_eq!(resolved.path(), Some(Path::new("/xdg/sluice/config.toml")));
        assert!(!resolved.must_exist());

        let env = env_of(&[
            ("XDG_CONFIG_HOME", "relative"),
            ("SLUICE_CONFIG", ""),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            resolve_path_with_env(None, &env).path(),
            Some(Path::new("/home/u/.config/sluice/config.toml"))
        );

        assert_eq!(
            resolve_path_with_env(None, &env_of(&[])),
            ResolvedPath::NoDefaultLocation
        );
    }

    #[test]
    fn data_dir_follows_xdg() {
        let env = env_of(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]);
        assert_eq!(default_data_dir(&env), PathBuf::from("/data/sluice"));
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            default_data_dir(&env),
            PathBuf::from("/home/u/.local/share/sluice")
        );
        assert_eq!(default_data_dir(&env_of(&[])), PathBuf::from(".sluice"));
    }
}
