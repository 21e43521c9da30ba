//! Who owns the terminal while sluice serves: the live dashboard (`sluice-tui`), when stdin
//! and stdout are a terminal and `--no-tui` was not given, or plain structured log lines on
//! stderr otherwise (a service, a pipe, a test).

use std::io::IsTerminal;

use sluice_server::AppState;
use sluice_tui::{Dashboard, LogPane};
use tokio_util::sync::CancellationToken;
use tracing_appender::non_blocking::WorkerGuard;

pub struct Screen {
    pane: Option<LogPane>,
    dashboard: Option<Dashboard>,
    /// The dashboard ran (so its log pane was seen).
    shown: bool,
    _log: Option<WorkerGuard>,
}

impl Screen {
    /// Set up log output for a dashboard (when wanted and possible) or for plain lines.
    pub fn init(level: &str, no_tui: bool) -> Screen {
        let interactive = std::io::stdin().is_terminal()
            && std::io::stdout().is_terminal()
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        if interactive && !no_tui {
            let pane = LogPane::new();
            crate::logging::init_pane(level, pane.clone());
            Screen {
                pane: Some(pane),
                dashboard: None,
                shown: false,
                _log: None,
            }
        } else {
            Screen {
                pane: None,
                dashboard: None,
                shown: false,
                _log: Some(crate::logging::init(level)),
            }
        }
    }

    /// Whether the dashboard will own the terminal (so nothing else should print to it).
    pub fn is_dashboard(&self) -> bool {
        self.pane.is_some()
    }

    /// Take over the terminal (from inside the runtime). `quit` is cancelled when the user
    /// quits from the dashboard. If the terminal cannot be taken over, log lines go to
    /// stderr after all.
    pub fn start(&mut self, app: &AppState, quit: CancellationToken) {
        let Some(pane) = self.pane.clone() else {
            return;
        };
        match Dashboard::start(
            app.clone(),
            tokio::runtime::Handle::current(),
            quit,
            pane.clone(),
        ) {
            Ok(dashboard) => {
                self.dashboard = Some(dashboard);
                self.shown = true;
            }
            Err(error) => {
                pane.release();
                self.pane = None;
                tracing::warn!(%error, "could not start the terminal dashboard; logging instead");
            }
        }
    }

    /// Give the terminal back (after the server stopped).
    pub fn finish(&mut self) {
        if let Some(dashboard) = self.dashboard.take()
            && let Err(error) = dashboard.finish()
        {
            tracing::warn!(%error, "the terminal dashboard ended with an error");
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.finish();
        // sluice stopped before the dashboard showed (a start-up error): the lines kept for
        // its log pane were never seen.
        if let Some(pane) = self.pane.take()
            && !self.shown
        {
            use std::io::Write;
            pane.release();
            let mut stderr = std::io::stderr().lock();
            for line in pane.lines() {
                let _ = writeln!(stderr, "{line}");
            }
        }
    }
}
