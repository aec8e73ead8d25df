//! Self-service and admin requests through the socket (the test runs as root:
//! its own account is `root`, and it is an admin for everyone else).

use twofold_proto::{Algorithm, ErrorKind, Request, Response};
use twofold_tests::daemon::{failed_kind, last, TestDaemon};
use twofold_tests::otp::oathtool_totp;

#[test]
fn expired_enrollment_is_not_found() {
    let d = TestDaemon::start();
    let e = d.enroll_start("alice");
    d.clock.advance(15 * 60 + 1);
    let code = oathtool_totp(&e, d.now(), 0);
    let r = d
        .client()
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: code.as_str().into(),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::NotFound), "{r:?}");
    assert_eq!(d.login("alice", &[]), vec![Response::Ignore]);
}

#[test]
fn enrollment_just_inside_the_timeout_confirms() {
    let d = TestDaemon::start();
    let e = d.enroll_start("alice");
    d.clock.advance(15 * 60);
    let code = oathtool_totp(&e, d.now(), 0);
    let r = d
        .client()
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: code.as_str().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
}

#[test]
fn confirm_with_wrong_code_is_invalid_and_pending_stays() {
    let d = TestDaemon::start();
    let e = d.enroll_start("alice");
    let mut c = d.client();
    let good = oathtool_totp(&e, d.now(), 0);
    let wrong = if good == "123456" { "654321" } else { "123456" };
    let r = c
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: wrong.into(),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    match c
        .call(&Request::Status {
            user: Some("alice".into()),
        })
        .unwrap()
    {
        Response::Status(s) => {
            assert!(s.pending_enrollment);
            assert!(s.factors.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let r = c
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: good.as_str().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
}

#[test]
fn confirm_without_pending_is_not_found_and_second_start_conflicts() {
    let d = TestDaemon::start();
    let r = d
        .client()
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: "123456".into(),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::NotFound), "{r:?}");
    d.enroll_totp("alice");
    let r = d
        .client()
        .call(&Request::TotpEnrollStart {
            user: Some("alice".into()),
            algorithm: None,
            digits: None,
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::Conflict), "{r:?}");
}

#[test]
fn restarting_a_pending_enrollment_replaces_the_secret() {
    let d = TestDaemon::start();
    let first = d.enroll_start("alice");
    let second = d.enroll_start("alice");
    assert_ne!(first.secret, second.secret);
    let old = oathtool_totp(&first, d.now(), 0);
    let new = oathtool_totp(&second, d.now(), 0);
    let mut c = d.client();
    if old != new {
        let r = c
            .call(&Request::TotpEnrollConfirm {
                user: Some("alice".into()),
                code: old.as_str().into(),
            })
            .unwrap();
        assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    }
    let r = c
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: new.as_str().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
}

#[test]
fn sha512_eight_digit_enrollment_logs_in() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let e = match c
        .call(&Request::TotpEnrollStart {
            user: Some("alice".into()),
            algorithm: Some(Algorithm::Sha512),
            digits: Some(8),
        })
        .unwrap()
    {
        Response::TotpPending(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!((e.algorithm, e.digits), (Algorithm::Sha512, 8));
    // 64-byte secret: 103 base32 characters.
    assert_eq!(e.secret.len(), 103);
    assert!(e
        .uri
        .expose()
        .contains("&algorithm=SHA512&digits=8&period=30"));
    let r = c
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: oathtool_totp(&e, d.now(), 0).as_str().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    d.clock.advance(30);
    assert_eq!(
        last(&d.login("alice", &[&oathtool_totp(&e, d.now(), 0)])),
        &Response::Success
    );
}

#[test]
fn bad_digits_are_a_bad_request() {
    let d = TestDaemon::start();
    for digits in [5, 9] {
        let r = d
            .client()
            .call(&Request::TotpEnrollStart {
                user: Some("alice".into()),
                algorithm: None,
                digits: Some(digits),
            })
            .unwrap();
        assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    }
}

#[test]
fn self_service_regenerate_needs_a_fresh_code_that_is_then_used_up() {
    let d = TestDaemon::start();
    let (e, old_codes) = d.enroll_totp("root");
    d.clock.advance(30);
    let mut c = d.client();
    let r = c
        .call(&Request::RegenerateBackupCodes {
            user: None,
            code: None,
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    let code = oathtool_totp(&e, d.now(), 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = c
        .call(&Request::RegenerateBackupCodes {
            user: None,
            code: Some(wrong.into()),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    let r = c
        .call(&Request::RegenerateBackupCodes {
            user: None,
            code: Some(code.as_str().into()),
        })
        .unwrap();
    let Response::BackupCodes { codes } = r else {
        panic!("{r:?}")
    };
    assert_eq!(codes.len(), 10);
    // The authorizing code consumed its step; the old backup codes are gone.
    let seen = d.login("root", &[&code, old_codes[0].expose(), codes[0].expose()]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|r| matches!(r, Response::Error { .. }))
            .count(),
        2
    );
}

#[test]
fn admin_regenerates_and_removes_for_another_user_without_a_code() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    let mut c = d.client();
    let r = c
        .call(&Request::RegenerateBackupCodes {
            user: Some("alice".into()),
            code: None,
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    let r = c
        .call(&Request::RemoveTotp {
            user: Some("alice".into()),
            code: None,
        })
        .unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(d.login("alice", &[]), vec![Response::Ignore]);
    let r = c
        .call(&Request::RemoveTotp {
            user: Some("alice".into()),
            code: None,
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::NotFound), "{r:?}");
}

#[test]
fn self_service_remove_needs_a_code() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("root");
    d.clock.advance(30);
    let mut c = d.client();
    let r = c
        .call(&Request::RemoveTotp {
            user: None,
            code: None,
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    let r = c
        .call(&Request::RemoveTotp {
            user: None,
            code: Some(oathtool_totp(&e, d.now(), 0).as_str().into()),
        })
        .unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(d.login("root", &[]), vec![Response::Ignore]);
}

#[test]
fn admin_list_and_disable() {
    let d = TestDaemon::start();
    d.enroll_totp("carol");
    d.enroll_totp("alice");
    d.enroll_start("bob");
    let mut c = d.client();
    let Response::Users { users } = c.call(&Request::AdminList).unwrap() else {
        panic!()
    };
    let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(users[0].factors.len(), 1);
    assert_eq!(users[0].factors[0].method, "totp");
    assert_eq!(users[0].backup_codes_left, 10);
    assert!(users[1].pending_enrollment && users[1].factors.is_empty());
    let r = c
        .call(&Request::AdminDisable {
            user: "alice".into(),
        })
        .unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(d.login("alice", &[]), vec![Response::Ignore]);
    let r = c
        .call(&Request::AdminDisable { user: "zed".into() })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::NotFound), "{r:?}");
    let r = c
        .call(&Request::AdminDisable {
            user: "al\nice".into(),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
}

#[test]
fn status_reports_last_use() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(30);
    let at = d.now();
    assert_eq!(
        last(&d.login("alice", &[&oathtool_totp(&e, at, 0)])),
        &Response::Success
    );
    let Response::Status(s) = d
        .client()
        .call(&Request::Status {
            user: Some("alice".into()),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(s.factors[0].enrolled_at, at - 30);
    assert_eq!(s.factors[0].last_used, Some(at));
    assert!(!s.pending_enrollment);
}

#[test]
fn no_code_or_secret_reaches_the_log() {
    let d = TestDaemon::start();
    let (e, codes) = d.enroll_totp("alice");
    let mut secrets: Vec<String> = vec![e.secret.expose().to_owned(), e.uri.expose().to_owned()];
    let mut typed = Vec::new();
    for _ in 1..4u64 {
        d.clock.advance(30);
        let code = oathtool_totp(&e, d.now(), 0);
        typed.push(code.clone());
        d.login("alice", &["98765432", &code]);
    }
    let used = codes[0].expose().to_owned();
    d.login("alice", &[&used, "qqqqq-wwwww"]);
    let r = d
        .client()
        .call(&Request::RegenerateBackupCodes {
            user: Some("alice".into()),
            code: None,
        })
        .unwrap();
    let Response::BackupCodes { codes: fresh } = r else {
        panic!("{r:?}")
    };
    secrets.extend(
        codes
            .iter()
            .chain(fresh.iter())
            .map(|c| c.expose().to_owned()),
    );
    secrets.extend(codes.iter().map(|c| c.expose().replace('-', "")));
    secrets.extend(typed);
    secrets.push("98765432".into());
    secrets.push("qqqqq-wwwww".into());
    let log = d.log_text();
    assert!(log.contains("result=success"), "{log}");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "log leaks {s:?}:\n{log}");
    }
}
