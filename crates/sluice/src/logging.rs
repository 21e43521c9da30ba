//! Log output: structured lines on stderr, filtered by `RUST_LOG`, else `SLUICE_LOG`, else the
//! config's `log.level`.
//!
//! Lines are handed to a dedicated writer thread (non-blocking), so a request never waits on
//! a `write(2)` to stderr; colours only when stderr is a terminal. While the terminal
//! dashboard owns the terminal, lines go to its log pane instead ([`init_pane`]).

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Keep the returned guard alive for the life of the process: dropping it flushes the
/// remaining lines and stops the writer thread.
#[must_use = "dropping the guard stops log output"]
pub fn init(level: &str) -> WorkerGuard {
    let filter = filter(level);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under overload drop log lines rather than slow requests down.
        .lossy(true)
        .finish(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    guard
}

/// Log lines into the terminal dashboard's log pane instead of stderr. The per-request
/// lines are left out there: the dashboard lists requests in a pane of their own.
pub fn init_pane(level: &str, pane: sluice_tui::LogPane) {
    let filter =
        filter(level).add_directive("sluice::request=off".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(pane)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

fn filter(level: &str) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}
