//! Rate limits end to end through the real libpam: failures counted per
//! (user, source) and per user in SQLite, locks told to the person with
//! when to retry, surviving restarts (and `kill -9`), cleared by an admin.
//! Time moves on the daemon's manual clock; nothing sleeps.

use twofold_daemon::{locked_message, INVALID_CODE};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{config_in, open_tempdir, DaemonProcess, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;
use twofold_tests::PamConfig;

fn login(pam: &PamConfig, user: &str, rhost: &str, codes: &[&str]) -> (PamCode, Transcript) {
    let conv = answers(codes);
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .rhost(rhost)
        .tty("ssh")
        .authenticate(conv)
        .unwrap()
}

const LOCKED_15: &str = "Too many failed attempts; try again in 15 minutes.";

#[test]
fn five_failures_lock_that_source_only_and_the_locked_login_checks_nothing() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let right = d.code(&alice.secret, 0);
    let w = wrong_code(&right);
    let (code, t) = login(&pam, "alice", "203.0.113.66", &[w, w, w]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![INVALID_CODE; 3]);
    // The fifth wrong code locks the pair; the person is told at once.
    let (code, t) = login(&pam, "alice", "203.0.113.66", &[w, w, w]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.prompts().len(), 2, "{t:?}");
    assert_eq!(t.errors(), vec![INVALID_CODE, INVALID_CODE, LOCKED_15]);
    // Even the right code is not looked at from there.
    let (code, t) = login(&pam, "alice", "203.0.113.66", &[&right]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert!(t.prompts().is_empty(), "no prompt while locked: {t:?}");
    assert_eq!(t.errors(), vec![LOCKED_15]);
    // Another source is not locked out: the same code opens the login there
    // (it was not spent by the locked attempt).
    let (code, t) = login(&pam, "alice", "198.51.100.7", &[&right]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    let rows = d.sqlite3("SELECT event, rhost, detail FROM audit WHERE event IN ('lockout', 'login_locked') ORDER BY id");
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 2, "{rows}");
    assert!(lines[0].starts_with("lockout|203.0.113.66|"), "{rows}");
    assert!(lines[0].contains("scope=source failures=5"), "{rows}");
    assert!(lines[1].starts_with("login_locked|203.0.113.66|"), "{rows}");
}

#[test]
fn the_lock_counts_down_and_ends() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let w = wrong_code(&d.code(&alice.secret, 0));
    login(&pam, "alice", "", &[w, w, w]);
    login(&pam, "alice", "", &[w, w]);
    d.clock.advance(3 * 60);
    let (_, t) = login(&pam, "alice", "", &[]);
    assert_eq!(
        t.errors(),
        vec!["Too many failed attempts; try again in 12 minutes."]
    );
    d.clock.advance(11 * 60 + 30);
    let (_, t) = login(&pam, "alice", "", &[]);
    assert_eq!(t.errors(), vec![locked_message(1, 0)], "{t:?}");
    assert_eq!(
        t.errors()[0],
        "Too many failed attempts; try again in 1 minute."
    );
    d.clock.advance(30);
    let (code, t) = login(&pam, "alice", "", &[&d.code(&alice.secret, 0)]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
}

#[test]
fn the_user_wide_threshold_locks_every_source() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 4);
    let alice = d.enroll("alice");
    let pam = d.pam();
    let right = d.code(&alice.secret, 0);
    let w = wrong_code(&right);
    // Four failures from each of five sources: no pair reaches 5, the user reaches 20.
    for i in 1..=5 {
        let (code, t) = login(&pam, "alice", &format!("192.0.2.{i}"), &[w, w, w, w]);
        assert_eq!(code, PAM_AUTH_ERR);
        if i < 5 {
            assert_eq!(t.errors(), vec![INVALID_CODE; 4], "source {i}");
        } else {
            assert_eq!(t.errors().last(), Some(&LOCKED_15), "{t:?}");
        }
    }
    // A source never seen before is locked too.
    let (code, t) = login(&pam, "alice", "198.51.100.200", &[&right]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![LOCKED_15]);
    match d.call(&Request::AdminLocks) {
        Response::Locks { locks } => {
            assert_eq!(locks.len(), 1, "{locks:?}");
            assert_eq!(locks[0].user, "alice");
            assert_eq!(locks[0].source, None, "user-wide");
            assert_eq!(locks[0].failures, 20);
        }
        other => panic!("{other:?}"),
    }
    match d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => assert_eq!(s.locked_until, Some(d.now() + 900)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_successful_login_resets_its_source_count() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let w = wrong_code(&d.code(&alice.secret, 0));
    login(&pam, "alice", "", &[w, w, w]);
    let (code, _) = login(&pam, "alice", "", &[w, &d.code(&alice.secret, 0)]);
    assert_eq!(code, PAM_SUCCESS);
    d.clock.advance(30);
    let (code, t) = login(&pam, "alice", "", &[w, w, w]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![INVALID_CODE; 3], "not locked: {t:?}");
}

#[test]
fn a_lock_survives_a_restart_and_an_admin_unlocks_it() {
    let mut d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let w = wrong_code(&d.code(&alice.secret, 0));
    login(&pam, "alice", "192.0.2.8", &[w, w, w]);
    login(&pam, "alice", "192.0.2.8", &[w, w]);
    d.restart();
    let right = d.code(&alice.secret, 0);
    let (code, t) = login(&pam, "alice", "192.0.2.8", &[&right]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![LOCKED_15]);
    match d.call(&Request::AdminLocks) {
        Response::Locks { locks } => {
            assert_eq!(locks.len(), 1);
            assert_eq!(locks[0].source.as_deref(), Some("192.0.2.8"));
        }
        other => panic!("{other:?}"),
    }
    match d.call(&Request::AdminUnlock {
        user: "alice".into(),
    }) {
        Response::Done { message } => assert_eq!(message, "1 lock of alice cleared"),
        other => panic!("{other:?}"),
    }
    let (code, t) = login(&pam, "alice", "192.0.2.8", &[&right]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    match d.call(&Request::AdminLocks) {
        Response::Locks { locks } => assert!(locks.is_empty(), "{locks:?}"),
        other => panic!("{other:?}"),
    }
    let rows = d.sqlite3("SELECT event, user, actor FROM audit WHERE event = 'unlock'");
    assert!(rows.starts_with("unlock|alice|root(0)"), "{rows}");
}

#[test]
fn failures_are_durable_before_the_answer_kill_9_loses_none() {
    // The real twofoldd (system clock) as a child process.
    let dir = open_tempdir();
    let mut config = config_in(dir.path());
    config.rate_limit.source_failures = 3;
    // alice has no account here: with `deny` she is prompted and refused,
    // and her failures count like anyone's.
    config.policy.unenrolled = twofold_config::Unenrolled::Deny;
    let p = DaemonProcess::start(dir.path(), &config);
    let pam = PamConfig::new().unwrap();
    pam.twofold(
        "tf",
        &[&format!("socket={}", config.daemon.socket.display())],
    )
    .unwrap();
    let (code, t) = login(&pam, "alice", "192.0.2.50", &["1", "2", "3"]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(
        t.errors(),
        vec![INVALID_CODE, INVALID_CODE, INVALID_CODE, LOCKED_15]
    );
    // Killed right after the answer: the lock was already committed.
    p.kill9();
    let _p = DaemonProcess::start(dir.path(), &config);
    let (code, t) = login(&pam, "alice", "192.0.2.50", &["1"]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![LOCKED_15], "{t:?}");
}
