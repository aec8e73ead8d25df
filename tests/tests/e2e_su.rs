//! The real `su` (util-linux) on a terminal driven by `expect`: `nobody`
//! switches to a test user who exists only inside a private mount namespace,
//! typing the user's password and then an `oathtool` code. Needs root.

use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::system::{expect, HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const PROMPT: &str = "Verification code:";

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
}

fn setup(max_tries: u32) -> Setup {
    require_root();
    require_programs(&["unshare", "setpriv", "su", "expect", "oathtool"]);
    let d = TestDaemon::start_with(|c| c.login.max_tries = max_tries);
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "su pass 9").unwrap();
    let socket = format!("socket={}", d.socket().display());
    sys.pam_service(
        "su",
        &[
            "auth requisite pam_unix.so nodelay".into(),
            module_line("required", &[&socket, "timeout=5"]),
            "account required pam_unix.so".into(),
            "session required pam_permit.so".into(),
        ],
    )
    .unwrap();
    let enrolled = d.enroll("tfuser");
    Setup {
        d,
        sys,
        user,
        enrolled,
    }
}

/// `su tfuser -c …` run by `nobody` on a terminal, answering `dialog`.
fn su(s: &Setup, dialog: &[(&str, &str)]) -> Run {
    let argv = s.sys.argv(&[
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "su",
        "tfuser",
        "-c",
        "echo SU-$((40+2)); id -un",
    ]);
    expect(&argv, dialog, 10).unwrap()
}

#[test]
fn su_takes_password_then_code() {
    let s = setup(1);
    let host = HostFiles::snapshot();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = su(&s, &[("Password:", &s.user.password), (PROMPT, &code)]);
    assert!(run.ok(), "su failed ({:?}):\n{}", run.code(), run.text);
    assert!(run.text.contains("SU-42\r\ntfuser"), "{:?}", run.text);
    // The daemon saw who asked: su runs PAM as root for the target user,
    // with nobody as the requesting user.
    let log = s.d.log_text();
    assert!(
        log.contains("login user=tfuser service=su") && log.contains("result=success"),
        "{log}"
    );
    assert!(log.contains("ruser=nobody"), "{log}");
    host.assert_unchanged();
}

#[test]
fn su_refuses_a_wrong_code_and_says_why() {
    let s = setup(1);
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    let run = su(&s, &[("Password:", &s.user.password), (PROMPT, wrong)]);
    assert_eq!(run.code(), Some(1), "{}", run.text);
    assert!(!run.text.contains("SU-42"), "{}", run.text);
    assert!(
        run.text.contains("Invalid verification code."),
        "{}",
        run.text
    );
    assert!(run.text.contains("Authentication failure"), "{}", run.text);
}

#[test]
fn su_backup_code_works_once() {
    let s = setup(1);
    let backup = &s.enrolled.backup_codes[0];
    let ok = su(&s, &[("Password:", &s.user.password), (PROMPT, backup)]);
    assert!(ok.ok(), "{}", ok.text);
    let again = su(&s, &[("Password:", &s.user.password), (PROMPT, backup)]);
    assert_eq!(again.code(), Some(1), "{}", again.text);
}
