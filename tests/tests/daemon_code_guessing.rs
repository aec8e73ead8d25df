//! Issue 10, bypass 1: a code checked by a request (backup-code
//! regeneration, factor removal) goes through the same lock, failure count
//! and audit as a login's. The attack: a process running as the user,
//! without the second factor, guessed ~2 400 codes a second through
//! `twofold backup-codes regenerate` and got fresh backup codes in minutes.

use twofold_proto::{ErrorKind, Request, Response, Secret};
use twofold_tests::daemon::{failed_kind, last, TestDaemon};
use twofold_tests::otp::oathtool_totp;

/// A six-digit code that is not `right`.
fn not(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

fn regenerate(d: &TestDaemon, code: &str) -> Response {
    d.call(&Request::RegenerateBackupCodes {
        user: None,
        code: Some(Secret::from(code)),
    })
}

#[test]
fn regression_guessing_codes_through_requests_is_rate_limited_and_audited() {
    // The test runs as root: its own account, so these are self-service.
    let d = TestDaemon::start();
    let (e, old) = d.enroll_totp("root");
    d.clock.advance(30);
    let right = oathtool_totp(&e, d.now(), 0);
    let wrong = not(&right);
    let mut kinds = Vec::new();
    for i in 0..25 {
        // Both requests that take a code count toward one limit.
        let r = if i % 2 == 0 {
            regenerate(&d, wrong)
        } else {
            d.call(&Request::RemoveFactor {
                user: None,
                method: twofold_proto::Method::TOTP,
                code: Some(Secret::from(wrong)),
            })
        };
        kinds.push(failed_kind(&r));
    }
    // source_failures = 5 (the default): five tries, then locked.
    assert_eq!(kinds[..5], [Some(ErrorKind::InvalidCode); 5], "{kinds:?}");
    assert!(
        kinds[5..]
            .iter()
            .all(|k| *k == Some(ErrorKind::PermissionDenied)),
        "{kinds:?}"
    );
    // Locked: even the right code changes nothing now, and is not spent.
    let r = regenerate(&d, &right);
    match &r {
        Response::Failed { kind, message } => {
            assert_eq!(*kind, ErrorKind::PermissionDenied);
            assert!(message.starts_with("Too many failed attempts"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Audited like logins, under the service `twofold`.
    let rows = d.sqlite3(
        "SELECT event, COUNT(*) FROM audit WHERE service = 'twofold' \
         GROUP BY event ORDER BY event",
    );
    assert!(rows.contains("login_failure|5\n"), "{rows}");
    assert!(rows.contains("login_locked|21\n"), "{rows}");
    assert!(rows.contains("lockout|1\n"), "{rows}");
    // One count with local logins: root's sudo is locked too.
    let seen = d.login("root", &[&right]);
    assert!(matches!(last(&seen), Response::Denied { .. }), "{seen:?}");
    // After the lock, the right code works once; the old backup codes are gone.
    d.clock.advance(15 * 60);
    let right = oathtool_totp(&e, d.now(), 0);
    let r = regenerate(&d, &right);
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    assert_eq!(
        failed_kind(&regenerate(&d, &right)),
        Some(ErrorKind::InvalidCode),
        "a replayed code"
    );
    let seen = d.login("root", &[old[0].expose()]);
    assert!(!matches!(last(&seen), Response::Success), "{seen:?}");
}

#[test]
fn the_fifth_wrong_code_through_a_request_says_how_long_the_lock_lasts() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("root");
    d.clock.advance(30);
    let wrong = not(&oathtool_totp(&e, d.now(), 0));
    let mut last_message = String::new();
    for _ in 0..5 {
        if let Response::Failed { message, .. } = regenerate(&d, wrong) {
            last_message = message;
        }
    }
    // The fifth wrong code makes the lock and says so.
    assert!(
        last_message.contains("Too many failed attempts; try again in 15 minutes."),
        "{last_message}"
    );
}
