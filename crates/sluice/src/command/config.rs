//! `sluice config check|example`: validate a config and show it with secrets masked.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate a config file and print the effective configuration, secrets masked.
    Check {
        /// Config file (default: --config resolution: $SLUICE_CONFIG, then the XDG path).
        path: Option<PathBuf>,
    },
    /// Print a commented example configuration.
    Example,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { path } => match sluice_config::load(path.as_deref()) {
            Ok(config) => {
                match &config.source {
                    sluice_config::ConfigSource::File(path) => {
                        eprintln!("{}: ok", path.display());
                    }
                    sluice_config::ConfigSource::Default => {
                        eprintln!("no config file found; these are the defaults");
                    }
                }
                print!("{}", config.to_masked_toml());
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                eprintln!("{error}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Example => {
            print!("{}", sluice_config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
    }
}
