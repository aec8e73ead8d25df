//! Single-prompt mode with the real pam_unix between pam_twofold's two
//! lines: the stock `pamtester` in a private mount namespace, where a test
//! user with a known password exists in a copy of /etc/shadow. Needs root.
//!
//! ```text
//! auth requisite pam_twofold.so single_prompt=ask
//! auth requisite pam_unix.so use_first_pass
//! auth required  pam_twofold.so single_prompt=verify
//! ```
//!
//! One answer carries the password and the code; the `ask` line hands the
//! password on as PAM_AUTHTOK and keeps the code, pam_unix checks the
//! password, and only then does the `verify` line take the code to twofoldd
//! (issue 10: a wrong password must spend no code and count no failure).

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
            module_line("requisite", &[&socket, "single_prompt=ask"]),
            "auth requisite pam_unix.so use_first_pass nodelay".into(),
            module_line("required", &[&socket, "timeout=5", "single_prompt=verify"]),
            "account required pam_unix.so".into(),
        ],
    )
    .unwrap();
    // The one-line form of before issue 10.
    sys.pam_service(
        "tf-single-old",
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

/// The login events the daemon audited for `user`, oldest first.
fn audited(s: &Setup, user: &str) -> Vec<String> {
    s.d.sqlite3(&format!(
        "SELECT event FROM audit WHERE user = '{user}' AND event LIKE 'login%' ORDER BY id"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Issue 10 (7): a wrong password with the right code is refused by
/// pam_unix before twofoldd hears of the login: the code is not spent (it
/// logs in afterwards) and no failure is counted.
#[test]
fn regression_single_prompt_a_wrong_password_with_the_right_code_spends_nothing() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = pamtester(&s, "tfuser", &[&format!("pass word 13{code}")]);
    assert_refused(&run);
    assert!(!run.text.contains("Verification code"), "{}", run.text);
    assert!(
        !s.d.log_text().contains("login user=tfuser"),
        "{}",
        s.d.log_text()
    );
    assert!(
        audited(&s, "tfuser").is_empty(),
        "{:?}",
        audited(&s, "tfuser")
    );
    // The same code, now after the right password.
    assert_ok(&pamtester(
        &s,
        "tfuser",
        &[&format!("{}{code}", s.user.password)],
    ));
    assert_eq!(audited(&s, "tfuser"), ["login_success"]);
}

/// Issue 10 (7): someone who knows only the user name sends wrong codes
/// with wrong passwords, more than the lockout threshold (5 from one
/// source): none reaches the daemon, so the user is not locked out.
#[test]
fn regression_single_prompt_wrong_passwords_cannot_lock_the_user_out() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    let wrong = wrong_code(&code);
    for i in 0..10 {
        let run = pamtester(&s, "tfuser", &[&format!("guess {i}{wrong}")]);
        assert_refused(&run);
    }
    assert!(
        audited(&s, "tfuser").is_empty(),
        "{:?}",
        audited(&s, "tfuser")
    );
    let run = pamtester(&s, "tfuser", &[&format!("{}{code}", s.user.password)]);
    assert_ok(&run);
    assert!(!run.text.contains("Too many"), "{}", run.text);
}

/// A wrong code after the right password is the daemon's to refuse, and is
/// counted as one.
#[test]
fn a_wrong_code_after_the_right_password_is_refused_and_counted() {
    let s = setup();
    let wrong = wrong_code(&s.d.code(&s.enrolled.secret, 0)).to_owned();
    let run = pamtester(&s, "tfuser", &[&format!("{}{wrong}", s.user.password)]);
    assert_refused(&run);
    assert!(
        run.text.contains("Invalid verification code."),
        "{}",
        run.text
    );
    let events = audited(&s, "tfuser");
    assert!(events.contains(&"login_failure".to_owned()), "{events:?}");
}

/// Issue 10 (7): the one-line form of before is refused (PAM_SERVICE_ERR,
/// logged with the new stack), and the daemon is never asked.
#[test]
fn regression_the_old_one_line_single_prompt_stack_is_refused() {
    let s = setup();
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = pamtester_on(
        &s,
        "tf-single-old",
        "tfuser",
        &[&format!("{}{code}", s.user.password)],
    );
    assert!(!run.ok(), "{}", run.text);
    assert!(!run.text.contains(SINGLE), "{}", run.text);
    assert!(
        audited(&s, "tfuser").is_empty(),
        "{:?}",
        audited(&s, "tfuser")
    );
    // The code is still good for the new stack.
    assert_ok(&pamtester(
        &s,
        "tfuser",
        &[&format!("{}{code}", s.user.password)],
    ));
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

/// A user with nothing enrolled (the default policy lets them through):
/// the `ask` line cannot know that without asking the daemon, which it
/// never does before the password is checked, so the combined question is
/// asked of everyone and answered with the password alone. pam_unix checks
/// it; twofoldd then says it has no say.
#[test]
fn an_unenrolled_user_answers_with_the_password_alone() {
    let s = setup();
    let run = pamtester(&s, "plain", &["plain pw"]);
    assert_ok(&run);
    assert_eq!(run.text.matches(SINGLE).count(), 1, "{}", run.text);
    assert!(!run.text.contains("Verification code"), "{}", run.text);
    assert_eq!(audited(&s, "plain"), ["login_skipped"]);
    // A wrong password: refused by pam_unix; twofoldd never hears of it.
    assert_refused(&pamtester(&s, "plain", &["plain pv"]));
    assert_eq!(audited(&s, "plain"), ["login_skipped"]);
}
