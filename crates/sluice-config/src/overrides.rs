//! `SLUICE_*` environment variables that override file settings; applied after
//! the file so a deployment can adjust a shared config without editing it.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{ConfigError, ErrorKind};
use crate::model::Config;

/// Overrides `listen`.
pub const LISTEN_VAR: &str = "SLUICE_LISTEN";
/// Overrides `data_dir`.
pub const DATA_DIR_VAR: &str = "SLUICE_DATA_DIR";
/// Overrides `log.level`.
pub const LOG_VAR: &str = "SLUICE_LOG";

/// Empty variables count as unset, matching how shells and `RUST_LOG` behave.
pub(crate) fn apply_overrides(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let set = |var: &str| env(var).filter(|value| !value.trim().is_empty());

    if let Some(listen) = set(LISTEN_VAR) {
        config.listen = listen.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                ErrorKind::Environment,
                format!("invalid address {listen:?} (overrides listen); expected IP:port such as \"127.0.0.1:8787\""),
            )
            .with_key(LISTEN_VAR)
        })?;
    }
    if let Some(dir) = set(DATA_DIR_VAR) {
        config.data_dir = PathBuf::from(dir);
    }
    if let Some(level) = set(LOG_VAR) {
        config.log.level = level;
    }
    Ok(())
}
