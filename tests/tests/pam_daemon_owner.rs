//! Who may answer for twofoldd: the module reads SO_PEERCRED of its
//! connection and trusts the answers only of root or the uid named by
//! `daemon_uid=` (issue 10, 8). An impostor is a fake daemon that answers
//! `Success` to everything, listening on its own socket as `nobody`; it is
//! this test binary run again as uid 65534 ([`impostor_child`]), since
//! SO_PEERCRED reports the uid a socket was listened on with. Needs root.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use twofold_tests::fake_daemon::{FakeDaemon, Script};
use twofold_tests::pam::*;
use twofold_tests::{require_root, PamConfig};

twofold_tests::capture_pam_syslog!();

const CHILD_ENV: &str = "TF_IMPOSTOR_CHILD";
const NOBODY: u32 = 65534;

/// A child entry point, not a test of its own: re-executed by
/// [`regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes`]
/// as `nobody` with [`CHILD_ENV`] set, it is the impostor. It prints its
/// socket, serves until its stdin closes, then prints how many connections
/// got as far as sending `Begin`.
#[test]
#[ignore = "run by regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes as uid 65534"]
fn impostor_child() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "a child entry point: run by regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes, which sets {CHILD_ENV}"
    );
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    println!("IMPOSTOR_SOCKET={}", daemon.socket().display());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let mut begins = 0;
    while let Some(s) = daemon.next_session(std::time::Duration::from_millis(200)) {
        begins += usize::from(s.begin.is_some());
    }
    println!("IMPOSTOR_BEGINS={begins}");
    println!("child ok");
}

/// The impostor, running as `nobody`.
struct Impostor {
    child: Child,
    out: BufReader<ChildStdout>,
    socket: String,
}

impl Impostor {
    fn start() -> Impostor {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                "impostor_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let socket = read_value(&mut out, "IMPOSTOR_SOCKET=");
        Impostor { child, out, socket }
    }

    /// Stops it; how many connections sent it a `Begin`. Fails unless it
    /// ran as exactly one test and passed.
    fn stop(mut self) -> usize {
        drop(self.child.stdin.take());
        let begins = read_value(&mut self.out, "IMPOSTOR_BEGINS=");
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success()
                && rest.contains("child ok")
                && rest.contains("test result: ok. 1 passed;"),
            "the impostor failed or did not run exactly one test:\n{rest}"
        );
        begins.parse().unwrap()
    }
}

impl Drop for Impostor {
    /// A test that failed half-way must not leave the impostor running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's lines up to the one holding `key`; what follows it.
/// (libtest's "test impostor_child ... " may come first on the line.)
fn read_value(out: &mut BufReader<ChildStdout>, key: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "the impostor ended before printing {key}");
        if let Some(at) = line.find(key) {
            return line[at + key.len()..].trim_end().to_owned();
        }
    }
}

/// One login of alice with pam_twofold (`args`) as the only auth line.
fn login(service: &str, args: &[&str]) -> PamCode {
    let pam = PamConfig::new().unwrap();
    pam.twofold(service, args).unwrap();
    let (code, t) = PamLogin::new(pam.dir(), service, "alice")
        .unwrap()
        .authenticate(Conversation::new().answer("123456"))
        .unwrap();
    assert!(t.messages.is_empty(), "{t:?}");
    code
}

/// Issue 10 (8): a fake daemon listening as uid 65534 that answers
/// `Success` is refused in both fail modes (PAM_AUTH_ERR, never the
/// PAM_SUCCESS of `failmode=safe`), logged with the uid it runs as, and is
/// sent nothing: not even the `Begin` naming the user. Named by
/// `daemon_uid=`, the same process is trusted.
#[test]
fn regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes() {
    require_root();
    let impostor = Impostor::start();
    let socket = format!("socket={}", impostor.socket);
    for (service, mode) in [
        ("tf-owner-secure", "failmode=secure"),
        ("tf-owner-safe", "failmode=safe"),
    ] {
        assert_eq!(login(service, &[&socket, mode]), PAM_AUTH_ERR, "{mode}");
        let lines = logged(service);
        assert!(
            lines
                .iter()
                .any(|(pri, l)| *pri == libc::LOG_AUTHPRIV | libc::LOG_ERR
                    && l.contains("its socket is held by uid 65534, not root")),
            "{mode}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|(_, l)| l.contains("letting user")),
            "{mode}: {lines:?}"
        );
    }
    // Another uid named: still refused.
    let other = format!("daemon_uid={}", NOBODY - 1);
    assert_eq!(
        login("tf-owner-other", &[&socket, "failmode=safe", &other]),
        PAM_AUTH_ERR
    );
    // Its own uid named: trusted, so the refusals above were the uid's.
    let named = format!("daemon_uid={NOBODY}");
    assert_eq!(login("tf-owner-named", &[&socket, &named]), PAM_SUCCESS);
    assert_eq!(impostor.stop(), 1, "only the trusted login sent a Begin");
}
