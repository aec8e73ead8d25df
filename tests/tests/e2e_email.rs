//! Email codes and notifications end to end, against a real SMTP server
//! (aiosmtpd, `tests/smtp/recorder.py`) on 127.0.0.1: enrollment by a
//! mailed code through the real `twofold` CLI, logins through the real
//! libpam and the built module with `email` typed at the prompt, the
//! notice a backup-code login mails; and, on the injected clock, expiry,
//! the try limit, each send limit, codes bound to their login, and a login
//! code refused for enrollment. No code sent may appear in any log, syslog
//! line, audit row or transcript.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofold_proto::{ErrorKind, Method, Request, Response, Secret};
use twofold_tests::daemon::{failed_kind, TestDaemon};
use twofold_tests::mailtest::{
    assert_no_code_leaked, mail_daemon, plain_relay, start_destination, Steps, ALICE,
};
use twofold_tests::pam::*;
use twofold_tests::smtp::SmtpServer;
use twofold_tests::PamConfig;

const PROMPT: &str = "Verification code (or \"email\" to get one sent): ";

/// Enrolls alice with TOTP (for her backup codes) and `ALICE` through the
/// requests; returns her backup codes and the enrollment code.
fn enroll_alice(d: &TestDaemon, s: &SmtpServer) -> (Vec<String>, String) {
    let e = d.enroll("alice");
    let before = s.code_mails().len();
    match d.call(&Request::EnrollStart {
        user: Some("alice".into()),
        method: Method::EMAIL,
        algorithm: None,
        digits: None,
        address: Some(ALICE.into()),
        code: None,
    }) {
        Response::Done { message } => assert!(message.contains("a•••@e•••.org"), "{message}"),
        other => panic!("enroll start: {other:?}"),
    }
    let code = s.nth_code(before + 1).expect("a code in the mail");
    let r = d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: Method::EMAIL,
        code: Secret::from(code.as_str()),
    });
    assert!(
        matches!(r, Response::BackupCodes { ref codes } if codes.is_empty()),
        "{r:?}"
    );
    (e.backup_codes, code)
}

/// Asks for a code in `l` and reads it from the newest mail.
fn ask(l: &mut Steps, s: &SmtpServer) -> String {
    let before = s.code_mails().len();
    let got = l.answer("email");
    assert!(
        got.iter().any(|r| matches!(r, Response::Info { text } if text.starts_with("Code sent to a•••@e•••.org (valid 10 minutes)"))),
        "{got:?}"
    );
    let code = s.nth_code(before + 1);
    assert_eq!(s.code_mails().len(), before + 1, "one mail per ask");
    code.expect("a code in the mail")
}

#[test]
fn enrollment_by_the_cli_then_a_login_through_libpam_with_a_mailed_code() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    d.enroll("alice");
    let mut codes = Vec::new();
    let out = d.twofold(&[
        "enroll",
        "email",
        "--user",
        "alice",
        "--address",
        ALICE,
        "--no-confirm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("Code sent to a•••@e•••.org (valid 10 minutes)"),
        "{said}"
    );
    assert!(s.nth_code(1).is_some(), "the enrollment mail");
    let mail = s.code_mails().remove(0);
    assert_eq!(mail.to, vec![ALICE.to_owned()]);
    assert_eq!(mail.from, "twofold@host.example.org");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your verification code")
    );
    let code = mail.code().expect("a code");
    codes.push(code.clone());
    // Not counted until confirmed: the status shows only TOTP.
    let st = d.twofold(&["status", "--user", "alice"]);
    assert!(!String::from_utf8_lossy(&st.stdout).contains("email"));
    let out = d.twofold(&["enroll", "email", "--user", "alice", "--code", &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut outputs = vec![said, String::from_utf8_lossy(&out.stdout).into_owned()];
    let st = d.twofold(&["status", "--user", "alice"]);
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(st.contains("email a•••@e•••.org"), "{st}");
    outputs.push(st);
    // The enrollment is mailed to the new address too.
    let added = s.wait_for(
        |m| {
            m.body()
                .contains("A second factor (email) was added to alice")
        },
        Duration::from_secs(10),
    );
    assert!(added.is_some(), "the enrollment notice");

    // A login through the real libpam: "email", then the code from the mail.
    let pam = PamConfig::new().expect("pam dir");
    pam.twofold(
        "tf",
        &[&format!("socket={}", d.socket().display()), "timeout=10"],
    )
    .expect("service");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (sv, seen2) = (s.port, seen.clone());
    let out_path = _dir.path().to_owned();
    let conv = Conversation::new()
        .answer("email")
        .respond_with(move |_t: &Transcript| {
            let r = SmtpServer::mails_in(&out_path, sv);
            let code = r.last().and_then(|m| m.code()).unwrap_or_default();
            seen2.lock().unwrap().push(code.clone());
            Reply::Answer(code)
        });
    let (rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .expect("pam")
        .authenticate(conv)
        .expect("authenticate");
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts()[0], PROMPT);
    assert!(
        t.infos()
            .iter()
            .any(|i| i.starts_with("Code sent to a•••@e•••.org (valid 10 minutes).")),
        "{t:?}"
    );
    codes.extend(seen.lock().unwrap().iter().cloned());
    outputs.push(format!("{t:?}"));
    let audit =
        d.sqlite3("SELECT event, method FROM audit WHERE event IN ('code_sent', 'login_success');");
    assert!(
        audit.contains("code_sent|email") && audit.contains("login_success|email"),
        "{audit}"
    );
    assert_no_code_leaked(&d, &codes, &outputs);
}

#[test]
fn a_backup_code_login_mails_how_many_are_left() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (backup, code) = enroll_alice(&d, &s);
    let added = s.wait_for(|m| m.body().contains("was added"), Duration::from_secs(10));
    assert!(added.is_some(), "the enrollment notice");
    let before = s.mails().len();
    let seen = d.login("alice", &[&backup[0]]);
    assert!(matches!(seen.last(), Some(Response::Success)), "{seen:?}");
    let mails = s.wait_mails(before + 1, Duration::from_secs(10));
    let n = mails.last().expect("the notice");
    assert_eq!(n.header("Subject").as_deref(), Some("Security notice"));
    assert!(
        n.body()
            .contains("A backup code was used to log in as alice"),
        "{}",
        n.body()
    );
    assert!(n.body().contains("9 backup codes are left"), "{}", n.body());
    assert!(n
        .header("Message-ID")
        .is_some_and(|m| m.contains("twofold-notice-")));
    // Sent once.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.mails().len(), before + 1);
    assert_no_code_leaked(&d, &[code], &[]);
}

#[test]
fn a_code_expires_after_ten_minutes() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (_, c0) = enroll_alice(&d, &s);
    let mut l = Steps::begin(&d, "alice");
    let code = ask(&mut l, &s);
    d.clock.advance(600);
    l.answer(&code);
    assert!(matches!(l.last(), Response::Prompt { .. }), "{:?}", l.seen);
    assert!(l.lines().iter().any(|t| t == twofold_daemon::INVALID_CODE));
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'login_failure';");
    assert!(rows.contains("reason=code_expired"), "{rows}");
    // One second younger, it works.
    let mut l = Steps::begin(&d, "alice");
    let code2 = ask(&mut l, &s);
    d.clock.advance(599);
    l.answer(&code2);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    assert_no_code_leaked(&d, &[c0, code, code2], &[]);
}

#[test]
fn five_wrong_answers_void_the_code() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |c| {
        c.login.max_tries = 10;
        c.rate_limit.source_failures = 100;
        c.rate_limit.user_failures = 100;
    });
    let (_, c0) = enroll_alice(&d, &s);
    let mut l = Steps::begin(&d, "alice");
    let code = ask(&mut l, &s);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        l.answer(wrong);
    }
    l.answer(&code);
    assert!(matches!(l.last(), Response::Prompt { .. }), "{:?}", l.seen);
    // Four wrong answers leave it valid.
    let mut l = Steps::begin(&d, "alice");
    let code2 = ask(&mut l, &s);
    let wrong = if code2 == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..4 {
        l.answer(wrong);
    }
    l.answer(&code2);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    assert_no_code_leaked(&d, &[c0, code, code2], &[]);
}

#[test]
fn a_code_opens_only_the_login_that_asked_and_only_once() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (_, c0) = enroll_alice(&d, &s);
    let mut a = Steps::begin(&d, "alice");
    let code = ask(&mut a, &s);
    // Typed in another login, it is refused.
    let mut b = Steps::begin(&d, "alice");
    b.answer(&code);
    assert!(matches!(b.last(), Response::Prompt { .. }), "{:?}", b.seen);
    assert!(b.lines().iter().any(|t| t == twofold_daemon::INVALID_CODE));
    // In its own login it works, once: a replay in a later login fails.
    a.answer(&code);
    assert!(matches!(a.last(), Response::Success), "{:?}", a.seen);
    let mut c = Steps::begin(&d, "alice");
    c.answer(&code);
    assert!(matches!(c.last(), Response::Prompt { .. }));
    let used =
        d.sqlite3("SELECT COUNT(*) FROM codes WHERE method = 'email' AND used_at IS NOT NULL;");
    assert_eq!(used.trim(), "1");
    assert_no_code_leaked(&d, &[c0, code], &[]);
}

#[test]
fn a_login_code_does_not_confirm_an_enrollment() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (_, c0) = enroll_alice(&d, &s);
    let mut l = Steps::begin(&d, "alice");
    let code = ask(&mut l, &s);
    // Alice (as an admin acting for her) replaces her address.
    let r = d.call(&Request::RemoveFactor {
        user: Some("alice".into()),
        method: Method::EMAIL,
        code: None,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    start_destination(&d, "alice", Method::EMAIL, "alice@new.example.net");
    let r = d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: Method::EMAIL,
        code: Secret::from(code.as_str()),
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    // The removal was mailed to the old address.
    let removed = s.wait_for(
        |m| m.to == vec![ALICE.to_owned()] && m.body().contains("(email) was removed"),
        Duration::from_secs(10),
    );
    assert!(
        removed.is_some(),
        "no removal notice reached the old address"
    );
    assert_no_code_leaked(&d, &[c0, code], &[]);
}

#[test]
fn each_send_limit_refuses_and_asking_is_no_failed_try() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |c| c.email.sends_per_hour = 4);
    let (_, c0) = enroll_alice(&d, &s);
    let mut codes = vec![c0];
    // Two per login: the third ask is refused, and no try was counted.
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &s));
    codes.push(ask(&mut l, &s));
    let got = l.answer("email");
    assert!(got.iter().any(|r| matches!(r, Response::Error { text } if text.starts_with("No more codes can be sent now"))), "{got:?}");
    let fails = d.sqlite3("SELECT COUNT(*) FROM audit WHERE event = 'login_failure';");
    assert_eq!(fails.trim(), "0");
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_refused';");
    assert!(rows.contains("limit=login"), "{rows}");
    drop(l);
    // Four per user per hour here (the enrollment's code counts toward it).
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &s));
    let mut l = Steps::begin(&d, "alice");
    let got = l.answer("email");
    assert!(
        got.iter()
            .any(|r| matches!(r, Response::Error { text } if text.starts_with("No more codes"))),
        "{got:?}"
    );
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_refused';");
    assert!(rows.contains("limit=user"), "{rows}");
    // An hour later, a code again.
    d.clock.advance(3601);
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &s));
    assert_no_code_leaked(&d, &codes, &[]);
}

#[test]
fn the_address_and_global_ceilings_refuse() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |c| {
        c.email.sends_per_address_per_hour = 2;
        c.email.sends_per_hour = 100;
    });
    let (_, c0) = enroll_alice(&d, &s);
    // Two logins' codes to the address an hour (the enrollment's code is
    // not one of them), then refused.
    let mut l = Steps::begin(&d, "alice");
    let c1 = ask(&mut l, &s);
    let mut l = Steps::begin(&d, "alice");
    let c2 = ask(&mut l, &s);
    let mut l = Steps::begin(&d, "alice");
    let got = l.answer("email");
    assert!(
        got.iter().any(|r| matches!(r, Response::Error { .. })),
        "{got:?}"
    );
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_refused';");
    assert!(rows.contains("limit=destination"), "{rows}");
    drop(d);
    let d = mail_daemon(&s, |c| {
        c.email.sends_global_per_hour = 1;
    });
    d.enroll("bob");
    start_destination(&d, "bob", Method::EMAIL, "bob@example.org");
    let r = d.call(&Request::EnrollStart {
        user: Some("carol".into()),
        method: Method::EMAIL,
        algorithm: None,
        digits: None,
        address: Some("carol@example.org".into()),
        code: None,
    });
    assert!(failed_kind(&r).is_some(), "{r:?}");
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_refused';");
    assert!(rows.contains("limit=global"), "{rows}");
    let bob = s.nth_code(4).unwrap_or_default();
    assert_no_code_leaked(&d, &[c0, c1, c2, bob], &[]);
}

/// In self-service, an address added beside a confirmed factor needs a
/// current code of it, spent before anything is mailed: a process running
/// as the user cannot point the codes at a mailbox of its own.
#[test]
fn adding_an_address_beside_totp_needs_a_current_code() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (e, _) = d.enroll_totp("root");
    d.clock.advance(30);
    let start = |code: Option<&str>| {
        d.call(&Request::EnrollStart {
            user: None,
            method: Method::EMAIL,
            algorithm: None,
            digits: None,
            address: Some("root@example.org".into()),
            code: code.map(Secret::from),
        })
    };
    let r = start(None);
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    let code = twofold_tests::otp::oathtool_totp(&e, d.now(), 0);
    let wrong = twofold_tests::otp::wrong_code(&code);
    let r = start(Some(wrong));
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    std::thread::sleep(Duration::from_millis(700));
    assert!(s.mails().is_empty(), "nothing mailed without a valid code");
    let r = start(Some(&code));
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    // The code was spent: the same step does not authorize twice.
    let r = start(Some(&code));
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    let rows = d.sqlite3("SELECT COUNT(*) FROM audit WHERE event = 'enroll_authorized';");
    assert_eq!(rows.trim(), "1");
    let sent = s.nth_code(1).expect("code");
    assert_no_code_leaked(&d, &[sent, code], &[]);
}

/// Issue 16: a break-glass code is told by mail when an admin issues it
/// and when it opens a login (the code itself never is).
#[test]
fn a_break_glass_code_is_told_by_mail_when_issued_and_when_used() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    let (_, enrolled) = enroll_alice(&d, &s);
    let added = s.wait_for(|m| m.body().contains("was added"), Duration::from_secs(10));
    assert!(added.is_some(), "the enrollment notice");
    let code = match d.call(&Request::AdminTempCode {
        user: "alice".into(),
        valid: None,
        uses: None,
        revoke: false,
    }) {
        Response::TempCode { code, .. } => code.expose().to_owned(),
        other => panic!("{other:?}"),
    };
    let issued = s.wait_for(
        |m| m.body().contains("issued a break-glass code for alice"),
        Duration::from_secs(10),
    );
    assert!(
        issued.is_some(),
        "{:?}",
        s.mails().iter().map(|m| m.body()).collect::<Vec<_>>()
    );
    let seen = d.login("alice", &[&code]);
    assert!(matches!(seen.last(), Some(Response::Success)), "{seen:?}");
    let used = s.wait_for(
        |m| {
            m.body()
                .contains("break-glass code an administrator issued was used")
        },
        Duration::from_secs(10),
    );
    let used = used.expect("the use is told");
    assert!(
        used.body().contains("It opens 0 more logins."),
        "{}",
        used.body()
    );
    assert_no_code_leaked(&d, &[code, enrolled], &[]);
}

/// Regression (review, session 6): a wrong code typed to confirm an
/// address in self-service counted only against that code's tries; it
/// was neither audited nor counted toward a lockout like every other
/// code check. Now it is both (and the request is budgeted).
#[test]
fn a_wrong_code_confirming_an_address_is_counted_and_audited() {
    let (_dir, s) = plain_relay();
    let d = mail_daemon(&s, |_| {});
    // Root's own account (self-service), no factor yet.
    start_destination(&d, "root", Method::EMAIL, "root@example.org");
    let sent = s.nth_code(1).expect("a code was mailed");
    let wrong = twofold_tests::otp::wrong_code(&sent).to_owned();
    let r = d.call(&Request::EnrollConfirm {
        user: None,
        method: Method::EMAIL,
        code: Secret::from(wrong.as_str()),
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    assert_eq!(
        d.sqlite3("SELECT count(*) FROM failures WHERE user = 'root'")
            .trim(),
        "1"
    );
    let rows =
        d.sqlite3("SELECT detail FROM audit WHERE user = 'root' AND event = 'login_failure'");
    assert!(
        rows.contains("request=enroll_confirm") && rows.contains("reason=wrong_code"),
        "{rows}"
    );
    // The right code still confirms.
    let r = d.call(&Request::EnrollConfirm {
        user: None,
        method: Method::EMAIL,
        code: Secret::from(sent.as_str()),
    });
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    assert_no_code_leaked(&d, &[sent, wrong], &[]);
}
