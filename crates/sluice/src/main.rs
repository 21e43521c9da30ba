//! `sluice`: the command line. Parsing and dispatch only; each subcommand lives in its own
//! file under `command/`, and the work itself in the library crates.

mod command;
mod logging;
mod screen;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = command::Cli::parse();
    match command::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sluice: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
