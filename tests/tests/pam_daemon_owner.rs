//! Who may answer for twofoldd: the module reads SO_PEERCRED of its
//! connection and trusts the answers only of root or the uid named by
//! `daemon_uid=` (issue 10, 8). An impostor is a fake daemon that answers
//! `Success` to everything, listening on its own socket as `nobody`; it is
//! this test binary run again as uid 65534 ([`impostor_child`], through
//! `peers::AsNobody`), since SO_PEERCRED reports the uid a socket was
//! listened on with. Needs root.

use twofold_tests::fake_daemon::{FakeDaemon, Script};
use twofold_tests::pam::*;
use twofold_tests::peers::{hear, AsNobody, NOBODY};
use twofold_tests::PamConfig;

twofold_tests::capture_pam_syslog!();

const CHILD_ENV: &str = "TF_IMPOSTOR_CHILD";

/// A child entry point, not a test of its own: re-executed by
/// [`regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes`]
/// as `nobody` with [`CHILD_ENV`] set, it is the impostor. It prints its
/// socket, serves until the parent says it is done, then prints how many
/// connections got as far as sending `Begin`.
#[test]
#[ignore = "run by regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes as uid 65534"]
fn impostor_child() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "a child entry point: run by regression_an_impostor_daemon_not_run_by_root_is_refused_in_both_fail_modes, which sets {CHILD_ENV}"
    );
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    println!("IMPOSTOR_SOCKET={}", daemon.socket().display());
    assert_eq!(hear(), "done");
    let mut begins = 0;
    while let Some(s) = daemon.next_session(std::time::Duration::from_millis(200)) {
        begins += usize::from(s.begin.is_some());
    }
    println!("IMPOSTOR_BEGINS={begins}");
    println!("child ok");
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
    let mut impostor = AsNobody::start("impostor_child", &[(CHILD_ENV, "1".as_ref())]);
    let socket = format!("socket={}", impostor.expect_line("IMPOSTOR_SOCKET="));
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
    impostor.say("done");
    let begins = impostor.expect_line("IMPOSTOR_BEGINS=");
    assert_eq!(begins, "1", "only the trusted login sent a Begin");
    impostor.finish();
}
