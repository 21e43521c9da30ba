//! Where log lines go while the dashboard owns the terminal: into a bounded buffer the log
//! pane shows, instead of stderr (which would scribble over the screen). Once the dashboard
//! lets go of the terminal, lines go to stderr again.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// Lines kept for the pane.
const KEEP: usize = 500;

/// A tracing writer feeding the log pane. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogPane {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: Mutex<VecDeque<String>>,
    /// The terminal is the dashboard's: keep lines instead of printing them.
    released: AtomicBool,
}

impl LogPane {
    pub fn new() -> LogPane {
        LogPane::default()
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.inner.lines.lock().iter().cloned().collect()
    }

    /// The dashboard let go of the terminal: print from now on.
    pub fn release(&self) {
        self.inner.released.store(true, Ordering::SeqCst);
    }

    fn accept(&self, text: &str) {
        if self.inner.released.load(Ordering::SeqCst) {
            let _ = io::stderr().write_all(text.as_bytes());
            return;
        }
        let mut lines = self.inner.lines.lock();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if lines.len() == KEEP {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
    }
}

/// One event's text, handed over whole when the subscriber is done with it.
pub struct PaneWriter {
    pane: LogPane,
    buffer: Vec<u8>,
}

impl Write for PaneWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PaneWriter {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.pane.accept(&String::from_utf8_lossy(&self.buffer));
        }
    }
}

impl<'a> MakeWriter<'a> for LogPane {
    type Writer = PaneWriter;

    fn make_writer(&'a self) -> PaneWriter {
        PaneWriter {
            pane: self.clone(),
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_bounded_until_released() {
        let pane = LogPane::new();
        for i in 0..(KEEP + 5) {
            let mut writer = pane.make_writer();
            writeln!(writer, "line {i}").unwrap();
        }
        let lines = pane.lines();
        assert_eq!(lines.len(), KEEP);
        assert_eq!(lines[0], "line 5");
        pane.release();
        let mut writer = pane.make_writer();
        writeln!(writer, "to stderr").unwrap();
        drop(writer);
        assert_eq!(
            pane.lines().len(),
            KEEP,
            "released lines are printed, not kept"
        );
    }
}
