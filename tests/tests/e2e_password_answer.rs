//! A code prompt answered with the password the stack already verified,
//! through the real libpam against the real daemon (issue 11).
//!
//! Single-question programs (i3lock) answer every PAM prompt with what was
//! typed, so after a right password the code prompt receives the password.
//! Counted as wrong codes, two honest unlock attempts used to lock the user
//! out of everything. The module compares each answer with PAM_AUTHTOK
//! (set here as the password module before it would set it), never sends
//! it, and tells the daemon `PasswordAnswer`: not a wrong code.
//!
//! Also here: under PAM_SILENT (sudo) the reason for a second question
//! rides inside its prompt, and a refused sudo login returns the code
//! sudo treats as final.

use twofold_tests::daemon::TestDaemon;
use twofold_tests::module_line;
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;

const PROMPT: &str = "Verification code: ";
const SINGLE: &str = "Password & verification code: ";
const PASSWORD: &str = "correct horse 42";

/// One login through README's single-prompt stack, `pam_permit` standing
/// in for the password module: the `ask` line asks the combined question
/// (`conv` answers it first, with [`PASSWORD`] and no code) and sets
/// PAM_AUTHTOK, as the password module would have had it; the `verify`
/// line then runs the daemon's conversation.
fn login(
    d: &TestDaemon,
    service: &str,
    user: &str,
    silent: bool,
    conv: Conversation,
) -> (PamCode, Transcript) {
    let pam = d.pam();
    let socket = format!("socket={}", d.socket().display());
    pam.service(
        service,
        &[
            &module_line("requisite", &["single_prompt=ask"]),
            "auth requisite pam_permit.so",
            &module_line("required", &[&socket, "timeout=2", "single_prompt=verify"]),
        ],
    )
    .unwrap();
    let mut l = PamLogin::new(pam.dir(), service, user).unwrap();
    if silent {
        l = l.silent();
    }
    l.authenticate(conv).unwrap()
}

fn count(d: &TestDaemon, event: &str) -> usize {
    d.sqlite3(&format!(
        "SELECT count(*) FROM audit WHERE event = '{event}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

/// A locker that answers every question with the password: each unlock is
/// refused without a failure counted, five times over, and the account is
/// not locked: the next unlock with the code works. The daemon's log names
/// the service and `single_prompt`; the password appears nowhere.
#[test]
fn a_program_answering_every_prompt_with_the_password_never_locks_the_account() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    for i in 0..5 {
        let (rc, t) = login(
            &d,
            "i3lock",
            "alice",
            false,
            Conversation::new().respond_with(|_| Reply::Answer(PASSWORD.into())),
        );
        assert_eq!(rc, PAM_AUTH_ERR, "attempt {i}: {t:?}");
        assert_eq!(t.prompts(), [SINGLE, PROMPT, PROMPT], "attempt {i}");
    }
    assert_eq!(
        count(&d, "login_failure"),
        0,
        "a password answer is no wrong code"
    );
    assert_eq!(count(&d, "lockout"), 0);
    let denied = d.sqlite3(
        "SELECT count(*) FROM audit WHERE event = 'login_denied' AND detail LIKE '%password_at_code_prompt%' AND service = 'i3lock'",
    );
    assert_eq!(denied.trim(), "5", "each refusal is audited");
    let log = d.log_text();
    assert!(
        log.contains("service i3lock answered a verification-code prompt with the password")
            && log.contains("single_prompt"),
        "{log}"
    );
    let everything = format!("{log}\n{}", d.sqlite3("SELECT * FROM audit"));
    assert!(!everything.contains(PASSWORD), "the password leaked");

    let code = d.code(&alice.secret, 0);
    let (rc, t) = login(
        &d,
        "i3lock",
        "alice",
        false,
        Conversation::new().answer(&code),
    );
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
}

/// Someone who types the password again at the code prompt by mistake is
/// told so and asked again, without losing a try: with `max_tries = 1`
/// the code typed next still logs in.
#[test]
fn the_password_typed_by_mistake_costs_no_try() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    let alice = d.enroll("alice");
    let code = d.code(&alice.secret, 0);
    let (rc, t) = login(
        &d,
        "sudo",
        "alice",
        false,
        answers(&[PASSWORD, PASSWORD, &code]),
    );
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), [SINGLE, PROMPT, PROMPT]);
    assert_eq!(
        t.errors(),
        ["That was the password; type the verification code."]
    );
    assert_eq!(count(&d, "login_failure"), 0);
}

/// sudo sets PAM_SILENT. The reason for a second question is inside its
/// prompt (that is all sudo shows); after the last wrong code the reason
/// is shown once and the module returns PAM_CRED_INSUFFICIENT, on which
/// sudo stops instead of asking the password and three codes again.
#[test]
fn under_pam_silent_the_reason_rides_in_the_prompt_and_a_denial_is_final_for_sudo() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 2);
    let alice = d.enroll("alice");
    let code = d.code(&alice.secret, 0);
    let bad = wrong_code(&code);
    let (rc, t) = login(&d, "sudo", "alice", true, answers(&[PASSWORD, bad, bad]));
    assert_eq!(rc, PAM_CRED_INSUFFICIENT, "{t:?}");
    assert_eq!(
        t.prompts(),
        [
            SINGLE,
            PROMPT,
            &format!("Invalid verification code.\n{PROMPT}")[..]
        ]
    );
    assert_eq!(t.errors(), ["Invalid verification code."]);
    assert_eq!(
        count(&d, "login_failure"),
        2,
        "one sudo run costs max_tries"
    );

    // A locked account: the lock message once, and the final code.
    let d = TestDaemon::start_with(|c| c.rate_limit.source_failures = 1);
    let alice = d.enroll("alice");
    let code = d.code(&alice.secret, 0);
    let (rc, _) = login(
        &d,
        "sudo",
        "alice",
        true,
        Conversation::new().answer(wrong_code(&code)),
    );
    assert_eq!(rc, PAM_CRED_INSUFFICIENT);
    let (rc, t) = login(&d, "sudo", "alice", true, answers(&[PASSWORD, &code]));
    assert_eq!(rc, PAM_CRED_INSUFFICIENT, "{t:?}");
    assert_eq!(t.prompts(), [SINGLE], "no code is asked for: {t:?}");
    let errors = t.errors();
    assert_eq!(errors.len(), 1, "{t:?}");
    assert!(errors[0].starts_with("Too many failed attempts"), "{t:?}");

    // Elsewhere a refusal stays PAM_AUTH_ERR.
    let (rc, _) = login(&d, "su", "alice", true, answers(&[PASSWORD, &code]));
    assert_eq!(rc, PAM_AUTH_ERR);
}
