//! A change must never exist without its audit row.
//!
//! Each test sets up an account, then makes every audit INSERT fail (a
//! trigger added with the `sqlite3` CLI while the daemon runs) and makes a
//! request that changes the account. The client must hear `Internal` (a
//! login: `Unavailable`, fail closed), and nothing the change would have
//! touched may differ: the tables are dumped before and after. Dropping the
//! trigger then lets the same request succeed, which shows it was the audit
//! row, and only the audit row, that stopped it.
//!
//! Self-service runs as the test process's own account (`user: None`; the
//! daemon knows the peer from SO_PEERCRED), so a fresh code authorizes the
//! change and must not be spent by a change that did not happen.

use twofold_proto::{ErrorKind, Method, Request, Response, Secret};
use twofold_tests::daemon::{failed_kind, last, TestDaemon};
use twofold_tests::otp::{oathtool_totp, wrong_code};

/// Each `sqlite3` run waits for the daemon's write lock instead of failing.
const WAIT: &str = "PRAGMA busy_timeout = 10000;";
const REFUSE_AUDIT: &str = "CREATE TRIGGER audit_refuses BEFORE INSERT ON audit \
                            BEGIN SELECT RAISE(ABORT, 'disk says no'); END;";
const ALLOW_AUDIT: &str = "DROP TRIGGER audit_refuses;";

/// Every row an account change (or a login) could touch, blobs as hex, in
/// a fixed order, each line tagged with its table.
fn dump(d: &TestDaemon) -> String {
    d.sqlite3(&format!(
        "{WAIT}
         SELECT 'users', name, created_at FROM users ORDER BY name;
         SELECT 'credentials', id, user, method, label, hex(sealed), hex(nonce), params,
                created_at, confirmed_at, counter, last_used
           FROM credentials ORDER BY id;
         SELECT 'codes', user, method, count(*), count(used_at) FROM codes
           GROUP BY user, method ORDER BY user, method;
         SELECT 'code', id, user, method, hex(lookup), created_at, used_at
           FROM codes ORDER BY id;
         SELECT 'grace', user, first_seen, deadline FROM grace ORDER BY user;
         SELECT 'locks', id, user, source, created_at, until, failures, cleared_at
           FROM locks ORDER BY id;
         SELECT 'failures', id, user, source, at FROM failures ORDER BY id;
         SELECT 'audit', count(*), max(id) FROM audit;
         SELECT 'audit_head', last_id, hex(hash) FROM audit_head;"
    ))
}

/// The lines only in `before` (`-`) and only in `after` (`+`).
fn changed_lines(before: &str, after: &str) -> String {
    let gone = before.lines().filter(|l| !after.lines().any(|a| a == *l));
    let came = after.lines().filter(|l| !before.lines().any(|b| b == *l));
    gone.map(|l| format!("- {l}\n"))
        .chain(came.map(|l| format!("+ {l}\n")))
        .collect()
}

/// The lines of `dump` for one table.
fn rows<'a>(dump: &'a str, table: &str) -> Vec<&'a str> {
    let tag = format!("{table}|");
    dump.lines().filter(|l| l.starts_with(&tag)).collect()
}

/// The account the test process is (the daemon's self-service target).
fn own_account(d: &TestDaemon) -> String {
    match d.call(&Request::Status { user: None }) {
        Response::Status(s) => s.user,
        other => panic!("status: {other:?}"),
    }
}

/// The state before a request made while audit rows are refused.
struct Before {
    dump: String,
    /// How often the daemon had logged the trigger's message.
    refusals: usize,
}

fn refusals(d: &TestDaemon) -> usize {
    d.log_text().matches("disk says no").count()
}

/// Makes every audit INSERT fail and returns the state before the request.
fn refuse_audit(d: &TestDaemon) -> Before {
    d.sqlite3(&format!("{WAIT} {REFUSE_AUDIT}"));
    Before {
        dump: dump(d),
        refusals: refusals(d),
    }
}

/// Asserts that `r` is the daemon's storage failure, caused by the trigger,
/// and that nothing changed since `before`; then lets audit rows in again.
fn assert_refused_and_unchanged(d: &TestDaemon, what: &str, r: &Response, before: &Before) {
    assert_eq!(failed_kind(r), Some(ErrorKind::Internal), "{what}: {r:?}");
    assert_unchanged_by_the_trigger(d, what, before);
}

/// Asserts that the trigger refused an audit row and that nothing changed
/// since `before`; then drops the trigger.
fn assert_unchanged_by_the_trigger(d: &TestDaemon, what: &str, before: &Before) {
    assert!(
        refusals(d) > before.refusals,
        "{what}: the trigger did not fire:\n{}",
        d.log_text()
    );
    let after = dump(d);
    assert!(
        before.dump == after,
        "{what}: a change was stored without its audit row:\n{}",
        changed_lines(&before.dump, &after)
    );
    d.sqlite3(&format!("{WAIT} {ALLOW_AUDIT}"));
}

fn backup_codes(r: &Response) -> &[Secret] {
    match r {
        Response::BackupCodes { codes } => codes,
        other => panic!("expected backup codes, got {other:?}"),
    }
}

fn done(what: &str, r: &Response) {
    assert!(matches!(r, Response::Done { .. }), "{what}: {r:?}");
}

#[test]
fn self_service_regenerate_without_its_audit_row_keeps_the_codes_and_the_authorizing_code() {
    let d = TestDaemon::start();
    let me = own_account(&d);
    let (e, old_codes) = d.enroll_totp(&me);
    d.clock.advance(30);
    let code = oathtool_totp(&e, d.now(), 0);
    let req = Request::RegenerateBackupCodes {
        user: None,
        code: Some(code.as_str().into()),
    };
    let before = refuse_audit(&d);
    let r = d.call(&req);
    assert_refused_and_unchanged(&d, "self-service regenerate", &r, &before);
    // The same code was not spent: it authorizes the same request now.
    let fresh = backup_codes(&d.call(&req)).to_vec();
    assert_ne!(before.dump, dump(&d));
    // The new codes replaced the old ones.
    d.clock.advance(30);
    let seen = d.login(&me, &[old_codes[0].expose(), fresh[0].expose()]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
}

#[test]
fn admin_regenerate_without_its_audit_row_keeps_the_codes() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    let req = Request::RegenerateBackupCodes {
        user: Some("alice".into()),
        code: None,
    };
    let before = refuse_audit(&d);
    let r = d.call(&req);
    assert_refused_and_unchanged(&d, "admin regenerate", &r, &before);
    backup_codes(&d.call(&req));
    let after = dump(&d);
    assert_ne!(rows(&before.dump, "code"), rows(&after, "code"));
}

/// The two spellings of a removal of TOTP, for `user` with `code`.
fn removals(user: Option<&str>, code: Option<&str>) -> [Request; 2] {
    let user = user.map(str::to_owned);
    let code = code.map(Secret::from);
    [
        Request::RemoveTotp {
            user: user.clone(),
            code: code.clone(),
        },
        Request::RemoveFactor {
            user,
            method: Method::TOTP,
            code,
        },
    ]
}

#[test]
fn self_service_removal_without_its_audit_row_keeps_the_factor_and_does_not_spend_the_code() {
    for i in 0..2 {
        let d = TestDaemon::start();
        let me = own_account(&d);
        let (e, codes) = d.enroll_totp(&me);
        d.clock.advance(30);
        let code = oathtool_totp(&e, d.now(), 0);
        let req = removals(None, Some(&code))[i].clone();
        let before = refuse_audit(&d);
        let r = d.call(&req);
        let what = format!("self-service {req:?}");
        assert_refused_and_unchanged(&d, &what, &r, &before);
        assert_eq!(rows(&before.dump, "codes").len(), 1, "{}", before.dump);
        // The credential is there and the authorizing code unspent: the
        // same code opens a login; the backup codes are there too.
        assert_eq!(last(&d.login(&me, &[&code])), &Response::Success, "{what}");
        assert_eq!(
            last(&d.login(&me, &[codes[0].expose()])),
            &Response::Success,
            "{what}"
        );
        // The same request, with the next step's code, removes it now.
        d.clock.advance(30);
        let code = oathtool_totp(&e, d.now(), 0);
        done(&what, &d.call(&removals(None, Some(&code))[i]));
        assert_eq!(d.login(&me, &[]), vec![Response::Ignore], "{what}");
    }
}

#[test]
fn admin_removal_without_its_audit_row_keeps_the_factor_and_the_codes() {
    for req in removals(Some("alice"), None) {
        let d = TestDaemon::start();
        let e = d.enroll("alice");
        let before = refuse_audit(&d);
        let r = d.call(&req);
        let what = format!("admin {req:?}");
        assert_refused_and_unchanged(&d, &what, &r, &before);
        assert_eq!(
            rows(&before.dump, "credentials").len(),
            1,
            "{}",
            before.dump
        );
        assert_eq!(rows(&before.dump, "codes").len(), 1, "{}", before.dump);
        let code = d.code(&e.secret, 0);
        assert_eq!(last(&d.login("alice", &[&code])), &Response::Success);
        done(&what, &d.call(&req));
        assert_eq!(d.login("alice", &[]), vec![Response::Ignore], "{what}");
    }
}

#[test]
fn confirming_an_enrollment_without_its_audit_row_leaves_it_pending_without_codes() {
    for (user, generic) in [
        (None, false),
        (None, true),
        (Some("alice"), false),
        (Some("alice"), true),
    ] {
        let d = TestDaemon::start();
        let me = own_account(&d);
        let account = user.unwrap_or(&me);
        let pending = d.enroll_start(account);
        let code = Secret::from(oathtool_totp(&pending, d.now(), 0).as_str());
        let user = user.map(str::to_owned);
        let req = if generic {
            Request::EnrollConfirm {
                user,
                method: Method::TOTP,
                code,
            }
        } else {
            Request::TotpEnrollConfirm { user, code }
        };
        let what = format!("{req:?}");
        let before = refuse_audit(&d);
        let r = d.call(&req);
        assert_refused_and_unchanged(&d, &what, &r, &before);
        let creds = rows(&before.dump, "credentials");
        assert_eq!(creds.len(), 1, "{}", before.dump);
        assert!(
            creds[0].ends_with("|||"),
            "{what}: not pending (confirmed_at, counter, last_used set): {}",
            creds[0]
        );
        assert!(rows(&before.dump, "code").is_empty(), "{}", before.dump);
        match d.call(&Request::Status {
            user: Some(account.to_owned()),
        }) {
            Response::Status(s) => {
                assert!(
                    s.pending_enrollment && s.factors.is_empty(),
                    "{what}: {s:?}"
                );
                assert_eq!(s.backup_codes_left, 0, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        // The same answer confirms it now.
        assert_eq!(backup_codes(&d.call(&req)).len(), 10, "{what}");
    }
}

#[test]
fn disabling_an_account_without_its_audit_row_removes_nothing() {
    let d = TestDaemon::start();
    let e = d.enroll("alice");
    let req = Request::AdminDisable {
        user: "alice".into(),
    };
    let before = refuse_audit(&d);
    let r = d.call(&req);
    assert_refused_and_unchanged(&d, "admin disable", &r, &before);
    assert_eq!(
        rows(&before.dump, "credentials").len(),
        1,
        "{}",
        before.dump
    );
    assert_eq!(rows(&before.dump, "codes").len(), 1, "{}", before.dump);
    assert_eq!(
        last(&d.login("alice", &[&d.code(&e.secret, 0)])),
        &Response::Success
    );
    done("admin disable", &d.call(&req));
    let after = dump(&d);
    assert!(rows(&after, "credentials").is_empty(), "{after}");
    assert!(rows(&after, "code").is_empty(), "{after}");
}

#[test]
fn unlocking_without_its_audit_row_keeps_the_lock_and_the_failures() {
    let d = TestDaemon::start();
    let e = d.enroll("alice");
    let good = d.code(&e.secret, 0);
    let wrong = wrong_code(&good);
    // Five failures from the same (empty) source lock it.
    d.login("alice", &[wrong, wrong, wrong]);
    d.login("alice", &[wrong, wrong]);
    let req = Request::AdminUnlock {
        user: "alice".into(),
    };
    let before = refuse_audit(&d);
    assert_eq!(rows(&before.dump, "locks").len(), 1, "{}", before.dump);
    assert_eq!(rows(&before.dump, "failures").len(), 5, "{}", before.dump);
    let r = d.call(&req);
    assert_refused_and_unchanged(&d, "admin unlock", &r, &before);
    let seen = d.login("alice", &[]);
    assert!(
        matches!(last(&seen), Response::Denied { message: Some(m), .. } if m.contains("Too many failed attempts")),
        "still locked: {seen:?}"
    );
    done("admin unlock", &d.call(&req));
    let after = dump(&d);
    assert!(rows(&after, "failures").is_empty(), "{after}");
    assert_eq!(last(&d.login("alice", &[&good])), &Response::Success);
}

#[test]
fn grace_changes_without_their_audit_row_keep_the_deadline() {
    let d = TestDaemon::start();
    let extend = Request::AdminGrace {
        user: "carol".into(),
        extend: Some(86_400),
        reset: false,
    };
    let reset = Request::AdminGrace {
        user: "carol".into(),
        extend: None,
        reset: true,
    };
    // Setting a first deadline, then moving and forgetting a stored one.
    for (req, deadlines_before) in [(&extend, 0), (&extend, 1), (&reset, 1)] {
        let what = format!("{req:?}");
        let before = refuse_audit(&d);
        assert_eq!(
            rows(&before.dump, "grace").len(),
            deadlines_before,
            "{}",
            before.dump
        );
        let r = d.call(req);
        assert_refused_and_unchanged(&d, &what, &r, &before);
        done(&what, &d.call(req));
        assert_ne!(
            rows(&before.dump, "grace"),
            rows(&dump(&d), "grace"),
            "{what}"
        );
    }
}

#[test]
fn a_totp_login_whose_success_cannot_be_audited_is_unavailable_and_spends_no_step() {
    let d = TestDaemon::start();
    let e = d.enroll("alice");
    let code = d.code(&e.secret, 0);
    let before = refuse_audit(&d);
    let seen = d.login("alice", &[&code]);
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    assert_unchanged_by_the_trigger(&d, "totp login", &before);
    assert_eq!(last(&d.login("alice", &[&code])), &Response::Success);
}

#[test]
fn a_backup_code_login_whose_success_cannot_be_audited_is_unavailable_and_spends_no_code() {
    let d = TestDaemon::start();
    let e = d.enroll("alice");
    let code = &e.backup_codes[0];
    let before = refuse_audit(&d);
    let seen = d.login("alice", &[code]);
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    assert_unchanged_by_the_trigger(&d, "backup code login", &before);
    assert_eq!(last(&d.login("alice", &[code])), &Response::Success);
    let after = dump(&d);
    assert!(
        rows(&after, "codes").iter().any(|r| r.ends_with("|10|1")),
        "{after}"
    );
}

#[test]
fn a_wrong_code_whose_failure_cannot_be_audited_is_unavailable_and_counts_nothing() {
    let d = TestDaemon::start();
    let e = d.enroll("alice");
    let good = d.code(&e.secret, 0);
    let before = refuse_audit(&d);
    let seen = d.login("alice", &[wrong_code(&good)]);
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    assert_unchanged_by_the_trigger(&d, "wrong code", &before);
    let seen = d.login("alice", &[wrong_code(&good), &good]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    assert_eq!(rows(&dump(&d), "failures").len(), 0, "success forgets them");
}
