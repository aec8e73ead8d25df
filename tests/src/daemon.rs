//! Real daemons for tests: in-process on a temp socket with a
//! [`ManualClock`] (so TOTP windows are tested without sleeping), or the
//! built `twofoldd` binary as a child process (for crash and restart tests).
//! The daemon's own integration tests (`tests/daemon_*.rs`) and the
//! end-to-end suites share this one harness.

use crate::otp::{oathtool, oathtool_totp};
use crate::PamConfig;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twofold_config::Config;
use twofold_daemon::factors::Registry;
use twofold_daemon::{
    bind, Clock, Daemon, DaemonError, Logger, ManualClock, MemoryLog, Shutdown, Stats,
};
use twofold_proto::{Client, ErrorKind, Request, Response, Secret, TotpEnrollment};

/// A fixed instant for tests: 2027-01-15T08:00:00Z, the start of a 30 s step.
pub const T0: u64 = 1_800_000_000;

/// A TOTP credential enrolled by a test, with its one-time backup codes.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The account.
    pub user: String,
    /// Base32 secret, as the daemon showed it.
    pub secret: String,
    /// Backup codes in display form.
    pub backup_codes: Vec<String>,
}

/// Writes a configuration whose every path lies in `dir`.
pub fn config_in(dir: &Path) -> Config {
    let mut c = Config::default();
    c.daemon.socket = dir.join("twofold.sock");
    c.daemon.database = dir.join("state/twofold.db");
    c.daemon.master_key = dir.join("keys/master.key");
    // Never write test events to the host's syslog.
    c.audit.syslog_socket = PathBuf::new();
    c
}

/// A temp directory that other users can enter (tests run peers as `nobody`).
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("twofold-e2e-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}

/// `twofoldd` served from a thread of the test process, with a manual clock
/// and a captured log.
#[derive(Debug)]
pub struct TestDaemon {
    dir: tempfile::TempDir,
    config: Config,
    /// The clock every decision of this daemon reads; starts at [`T0`].
    pub clock: Arc<ManualClock>,
    /// Everything the daemon logged.
    pub log: Arc<MemoryLog>,
    /// The syslog socket the daemon sends its audit lines to.
    pub syslog: SyslogSink,
    /// Counters of the daemon serving now (replaced by a restart).
    pub stats: Arc<Stats>,
    /// The factors it offers (kept across restarts).
    factors: Registry,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), DaemonError>>>,
}

impl TestDaemon {
    /// Starts a daemon on defaults (paths in a temp dir).
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| {})
    }

    /// Starts a daemon after `edit` adjusts the configuration.
    pub fn start_with(edit: impl FnOnce(&mut Config)) -> TestDaemon {
        TestDaemon::start_with_factors(edit, Registry::builtin())
    }

    /// Like [`TestDaemon::start_with`], offering the factors of `factors`
    /// (e.g. the built-in ones plus one a test registers); a restart and
    /// [`TestDaemon::beside`] offer them too.
    pub fn start_with_factors(edit: impl FnOnce(&mut Config), factors: Registry) -> TestDaemon {
        let dir = open_tempdir();
        let mut config = config_in(dir.path());
        let syslog = SyslogSink::bind(&dir.path().join("syslog.sock"));
        config.audit.syslog_socket = syslog.path.clone();
        edit(&mut config);
        let clock = Arc::new(ManualClock::new(T0));
        TestDaemon::serve_in(dir, config, clock, syslog, factors)
    }

    /// A second daemon on this one's database, master key and clock, with
    /// its own socket, log and syslog sink (e.g. to race two daemons).
    pub fn beside(&self) -> TestDaemon {
        self.beside_with_factors(self.factors.clone())
    }

    /// [`TestDaemon::beside`], offering `factors` (e.g. the built-in ones
    /// where this one has a test factor).
    pub fn beside_with_factors(&self, factors: Registry) -> TestDaemon {
        let dir = open_tempdir();
        let mut config = self.config.clone();
        config.daemon.socket = dir.path().join("twofold.sock");
        let syslog = SyslogSink::bind(&dir.path().join("syslog.sock"));
        config.audit.syslog_socket = syslog.path.clone();
        TestDaemon::serve_in(dir, config, self.clock.clone(), syslog, factors)
    }

    fn serve_in(
        dir: tempfile::TempDir,
        config: Config,
        clock: Arc<ManualClock>,
        syslog: SyslogSink,
        factors: Registry,
    ) -> TestDaemon {
        let log = Arc::new(MemoryLog::new());
        let (stats, shutdown, thread) = serve(&config, &clock, &log, &factors);
        TestDaemon {
            dir,
            config,
            clock,
            log,
            syslog,
            stats,
            factors,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Stops, changes the configuration with `edit`, and serves again on
    /// the same database, key, clock and socket.
    pub fn restart_with(&mut self, edit: impl FnOnce(&mut Config)) {
        edit(&mut self.config);
        self.restart();
    }

    /// (Re)starts serving on the same database, key, clock and socket.
    pub fn restart(&mut self) {
        self.stop();
        let (stats, shutdown, thread) = serve(&self.config, &self.clock, &self.log, &self.factors);
        self.stats = stats;
        self.shutdown = shutdown;
        self.thread = Some(thread);
    }

    /// Triggers shutdown without waiting: conversations in flight go on
    /// ([`TestDaemon::stop`] waits for them).
    pub fn begin_shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Stops serving and waits for the daemon to finish; the socket goes away.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shutdown.trigger();
            t.join()
                .expect("daemon thread panicked")
                .expect("daemon failed");
            let _ = std::fs::remove_file(&self.config.daemon.socket);
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The temp directory holding socket, database and key.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.config.daemon.socket
    }

    /// The manual clock's now.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A connected, handshaken client, as the test process's user.
    pub fn client(&self) -> Client {
        Client::connect(self.socket(), Duration::from_secs(10), "test").expect("connect")
    }

    /// A raw connection without handshake.
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        s
    }

    /// One request on a fresh connection, as the test process's user.
    pub fn call(&self, req: &Request) -> Response {
        self.client().call(req).expect("call")
    }

    /// Asserts that a brand-new client is served (handshake and a request).
    pub fn assert_serves_new_client(&self) {
        match self.call(&Request::Status { user: None }) {
            Response::Status(s) => assert_eq!(s.user, "root"),
            other => panic!("expected status, got {other:?}"),
        }
    }

    /// Starts a TOTP enrollment for `user` (SHA1, 6 digits) as root/admin.
    pub fn enroll_start(&self, user: &str) -> TotpEnrollment {
        match self.call(&Request::TotpEnrollStart {
            user: Some(user.into()),
            algorithm: None,
            digits: None,
        }) {
            Response::TotpPending(p) => p,
            other => panic!("enroll start for {user}: {other:?}"),
        }
    }

    /// Enrolls `user` with TOTP confirmed by the `oathtool` code of the
    /// clock's now, which that spends: a login needs the clock moved on a
    /// step. Returns the enrollment as shown and the backup codes.
    pub fn enroll_totp(&self, user: &str) -> (TotpEnrollment, Vec<Secret>) {
        let pending = self.enroll_start(user);
        let code = oathtool_totp(&pending, self.now(), 0);
        match self.call(&Request::TotpEnrollConfirm {
            user: Some(user.into()),
            code: Secret::from(code.as_str()),
        }) {
            Response::BackupCodes { codes } => (pending, codes),
            other => panic!("enroll confirm for {user}: {other:?}"),
        }
    }

    /// Enrolls `user` with TOTP (SHA1, 6 digits) confirmed two minutes
    /// before the clock's now, so every code from now on is fresh.
    pub fn enroll(&self, user: &str) -> Enrolled {
        let now = self.now();
        self.clock.set(now - 120);
        let (pending, codes) = self.enroll_totp(user);
        self.clock.set(now);
        Enrolled {
            user: user.into(),
            secret: pending.secret.expose().to_owned(),
            backup_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
        }
    }

    /// `oathtool`'s code for `secret` at now + `steps` × 30 s.
    pub fn code(&self, secret: &str, steps: i64) -> String {
        let t = self.now() as i64 + steps * 30;
        oathtool(secret, t as u64)
    }

    /// Runs a whole login (service `sudo` on `pts/0`, as root) over the
    /// protocol with `answers`, acknowledging errors; returns every response
    /// the daemon sent after `Begin`, up to its end or an unanswered prompt.
    pub fn login(&self, user: &str, answers: &[&str]) -> Vec<Response> {
        login_at(self.socket(), user, answers)
    }

    /// A PAM config dir with service `tf` = `auth required pam_twofold.so socket=… timeout=2`.
    pub fn pam(&self) -> PamConfig {
        let pam = PamConfig::new().expect("pam config dir");
        pam.twofold(
            "tf",
            &[&format!("socket={}", self.socket().display()), "timeout=2"],
        )
        .expect("write service");
        pam
    }

    /// Everything logged so far, one event a line.
    pub fn log_text(&self) -> String {
        self.log.lines().join("\n")
    }

    /// The database file.
    pub fn database(&self) -> &Path {
        &self.config.daemon.database
    }

    /// Runs the stock `sqlite3` CLI on the database; returns its stdout,
    /// panicking (with stderr) when it fails.
    pub fn sqlite3(&self, sql: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(self.database())
            .arg(sql)
            .output()
            .expect("sqlite3 is needed for these tests (scripts/deps installs it)");
        assert!(
            out.status.success(),
            "sqlite3 {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the built `twofold` CLI against this daemon (`--socket` added).
    pub fn twofold(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin_path("twofold"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run twofold")
    }
}

type Serving = (Arc<Stats>, Shutdown, JoinHandle<Result<(), DaemonError>>);

/// Opens a daemon on `config` offering `factors` and serves it from a new
/// thread.
fn serve(
    config: &Config,
    clock: &Arc<ManualClock>,
    log: &Arc<MemoryLog>,
    factors: &Registry,
) -> Serving {
    let listener = bind(&config.daemon.socket).expect("bind daemon socket");
    let daemon = Daemon::open_with_factors(
        config.clone(),
        clock.clone(),
        Logger::new(log.clone()),
        // What `Daemon::open_with_log` names in the `config_loaded` row.
        "built-in defaults or caller",
        factors.clone(),
    )
    .expect("open daemon");
    let stats = daemon.stats();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || daemon.serve(listener, stop));
    (stats, shutdown, thread)
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

/// A datagram socket standing in for `/dev/log`: the daemon's syslog lines
/// arrive here. A thread drains it as a syslog daemon would (a Unix datagram
/// queue holds only a few messages).
#[derive(Debug)]
pub struct SyslogSink {
    /// Where it is bound.
    pub path: PathBuf,
    received: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SyslogSink {
    /// Binds a datagram socket at `path` and starts draining it.
    pub fn bind(path: &Path) -> SyslogSink {
        let socket = std::os::unix::net::UnixDatagram::bind(path).expect("bind syslog sink");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, st) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                    r.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
        SyslogSink {
            path: path.to_owned(),
            received,
            stop,
        }
    }

    /// Every line received so far, once none has arrived for 100 ms.
    pub fn lines(&self) -> Vec<String> {
        let count = || {
            self.received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
        };
        let mut seen = count();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = count();
            if now == seen {
                break;
            }
            seen = now;
        }
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shutdown.trigger();
            let _ = t.join();
        }
    }
}

/// A built binary of this workspace (`twofoldd`, `twofold`, `tf-client`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// A daemon requests can be sent to: in process ([`TestDaemon`]) or a
/// child process ([`DaemonProcess`]).
pub trait Calls {
    /// One request on a fresh connection.
    fn call(&self, req: &Request) -> Response;
}

impl Calls for TestDaemon {
    fn call(&self, req: &Request) -> Response {
        TestDaemon::call(self, req)
    }
}

impl Calls for DaemonProcess {
    fn call(&self, req: &Request) -> Response {
        DaemonProcess::call(self, req)
    }
}

/// Whether the login whose responses are `seen` ended in `Success`.
pub fn succeeded(seen: &[Response]) -> bool {
    matches!(seen.last(), Some(Response::Success))
}

/// [`TestDaemon::login`] on the daemon at `socket` (any daemon, e.g. a
/// [`DaemonProcess`]).
pub fn login_at(socket: &Path, user: &str, answers: &[&str]) -> Vec<Response> {
    login_service_at(socket, "sudo", user, answers)
}

/// [`login_at`] for PAM service `service`.
pub fn login_service_at(
    socket: &Path,
    service: &str,
    user: &str,
    answers: &[&str],
) -> Vec<Response> {
    let mut c = Client::connect(socket, Duration::from_secs(10), "test").expect("connect");
    let mut seen = Vec::new();
    let mut answers = answers.iter();
    let mut resp = c
        .call(&Request::Begin {
            user: user.into(),
            service: service.into(),
            rhost: None,
            tty: Some("pts/0".into()),
            ruser: Some("root".into()),
            ssh_auth_info: None,
        })
        .expect("begin");
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
        resp = c.call(&next).expect("answer");
    }
}

/// The built `twofoldd` running as a child process, stderr captured to a file.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Child,
    /// Its configuration file.
    pub config_file: PathBuf,
    /// Where its stderr goes.
    pub log_file: PathBuf,
    socket: PathBuf,
}

impl DaemonProcess {
    /// Writes `config` to `dir/twofold.toml` and starts `twofoldd --config` on it,
    /// returning once the socket answers.
    pub fn start(dir: &Path, config: &Config) -> DaemonProcess {
        DaemonProcess::start_with(dir, config, |twofoldd, config_file| {
            let mut c = Command::new(twofoldd);
            c.arg("--config").arg(config_file);
            c
        })
    }

    /// Like [`DaemonProcess::start`], with the command made by `command`
    /// from the `twofoldd` binary and the configuration file (e.g. wrapped
    /// in `unshare -m` to run it with private bind mounts).
    pub fn start_with(
        dir: &Path,
        config: &Config,
        command: impl FnOnce(&Path, &Path) -> Command,
    ) -> DaemonProcess {
        let config_file = dir.join("twofold.toml");
        std::fs::write(&config_file, config.to_toml()).expect("write config");
        let log_file = dir.join(format!("twofoldd-{}.log", unique()));
        let child = command(&bin_path("twofoldd"), &config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_file).expect("log file"))
            .spawn()
            .expect("spawn twofoldd");
        let mut p = DaemonProcess {
            child,
            config_file,
            log_file,
            socket: config.daemon.socket.clone(),
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if Client::connect(&self.socket, Duration::from_secs(1), "e2e").is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("twofoldd exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("twofoldd did not start listening: {}", self.log());
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Enrolls `user` with TOTP (confirmed by the code of the wall clock's
    /// now, which that spends): the enrollment and the backup codes.
    pub fn enroll_totp(&self, user: &str) -> (TotpEnrollment, Vec<String>) {
        let pending = match self.call(&Request::TotpEnrollStart {
            user: Some(user.into()),
            algorithm: None,
            digits: None,
        }) {
            Response::TotpPending(p) => p,
            other => panic!("enroll start: {other:?}"),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let code = oathtool_totp(&pending, now, 0);
        match self.call(&Request::TotpEnrollConfirm {
            user: Some(user.into()),
            code: Secret::from(code.as_str()),
        }) {
            Response::BackupCodes { codes } => (
                pending,
                codes.iter().map(|c| c.expose().to_owned()).collect(),
            ),
            other => panic!("enroll confirm: {other:?}"),
        }
    }

    /// One request on a fresh connection.
    pub fn call(&self, req: &Request) -> Response {
        let mut c = Client::connect(&self.socket, Duration::from_secs(5), "e2e").expect("connect");
        c.call(req).expect("call")
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait twofoldd")
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts that a re-executed test child (under another uid or in a
/// namespace) ran as exactly one test, passed, and printed its "child ok"
/// marker.
///
/// A child entry point is a `#[test]` marked `#[ignore = "run by …"]`, so
/// the normal run does not count it as passing, that panics when its
/// environment variable is missing. The parent re-executes the test binary
/// with libtest's `--ignored --exact <name> --nocapture --test-threads=1`;
/// a child that is not ignored, or renamed, then runs zero tests ("running
/// 0 tests", exit 0), which this refuses.
pub fn assert_child_ok(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("child ok")
            && stdout.contains("test result: ok. 1 passed;"),
        "child failed or did not run exactly one test:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when the tests run as root (uid switching, mount namespaces).
pub fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}
