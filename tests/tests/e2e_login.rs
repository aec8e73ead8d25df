//! End to end: pam_twofold.so loaded by the real libpam (pam_start_confdir)
//! against a real twofoldd on a temp socket with a real SQLite file; codes
//! come from `oathtool`, never from twofold's own code. The daemon's clock is
//! a ManualClock, so time steps are chosen, not waited for.

use std::time::{Duration, Instant};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;
use twofold_tests::{module_line, PamConfig};

fn login(pam: &PamConfig, user: &str, answers: &[&str]) -> (PamCode, Transcript) {
    let mut conv = Conversation::new();
    for a in answers {
        conv = conv.answer(a);
    }
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .rhost("198.51.100.7")
        .tty("ssh")
        .authenticate(conv)
        .unwrap()
}

#[test]
fn valid_code_logs_in() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let (code, t) = login(&pam, "alice", &[&d.code(&alice.secret, 0)]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), vec!["Verification code: "]);
    assert_eq!(t.messages[0].style, Style::EchoOff);
}

#[test]
fn wrong_code_fails_with_auth_err_after_the_configured_tries() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let right = d.code(&alice.secret, 0);
    let wrong = wrong_code(&right);
    let pam = d.pam();
    let (code, t) = login(&pam, "alice", &[wrong, wrong, wrong]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.prompts().len(), 3, "three tries by default: {t:?}");
    assert_eq!(t.errors().len(), 3, "each wrong try is told: {t:?}");
    // The failed tries spent nothing: the right code still opens a login.
    assert_eq!(login(&pam, "alice", &[&right]).0, PAM_SUCCESS);
}

#[test]
fn a_wrong_code_then_the_right_one_logs_in() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let (code, t) = login(&pam, "alice", &["123", &d.code(&alice.secret, 0)]);
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(t.errors(), vec![twofold_daemon::INVALID_CODE]);
}

#[test]
fn the_same_code_twice_fails_the_second_time() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let c = d.code(&alice.secret, 0);
    assert_eq!(login(&pam, "alice", &[&c]).0, PAM_SUCCESS);
    assert_eq!(login(&pam, "alice", &[&c, &c, &c]).0, PAM_AUTH_ERR);
    // Still refused later in the same step window.
    d.clock.advance(29);
    assert_eq!(login(&pam, "alice", &[&c, &c, &c]).0, PAM_AUTH_ERR);
}

#[test]
fn neighbouring_steps_are_accepted_and_two_away_refused() {
    let d = TestDaemon::start();
    let pam = d.pam();
    // A fresh credential per case: replay protection would otherwise refuse
    // an older step after a newer one was used.
    for (steps, ok) in [(-1, true), (1, true), (-2, false), (2, false)] {
        let user = format!("u{}", steps + 10);
        let e = d.enroll(&user);
        let c = d.code(&e.secret, steps);
        let (code, _) = login(&pam, &user, &[&c, &c, &c]);
        let want = if ok { PAM_SUCCESS } else { PAM_AUTH_ERR };
        assert_eq!(code, want, "code {steps} steps from now");
    }
}

#[test]
fn a_backup_code_logs_in_once_and_never_again() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    assert_eq!(alice.backup_codes.len(), 10);
    let pam = d.pam();
    let b = alice.backup_codes[3].clone();
    assert_eq!(login(&pam, "alice", &[&b]).0, PAM_SUCCESS);
    assert_eq!(login(&pam, "alice", &[&b, &b, &b]).0, PAM_AUTH_ERR);
    // Typed without the dash and in capitals, another one works (once).
    let other = alice.backup_codes[7].replace('-', "").to_uppercase();
    assert_eq!(login(&pam, "alice", &[&other]).0, PAM_SUCCESS);
    assert_eq!(
        login(&pam, "alice", &[&other, &other, &other]).0,
        PAM_AUTH_ERR
    );
    match d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => assert_eq!(s.backup_codes_left, 8),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unenrolled_user_gets_pam_ignore() {
    let d = TestDaemon::start();
    d.enroll("alice");
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", d.socket().display());
    // libpam never hands PAM_IGNORE to the application: the jump over the
    // two pam_deny lines is taken only when the module returned PAM_IGNORE.
    pam.service(
        "tf",
        &[
            &module_line("[ignore=2 success=done default=die]", &[&socket]),
            "auth requisite pam_deny.so",
            "auth requisite pam_deny.so",
            "auth required pam_permit.so",
        ],
    )
    .unwrap();
    let (code, t) = login(&pam, "bob", &[]);
    assert_eq!(code, PAM_SUCCESS, "bob is not enrolled: {t:?}");
    assert!(t.messages.is_empty(), "bob was asked nothing: {t:?}");
    // alice is enrolled: no code, no login.
    let (code, _) = login(&pam, "alice", &["", "", ""]);
    assert_eq!(code, PAM_AUTH_ERR);
}

#[test]
fn a_pending_enrollment_does_not_count() {
    let d = TestDaemon::start();
    match d.call(&Request::TotpEnrollStart {
        user: Some("carol".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(_) => {}
        other => panic!("{other:?}"),
    }
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", d.socket().display());
    pam.service(
        "tf",
        &[
            &module_line("[ignore=1 default=die]", &[&socket]),
            "auth requisite pam_deny.so",
            "auth required pam_permit.so",
        ],
    )
    .unwrap();
    assert_eq!(login(&pam, "carol", &[]).0, PAM_SUCCESS);
}

#[test]
fn a_stopped_daemon_gives_authinfo_unavail_within_the_timeout() {
    let mut d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    d.stop();
    let start = Instant::now();
    let (code, _) = login(&pam, "alice", &[&d.code(&alice.secret, 0)]);
    let took = start.elapsed();
    assert_eq!(code, PAM_AUTHINFO_UNAVAIL);
    assert!(took < Duration::from_secs(2), "took {took:?}, timeout=2");

    // And it comes back with everything in place.
    d.restart();
    assert_eq!(
        login(&pam, "alice", &[&d.code(&alice.secret, 0)]).0,
        PAM_SUCCESS
    );
}

#[test]
fn the_confirmation_code_cannot_open_a_login() {
    let d = TestDaemon::start();
    let pending = match d.call(&Request::TotpEnrollStart {
        user: Some("dave".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p,
        other => panic!("{other:?}"),
    };
    let c = d.code(pending.secret.expose(), 0);
    match d.call(&Request::TotpEnrollConfirm {
        user: Some("dave".into()),
        code: c.as_str().into(),
    }) {
        Response::BackupCodes { codes } => assert_eq!(codes.len(), 10),
        other => panic!("{other:?}"),
    }
    let pam = d.pam();
    assert_eq!(login(&pam, "dave", &[&c, &c, &c]).0, PAM_AUTH_ERR);
    assert_eq!(
        login(&pam, "dave", &[&d.code(pending.secret.expose(), 1)]).0,
        PAM_SUCCESS
    );
}

#[test]
fn concurrent_logins_with_one_code_let_exactly_one_in() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let c = d.code(&alice.secret, 0);
    let results: Vec<PamCode> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| login(&pam, "alice", &[&c]).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| **r == PAM_SUCCESS).count();
    assert_eq!(wins, 1, "{results:?}");
}

#[test]
fn the_log_names_logins_but_never_a_code_or_secret() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let c = d.code(&alice.secret, 0);
    assert_eq!(login(&pam, "alice", &["999999", &c]).0, PAM_SUCCESS);
    assert_eq!(
        login(&pam, "alice", &[&alice.backup_codes[0]]).0,
        PAM_SUCCESS
    );
    let log = d.log_text();
    assert!(log.contains("alice"), "{log}");
    for secret in [
        alice.secret.as_str(),
        &alice.secret[..16],
        c.as_str(),
        "999999",
    ]
    .into_iter()
    .chain(alice.backup_codes.iter().map(String::as_str))
    {
        assert!(!log.contains(secret), "log leaks {secret:?}:\n{log}");
    }
}
