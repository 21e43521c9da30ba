//! The terminal dashboard as a user meets it: `sluice demo` with a pseudo-terminal for its
//! stdin and stdout (stderr kept apart, on a pipe). The dashboard draws the pool, log lines
//! land in its log pane and not on stderr while it owns the terminal, and `q` then `y` quits
//! through the drain with exit status 0.

use std::fs::File;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

/// Deadlines for a loaded two-core machine, not measurements.
const PATIENCE: Duration = Duration::from_secs(30);

/// Collect everything `reader` yields into a shared buffer, on a thread of its own (so the
/// child never blocks writing).
fn collect(mut reader: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        // A pseudo-terminal's master reports EIO once the last slave is closed.
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

fn text(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock()).into_owned()
}

/// The last few thousand characters: enough to see the last frames.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool, screen: &Mutex<Vec<u8>>) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the end of the screen so far:\n{}",
            tail(&text(screen))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_owns_the_terminal_logs_to_its_pane_and_quits_with_q() {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo-terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    tcsetwinsize(
        &master,
        Winsize {
            ws_row: 40,
            ws_col: 140,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    let slave_path = ptsname(&master, Vec::new()).unwrap();
    let slave_path = std::path::PathBuf::from(slave_path.to_str().unwrap());
    let open_slave = || {
        File::options()
            .read(true)
            .write(true)
            .open(&slave_path)
            .expect("the pseudo-terminal's slave side opens")
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--accounts",
            "2",
            "--traffic",
            "2",
        ])
        .env_remove("RUST_LOG")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(open_slave()))
        .stdout(Stdio::from(open_slave()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice demo starts");
    let stderr = collect(child.stderr.take().unwrap());
    let master = File::from(master);
    let mut keys = master.try_clone().unwrap();
    let screen = collect(master);

    // The dashboard draws the pool, and the start-up log line shows in its log pane.
    wait_until(
        "the dashboard with its log pane",
        || {
            let shown = text(&screen);
            shown.contains("demo-max20-1") && shown.contains("serving")
        },
        &screen,
    );
    let printed = text(&stderr);
    assert!(
        !printed.contains("serving") && !printed.contains("INFO"),
        "log lines went to stderr while the dashboard owned the terminal:\n{printed}"
    );

    // q asks first; y quits, draining.
    keys.write_all(b"q").unwrap();
    wait_until(
        "the quit confirmation",
        // Drawn with cursor moves between words: look for one word.
        || text(&screen).contains("sluice?"),
        &screen,
    );
    keys.write_all(b"y").unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice did not exit after q, y; stderr:\n{}", text(&stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        text(&stderr)
    );
}
