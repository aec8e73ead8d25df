//! Issue 12: an address changed in one step. `twofold enroll email
//! --address NEW` beside a confirmed address needs a current second factor,
//! mails a code to the new address while the old one keeps receiving login
//! codes, and once the new address's code is typed back the old one is
//! dropped and both are told, each exactly once (the notices are queued in
//! the change's own transaction). Against the real SMTP server (aiosmtpd)
//! and the real `twofold` CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use twofold_config::SmtpTls;
use twofold_proto::{ErrorKind, Method, Request, Response, Secret};
use twofold_tests::daemon::{bin_path, failed_kind, TestDaemon};
use twofold_tests::mailtest::{assert_no_code_leaked, confirm_destination, point_at, Steps};
use twofold_tests::otp::{oathtool_totp, wrong_code};
use twofold_tests::smtp::{Mode, SmtpServer};

const OLD: &str = "root@example.org";
const NEW: &str = "root@new.example.net";
const CHANGED: &str = "The email address that codes for root on ";
const FROM_TO: &str = "was changed from r•••@e•••.org to r•••@n•••.net.";

/// Runs the CLI as root (self-service on root's own account) with `input`
/// on its standard input.
fn cli(d: &TestDaemon, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(bin_path("twofold"))
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twofold");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Mails to `to` whose body holds `text`.
fn mails_to(s: &SmtpServer, to: &str, text: &str) -> usize {
    s.mails()
        .iter()
        .filter(|m| m.to == vec![to.to_owned()] && m.body().contains(text))
        .count()
}

fn status_line(d: &TestDaemon) -> String {
    let out = d.twofold(&["status"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_address_is_changed_in_one_step_and_both_addresses_are_told_once() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| {
        point_at(c, &s, SmtpTls::Plain);
        c.email.sends_per_hour = 20;
    });
    let (e, _) = d.enroll_totp("root");
    let mut codes = Vec::new();
    let mut outputs = Vec::new();
    let totp = |d: &TestDaemon| {
        d.clock.advance(30);
        oathtool_totp(&e, d.now(), 0)
    };

    // The old address, added beside TOTP (a current code first).
    let t = totp(&d);
    let (ok, said) = cli(
        &d,
        &["enroll", "email", "--address", OLD, "--no-confirm"],
        &format!("{t}\n"),
    );
    assert!(ok, "{said}");
    let c_old = s.nth_code(1).expect("the first enrollment code");
    let (ok, said2) = cli(&d, &["enroll", "email", "--code", &c_old], "");
    assert!(ok, "{said2}");
    codes.extend([t, c_old]);
    outputs.extend([said, said2]);
    assert!(status_line(&d).contains("email r•••@e•••.org"));

    // The change needs a current code: without one (no input), or with a
    // wrong one, nothing is mailed.
    let added = s.wait_for(
        |m| m.to == vec![OLD.to_owned()] && m.body().contains("(email) was added"),
        Duration::from_secs(10),
    );
    assert!(added.is_some(), "the enrollment notice");
    let mails = s.mails().len();
    let (ok, said) = cli(
        &d,
        &["enroll", "email", "--address", NEW, "--no-confirm"],
        "",
    );
    assert!(!ok, "{said}");
    let (ok, said) = cli(
        &d,
        &["enroll", "email", "--address", NEW, "--no-confirm"],
        &format!("{}\n", wrong_code(&oathtool_totp(&e, d.now() + 30, 0))),
    );
    assert!(!ok, "{said}");
    assert!(said.contains("invalid verification code"), "{said}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.mails().len(),
        mails,
        "nothing mailed without a valid code"
    );

    // With one: a code goes to the new address; the old keeps working.
    let t = totp(&d);
    let (ok, said) = cli(
        &d,
        &["enroll", "email", "--address", NEW, "--no-confirm"],
        &format!("{t}\n"),
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("Code sent to r•••@n•••.net (valid 10 minutes)")
            && said.contains("codes go to r•••@e•••.org until then"),
        "{said}"
    );
    let mail = s.code_mails().pop().expect("the new address's code");
    assert_eq!(mail.to, vec![NEW.to_owned()]);
    let c_new = mail.code().expect("a code");
    codes.extend([t, c_new.clone()]);
    outputs.push(said);
    let st = status_line(&d);
    assert!(st.contains("email r•••@e•••.org"), "{st}");
    assert!(!st.contains("r•••@n•••.net"), "not counted yet: {st}");
    let mut l = Steps::begin(&d, "root");
    let before = s.code_mails().len();
    l.answer("email");
    let login_mail = s.code_mails().pop().expect("a login code");
    assert_eq!(s.code_mails().len(), before + 1);
    assert_eq!(
        login_mail.to,
        vec![OLD.to_owned()],
        "the old address still serves"
    );
    let login_code = login_mail.code().expect("a code");
    codes.push(login_code.clone());

    // A login's code does not confirm the change; the new address's does.
    let r = d.call(&Request::EnrollConfirm {
        user: None,
        method: Method::EMAIL,
        code: Secret::from(login_code.as_str()),
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    let (ok, said) = cli(&d, &["enroll", "email", "--code", &c_new], "");
    assert!(ok, "{said}");
    assert!(
        said.contains("email destination of root is changed"),
        "{said}"
    );
    outputs.push(said);
    let st = status_line(&d);
    assert!(st.contains("email r•••@n•••.net"), "{st}");
    assert!(!st.contains("r•••@e•••.org"), "the old one is gone: {st}");
    let rows = d.sqlite3("SELECT method, detail FROM audit WHERE event = 'destination_changed';");
    assert!(
        rows.contains("email|") && rows.contains(r#"from="r•••@e•••.org" to="r•••@n•••.net""#),
        "{rows}"
    );

    // Both addresses are told, each once.
    for to in [OLD, NEW] {
        let got = s.wait_for(
            |m| m.to == vec![to.to_owned()] && m.body().contains(CHANGED),
            Duration::from_secs(10),
        );
        let got = got.unwrap_or_else(|| panic!("no change notice reached {to}"));
        assert!(got.body().contains(FROM_TO), "{}", got.body());
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(mails_to(&s, OLD, CHANGED), 1);
    assert_eq!(mails_to(&s, NEW, CHANGED), 1);
    assert_eq!(
        s.mails()
            .iter()
            .filter(|m| m.body().contains(CHANGED))
            .count(),
        2
    );
    let outbox = d.sqlite3("SELECT COUNT(*) FROM outbox WHERE event = 'destination_changed';");
    assert_eq!(outbox.trim(), "2");

    // Login codes now go to the new address.
    let mut l = Steps::begin(&d, "root");
    l.answer("email");
    let mail = s.code_mails().pop().expect("a login code");
    assert_eq!(mail.to, vec![NEW.to_owned()]);
    let c = mail.code().expect("a code");
    l.answer(&c);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    codes.push(c);
    assert_no_code_leaked(&d, &codes, &outputs);
}

#[test]
fn the_same_address_again_is_refused_and_an_admin_changes_without_a_code() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| point_at(c, &s, SmtpTls::Plain));
    d.enroll("alice");
    let start = |address: &str| {
        d.call(&Request::EnrollStart {
            user: Some("alice".into()),
            method: Method::EMAIL,
            algorithm: None,
            digits: None,
            address: Some(address.into()),
            code: None,
        })
    };
    assert!(matches!(start("alice@example.org"), Response::Done { .. }));
    let c0 = s.nth_code(1).expect("code");
    confirm_destination(&d, "alice", Method::EMAIL, &c0);
    let r = start("alice@example.org");
    assert_eq!(failed_kind(&r), Some(ErrorKind::Conflict), "{r:?}");
    // An admin acting for her needs no code; a second start replaces the
    // first pending address (its code stops confirming).
    assert!(matches!(
        start("alice@one.example.net"),
        Response::Done { .. }
    ));
    let c1 = s.nth_code(2).expect("code");
    assert!(matches!(
        start("alice@two.example.net"),
        Response::Done { .. }
    ));
    let c2 = s.nth_code(3).expect("code");
    let confirm = |code: &str| {
        d.call(&Request::EnrollConfirm {
            user: Some("alice".into()),
            method: Method::EMAIL,
            code: Secret::from(code),
        })
    };
    assert_eq!(failed_kind(&confirm(&c1)), Some(ErrorKind::InvalidCode));
    assert!(matches!(confirm(&c2), Response::Done { .. }));
    let creds = d.sqlite3(
        "SELECT params, confirmed_at IS NOT NULL FROM credentials WHERE method = 'email';",
    );
    assert_eq!(creds.trim(), "alice@two.example.net|1", "{creds}");
    assert_no_code_leaked(&d, &[c0, c1, c2], &[]);
}
