//! Shared test harness: an in-process daemon on a temporary socket, driven
//! through the real wire protocol, with codes from `oathtool`.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use twofold_config::{Config, Seconds};
use twofold_daemon::{Clock, Daemon, Logger, ManualClock, MemoryLog, Shutdown, Stats};
use twofold_proto::{Client, ErrorKind, Request, Response, Secret, TotpEnrollment};

/// Start of a 30 s step, far from any boundary trouble.
pub const T0: u64 = 56_666_666 * 30;

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tfd-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration whose every path is inside `dir`.
pub fn config_in(dir: &Path) -> Config {
    let mut c = Config::default();
    c.daemon.socket = dir.join("run/twofold.sock");
    c.daemon.database = dir.join("lib/twofold.db");
    c.daemon.master_key = dir.join("etc/master.key");
    c.daemon.client_timeout = Seconds(30);
    // Never write test events to the host's syslog.
    c.audit.syslog_socket = PathBuf::new();
    c
}

/// A daemon serving in a thread; shut down and joined on drop.
pub struct TestDaemon {
    pub dir: TempDir,
    pub config: Config,
    pub clock: Arc<ManualClock>,
    pub log: Arc<MemoryLog>,
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
    handle: Option<JoinHandle<()>>,
}

impl TestDaemon {
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| {})
    }

    pub fn start_with(tune: impl FnOnce(&mut Config)) -> TestDaemon {
        let dir = TempDir::new("d");
        let mut config = config_in(&dir.0);
        tune(&mut config);
        let clock = Arc::new(ManualClock::new(T0 + 5));
        TestDaemon::start_on(dir, config, clock)
    }

    /// Starts a daemon on an existing directory and config (e.g. a second
    /// daemon sharing the first one's database).
    pub fn start_on(dir: TempDir, config: Config, clock: Arc<ManualClock>) -> TestDaemon {
        let log = Arc::new(MemoryLog::new());
        let shared: Arc<dyn Clock> = clock.clone();
        let daemon =
            Daemon::open_with_log(config.clone(), shared, Logger::new(log.clone())).unwrap();
        let stats = daemon.stats();
        let listener = twofold_daemon::bind(&config.daemon.socket).unwrap();
        let shutdown = Shutdown::new();
        let sd = shutdown.clone();
        let handle = std::thread::spawn(move || daemon.serve(listener, sd).unwrap());
        TestDaemon {
            dir,
            config,
            clock,
            log,
            stats,
            shutdown,
            handle: Some(handle),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.config.daemon.socket
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A connected, handshaken client.
    pub fn client(&self) -> Client {
        Client::connect(self.socket(), Duration::from_secs(10), "daemon-test").unwrap()
    }

    /// A raw connection without handshake.
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Asserts that a brand-new client is served (handshake and a request).
    pub fn assert_serves_new_client(&self) {
        let mut c = self.client();
        match c.call(&Request::Status { user: None }).unwrap() {
            Response::Status(s) => assert_eq!(s.user, "root"),
            other => panic!("expected status, got {other:?}"),
        }
    }

    /// Starts and confirms a TOTP enrollment for `user` (as root/admin);
    /// returns the enrollment and the backup codes.
    pub fn enroll(&self, user: &str) -> (TotpEnrollment, Vec<Secret>) {
        let e = self.enroll_start(user);
        let code = oathtool(&e, self.now(), 0);
        let mut c = self.client();
        match c
            .call(&Request::TotpEnrollConfirm {
                user: Some(user.into()),
                code: Secret::from(code.as_str()),
            })
            .unwrap()
        {
            Response::BackupCodes { codes } => (e, codes),
            other => panic!("confirm: {other:?}"),
        }
    }

    pub fn enroll_start(&self, user: &str) -> TotpEnrollment {
        let mut c = self.client();
        match c
            .call(&Request::TotpEnrollStart {
                user: Some(user.into()),
                algorithm: None,
                digits: None,
            })
            .unwrap()
        {
            Response::TotpPending(e) => e,
            other => panic!("enroll start: {other:?}"),
        }
    }

    /// Runs a whole login with `answers`, acking errors; returns every
    /// response the daemon sent after `Begin`.
    pub fn login(&self, user: &str, answers: &[&str]) -> Vec<Response> {
        let mut c = self.client();
        login_on(&mut c, user, answers)
    }

    /// Every logged line, joined.
    pub fn log_text(&self) -> String {
        self.log.lines().join("\n")
    }

    /// Triggers shutdown and waits for `serve` to return.
    pub fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs a login conversation on an open client.
pub fn login_on(c: &mut Client, user: &str, answers: &[&str]) -> Vec<Response> {
    let mut seen = Vec::new();
    let mut answers = answers.iter();
    let mut resp = c
        .call(&Request::Begin {
            user: user.into(),
            service: "sudo".into(),
            rhost: None,
            tty: Some("pts/0".into()),
            ruser: Some("root".into()),
        })
        .unwrap();
    loop {
        seen.push(resp.clone());
        let next = match &resp {
            Response::Prompt { .. } => match answers.next() {
                Some(a) => Request::Answer {
                    text: Secret::from(*a),
                },
                None => return seen,
            },
            Response::Error { .. } | Response::Info { .. } => Request::Ack,
            _ => return seen,
        };
        resp = c.call(&next).unwrap();
    }
}

/// The code for `e` at `time` shifted by `offset` steps, from `oathtool`
/// (an implementation independent of the daemon's).
pub fn oathtool(e: &TotpEnrollment, time: u64, offset: i64) -> String {
    let t = time as i64 + offset * i64::from(e.period);
    let out = Command::new("oathtool")
        .arg(format!("--totp={}", e.algorithm.as_str().to_lowercase()))
        .args(["-b", "-d", &e.digits.to_string(), "-s"])
        .arg(format!("{}s", e.period))
        .arg("-N")
        .arg(format!("@{t}"))
        .arg(e.secret.expose())
        .output()
        .expect("oathtool must be installed (scripts/deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A well-formed code that is not `good` (the current one).
pub fn wrong_code(good: &str) -> &'static str {
    if good == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// The last response of a conversation.
pub fn last(seen: &[Response]) -> &Response {
    seen.last().expect("no response")
}

/// The kind of a `Failed` response; `None` for any other response.
pub fn failed_kind(r: &Response) -> Option<ErrorKind> {
    match r {
        Response::Failed { kind, .. } => Some(*kind),
        _ => None,
    }
}

/// Asserts that a re-executed test child (under another uid or in a
/// namespace) passed and printed its "child ok" marker.
#[allow(dead_code, reason = "not every test binary re-executes a child")]
pub fn assert_child_ok(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
