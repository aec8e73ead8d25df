//! Event logging: one `key=value` line per event.
//!
//! Everything the daemon reports goes through [`Logger`], so syslog and the
//! audit table can later be added in this one place. **Invariant:** no code,
//! secret or key is ever passed to it; values that came from a client are
//! escaped so that one event is always one line.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where log lines go.
pub trait LogSink: Send + Sync + 'static {
    /// Records one complete line (without its newline).
    fn write_line(&self, line: &str);
}

/// Writes each line to standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLog;

impl LogSink for StderrLog {
    fn write_line(&self, line: &str) {
        // One write per line so that lines from concurrent threads never interleave.
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        let _ = std::io::stderr().lock().write_all(buf.as_bytes());
    }
}

/// Keeps lines in memory; tests read them back to check what was logged.
#[derive(Debug, Default)]
pub struct MemoryLog {
    lines: Mutex<Vec<String>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Every line recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LogSink for MemoryLog {
    fn write_line(&self, line: &str) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_owned());
    }
}

/// The daemon's event logger; cheap to clone.
#[derive(Clone)]
pub struct Logger {
    sink: Arc<dyn LogSink>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logger")
    }
}

impl Logger {
    /// A logger writing to `sink`.
    pub fn new(sink: Arc<dyn LogSink>) -> Logger {
        Logger { sink }
    }

    /// A logger writing to standard error.
    pub fn stderr() -> Logger {
        Logger::new(Arc::new(StderrLog))
    }

    /// Logs `twofoldd: EVENT key=value ...`; values are escaped, `-` when empty.
    pub fn event(&self, event: &str, fields: &[(&str, &str)]) {
        let mut line = format!("twofoldd: {event}");
        for (key, value) in fields {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&escape(value));
        }
        self.sink.write_line(&line);
    }
}

/// Renders a value so that it stays one token on one line.
pub(crate) fn escape(value: &str) -> String {
    if value.is_empty() {
        return "-".to_owned();
    }
    let plain = value
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_stay_on_one_line() {
        let mem = Arc::new(MemoryLog::new());
        let log = Logger::new(mem.clone());
        log.event(
            "login",
            &[
                ("user", "al\nice result=success"),
                ("rhost", ""),
                ("x", "a\0b"),
            ],
        );
        let lines = mem.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0],
            r#"twofoldd: login user="al\nice result=success" rhost=- x="a\0b""#
        );
    }

    #[test]
    fn plain_values_are_unquoted() {
        let mem = Arc::new(MemoryLog::new());
        Logger::new(mem.clone()).event("login", &[("user", "alice"), ("service", "sudo")]);
        assert_eq!(mem.lines(), ["twofoldd: login user=alice service=sudo"]);
    }
}
