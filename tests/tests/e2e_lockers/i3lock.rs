//! i3lock 2.14: one question, answered to every PAM prompt.

use super::*;

/// Starts i3lock (no fork, debug output) as the user on `x`, waits for
/// its window, and returns it.
fn i3lock(b: &Bed, x: &mut Display) -> Locker {
    let locker = Locker::spawn(
        x,
        &b.user,
        &["i3lock", "-n", "--debug", "-c", "336699"],
        &[],
    )
    .unwrap();
    x.wait_for_window("^i3lock$", STEP).unwrap();
    locker
}

#[test]
fn i3lock_single_prompt_unlocks_with_password_and_code_typed_together() {
    run_in_namespace("i3lock::child_i3lock_unlock");
}

#[test]
#[ignore = "run by i3lock_single_prompt_unlocks_with_password_and_code_typed_together in its namespace"]
fn child_i3lock_unlock() {
    let b = bed("i3lock::child_i3lock_unlock");
    b.readme_pam("i3lock");
    let mut x = Display::start(&b.artifacts).unwrap();
    let mut locker = i3lock(&b, &mut x);
    x.screenshot("locked").unwrap();
    x.enter(&format!("{}{}", b.user.password, b.code()))
        .unwrap();
    let status = locker.wait_exit(STEP);
    x.screenshot("unlocked").unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "i3lock did not unlock ({status:?}): {}\n{:?}\n{}",
        locker.output(),
        b.audited(),
        b.d.log_text()
    );
    assert_eq!(b.events(), ["login_success"], "{:?}", b.audited());
    assert!(b.audited()[0].starts_with("login_success|i3lock|"));
    println!("child ok");
}

#[test]
fn i3lock_single_prompt_password_alone_five_times_does_not_lock_the_account() {
    run_in_namespace("i3lock::child_i3lock_password_alone");
}

#[test]
#[ignore = "run by i3lock_single_prompt_password_alone_five_times_does_not_lock_the_account in its namespace"]
fn child_i3lock_password_alone() {
    let b = bed("i3lock::child_i3lock_password_alone");
    b.readme_pam("i3lock");
    let mut x = Display::start(&b.artifacts).unwrap();
    let mut locker = i3lock(&b, &mut x);
    // The person forgets the code: the password alone, five times. i3lock
    // answers the daemon's code prompt with the same text each time.
    for i in 1..=5 {
        x.enter(&b.user.password).unwrap();
        // i3lock is ready for the next try once it has cleared "wrong".
        let over = locker.wait_output("clearing auth wrong", i, STEP);
        assert!(over, "try {i} did not end: {}", locker.output());
        assert!(locker.exited().is_none(), "unlocked without a code");
        if i == 1 {
            x.screenshot("password-alone").unwrap();
        }
    }
    let rows = b.audited();
    assert!(
        !b.events()
            .iter()
            .any(|e| e == "lockout" || e == "login_locked"),
        "the password typed alone locked the account: {rows:?}\n{}",
        b.d.log_text()
    );
    // Not one wrong code counted: each try was refused as the password at
    // the code prompt.
    assert_eq!(
        rows,
        vec!["login_denied|i3lock|reason=password_at_code_prompt"; 5],
        "{}",
        b.d.log_text()
    );
    // Nothing held against the person: password and code now unlock.
    x.enter(&format!("{}{}", b.user.password, b.code()))
        .unwrap();
    let status = locker.wait_exit(STEP);
    x.screenshot("unlocked").unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "i3lock did not unlock after five tries of the password alone ({status:?}): {:?}\n{}",
        b.audited(),
        b.d.log_text()
    );
    assert_eq!(b.events().last().map(String::as_str), Some("login_success"));
    println!("child ok");
}

#[test]
fn i3lock_with_debians_two_question_stack_is_refused_uncounted_and_the_log_names_single_prompt() {
    run_in_namespace("i3lock::child_i3lock_two_questions");
}

/// Issue 11, item 1, with the real i3lock: Debian's /etc/pam.d/i3lock
/// (`auth include login`) with the ordinary twofold line added to it. One
/// Enter after the password: i3lock answers the code prompt with the
/// password, twice; the daemon counts nothing, refuses the login, and
/// names the service that needs the single-prompt stack. Two such tries
/// used to lock the person out of i3lock, sudo and su.
#[test]
#[ignore = "run by i3lock_with_debians_two_question_stack_is_refused_uncounted_and_the_log_names_single_prompt in its namespace"]
fn child_i3lock_two_questions() {
    let b = bed("i3lock::child_i3lock_two_questions");
    b.pam(
        "i3lock",
        &["auth include login".into(), b.twofold("required", &[])],
    );
    let mut x = Display::start(&b.artifacts).unwrap();
    let locker = i3lock(&b, &mut x);
    for i in 1..=3 {
        x.enter(&b.user.password).unwrap();
        let over = locker.wait_output("clearing auth wrong", i, STEP);
        assert!(over, "try {i} did not end: {}", locker.output());
    }
    x.screenshot("refused").unwrap();
    let rows = b.audited();
    assert_eq!(
        rows,
        vec!["login_denied|i3lock|reason=password_at_code_prompt"; 3],
        "{}",
        b.d.log_text()
    );
    let log = b.d.log_text();
    assert!(
        log.contains("service i3lock answered a verification-code prompt with the password")
            && log.contains("needs the single_prompt stack"),
        "{log}"
    );
    println!("child ok");
}
