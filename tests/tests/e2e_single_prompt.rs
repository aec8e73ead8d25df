//! Single-prompt mode with the real pam_unix after pam_twofold: the stock
//! `pamtester` in a private mount namespace, where a test user with a known
//! password exists in a copy of /etc/shadow. One answer carries the
//! password and the code; the module keeps the code and hands the password
//! on as PAM_AUTHTOK to `pam_unix.so try_first_pass`. Needs root.

use std::time::Duration;
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::system::{run_bounded, HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const SINGLE: &str = "Password & verification code: ";

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
}

fn setup() -> Setup {
    require_root();
    require_programs(&["unshare", "pamtester", "oathtool"]);
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "pass word 12").unwrap();
    sys.add_user("plain", "plain pw").unwrap();
    let socket = format!("socket={}", d.socket().display());
    sys.pam_service(
        "tf-two",
        &[
            "auth requisite pam_unix.so nodelay".into(),
            module_line("required", &[&socket, "timeout=5"]),
            "account required pam_unix.so".into(),
        ],
    )
    .unwrap();
    sys.pam_service(
        "tf-single",
        &[
            module_line("requisite", &[&socket, "timeout=5", "single_prompt"]),
            "auth required pam_unix.so try_first_pass nodelay".into(),
            "account required pam_unix.so".into(),
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

/// `pamtester tf-single USER authenticate`, one stdin line per prompt.
fn pamtester(s: &Setup, user: &str, lines: &[&str]) -> Run {
    pamtester_on(s, "tf-single", user, lines)
}

fn pamtester_on(s: &Setup, service: &str, user: &str, lines: &[&str]) -> Run {
    let mut input = lines.join("\n");
    input.push('\n');
    let mut cmd = s
        .sys
        .command(&["pamtester", "-v", service, user, "authenticate"]);
    run_bounded(&mut cmd, &input, Duration::from_secs(15)).unwrap()
}

/// For contrast, the ordinary two-question stack (`tf-two`): pamtester is
/// asked the password by pam_unix, then the code by twofold.
#[test]
fn pamtester_asks_password_then_code_without_single_prompt() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = pamtester_on(&s, "tf-two", "tfuser", &[&s.user.password, &code]);
    assert_ok(&run);
    let (pw, vc) = (
        run.text.find("Password: "),
        run.text.find("Verification code: "),
    );
    assert!(pw.is_some() && pw < vc, "{}", run.text);
    assert!(!run.text.contains(SINGLE), "{}", run.text);
    // A wrong code after the right password is refused.
    s.d.clock.advance(30);
    let next = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&next);
    let run = pamtester_on(&s, "tf-two", "tfuser", &[&s.user.password, wrong]);
    assert_refused(&run);
}

fn assert_ok(run: &Run) {
    assert!(run.ok(), "{}", run.text);
    assert!(
        run.text.contains("successfully authenticated"),
        "{}",
        run.text
    );
}

fn assert_refused(run: &Run) {
    assert!(!run.ok(), "{}", run.text);
    assert!(run.text.contains("Authentication failure"), "{}", run.text);
}

#[test]
fn one_answer_carries_password_and_code() {
    let s = setup();
    let host = HostFiles::snapshot();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = pamtester(&s, "tfuser", &[&format!("{}{code}", s.user.password)]);
    assert_ok(&run);
    // Asked once: no separate password or code prompt.
    assert_eq!(run.text.matches(SINGLE).count(), 1, "{}", run.text);
    assert!(!run.text.contains("Password: "), "{}", run.text);
    assert!(!run.text.contains("Verification code"), "{}", run.text);
    host.assert_unchanged();
}

#[test]
fn a_wrong_password_or_a_wrong_code_is_refused() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    // Right code, wrong password: pam_unix refuses what it was handed.
    assert_refused(&pamtester(&s, "tfuser", &[&format!("pass word 13{code}")]));
    // Right password, wrong code: twofold refuses (requisite: pam_unix is
    // not even asked).
    s.d.clock.advance(30);
    let wrong = wrong_code(&code);
    let run = pamtester(&s, "tfuser", &[&format!("{}{wrong}", s.user.password)]);
    assert_refused(&run);
    assert!(
        run.text.contains("Invalid verification code."),
        "{}",
        run.text
    );
}

#[test]
fn a_backup_code_can_end_the_answer() {
    let s = setup();
    let backup = &s.enrolled.backup_codes[1];
    assert_ok(&pamtester(
        &s,
        "tfuser",
        &[&format!("{}{backup}", s.user.password)],
    ));
}

/// An answer that ends in no code is all password; the daemon's own prompt
/// then asks for the code.
#[test]
fn a_password_alone_is_followed_by_the_code_prompt() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    // The password ends in "12": not six digits, so no code is split off.
    let run = pamtester(&s, "tfuser", &[&s.user.password, &code]);
    assert_ok(&run);
    assert!(
        run.text.contains(SINGLE) && run.text.contains("Verification code: "),
        "{}",
        run.text
    );
}

/// A user with nothing enrolled: twofold has no say and asks nothing, so
/// pam_unix (`try_first_pass`) asks for the password itself.
#[test]
fn an_unenrolled_user_gets_the_ordinary_password_prompt() {
    let s = setup();
    let run = pamtester(&s, "plain", &["plain pw"]);
    assert_ok(&run);
    assert!(!run.text.contains(SINGLE), "{}", run.text);
    assert!(run.text.contains("Password: "), "{}", run.text);
}
