//! A scripted stand-in for `twofoldd` on a temporary socket.
//!
//! It answers `Hello`, records the `Begin` it received, then plays a script
//! of responses, recording each reply; raw steps send bytes no real daemon
//! would (garbage, a truncated frame, a 1 MiB length) or stop answering.
//!
//! ```no_run
//! use twofold_tests::fake_daemon::{FakeDaemon, Script};
//! let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
//! // ... point pam_twofold.so at daemon.socket() and log in ...
//! let session = daemon.session();
//! assert_eq!(session.answers(), ["123456"]);
//! ```

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use twofold_proto::{read_frame, write_message, Request, Response, PROTO_VERSION};

/// How long the fake waits for a client's frame before giving up on it.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// One thing the fake daemon does on a connection.
#[derive(Debug, Clone)]
pub enum Step {
    /// Sends a response; after `Prompt` it reads the client's answer and
    /// after `Info`, `Error` or `Wait` its acknowledgement.
    Send(Response),
    /// Writes bytes as they are.
    Raw(Vec<u8>),
    /// Stops answering and reads until the client hangs up.
    Hang,
}

/// What the fake daemon does on each connection.
#[derive(Debug, Clone)]
pub struct Script {
    handshake: bool,
    steps: Vec<Step>,
}

impl Script {
    /// Answers `Hello` with `Welcome`, reads `Begin`, then runs the steps.
    pub fn login() -> Script {
        Script {
            handshake: true,
            steps: Vec::new(),
        }
    }

    /// Runs the steps right after accepting, before reading anything.
    pub fn on_accept() -> Script {
        Script {
            handshake: false,
            steps: Vec::new(),
        }
    }

    /// Adds a step.
    pub fn step(mut self, s: Step) -> Self {
        self.steps.push(s);
        self
    }

    /// Sends a response (see [`Step::Send`]).
    pub fn send(self, r: Response) -> Self {
        self.step(Step::Send(r))
    }

    /// Sends `Prompt` and reads the answer.
    pub fn prompt(self, text: &str, echo: bool) -> Self {
        self.send(Response::Prompt {
            text: text.into(),
            echo,
        })
    }

    /// Sends `Info` and reads the `Ack`.
    pub fn info(self, text: &str) -> Self {
        self.send(Response::Info { text: text.into() })
    }

    /// Sends `Error` and reads the `Ack`.
    pub fn error(self, text: &str) -> Self {
        self.send(Response::Error { text: text.into() })
    }

    /// Sends `Wait` and reads the `Ack`.
    pub fn wait(self, text: &str) -> Self {
        self.send(Response::Wait { text: text.into() })
    }

    /// Sends `Success`.
    pub fn success(self) -> Self {
        self.send(Response::Success)
    }

    /// Sends `Denied`.
    pub fn denied(self, reason: &str) -> Self {
        self.send(Response::Denied {
            reason: reason.into(),
            message: None,
        })
    }

    /// Sends `Ignore`.
    pub fn ignore(self) -> Self {
        self.send(Response::Ignore)
    }

    /// Sends `Unavailable`.
    pub fn unavailable(self) -> Self {
        self.send(Response::Unavailable)
    }

    /// Writes raw bytes.
    pub fn raw(self, bytes: &[u8]) -> Self {
        self.step(Step::Raw(bytes.to_vec()))
    }

    /// A well-framed body that is not JSON.
    pub fn garbage(self) -> Self {
        let body = b"\x00\xffnot json at all{{{";
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.raw(&frame)
    }

    /// A frame announcing 100 bytes that carries 10, then the end of the connection.
    pub fn truncated_frame(self) -> Self {
        let mut frame = 100u32.to_be_bytes().to_vec();
        frame.extend_from_slice(br#"{"type":"s"#);
        self.raw(&frame)
    }

    /// A frame announcing 1 MiB, far over the 64 KiB limit.
    pub fn oversized_frame(self) -> Self {
        let mut frame = (1u32 << 20).to_be_bytes().to_vec();
        frame.extend_from_slice(&[b' '; 1024]);
        self.raw(&frame)
    }

    /// Stops answering (see [`Step::Hang`]).
    pub fn hang(self) -> Self {
        self.step(Step::Hang)
    }
}

/// What the fake daemon saw on one connection.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The client's `Hello`.
    pub hello: Option<Request>,
    /// The client's `Begin`.
    pub begin: Option<Request>,
    /// Every reply after `Begin`, in order (answers and acks).
    pub replies: Vec<Request>,
    /// Why the connection ended early, if it did (e.g. the client hung up
    /// instead of answering).
    pub error: Option<String>,
}

impl Session {
    /// The texts of every `Answer`, in order.
    pub fn answers(&self) -> Vec<String> {
        self.replies
            .iter()
            .filter_map(|r| match r {
                Request::Answer { text } => Some(text.expose().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// How many `Ack`s the client sent.
    pub fn acks(&self) -> usize {
        self.replies
            .iter()
            .filter(|r| matches!(r, Request::Ack))
            .count()
    }

    /// The client name from `Hello`.
    pub fn client(&self) -> Option<&str> {
        match &self.hello {
            Some(Request::Hello { client, .. }) => Some(client),
            _ => None,
        }
    }
}

/// A running fake daemon; stops and removes its socket on drop.
#[derive(Debug)]
pub struct FakeDaemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sessions: Mutex<Receiver<Session>>,
    _listener: Option<UnixListener>,
}

impl FakeDaemon {
    /// Listens on a fresh temporary socket and serves every connection,
    /// one at a time, with `script`.
    pub fn start(script: Script) -> io::Result<FakeDaemon> {
        let dir = tempfile::Builder::new().prefix("tf-fake").tempdir()?;
        let socket = dir.path().join("twofold.sock");
        let listener = UnixListener::bind(&socket)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("fake-twofoldd".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let session = serve(stream, &script, &thread_stop);
                            if tx.send(session).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => return,
                    }
                }
            })?;
        Ok(FakeDaemon {
            dir,
            socket,
            stop,
            thread: Some(thread),
            sessions: Mutex::new(rx),
            _listener: None,
        })
    }

    /// A socket that is bound and listening but never accepts: connections
    /// sit in the backlog and nothing is ever answered.
    pub fn not_accepting() -> io::Result<FakeDaemon> {
        let dir = tempfile::Builder::new().prefix("tf-fake").tempdir()?;
        let socket = dir.path().join("twofold.sock");
        let listener = UnixListener::bind(&socket)?;
        let (_tx, rx) = mpsc::channel();
        Ok(FakeDaemon {
            dir,
            socket,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            sessions: Mutex::new(rx),
            _listener: Some(listener),
        })
    }

    /// The socket path to give the module (`socket=...`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory holding the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The next finished connection, waiting up to `timeout` for it.
    pub fn next_session(&self, timeout: Duration) -> Option<Session> {
        let rx = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        rx.recv_timeout(timeout).ok()
    }

    /// The next finished connection; panics if none ends within 10 s.
    pub fn session(&self) -> Session {
        match self.next_session(Duration::from_secs(10)) {
            Some(s) => s,
            None => panic!("the fake daemon saw no finished connection within 10 s"),
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: UnixStream, script: &Script, stop: &AtomicBool) -> Session {
    let mut s = Session::default();
    if let Err(e) = run(&mut stream, script, stop, &mut s) {
        s.error = Some(e);
    }
    s
}

fn run(
    stream: &mut UnixStream,
    script: &Script,
    stop: &AtomicBool,
    s: &mut Session,
) -> Result<(), String> {
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(READ_LIMIT)))
        .and_then(|()| stream.set_write_timeout(Some(READ_LIMIT)))
        .map_err(|e| format!("socket setup: {e}"))?;
    if script.handshake {
        let hello = read_request(stream, "hello")?;
        if !matches!(hello, Request::Hello { .. }) {
            return Err(format!("expected hello, got {}", hello.kind()));
        }
        s.hello = Some(hello);
        send(
            stream,
            &Response::Welcome {
                proto: PROTO_VERSION,
            },
        )?;
        let begin = read_request(stream, "begin")?;
        if !matches!(begin, Request::Begin { .. }) {
            return Err(format!("expected begin, got {}", begin.kind()));
        }
        s.begin = Some(begin);
    }
    for step in &script.steps {
        match step {
            Step::Send(r) => {
                send(stream, r)?;
                let want = match r {
                    Response::Prompt { .. } => "answer",
                    Response::Info { .. } | Response::Error { .. } | Response::Wait { .. } => "ack",
                    _ => continue,
                };
                let reply = read_request(stream, want)?;
                let kind = reply.kind();
                s.replies.push(reply);
                if kind != want {
                    return Err(format!("expected {want}, got {kind}"));
                }
            }
            Step::Raw(bytes) => stream
                .write_all(bytes)
                .map_err(|e| format!("writing raw bytes: {e}"))?,
            Step::Hang => return hang(stream, stop),
        }
    }
    Ok(())
}

fn send(stream: &mut UnixStream, r: &Response) -> Result<(), String> {
    write_message(stream, r).map_err(|e| format!("sending {r:?}: {e}"))
}

fn read_request(stream: &mut UnixStream, want: &str) -> Result<Request, String> {
    let body = read_frame(stream).map_err(|e| format!("waiting for {want}: {e}"))?;
    Request::decode(&body).map_err(|e| format!("waiting for {want}: {e}"))
}

/// Holds the connection without answering until the client hangs up.
fn hang(stream: &mut UnixStream, stop: &AtomicBool) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("while hanging: {e}")),
        }
    }
    Ok(())
}
