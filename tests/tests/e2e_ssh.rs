//! The real OpenSSH server and client: sshd on 127.0.0.1 in a private mount
//! namespace (`UsePAM yes`, keyboard-interactive) with pam_twofold.so in
//! its PAM stack, the real `ssh` client driven by `expect`, codes from
//! `oathtool`. The host's /etc is never touched (asserted). Needs root.

use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::sshd::{Sshd, SSHD};
use twofold_tests::system::{HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const PROMPT: &str = "Verification code:";
const SHELL_OK: &str = "echo REMOTE-$((40+2)); id -un";

fn twofold_line(d: &TestDaemon) -> String {
    let socket = format!("socket={}", d.socket().display());
    module_line("required", &[&socket, "timeout=5"])
}

/// sshd with `AuthenticationMethods publickey,keyboard-interactive`: the
/// key is checked by sshd, PAM asks only for the code. `pam_permit` after
/// twofold, as README gives it: twofold's PAM_IGNORE (an unenrolled user the
/// policy lets through) must not be the stack's only result, which libpam
/// turns into a denial.
fn key_then_code_sshd(s: &Setup) -> Sshd {
    let stack = [
        twofold_line(&s.d),
        "auth required pam_permit.so".into(),
        "account required pam_unix.so".into(),
        "session required pam_permit.so".into(),
        "password required pam_deny.so".into(),
    ];
    s.sys.pam_service("sshd", &stack).unwrap();
    Sshd::start(&s.sys, &s.user, "publickey,keyboard-interactive").unwrap()
}

/// sshd with keyboard-interactive alone and the recommended stack: the
/// password module first and `requisite`, so a wrong password ends the
/// login before twofold is asked (no code spent, no rate-limit slot taken).
fn password_then_code_sshd(s: &Setup) -> Sshd {
    let stack = [
        "auth requisite pam_unix.so nodelay".into(),
        twofold_line(&s.d),
        "account required pam_unix.so".into(),
        "session required pam_permit.so".into(),
        "password required pam_deny.so".into(),
    ];
    s.sys.pam_service("sshd", &stack).unwrap();
    Sshd::start(&s.sys, &s.user, "keyboard-interactive").unwrap()
}

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
    host: HostFiles,
}

fn setup(max_tries: u32) -> Setup {
    setup_with(|c| c.login.max_tries = max_tries)
}

fn setup_with(edit: impl FnOnce(&mut twofold_config::Config)) -> Setup {
    require_root();
    require_programs(&["unshare", SSHD, "ssh", "ssh-keygen", "expect", "oathtool"]);
    let host = HostFiles::snapshot();
    let d = TestDaemon::start_with(edit);
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "correct horse 7").unwrap();
    let enrolled = d.enroll("tfuser");
    Setup {
        d,
        sys,
        user,
        enrolled,
        host,
    }
}

fn assert_logged_in(run: &Run, sshd: &Sshd) {
    assert!(
        run.ok(),
        "ssh failed ({:?}):\n{}\n--- sshd ---\n{}",
        run.code(),
        run.text,
        sshd.log()
    );
    assert!(run.text.contains("REMOTE-42"), "{}", run.text);
    assert!(run.text.contains("tfuser"), "{}", run.text);
}

fn assert_refused(run: &Run, sshd: &Sshd) {
    assert!(
        !run.ok(),
        "ssh should have failed:\n{}\n--- sshd ---\n{}",
        run.text,
        sshd.log()
    );
    assert!(!run.text.contains("REMOTE-42"), "{}", run.text);
    assert!(run.text.contains("Permission denied"), "{}", run.text);
}

/// How many logins of `user` reached the daemon (a `Begin`).
fn begins(d: &TestDaemon, user: &str) -> usize {
    let needle = format!(" user={user} ");
    d.log
        .lines()
        .iter()
        .filter(|l| l.starts_with("twofoldd: login ") && l.contains(&needle))
        .count()
}

#[test]
fn ssh_key_then_code_runs_the_remote_command_and_refuses_a_wrong_code() {
    let s = setup(1);
    let sshd = key_then_code_sshd(&s);

    let code = s.d.code(&s.enrolled.secret, 0);
    let ok = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, &code)]).unwrap();
    assert_logged_in(&ok, &sshd);
    // OpenSSH 9 names the account in front of the prompt.
    assert!(
        ok.text.contains("(tfuser@127.0.0.1) Verification code:"),
        "{}",
        ok.text
    );

    // The same code again is a replay; a made-up code is wrong. Both refused.
    let wrong = wrong_code(&code);
    for bad in [code.as_str(), wrong] {
        let no = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, bad)]).unwrap();
        assert_refused(&no, &sshd);
    }
    s.host.assert_unchanged();
}

/// Issue 10: README's key+code stack had twofold as its only auth module,
/// so twofold's PAM_IGNORE for an unenrolled user (policy `allow`) left
/// libpam without a result and every unenrolled user was refused.
#[test]
fn regression_ssh_key_then_code_lets_an_unenrolled_user_in_when_policy_allows() {
    let s = setup(1);
    let sshd = key_then_code_sshd(&s);
    let r = s.d.call(&twofold_proto::Request::AdminDisable {
        user: "tfuser".into(),
    });
    assert!(matches!(r, twofold_proto::Response::Done { .. }), "{r:?}");
    // No code is asked for: the key alone, as policy `allow` says.
    let ok = sshd.ssh("tfuser", SHELL_OK, &[]).unwrap();
    assert_logged_in(&ok, &sshd);
    assert!(!ok.text.contains(PROMPT), "{}", ok.text);
    s.host.assert_unchanged();
}

#[test]
fn ssh_key_then_code_refuses_an_unenrolled_user_when_policy_denies() {
    let s = setup_with(|c| {
        c.login.max_tries = 1;
        c.policy.unenrolled = twofold_config::Unenrolled::Deny;
    });
    let sshd = key_then_code_sshd(&s);
    let r = s.d.call(&twofold_proto::Request::AdminDisable {
        user: "tfuser".into(),
    });
    assert!(matches!(r, twofold_proto::Response::Done { .. }), "{r:?}");
    let no = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, "123456")]).unwrap();
    assert_refused(&no, &sshd);
    s.host.assert_unchanged();
}

#[test]
fn ssh_backup_code_is_accepted_once() {
    let s = setup(1);
    let sshd = key_then_code_sshd(&s);
    let backup = &s.enrolled.backup_codes[3];
    let ok = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, backup)]).unwrap();
    assert_logged_in(&ok, &sshd);
    let again = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, backup)]).unwrap();
    assert_refused(&again, &sshd);
    s.host.assert_unchanged();
}

#[test]
fn ssh_keyboard_interactive_alone_asks_password_then_code() {
    let s = setup(1);
    let sshd = password_then_code_sshd(&s);

    let code = s.d.code(&s.enrolled.secret, 0);
    let ok = sshd
        .ssh(
            "tfuser",
            SHELL_OK,
            &[("Password:", &s.user.password), (PROMPT, &code)],
        )
        .unwrap();
    assert_logged_in(&ok, &sshd);

    // Right password, wrong code: refused.
    s.d.clock.advance(30);
    let next = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&next);
    let no = sshd
        .ssh(
            "tfuser",
            SHELL_OK,
            &[("Password:", &s.user.password), (PROMPT, wrong)],
        )
        .unwrap();
    assert_refused(&no, &sshd);
    s.host.assert_unchanged();
}

/// The recommended stack holds: with `requisite` on the password module, a
/// wrong password never reaches twofoldd, so it spends no code and takes no
/// rate-limit slot.
#[test]
fn ssh_wrong_password_never_reaches_the_daemon() {
    let s = setup(1);
    let sshd = password_then_code_sshd(&s);
    let before = begins(&s.d, "tfuser");
    let no = sshd
        .ssh("tfuser", SHELL_OK, &[("Password:", "not the password")])
        .unwrap();
    assert_refused(&no, &sshd);
    assert!(!no.text.contains(PROMPT), "{}", no.text);
    assert_eq!(begins(&s.d, "tfuser"), before, "{}", s.d.log_text());

    // The code that was never spent still works afterwards.
    let code = s.d.code(&s.enrolled.secret, 0);
    let ok = sshd
        .ssh(
            "tfuser",
            SHELL_OK,
            &[("Password:", &s.user.password), (PROMPT, &code)],
        )
        .unwrap();
    assert_logged_in(&ok, &sshd);
    assert_eq!(begins(&s.d, "tfuser"), before + 1);
}

/// OpenSSH bug 2876: the daemon's "Invalid verification code." is carried
/// inside the next prompt, so the ssh user reads it before typing again.
/// (OpenSSH 9.2's sshd also folds such lines into the next prompt itself;
/// the module does it so that the placement does not depend on the sshd.)
#[test]
fn ssh_client_screen_shows_the_error_inside_the_next_prompt() {
    let s = setup(2);
    let sshd = key_then_code_sshd(&s);
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    let run = sshd
        .ssh("tfuser", SHELL_OK, &[(PROMPT, wrong), (PROMPT, &code)])
        .unwrap();
    assert_logged_in(&run, &sshd);
    assert!(
        run.text
            .contains("(tfuser@127.0.0.1) Invalid verification code.\r\nVerification code: "),
        "{:?}",
        run.text
    );
}

/// A message that no prompt follows (the last wrong code; later, a lockout)
/// reaches the ssh user's screen before "Permission denied".
#[test]
fn ssh_client_screen_shows_the_last_error_before_permission_denied() {
    let s = setup(1);
    let sshd = key_then_code_sshd(&s);
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    let run = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, wrong)]).unwrap();
    assert_refused(&run, &sshd);
    let shown = run.text.find("Invalid verification code.");
    let denied = run.text.find("Permission denied");
    assert!(shown.is_some() && shown < denied, "{:?}", run.text);
}

/// The rate limit's lockout message (issue 4) reaches the ssh user's
/// terminal: after two wrong codes from 127.0.0.1 the third login is told
/// why and when to retry, without being asked for a code.
#[test]
fn ssh_client_screen_shows_the_lockout_message() {
    let s = setup_with(|c| {
        c.login.max_tries = 1;
        c.rate_limit.source_failures = 2;
    });
    let sshd = key_then_code_sshd(&s);
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    for _ in 0..2 {
        let no = sshd.ssh("tfuser", SHELL_OK, &[(PROMPT, wrong)]).unwrap();
        assert_refused(&no, &sshd);
    }
    let locked = sshd.ssh("tfuser", SHELL_OK, &[]).unwrap();
    assert_refused(&locked, &sshd);
    assert!(!locked.text.contains(PROMPT), "{}", locked.text);
    let shown = locked
        .text
        .find("Too many failed attempts; try again in 15 minutes.");
    let denied = locked.text.find("Permission denied");
    assert!(shown.is_some() && shown < denied, "{:?}", locked.text);
    s.host.assert_unchanged();
}
