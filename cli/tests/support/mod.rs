//! A fake twofoldd for the CLI's tests: a thread on a temporary Unix socket
//! that speaks proto frames and answers each request from a closure.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use twofold_proto::{read_message, write_message, FrameError, Request, Response, PROTO_VERSION};

/// A fresh, empty directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tf-cli-it-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Answer = dyn Fn(&Request) -> Response + Send + Sync;

/// The fake daemon. Requests after `Hello` are recorded in order.
pub struct FakeDaemon {
    pub dir: TempDir,
    pub socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    pub fn start(
        name: &str,
        answer: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        let dir = TempDir::new(name);
        let socket = dir.0.join("twofold.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    match read_message::<Request>(&mut conn) {
                        Ok(Request::Hello { .. }) => {}
                        _ => continue,
                    }
                    if write_message(
                        &mut conn,
                        &Response::Welcome {
                            proto: PROTO_VERSION,
                        },
                    )
                    .is_err()
                    {
                        continue;
                    }
                    loop {
                        let req = match read_message::<Request>(&mut conn) {
                            Ok(r) => r,
                            Err(FrameError::Closed) | Err(_) => break,
                        };
                        let resp = answer(&req);
                        requests.lock().unwrap().push(req);
                        if write_message(&mut conn, &resp).is_err() {
                            break;
                        }
                    }
                }
            })
        };
        FakeDaemon {
            dir,
            socket,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request received so far, `Hello` excluded.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Runs the built `twofold` against this daemon with `--socket`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        twofold(&all, stdin)
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the stop flag.
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built `twofold` with `args`, feeding `stdin` (a pipe, not a terminal).
pub fn twofold(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twofold"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI may exit before reading everything; a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}
