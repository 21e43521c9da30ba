//! sluice's terminal dashboard: the pool live in the terminal `sluice serve` and `sluice demo`
//! run in.
//!
//! A header (listen address, routing strategy, throughput, queue), a row per account (state,
//! 5-hour and 7-day usage bars with reset countdowns, in-flight, requests in the last 15
//! minutes and hour, last error), the most recent requests and the log. `a` opens the
//! accounts menu (enable/disable, rename, priority, remove an idle account), `m` the routing
//! menu, `q` quits (draining requests in flight first); arrows or `j`/`k`, Enter and Esc move
//! through menus, and every state change asks y/n.
//!
//! The dashboard runs on a thread of its own, drawing a [`View`] captured from the server
//! four times a second; commands go to the server's runtime and report back. While it owns
//! the terminal, log lines go to its log pane ([`LogPane`]), not stderr. Drawing is pure
//! ([`draw::draw`] of a [`View`] and a [`Ui`]), which is what the snapshot tests exercise.

pub mod draw;
pub mod logpane;
pub mod ui;
pub mod view;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use sluice_server::AppState;
use sluice_server::manage;
use tokio_util::sync::CancellationToken;

pub use logpane::LogPane;
pub use ui::{Command, Key, Ui};
pub use view::View;

/// How often the screen is redrawn (and keys looked for).
const FRAME: Duration = Duration::from_millis(250);

/// A running terminal dashboard.
pub struct Dashboard {
    thread: Option<JoinHandle<io::Result<()>>>,
    finished: Arc<AtomicBool>,
    pane: LogPane,
}

impl Dashboard {
    /// Take over the terminal and show `app`. `quit` is cancelled when the user quits;
    /// `runtime` carries out account changes.
    pub fn start(
        app: AppState,
        runtime: tokio::runtime::Handle,
        quit: CancellationToken,
        pane: LogPane,
    ) -> io::Result<Dashboard> {
        let finished = Arc::new(AtomicBool::new(false));
        let terminal = ratatui::try_init()?;
        let thread = {
            let finished = finished.clone();
            let pane = pane.clone();
            std::thread::Builder::new()
                .name("sluice-tui".to_owned())
                .spawn(move || run(terminal, app, runtime, quit, pane, finished))?
        };
        Ok(Dashboard {
            thread: Some(thread),
            finished,
            pane,
        })
    }

    /// Stop drawing, give the terminal back, and send log lines to stderr again.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.finished.store(true, Ordering::SeqCst);
        let result = match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(Ok(())),
            None => Ok(()),
        };
        ratatui::restore();
        self.pane.release();
        result
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(
    mut terminal: ratatui::DefaultTerminal,
    app: AppState,
    runtime: tokio::runtime::Handle,
    quit: CancellationToken,
    pane: LogPane,
    finished: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut ui = Ui::default();
    let (reports, reported) = mpsc::channel::<(String, bool)>();
    while !finished.load(Ordering::SeqCst) {
        while let Ok((text, error)) = reported.try_recv() {
            ui.report(text, error);
        }
        let view = View::capture(&app, pane.lines(), quit.is_cancelled());
        terminal.draw(|frame| draw::draw(frame, &view, &ui))?;
        if !event::poll(FRAME)? {
            continue;
        }
        let Event::Key(press) = event::read()? else {
            continue;
        };
        if press.kind != KeyEventKind::Press {
            continue;
        }
        let key = match press.code {
            KeyCode::Char('c') if press.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Backspace => Key::Backspace,
            _ => continue,
        };
        match ui.key(key, &view) {
            None => {}
            Some(Command::Quit) => {
                tracing::info!("quit from the terminal dashboard");
                quit.cancel();
            }
            Some(Command::Strategy(strategy)) => {
                match sluice_server::admin::switch_strategy(&app, &strategy) {
                    Ok(()) => ui.report(format!("routing is now {strategy}"), false),
                    Err(error) => ui.report(error, true),
                }
            }
            Some(Command::Account { name, action }) => {
                ui.report(format!("{name}: working…"), false);
                let app = app.clone();
                let reports = reports.clone();
                runtime.spawn(async move {
                    let report = match manage::apply(&app, &name, action).await {
                        Ok(done) => (done.message, false),
                        Err(error) => (error.to_string(), true),
                    };
                    let _ = reports.send(report);
                });
            }
        }
    }
    Ok(())
}
