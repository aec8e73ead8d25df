//! Fail modes, through the real libpam: `failmode=secure` (default) denies
//! and `failmode=safe` allows when the daemon is down, its socket missing, it
//! never accepts, or it accepts and never answers — each within the
//! module's one time budget, measured here. Garbage and truncated replies
//! fail closed whatever the mode, and never crash the calling program.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twofold_proto::Response;
use twofold_tests::drip::DripDaemon;
use twofold_tests::fake_daemon::{FakeDaemon, Script};
use twofold_tests::pam::*;
use twofold_tests::system::{run_bounded, HostFiles, System};
use twofold_tests::{module_line, require_programs, require_root, PamConfig};

/// How a daemon can be missing or silent.
enum Broken {
    /// A socket file with nobody listening (the daemon crashed or stopped).
    Down {
        _dir: tempfile::TempDir,
        socket: PathBuf,
    },
    /// No socket file at all.
    Missing {
        _dir: tempfile::TempDir,
        socket: PathBuf,
    },
    /// Bound and listening, never accepts (backlog only).
    NeverAccepts(FakeDaemon),
    /// Accepts the connection, never says anything.
    Hung(FakeDaemon),
}

impl Broken {
    fn all() -> Vec<(&'static str, Broken)> {
        let down = tempfile::tempdir().unwrap();
        let down_sock = down.path().join("twofold.sock");
        drop(UnixListener::bind(&down_sock).unwrap());
        let missing = tempfile::tempdir().unwrap();
        let missing_sock = missing.path().join("twofold.sock");
        vec![
            (
                "daemon down",
                Broken::Down {
                    _dir: down,
                    socket: down_sock,
                },
            ),
            (
                "socket missing",
                Broken::Missing {
                    _dir: missing,
                    socket: missing_sock,
                },
            ),
            (
                "never accepts",
                Broken::NeverAccepts(FakeDaemon::not_accepting().unwrap()),
            ),
            (
                "accepts, never answers",
                Broken::Hung(FakeDaemon::start(Script::on_accept().hang()).unwrap()),
            ),
        ]
    }

    fn socket(&self) -> &Path {
        match self {
            Broken::Down { socket, .. } | Broken::Missing { socket, .. } => socket,
            Broken::NeverAccepts(d) | Broken::Hung(d) => d.socket(),
        }
    }

    /// Whether the module must wait out its whole timeout.
    fn silent(&self) -> bool {
        matches!(self, Broken::NeverAccepts(_) | Broken::Hung(_))
    }
}

/// One login of alice to `service` whose only auth line is pam_twofold
/// with `args`; returns the code and how long pam_authenticate took.
fn timed_login(service: &str, args: &[&str]) -> (PamCode, Duration) {
    let pam = PamConfig::new().unwrap();
    pam.twofold(service, args).unwrap();
    let start = Instant::now();
    let (code, _) = PamLogin::new(pam.dir(), service, "alice")
        .unwrap()
        .authenticate(Conversation::new().answer("123456"))
        .unwrap();
    (code, start.elapsed())
}

#[test]
fn each_unreachable_daemon_is_denied_by_secure_and_allowed_by_safe_within_the_timeout() {
    for (what, broken) in Broken::all() {
        let socket = format!("socket={}", broken.socket().display());
        for (mode, want) in [
            (None, PAM_AUTHINFO_UNAVAIL),
            (Some("failmode=secure"), PAM_AUTHINFO_UNAVAIL),
            (Some("failmode=safe"), PAM_SUCCESS),
        ] {
            let mut args = vec![socket.as_str(), "timeout=1"];
            args.extend(mode);
            let service = format!("tf-fm-{}", mode.unwrap_or("default").replace('=', "-"));
            let (code, took) = timed_login(&service, &args);
            eprintln!("{what}, {mode:?}: {code:?} in {took:?}");
            assert_eq!(code, want, "{what}, {mode:?}");
            assert!(took < Duration::from_millis(1500), "{what}: took {took:?}");
            if broken.silent() {
                assert!(took >= Duration::from_millis(950), "{what}: {took:?}");
            } else {
                assert!(took < Duration::from_millis(200), "{what}: {took:?}");
            }
        }
    }
}

/// The default timeout is 5 s for the whole call, measured against a daemon
/// that accepts and never answers.
#[test]
fn the_default_timeout_bounds_a_hung_daemon_at_five_seconds() {
    let hung = FakeDaemon::start(Script::login().hang()).unwrap();
    let socket = format!("socket={}", hung.socket().display());
    let (code, took) = timed_login("tf-fm-default", &[&socket]);
    eprintln!("hung after Begin, default timeout: {code:?} in {took:?}");
    assert_eq!(code, PAM_AUTHINFO_UNAVAIL);
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_millis(5600),
        "{took:?}"
    );
}

/// Regression (Duo issue #279 class): a daemon that answers each message
/// within the timeout but never finishes must not hold the login for
/// `timeout` per message; one budget covers the whole call.
#[test]
fn regression_a_daemon_dribbling_messages_cannot_stretch_the_timeout() {
    let drip = DripDaemon::start(Duration::from_millis(300)).unwrap();
    let socket = format!("socket={}", drip.socket().display());
    for mode in ["failmode=secure", "failmode=safe"] {
        let (code, took) = timed_login("tf-fm-drip", &[&socket, "timeout=2", mode]);
        eprintln!("dribbling daemon, {mode}: {code:?} in {took:?}");
        // It had started talking, so this is a silent daemon mid-login, not an
        // unreachable one: denied even in safe mode.
        assert_eq!(code, PAM_AUTHINFO_UNAVAIL, "{mode}");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(2600),
            "{mode}: {took:?}"
        );
    }
    assert!(drip.sent() >= 8, "only {} lines were sent", drip.sent());
}

#[test]
fn garbage_truncated_and_oversized_replies_fail_closed_even_in_safe_mode() {
    let scripts = [
        ("garbage", Script::login().garbage()),
        ("truncated", Script::login().truncated_frame()),
        ("oversized", Script::login().oversized_frame()),
        ("garbage instead of welcome", Script::on_accept().garbage()),
        (
            "truncated after a prompt",
            Script::login().prompt("Code: ", false).truncated_frame(),
        ),
        ("closed after begin", Script::login()),
    ];
    for (what, script) in scripts {
        let daemon = FakeDaemon::start(script).unwrap();
        let socket = format!("socket={}", daemon.socket().display());
        let (code, took) = timed_login("tf-fm-garbage", &[&socket, "timeout=2", "failmode=safe"]);
        assert_eq!(code, PAM_AUTH_ERR, "{what}");
        assert!(took < Duration::from_secs(2), "{what}: {took:?}");
    }
}

#[test]
fn safe_mode_does_not_override_the_daemon_or_a_silence_mid_login() {
    let cases = [
        ("daemon says unavailable", Script::login().unavailable()),
        (
            "silent after a prompt",
            Script::login().prompt("Code: ", false).hang(),
        ),
        ("denied", Script::login().denied("wrong code")),
    ];
    for (what, script) in cases {
        let daemon = FakeDaemon::start(script).unwrap();
        let socket = format!("socket={}", daemon.socket().display());
        let (code, took) = timed_login("tf-fm-mid", &[&socket, "timeout=1", "failmode=safe"]);
        assert_ne!(code, PAM_SUCCESS, "{what}");
        assert!(took < Duration::from_millis(1500), "{what}: {took:?}");
    }
}

/// `failmode` is per PAM line, so per service: one stack may fail open while
/// another fails closed against the same dead daemon.
#[test]
fn failmode_is_chosen_per_service() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("socket={}", dir.path().join("gone.sock").display());
    let pam = PamConfig::new().unwrap();
    pam.twofold("tf-sudo", &[&socket, "failmode=secure"])
        .unwrap();
    pam.twofold("tf-console", &[&socket, "failmode=safe"])
        .unwrap();
    let login = |svc: &str| {
        PamLogin::new(pam.dir(), svc, "alice")
            .unwrap()
            .authenticate(Conversation::new())
            .unwrap()
            .0
    };
    assert_eq!(login("tf-sudo"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(login("tf-console"), PAM_SUCCESS);
}

twofold_tests::capture_pam_syslog!();

#[test]
fn the_reason_is_logged_on_authpriv_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("socket={}", dir.path().join("gone.sock").display());
    timed_login("tf-fm-log-safe", &[&socket, "failmode=safe"]);
    timed_login("tf-fm-log-secure", &[&socket]);
    let err = libc::LOG_AUTHPRIV | libc::LOG_ERR;
    let safe = logged("tf-fm-log-safe");
    assert!(
        safe.iter()
            .any(|(p, l)| *p == err && l.contains("daemon unavailable: cannot reach twofoldd")),
        "{safe:?}"
    );
    assert!(
        safe.iter().any(|(p, l)| *p == err
            && l.contains("failmode=safe: letting user \"alice\" into service \"tf-fm-log-safe\" without a second factor")),
        "{safe:?}"
    );
    let secure = logged("tf-fm-log-secure");
    assert!(
        secure
            .iter()
            .any(|(p, l)| *p == err && l.contains("daemon unavailable")),
        "{secure:?}"
    );
    assert!(
        secure.iter().all(|(_, l)| !l.contains("failmode=safe")),
        "{secure:?}"
    );
}

/// Regression: a daemon that closes the connection while the module is
/// about to write the answer made `write(2)` raise SIGPIPE, which kills a
/// calling program that does not ignore it (pamtester, su, screen
/// lockers). The module writes with MSG_NOSIGNAL; pamtester must end with
/// an authentication failure, not a signal.
#[test]
fn regression_sigpipe_a_daemon_closing_before_the_answer_does_not_kill_the_program() {
    require_root();
    require_programs(&["unshare", "pamtester"]);
    let host = HostFiles::snapshot();
    let body = serde_json::to_vec(&Response::Prompt {
        text: "Verification code: ".into(),
        echo: false,
    })
    .unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    // The prompt, then the end of the script closes the connection.
    let daemon = FakeDaemon::start(Script::login().raw(&frame)).unwrap();
    let sys = System::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    sys.pam_service("tf", &[module_line("required", &[&socket, "timeout=2"])])
        .unwrap();
    for _ in 0..3 {
        let mut cmd = sys.command(&["pamtester", "-v", "tf", "alice", "authenticate"]);
        let run = run_bounded(&mut cmd, "123456\n", Duration::from_secs(10)).unwrap();
        let status = run.status.expect("pamtester finished");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), None, "killed by a signal:\n{}", run.text);
        assert_eq!(status.code(), Some(1), "{}", run.text);
        assert!(run.text.contains("Authentication failure"), "{}", run.text);
    }
    host.assert_unchanged();
}
