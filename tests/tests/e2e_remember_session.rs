//! Remembered login sessions (issue 16) with the real `sudo` on a real
//! terminal (`expect`'s pty): with `sudo` in `remember.session_services`,
//! a second `sudo` in the same login session within the window is not
//! asked for the code (the password still is: that is sudo's own stack);
//! another session is asked. The daemon reads the session from `/proc`
//! for the pid SO_PEERCRED reports, never from the client. Needs root.

use twofold_proto::{Request, Response};
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::system::{expect, HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const PROMPT: &str = "Verification code:";
const PASSWORD: &str = "password for tfuser";

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
    host: HostFiles,
}

fn setup(remember: bool) -> Setup {
    require_root();
    require_programs(&["unshare", "setpriv", "sudo", "oathtool", "expect"]);
    let host = HostFiles::snapshot();
    let d = TestDaemon::start_with(|c| {
        c.login.max_tries = 1;
        if remember {
            c.remember.session_services = vec!["sudo".into()];
        }
    });
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "s3cret pw").unwrap();
    sys.sudoers("tfuser ALL=(ALL:ALL) ALL").unwrap();
    let socket = format!("socket={}", d.socket().display());
    let stack = [
        "auth requisite pam_unix.so nodelay".into(),
        module_line("required", &[&socket, "timeout=5"]),
        "account required pam_permit.so".into(),
        "session required pam_permit.so".into(),
    ];
    sys.pam_service("sudo", &stack).unwrap();
    let enrolled = d.enroll("tfuser");
    Setup {
        d,
        sys,
        user,
        enrolled,
        host,
    }
}

/// One terminal session (expect's pty; its first process leads the
/// session) in which the test user runs `sudo -k` twice; `dialog` answers
/// the questions.
fn twice_in_one_session(s: &Setup, dialog: &[(&str, &str)]) -> Run {
    let (uid, gid) = (s.user.uid.to_string(), s.user.gid.to_string());
    let argv = s.sys.argv(&[
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &gid,
        "--init-groups",
        "sh",
        "-c",
        "sudo -k sh -c 'echo FIRST-$(id -u)' && sudo -k sh -c 'echo SECOND-$(id -u)'",
    ]);
    expect(&argv, dialog, 10).unwrap()
}

fn assert_both_ran(run: &Run, d: &TestDaemon) {
    assert!(
        run.ok() && run.text.contains("FIRST-0") && run.text.contains("SECOND-0"),
        "({:?}):\n{}\n--- twofoldd ---\n{}",
        run.code(),
        run.text,
        d.log_text()
    );
}

#[test]
fn a_second_sudo_in_the_same_session_is_not_asked_for_the_code_and_another_session_is() {
    let s = setup(true);
    let pw = s.user.password.clone();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = twice_in_one_session(&s, &[(PASSWORD, &pw), (PROMPT, &code), (PASSWORD, &pw)]);
    assert_both_ran(&run, &s.d);
    assert_eq!(run.text.matches(PROMPT).count(), 1, "{}", run.text);

    let remembered = s.d.sqlite3(
        "SELECT event, service, method, detail FROM audit \
         WHERE event = 'device_remembered' OR method = 'remembered' ORDER BY id",
    );
    let lines: Vec<&str> = remembered.lines().collect();
    assert_eq!(lines.len(), 2, "{remembered}");
    assert!(
        lines[0].starts_with(
            "device_remembered|sudo|totp|ruser=tfuser device=1 kind=session what=\"sid="
        ),
        "{remembered}"
    );
    assert!(
        lines[1].starts_with("login_success|sudo|remembered|ruser=tfuser kind=session device=1"),
        "{remembered}"
    );
    match s.d.call(&Request::Devices {
        user: Some("tfuser".into()),
    }) {
        Response::DeviceList { devices, .. } => {
            assert_eq!(devices.len(), 1, "{devices:?}");
            assert_eq!(devices[0].kind, "session");
            assert_eq!(
                devices[0].expires_at,
                devices[0].since + 300,
                "5m by default"
            );
            assert!(devices[0].what.contains(" tty=pts/"), "{devices:?}");
        }
        other => panic!("{other:?}"),
    }

    // A new terminal session: asked again (and once more remembered).
    s.d.clock.advance(30);
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = twice_in_one_session(&s, &[(PASSWORD, &pw), (PROMPT, &code), (PASSWORD, &pw)]);
    assert_both_ran(&run, &s.d);
    assert_eq!(run.text.matches(PROMPT).count(), 1, "{}", run.text);
    s.host.assert_unchanged();
}

#[test]
fn with_remembering_off_each_sudo_is_asked_for_the_code() {
    let s = setup(false);
    let pw = s.user.password.clone();
    let first = s.d.code(&s.enrolled.secret, 0);
    let second = s.d.code(&s.enrolled.secret, 1);
    let run = twice_in_one_session(
        &s,
        &[
            (PASSWORD, &pw),
            (PROMPT, &first),
            (PASSWORD, &pw),
            (PROMPT, &second),
        ],
    );
    assert_both_ran(&run, &s.d);
    assert_eq!(
        s.d.sqlite3("SELECT count(*) FROM devices").trim(),
        "0",
        "nothing remembered"
    );
    s.host.assert_unchanged();
}
