//! The real `sudo` with pam_twofold.so in its PAM stack, run by a test user
//! who exists only inside a private mount namespace (copies of passwd,
//! shadow, group and sudoers mounted over the real ones). `sudo -S` reads
//! the password and then the code from a pipe, as from a script. Codes come
//! from `oathtool`. The PAM stack is Debian 12's, plus the admin guide's
//! twofold line. Needs root.

use std::time::Duration;
use twofold_config::Config;
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::system::{expect, run_bounded, HostFiles, Run, System, TestUser};
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
    setup_with(failmode, |c| c.login.max_tries = 1)
}

fn setup_with(failmode: &str, edit: impl FnOnce(&mut Config)) -> Setup {
    require_root();
    require_programs(&["unshare", "setpriv", "sudo", "oathtool", "expect"]);
    let host = HostFiles::snapshot();
    let d = TestDaemon::start_with(edit);
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
    // sudo calls pam_authenticate with PAM_SILENT: the module shows
    // nothing on its own, but the reason a login was refused, once.
    assert_eq!(
        run.text.matches("Invalid verification code.").count(),
        1,
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

/// `sudo -k sh -c …` as the test user on a terminal (expect), answering
/// `dialog`.
fn sudo_pty(s: &Setup, dialog: &[(&str, &str)]) -> Run {
    let (uid, gid) = (s.user.uid.to_string(), s.user.gid.to_string());
    let argv = s.sys.argv(&[
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &gid,
        "--init-groups",
        "sudo",
        "-k",
        "sh",
        "-c",
        "echo SUDO-OK; id -u",
    ]);
    expect(&argv, dialog, 10).unwrap()
}

fn audit_count(d: &TestDaemon, event: &str) -> usize {
    d.sqlite3(&format!(
        "SELECT count(*) FROM audit WHERE event = '{event}' AND service = 'sudo'"
    ))
    .trim()
    .parse()
    .unwrap()
}

/// sudo on a terminal (PAM_SILENT): a wrong code shows why, inside the
/// next prompt; after the last try the reason is shown and sudo stops —
/// it does not ask the password again for two more rounds, so one sudo
/// run costs at most the configured tries (3), not 3 × sudo's 3.
#[test]
fn sudo_on_a_terminal_says_why_and_one_run_costs_at_most_the_configured_tries() {
    let s = setup_with("failmode=secure", |c| c.login.max_tries = 3);
    let code = s.d.code(&s.enrolled.secret, 0);
    let bad = wrong_code(&code);
    let pw = s.user.password.clone();
    let run = sudo_pty(
        &s,
        &[
            ("[sudo] password for tfuser: ", &pw),
            ("Verification code: ", bad),
            ("Verification code: ", bad),
            ("Verification code: ", bad),
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.text);
    assert!(!run.text.contains(OK), "{}", run.text);
    assert_eq!(
        run.text.matches("[sudo] password for").count(),
        1,
        "sudo asked the password again:\n{}",
        run.text
    );
    assert_eq!(
        run.text.matches("Invalid verification code.").count(),
        3,
        "{}",
        run.text
    );
    assert_eq!(audit_count(&s.d, "login_failure"), 3);
    // Then the right code still works (nothing was locked by sudo's rounds).
    let code = s.d.code(&s.enrolled.secret, 1);
    let run = sudo_pty(
        &s,
        &[
            ("[sudo] password for tfuser: ", &pw),
            ("Verification code: ", &code),
        ],
    );
    assert!(run.ok(), "{}", run.text);
    assert!(run.text.contains(OK), "{}", run.text);
}

/// A locked account: after the password, the lock message is shown once
/// and sudo stops at once: no code prompt, no second password prompt.
#[test]
fn sudo_on_a_terminal_shows_a_lock_once_and_stops() {
    let s = setup_with("failmode=secure", |c| {
        c.login.max_tries = 3;
        c.rate_limit.source_failures = 3;
    });
    let code = s.d.code(&s.enrolled.secret, 0);
    let bad = wrong_code(&code);
    let pw = s.user.password.clone();
    let run = sudo_pty(
        &s,
        &[
            ("[sudo] password for tfuser: ", &pw),
            ("Verification code: ", bad),
            ("Verification code: ", bad),
            ("Verification code: ", bad),
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.text);
    assert!(
        run.text.contains("Too many failed attempts"),
        "{}",
        run.text
    );

    let run = sudo_pty(&s, &[("[sudo] password for tfuser: ", &pw)]);
    assert_eq!(run.code(), Some(1), "{}", run.text);
    assert_eq!(
        run.text
            .matches("Too many failed attempts; try again in 15 minutes.")
            .count(),
        1,
        "{}",
        run.text
    );
    assert!(!run.text.contains("Verification code"), "{}", run.text);
    assert_eq!(
        run.text.matches("[sudo] password for").count(),
        1,
        "{}",
        run.text
    );
    assert!(!run.text.contains(OK), "{}", run.text);
}

/// `sudo -S` (a script): the wrong code's reason reaches stderr and sudo
/// stops after the denial instead of reading another password line.
#[test]
fn sudo_s_shows_why_and_stops_after_a_denial() {
    let s = setup("failmode=secure");
    let code = s.d.code(&s.enrolled.secret, 0);
    let pw = &s.user.password;
    let bad = wrong_code(&code);
    // Enough lines for sudo's three rounds: it must use only the first two.
    let run = sudo(&s, &format!("{pw}\n{bad}\n{pw}\n{bad}\n{pw}\n{bad}\n"));
    assert_refused(&run);
    assert!(
        run.text.contains("Invalid verification code."),
        "{}",
        run.text
    );
    assert_eq!(
        run.text.matches("[sudo] password for").count(),
        1,
        "{}",
        run.text
    );
    assert_eq!(audit_count(&s.d, "login_failure"), 1);
}
