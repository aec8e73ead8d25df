//! The real `sudo` with pam_twofold.so in its PAM stack, run by a test user
//! who exists only inside a private mount namespace (copies of passwd,
//! shadow, group and sudoers mounted over the real ones). `sudo -S` reads
//! the password and then the code from a pipe, as from a script. Codes come
//! from `oathtool`. The PAM stack is Debian 12's, plus the admin guide's
//! twofold line. Needs root.

use std::time::Duration;
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::system::{run_bounded, HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const OK: &str = "SUDO-OK";

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
    host: HostFiles,
}

fn setup(failmode: &str) -> Setup {
    require_root();
    require_programs(&["unshare", "setpriv", "sudo", "oathtool"]);
    let host = HostFiles::snapshot();
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "s3cret pw").unwrap();
    sys.sudoers("tfuser ALL=(ALL:ALL) ALL").unwrap();
    debian_stack(&sys, &d, failmode);
    let enrolled = d.enroll("tfuser");
    Setup {
        d,
        sys,
        user,
        enrolled,
        host,
    }
}

/// Debian 12's own files, as shipped, with the one twofold line the admin
/// guide adds to /etc/pam.d/sudo after `@include common-auth`. Its
/// common-auth ends a wrong password at `requisite pam_deny.so`, before
/// twofold is asked.
fn debian_stack(sys: &System, d: &TestDaemon, failmode: &str) {
    let socket = format!("socket={}", d.socket().display());
    let files: [(&str, Vec<String>); 4] = [
        (
            "common-auth",
            vec![
                "auth [success=1 default=ignore] pam_unix.so nullok".into(),
                "auth requisite pam_deny.so".into(),
                "auth required pam_permit.so".into(),
                "auth optional pam_cap.so".into(),
            ],
        ),
        (
            "common-account",
            vec![
                "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so".into(),
                "account requisite pam_deny.so".into(),
                "account required pam_permit.so".into(),
            ],
        ),
        (
            "common-session-noninteractive",
            vec![
                "session [default=1] pam_permit.so".into(),
                "session requisite pam_deny.so".into(),
                "session required pam_permit.so".into(),
                "session required pam_unix.so".into(),
            ],
        ),
        (
            "sudo",
            vec![
                "session required pam_limits.so".into(),
                "@include common-auth".into(),
                module_line("required", &[&socket, "timeout=5", failmode]),
                "@include common-account".into(),
                "@include common-session-noninteractive".into(),
            ],
        ),
    ];
    for (name, lines) in files {
        sys.pam_service(name, &lines).unwrap();
    }
}

/// `sudo -S -k sh -c 'echo SUDO-OK; id -u'` as the test user, `input` on
/// stdin. No `-p`: a custom prompt makes sudo show it in place of every
/// hidden PAM prompt, the code's included (see the admin guide).
fn sudo(s: &Setup, input: &str) -> Run {
    let (uid, gid) = (s.user.uid.to_string(), s.user.gid.to_string());
    let mut cmd = s.sys.command(&[
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &gid,
        "--init-groups",
        "sudo",
        "-S",
        "-k",
        "sh",
        "-c",
        "echo SUDO-OK; id -u",
    ]);
    run_bounded(&mut cmd, input, Duration::from_secs(20)).unwrap()
}

fn assert_ran_as_root(run: &Run) {
    assert!(run.ok(), "sudo failed ({:?}):\n{}", run.code(), run.text);
    assert!(run.text.contains(&format!("{OK}\n0\n")), "{}", run.text);
}

fn assert_refused(run: &Run) {
    assert_eq!(run.code(), Some(1), "{}", run.text);
    assert!(!run.text.contains(OK), "{}", run.text);
}

#[test]
fn sudo_s_from_a_script_takes_password_then_code() {
    let s = setup("failmode=secure");
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = sudo(&s, &format!("{}\n{code}\n", s.user.password));
    assert_ran_as_root(&run);
    assert!(
        run.text.contains("[sudo] password for tfuser: "),
        "{}",
        run.text
    );
    assert!(run.text.contains("Verification code: "), "{}", run.text);
    s.host.assert_unchanged();
}

#[test]
fn sudo_refuses_a_wrong_code_and_a_replayed_one() {
    let s = setup("failmode=secure");
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    let run = sudo(&s, &format!("{}\n{wrong}\n", s.user.password));
    assert_refused(&run);
    // sudo calls pam_authenticate with PAM_SILENT, which the module
    // honours: the daemon's lines are not shown, only sudo's own.
    assert!(
        !run.text.contains("Invalid verification code."),
        "{}",
        run.text
    );
    assert!(
        run.text.contains("incorrect password attempt"),
        "{}",
        run.text
    );

    assert_ran_as_root(&sudo(&s, &format!("{}\n{code}\n", s.user.password)));
    assert_refused(&sudo(&s, &format!("{}\n{code}\n", s.user.password)));
    s.host.assert_unchanged();
}

/// With the password module `requisite` before twofold, a wrong password
/// ends the attempt before the daemon hears of it.
#[test]
fn sudo_wrong_password_never_reaches_the_daemon() {
    let s = setup("failmode=secure");
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = sudo(&s, &format!("wrong password\n{code}\n"));
    assert_refused(&run);
    assert!(!run.text.contains("Verification code"), "{}", run.text);
    assert!(
        !s.d.log_text().contains("login user=tfuser"),
        "{}",
        s.d.log_text()
    );
    // The code was not spent: it still works.
    assert_ran_as_root(&sudo(&s, &format!("{}\n{code}\n", s.user.password)));
}

#[test]
fn sudo_with_the_daemon_stopped_follows_the_failmode() {
    for (mode, allowed) in [("failmode=secure", false), ("failmode=safe", true)] {
        let mut s = setup(mode);
        s.d.stop();
        let run = sudo(&s, &format!("{}\n", s.user.password));
        if allowed {
            assert_ran_as_root(&run);
        } else {
            assert_refused(&run);
        }
        assert!(!run.text.contains("Verification code"), "{}", run.text);
        s.host.assert_unchanged();
    }
}
