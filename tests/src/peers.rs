//! Tests that act as an unprivileged local user: the test (as root) re-runs
//! one child entry point of its own binary as `nobody` (uid and gid 65534;
//! `--ignored --exact`, see [`crate::daemon::assert_child_ok`]), so the
//! daemon sees that uid through `SO_PEERCRED`, and the two talk in lines
//! (the child's stdout, the parent's stdin) to stay in step while both run.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_proto::{FrameReader, Response};

/// The uid (and gid) the child runs as: `nobody`/`nogroup`.
pub const NOBODY: u32 = 65534;

/// How long the parent waits for a line before giving up on the child.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// A copy of this test binary running one of its child entry points as
/// `nobody`.
#[derive(Debug)]
pub struct AsNobody {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Everything it printed so far (stdout lines, then stderr), for failures.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl AsNobody {
    /// Runs the child entry point `test` (an ignored test) of the current
    /// binary as uid/gid 65534, with `env` set (what it is to do). Panics
    /// unless the caller is root ([`crate::require_root`]).
    #[track_caller]
    pub fn start(test: &str, env: &[(&str, &OsStr)]) -> AsNobody {
        crate::require_root();
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("re-run the test binary as nobody");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        AsNobody {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for a line of the child holding `marker` and returns what
    /// follows it (libtest may have begun the line with `test NAME ... `);
    /// panics, showing all it printed, if the child ends or stays silent
    /// for a minute first.
    pub fn expect_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let rest = line
                        .find(marker)
                        .map(|at| line[at + marker.len()..].to_owned());
                    self.seen.push(line);
                    if let Some(rest) = rest {
                        return rest;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no line {marker:?} within {LINE_WAIT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    self.fail(&format!("the child ended before printing {marker:?}"))
                }
            }
        }
    }

    /// Sends the child one line (it reads it with [`hear`]).
    pub fn say(&mut self, line: &str) {
        let sent = self
            .stdin
            .as_mut()
            .map(|s| writeln!(s, "{line}").and_then(|()| s.flush()));
        if !matches!(sent, Some(Ok(()))) {
            self.fail(&format!("cannot tell the child {line:?}"));
        }
    }

    /// Closes its stdin, waits for it to end and asserts that it ran as
    /// exactly one test, passed, and printed its "child ok" marker.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the child");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let said = |what: &str| self.seen.iter().any(|l| l.contains(what));
        if !status.success() || !said("child ok") || !said("test result: ok. 1 passed;") {
            self.fail(&format!(
                "the child failed or did not run exactly one test ({status})"
            ));
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        std::thread::sleep(Duration::from_millis(100));
        panic!(
            "{what}:\n{}\n{}",
            self.seen.join("\n"),
            self.stderr.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
}

impl Drop for AsNobody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child: the parent's next line ([`AsNobody::say`]); empty once
/// the parent closed stdin.
pub fn hear() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim_end().to_owned()
}

/// What a fresh connection was sent before the client said anything,
/// within `wait`: the daemon's refusal of a connection over a limit, or
/// `None` when the daemon is waiting for the client's `Hello` (the
/// connection was admitted).
pub fn refusal_of(stream: &UnixStream, wait: Duration) -> Option<Response> {
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let mut s = stream;
    match FrameReader::new().read_message::<Response>(&mut s) {
        Ok(r) => Some(r),
        Err(twofold_proto::FrameError::Timeout) => None,
        Err(e) => panic!("reading a refusal: {e}"),
    }
}
