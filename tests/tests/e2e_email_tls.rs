//! Email over TLS to a real SMTP server (aiosmtpd) with certificates from
//! a CA this test makes with `openssl`: STARTTLS with AUTH (the password
//! from a root-only file) and implicit TLS deliver; a relay that does not
//! offer STARTTLS, a certificate from another CA, and a wrong password are
//! refused — nothing but EHLO (and the failed AUTH) reaches the relay, the
//! person is told, and the failure is audited.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use twofold_config::SmtpTls;
use twofold_proto::Response;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::mailtest::{assert_no_code_leaked, enroll_address, point_at, Steps, ALICE};
use twofold_tests::smtp::{make_ca, Mode, SmtpServer, TestCa};

fn password_file(dir: &Path, password: &str) -> std::path::PathBuf {
    let p = dir.join("smtp.password");
    std::fs::write(&p, format!("{password}\n")).expect("write password");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn tls_config(c: &mut twofold_config::Config, s: &SmtpServer, tls: SmtpTls, ca: &TestCa) {
    point_at(c, s, tls);
    c.email.ca_file = Some(ca.ca.clone());
}

/// Enrolls alice's address; the code comes from the recorded mail.
fn enroll(d: &TestDaemon, s: &SmtpServer) -> String {
    enroll_address(d, s, "alice", ALICE, 1)
}

#[test]
fn starttls_with_auth_delivers_and_the_login_code_works() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = make_ca(dir.path(), "good");
    let s = SmtpServer::start(
        dir.path(),
        Mode::Starttls,
        Some(&ca),
        Some(("mailer", "s3cret pass")),
    );
    let pw = password_file(dir.path(), "s3cret pass");
    let d = TestDaemon::start_with(|c| {
        tls_config(c, &s, SmtpTls::Starttls, &ca);
        c.email.username = Some("mailer".into());
        c.email.password_file = Some(pw.clone());
    });
    d.enroll("alice");
    let c0 = enroll(&d, &s);
    let m = &s.mails()[0];
    assert!(m.tls, "the message came over TLS");
    assert_eq!(m.auth.as_deref(), Some("mailer"));
    let cmds = s.commands();
    let tls_at = cmds.iter().position(|c| c == "STARTTLS").expect("STARTTLS");
    let auth_at = cmds
        .iter()
        .position(|c| c.starts_with("AUTH "))
        .expect("AUTH");
    assert!(tls_at < auth_at, "{cmds:?}");
    let mut l = Steps::begin(&d, "alice");
    l.answer("email");
    let code = s.nth_code(2).expect("a login code");
    l.answer(&code);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    assert_no_code_leaked(&d, &[c0, code], &[]);
}

#[test]
fn implicit_tls_delivers() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = make_ca(dir.path(), "good");
    let s = SmtpServer::start(dir.path(), Mode::Tls, Some(&ca), None);
    let d = TestDaemon::start_with(|c| tls_config(c, &s, SmtpTls::Tls, &ca));
    d.enroll("alice");
    let c0 = enroll(&d, &s);
    assert!(s.mails()[0].tls);
    assert_no_code_leaked(&d, &[c0], &[]);
}

/// Enrolls alice through a good plain relay, then points the daemon at
/// `bad` with `edit` and asks for a code in a login: refused, told, audited.
fn refused(
    edit: impl FnOnce(&mut twofold_config::Config),
    bad: &SmtpServer,
) -> (TestDaemon, Vec<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let good = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let mut d = TestDaemon::start_with(|c| point_at(c, &good, SmtpTls::Plain));
    d.enroll("alice");
    let c0 = enroll(&d, &good);
    d.restart_with(|c| {
        point_at(c, bad, SmtpTls::Plain);
        edit(c);
    });
    let mut l = Steps::begin(&d, "alice");
    let t = Instant::now();
    let got = l.answer("email");
    assert!(t.elapsed() < Duration::from_secs(4), "told within the wait");
    assert!(
        got.iter().any(|r| matches!(r, Response::Error { text } if text == "Could not send the code; use another method.")),
        "{got:?}"
    );
    assert!(
        matches!(l.last(), Response::Prompt { .. }),
        "asked again: {:?}",
        l.seen
    );
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_failed';");
    assert!(!rows.trim().is_empty(), "audited");
    assert!(bad.mails().is_empty(), "nothing delivered");
    (d, vec![c0, rows])
}

#[test]
fn starttls_required_but_not_offered_sends_neither_auth_nor_data() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = make_ca(dir.path(), "good");
    let bad = SmtpServer::start(dir.path(), Mode::Plain, None, Some(("mailer", "pw")));
    let pw = password_file(dir.path(), "pw");
    let (d, v) = refused(
        |c| {
            c.email.tls = SmtpTls::Starttls;
            c.email.ca_file = Some(ca.ca.clone());
            c.email.username = Some("mailer".into());
            c.email.password_file = Some(pw.clone());
        },
        &bad,
    );
    let cmds = bad.commands();
    assert!(cmds.iter().any(|c| c == "EHLO"), "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.starts_with("AUTH") || c == "MAIL" || c == "DATA"),
        "{cmds:?}"
    );
    assert!(
        v[1].contains("STARTTLS") || v[1].contains("starttls") || v[1].contains("TLS"),
        "{}",
        v[1]
    );
    assert_no_code_leaked(&d, &v[..1], &[]);
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let good = make_ca(dir.path(), "good");
    let other = make_ca(dir.path(), "other");
    let bad = SmtpServer::start(dir.path(), Mode::Tls, Some(&good), None);
    let (d, v) = refused(
        |c| {
            c.email.tls = SmtpTls::Tls;
            c.email.ca_file = Some(other.ca.clone());
        },
        &bad,
    );
    assert!(!bad.commands().iter().any(|c| c == "MAIL" || c == "DATA"));
    assert_no_code_leaked(&d, &v[..1], &[]);
}

#[test]
fn a_wrong_password_is_refused_and_no_data_is_sent() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = make_ca(dir.path(), "good");
    let bad = SmtpServer::start(
        dir.path(),
        Mode::Starttls,
        Some(&ca),
        Some(("mailer", "right")),
    );
    let pw = password_file(dir.path(), "wrong");
    let (d, v) = refused(
        |c| {
            c.email.tls = SmtpTls::Starttls;
            c.email.ca_file = Some(ca.ca.clone());
            c.email.username = Some("mailer".into());
            c.email.password_file = Some(pw.clone());
        },
        &bad,
    );
    let cmds = bad.commands();
    assert!(cmds.iter().any(|c| c == "AUTH-RESULT refused"), "{cmds:?}");
    assert!(!cmds.iter().any(|c| c == "MAIL" || c == "DATA"), "{cmds:?}");
    assert_no_code_leaked(&d, &v[..1], &[]);
}

#[test]
fn a_password_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = make_ca(dir.path(), "good");
    let bad = SmtpServer::start(
        dir.path(),
        Mode::Starttls,
        Some(&ca),
        Some(("mailer", "right")),
    );
    let pw = password_file(dir.path(), "right");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (d, v) = refused(
        |c| {
            c.email.tls = SmtpTls::Starttls;
            c.email.ca_file = Some(ca.ca.clone());
            c.email.username = Some("mailer".into());
            c.email.password_file = Some(pw.clone());
        },
        &bad,
    );
    assert!(bad.commands().is_empty(), "not even connected");
    // Said at start, not only at the first send.
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("email result=unusable") && l.contains("readable")),
        "{log}"
    );
    assert!(v[1].contains("readable"), "{}", v[1]);
    assert_no_code_leaked(&d, &v[..1], &[]);
}

/// Regression (review, session 6): a relay's refusal that quotes the
/// address (Postfix's `550 5.1.1 <alice@example.org>: Recipient address
/// rejected`) went verbatim into the audit row's `error`, the log and
/// syslog, where every destination is otherwise masked. The recorder in
/// `reject` mode refuses every recipient in those words.
#[test]
fn a_relay_refusal_quoting_the_address_is_audited_and_logged_masked() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = SmtpServer::start(dir.path(), Mode::Reject, None, None);
    let (d, v) = refused(|_| {}, &bad);
    let rows = &v[1];
    assert!(
        rows.contains("Recipient_address_rejected"),
        "the relay's words are kept: {rows}"
    );
    assert!(rows.contains("a•••@e•••.org"), "the address masked: {rows}");
    let everywhere = format!("{rows}\n{}\n{}", d.log_text(), d.syslog.lines().join("\n"));
    assert!(
        !everywhere.to_ascii_lowercase().contains(ALICE),
        "the whole address shown: {everywhere}"
    );
    assert!(
        bad.commands().contains(&"RCPT".to_string()),
        "the relay was asked"
    );
}
