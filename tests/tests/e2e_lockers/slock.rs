//! slock (Debian's suckless-tools 47, patched to use PAM): one question,
//! answered to every PAM prompt.

use super::*;

/// Starts Debian's slock as the user on `x` and waits for its window
/// (mapped once it holds keyboard and pointer). It runs from a copy
/// without the file capabilities the package gives it (cap_dac_override,
/// cap_sys_resource: only to keep the OOM killer away): containers often
/// drop cap_sys_resource from the bounding set, and exec of the original
/// then fails with EPERM. PAM does not depend on them (Debian's slock
/// is patched to use PAM instead of reading the shadow file).
fn slock(b: &Bed, x: &mut Display) -> Locker {
    let copy = b.user.home.join("slock");
    std::fs::copy("/usr/bin/slock", &copy).unwrap();
    let locker = Locker::spawn(x, &b.user, &[copy.to_str().unwrap()], &[]).unwrap();
    let mapped = wait_until(STEP, || x.top_level_windows().unwrap_or(0) >= 1);
    assert!(mapped, "slock mapped no window: {}", locker.output());
    locker
}

#[test]
fn slock_single_prompt_unlocks_with_password_and_code_typed_together() {
    run_in_namespace("slock::child_slock_unlock");
}

#[test]
#[ignore = "run by slock_single_prompt_unlocks_with_password_and_code_typed_together in its namespace"]
fn child_slock_unlock() {
    let b = bed("slock::child_slock_unlock");
    b.readme_pam("slock");
    let mut x = Display::start(&b.artifacts).unwrap();
    let mut locker = slock(&b, &mut x);
    x.screenshot("locked").unwrap();
    x.enter(&format!("{}{}", b.user.password, b.code()))
        .unwrap();
    let status = locker.wait_exit(STEP);
    x.screenshot("unlocked").unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "slock did not unlock ({status:?}): {}\n{:?}\n{}",
        locker.output(),
        b.audited(),
        b.d.log_text()
    );
    assert_eq!(b.events(), ["login_success"], "{:?}", b.audited());
    assert!(b.audited()[0].starts_with("login_success|slock|"));
    println!("child ok");
}

/// Why slock needs the single-prompt stack: with Debian's own
/// /etc/pam.d/slock plus the ordinary twofold line, the person types the
/// password and presses Return once, and slock itself answers the daemon's
/// code prompt, both times it is asked, with the password: the login ends
/// without anything more being typed.
#[test]
fn slock_answers_the_code_prompt_itself_with_what_was_typed() {
    run_in_namespace("slock::child_slock_two_questions");
}

#[test]
#[ignore = "run by slock_answers_the_code_prompt_itself_with_what_was_typed in its namespace"]
fn child_slock_two_questions() {
    let b = bed("slock::child_slock_two_questions");
    b.pam(
        "slock",
        &[
            "@include common-auth".into(),
            b.twofold("required", &[]),
            "@include common-account".into(),
        ],
    );
    let mut x = Display::start(&b.artifacts).unwrap();
    let mut locker = slock(&b, &mut x);
    x.enter(&b.user.password).unwrap();
    // Nothing more is typed; the login still ends, refused.
    b.wait_event("login_denied", 1);
    x.screenshot("refused").unwrap();
    assert!(locker.exited().is_none(), "slock unlocked without a code");
    let rows = b.audited();
    // The module saw the answer was the password PAM_AUTHTOK holds: the
    // daemon asked again, got the password again, and refused (counting
    // nothing), naming the service.
    assert_eq!(
        rows,
        ["login_denied|slock|reason=password_at_code_prompt"],
        "{}",
        b.d.log_text()
    );
    assert!(
        b.d.log_text()
            .contains("service slock answered a verification-code prompt with the password"),
        "{}",
        b.d.log_text()
    );
    println!("child ok");
}
