//! Issue 12: an address (or number) named with the CLI (by the person, or
//! an admin for them) counts once its code is typed back — at the CLI, or inside a login
//! during the grace period. Through the real libpam and the real SMTP
//! server (aiosmtpd): the code read from the mail and typed at the login's
//! prompt enrolls the address and lets the login in; a wrong code is a
//! failed try (audited, counted toward the lockout); a code sent for a
//! login is refused for the enrollment; the keyword has a fresh code sent
//! to the pending address (never to one the login names); a service whose
//! policy leaves email out gets the authenticator-app enrollment instead;
//! a pending SMS number is confirmed the same way (not while `[sms]` is
//! off).

use std::time::Duration;
use twofold_config::Unenrolled;
use twofold_daemon::{CONFIRM_PROMPT, INVALID_CODE};
use twofold_proto::{Method, Request, Response, Secret};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::http::HttpRecorder;
use twofold_tests::mailtest::{
    assert_no_code_leaked, mail_daemon, plain_relay, sms_code, start_destination, twilio_at, Steps,
    PHONE,
};
use twofold_tests::pam::*;
use twofold_tests::smtp::SmtpServer;
use twofold_tests::PamConfig;

/// A user the passwd database knows (enrollment at login needs one).
const USER: &str = "mail";
const ADDRESS: &str = "mail@example.org";
const MASKED: &str = "m•••@e•••.org";
const PROMPT: &str =
    "Code sent to m•••@e•••.org (or \"email\" to get one sent; empty to skip for now): ";

/// A daemon that asks unenrolled users to enroll (grace period).
fn daemon_for(s: &SmtpServer, edit: impl FnOnce(&mut twofold_config::Config)) -> TestDaemon {
    mail_daemon(s, |c| {
        c.policy.unenrolled = Unenrolled::Enroll;
        edit(c);
    })
}

/// An admin names `address` for `USER` (a code is mailed to it); returns
/// that code.
fn admin_names(d: &TestDaemon, s: &SmtpServer, address: &str) -> String {
    let before = s.code_mails().len();
    start_destination(d, USER, Method::EMAIL, address);
    s.nth_code(before + 1).expect("the enrollment code")
}

fn audit(d: &TestDaemon) -> String {
    d.sqlite3(&format!(
        "SELECT event, method, detail FROM audit WHERE user = '{USER}' ORDER BY id;"
    ))
}

fn confirmed_email(d: &TestDaemon) -> bool {
    match d.call(&Request::Status {
        user: Some(USER.into()),
    }) {
        Response::Status(s) => s.factors.iter().any(|f| f.method == Method::EMAIL),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pending_address_is_confirmed_inside_a_grace_login_through_libpam() {
    let (dir, s) = plain_relay();
    let d = daemon_for(&s, |_| {});
    // The admin names the address with the CLI, without confirming it.
    let out = d.twofold(&[
        "enroll",
        "email",
        "--user",
        USER,
        "--address",
        ADDRESS,
        "--no-confirm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = s.nth_code(1).expect("the enrollment code");
    assert!(!confirmed_email(&d), "not counted before its code");

    let pam = PamConfig::new().expect("pam dir");
    pam.twofold(
        "tf",
        &[&format!("socket={}", d.socket().display()), "timeout=10"],
    )
    .expect("service");
    let (rc, t) = PamLogin::new(pam.dir(), "tf", USER)
        .expect("pam")
        .tty("tty1")
        .authenticate(answers(&[&code]))
        .expect("authenticate");
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), vec![PROMPT], "{t:?}");
    assert!(
        t.infos().iter().any(|i| i.starts_with(&format!(
            "Two-factor authentication is required for this account. Confirm {MASKED}"
        ))),
        "{t:?}"
    );
    assert!(
        t.infos()
            .contains(&"Enrolled: codes will be sent to m•••@e•••.org."),
        "{t:?}"
    );
    assert!(confirmed_email(&d), "counted once its code was typed");
    let rows = audit(&d);
    assert!(rows.contains("enroll|email|via=login"), "{rows}");
    assert!(rows.contains("login_success|email|"), "{rows}");
    assert!(!rows.contains("login_failure"), "{rows}");
    // The new address is told of the enrollment.
    let added = s.wait_for(
        |m| {
            m.body()
                .contains("A second factor (email) was added to mail")
        },
        Duration::from_secs(10),
    );
    assert!(added.is_some(), "the enrollment notice");
    // From now on the address is a login factor like any other.
    let mut l = Steps::begin(&d, USER);
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: "Verification code (or \"email\" to get one sent): ".into(),
            echo: false
        }
    );
    let before = s.code_mails().len();
    l.answer("email");
    let c2 = s.nth_code(before + 1).expect("a login code");
    l.answer(&c2);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    drop(dir);
    assert_no_code_leaked(&d, &[code, c2], &[format!("{t:?}")]);
}

#[test]
fn the_keyword_renews_an_expired_code_and_wrong_codes_are_failed_tries() {
    let (_dir, s) = plain_relay();
    let d = daemon_for(&s, |c| c.login.max_tries = 4);
    let c0 = admin_names(&d, &s, ADDRESS);
    // Ten minutes later the CLI's code is void.
    d.clock.advance(600);
    let mut l = Steps::begin(&d, USER);
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: PROMPT.into(),
            echo: false
        },
        "{:?}",
        l.seen
    );
    l.answer(&c0);
    assert!(l.lines().iter().any(|t| t == INVALID_CODE), "{:?}", l.seen);
    // Asking for a fresh one is no try; it goes to the pending address.
    let before = s.code_mails().len();
    let got = l.answer("email");
    assert!(
        got.iter().any(|r| matches!(r, Response::Info { text } if text == "Code sent to m•••@e•••.org (valid 10 minutes).")),
        "{got:?}"
    );
    let mail = s.code_mails().pop().expect("the renewed code");
    assert_eq!(s.code_mails().len(), before + 1);
    assert_eq!(mail.to, vec![ADDRESS.to_owned()]);
    let c1 = mail.code().expect("a code");
    let wrong = if c1 == "000000" { "000001" } else { "000000" };
    l.answer(wrong);
    assert!(matches!(l.last(), Response::Prompt { .. }), "{:?}", l.seen);
    l.answer(&c1);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    let rows = audit(&d);
    assert!(rows.contains("reason=code_expired try=1"), "{rows}");
    assert!(rows.contains("reason=wrong_code try=2"), "{rows}");
    assert_eq!(rows.matches("login_failure|").count(), 2, "{rows}");
    assert!(rows.contains("code_sent|email|"), "{rows}");
    assert!(
        rows.contains("enroll|email|") && rows.contains("via=login"),
        "{rows}"
    );
    assert_no_code_leaked(&d, &[c0, c1], &[]);
}

#[test]
fn wrong_codes_at_the_confirmation_lock_the_user_out() {
    let (_dir, s) = plain_relay();
    let d = daemon_for(&s, |c| {
        c.login.max_tries = 10;
        c.rate_limit.source_failures = 3;
    });
    let c0 = admin_names(&d, &s, ADDRESS);
    let wrong = if c0 == "000000" { "000001" } else { "000000" };
    let mut l = Steps::begin(&d, USER);
    l.answer(wrong);
    l.answer(wrong);
    l.answer(wrong);
    assert!(
        matches!(l.last(), Response::Denied { .. }),
        "locked after 3: {:?}",
        l.seen
    );
    assert!(
        l.lines()
            .iter()
            .any(|t| t.contains("Too many failed attempts")),
        "{:?}",
        l.seen
    );
    // Locked: the right code is not even asked for.
    let l = Steps::begin(&d, USER);
    assert!(matches!(l.last(), Response::Denied { .. }), "{:?}", l.seen);
    assert!(!confirmed_email(&d));
    let rows = audit(&d);
    assert!(rows.contains("lockout|"), "{rows}");
    assert_eq!(rows.matches("login_failure|").count(), 3, "{rows}");
    assert_no_code_leaked(&d, &[c0], &[]);
}

#[test]
fn a_code_sent_for_a_login_is_refused_for_the_enrollment() {
    let (_dir, s) = plain_relay();
    let d = daemon_for(&s, |_| {});
    // The address is confirmed at the CLI; a login asks for a code.
    let c0 = admin_names(&d, &s, ADDRESS);
    let r = d.call(&Request::EnrollConfirm {
        user: Some(USER.into()),
        method: Method::EMAIL,
        code: Secret::from(c0.as_str()),
    });
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    let mut l = Steps::begin(&d, USER);
    let before = s.code_mails().len();
    l.answer("email");
    let login_code = s.nth_code(before + 1).expect("a login code");
    drop(l);
    // The admin removes it and names a new address: the user is
    // unenrolled again, with a pending address.
    let r = d.call(&Request::RemoveFactor {
        user: Some(USER.into()),
        method: Method::EMAIL,
        code: None,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let c1 = admin_names(&d, &s, "mail@new.example.net");
    let mut l = Steps::begin(&d, USER);
    assert!(
        matches!(l.last(), Response::Prompt { text, .. } if text.starts_with("Code sent to m•••@n•••.net")),
        "{:?}",
        l.seen
    );
    // The login's code (and the first enrollment's) do not confirm it.
    l.answer(&login_code);
    assert!(l.lines().iter().any(|t| t == INVALID_CODE), "{:?}", l.seen);
    l.answer(&c0);
    assert!(matches!(l.last(), Response::Prompt { .. }), "{:?}", l.seen);
    assert!(!confirmed_email(&d));
    l.answer(&c1);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    let rows = audit(&d);
    assert_eq!(rows.matches("reason=wrong_code").count(), 2, "{rows}");
    assert_no_code_leaked(&d, &[c0, login_code, c1], &[]);
}

#[test]
fn a_service_whose_policy_leaves_email_out_offers_the_app_instead() {
    let (_dir, s) = plain_relay();
    let d = daemon_for(&s, |c| {
        c.policy.service.push(twofold_config::policy::ServiceRule {
            services: vec!["sudo".into()],
            methods: Some(vec![Method::TOTP, Method::BACKUP_CODE]),
            unenrolled: None,
        });
    });
    let c0 = admin_names(&d, &s, ADDRESS);
    let mut l = Steps::begin(&d, USER);
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: CONFIRM_PROMPT.into(),
            echo: false
        },
        "{:?}",
        l.seen
    );
    // The mailed code is no answer here, and nothing more is mailed.
    let before = s.mails().len();
    l.answer("email");
    l.answer(&c0);
    assert!(!confirmed_email(&d));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.mails().len(), before, "nothing mailed for sudo");
    assert_no_code_leaked(&d, &[c0], &[]);
}

#[test]
fn a_pending_number_is_confirmed_the_same_way_and_a_channel_switched_off_is_not_offered() {
    let dir = tempfile::tempdir().expect("dir");
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let mut d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        c.policy.unenrolled = Unenrolled::Enroll;
    });
    start_destination(&d, USER, Method::SMS, PHONE);
    let c0 = sms_code(&rec, 1);
    // With [sms] off, the pending number is not offered (no fresh code
    // could be sent): the app setup is.
    d.restart_with(|c| c.sms.provider = twofold_config::SmsProvider::None);
    let l = Steps::begin(&d, USER);
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: CONFIRM_PROMPT.into(),
            echo: false
        },
        "{:?}",
        l.seen
    );
    drop(l);
    d.restart_with(|c| twilio_at(c, &p, &rec));
    let mut l = Steps::begin(&d, USER);
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text:
                "Code sent to +1•••••••0100 (or \"sms\" to get one sent; empty to skip for now): "
                    .into(),
            echo: false
        },
        "{:?}",
        l.seen
    );
    l.answer(&c0);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    assert!(
        l.lines()
            .iter()
            .any(|t| t == "Enrolled: codes will be sent to +1•••••••0100."),
        "{:?}",
        l.seen
    );
    let rows = audit(&d);
    assert!(rows.contains("enroll|sms|"), "{rows}");
    assert!(rows.contains("login_success|sms|"), "{rows}");
    assert_no_code_leaked(&d, &[c0], &[]);
}
