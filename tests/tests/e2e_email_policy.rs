//! Email codes under policy and failure: a service whose `methods` leave
//! email out does not offer it; sudo's PAM_SILENT carries the "sent" line
//! inside the next prompt (real libpam, built module); a relay that keeps
//! refusing opens the breaker (audited) and later asks fail at once; an
//! admin's disable and a lockout (once) are mailed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_config::{Method as CfgMethod, SmtpTls};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::mailtest::{assert_no_code_leaked, enroll_address, point_at, Steps, ALICE};
use twofold_tests::pam::*;
use twofold_tests::smtp::{free_port, Mode, SmtpServer};
use twofold_tests::PamConfig;

fn enroll_alice(d: &TestDaemon, s: &SmtpServer) -> String {
    d.enroll("alice");
    enroll_address(d, s, "alice", ALICE, 1)
}

#[test]
fn a_service_whose_methods_leave_email_out_does_not_offer_it() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| {
        point_at(c, &s, SmtpTls::Plain);
        let rule: twofold_config::policy::ServiceRule = toml_rule();
        c.policy.service.push(rule);
    });
    let c0 = enroll_alice(&d, &s);
    let mut l = Steps::begin(&d, "alice");
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: "Verification code: ".into(),
            echo: false
        }
    );
    l.answer("email");
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'login_failure';");
    assert!(rows.contains("reason=not_a_code"), "{rows}");
    let sent = d.sqlite3("SELECT COUNT(*) FROM audit WHERE event = 'code_sent';");
    assert_eq!(sent.trim(), "1", "only the enrollment's code");
    assert_no_code_leaked(&d, &[c0], &[]);
}

/// `[[policy.service]] services = ["sudo"] methods = ["totp", "backup_code"]`.
fn toml_rule() -> twofold_config::policy::ServiceRule {
    twofold_config::policy::ServiceRule {
        services: vec!["sudo".into()],
        methods: Some(vec![CfgMethod::TOTP, CfgMethod::BACKUP_CODE]),
        unenrolled: None,
    }
}

#[test]
fn under_pam_silent_the_sent_line_is_part_of_the_next_prompt() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| point_at(c, &s, SmtpTls::Plain));
    let c0 = enroll_alice(&d, &s);
    let pam = PamConfig::new().expect("pam dir");
    pam.twofold(
        "tf",
        &[&format!("socket={}", d.socket().display()), "timeout=10"],
    )
    .expect("service");
    let (path, port) = (dir.path().to_owned(), s.port);
    let codes = Arc::new(Mutex::new(Vec::new()));
    let seen = codes.clone();
    let conv = Conversation::new().answer("email").respond_with(move |_| {
        let code = SmtpServer::mails_in(&path, port)
            .last()
            .and_then(|m| m.code())
            .unwrap_or_default();
        seen.lock().unwrap().push(code.clone());
        Reply::Answer(code)
    });
    let (rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .expect("pam")
        .silent()
        .authenticate(conv)
        .expect("authenticate");
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    let prompts = t.prompts();
    assert_eq!(prompts.len(), 2, "{t:?}");
    assert!(
        prompts[1].contains("Code sent to a•••@e•••.org (valid 10 minutes).")
            && prompts[1].ends_with("Verification code (or \"email\" to get one sent): "),
        "{:?}",
        prompts[1]
    );
    assert!(
        t.infos().is_empty(),
        "nothing shown outside a prompt under PAM_SILENT"
    );
    let mut all = vec![c0];
    all.extend(codes.lock().unwrap().iter().cloned());
    assert_no_code_leaked(&d, &all, &[format!("{t:?}")]);
}

#[test]
fn a_relay_that_keeps_refusing_opens_the_breaker_and_asks_then_fail_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let mut d = TestDaemon::start_with(|c| point_at(c, &s, SmtpTls::Plain));
    let c0 = enroll_alice(&d, &s);
    for (i, u) in ["bob", "carol", "dave", "erin"].into_iter().enumerate() {
        d.enroll(u);
        // Code mail 1 was alice's.
        enroll_address(&d, &s, u, &format!("{u}@example.org"), i + 2);
    }
    // Nothing listens on this port: each send is refused at once.
    let closed = free_port();
    d.restart_with(|c| c.email.port = closed);
    for u in ["alice", "bob", "carol"] {
        let mut l = Steps::begin(&d, u);
        let got = l.answer("email");
        assert!(
            got.iter().any(
                |r| matches!(r, Response::Error { text } if text.starts_with("Could not send"))
            ),
            "{got:?}"
        );
    }
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'channel_breaker';");
    assert!(rows.contains("state=open"), "{rows}");
    // Open: refused without trying, at once.
    let mut l = Steps::begin(&d, "dave");
    let t = Instant::now();
    let got = l.answer("email");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        got.iter().any(|r| matches!(r, Response::Error { .. })),
        "{got:?}"
    );
    let rows = d.sqlite3(
        "SELECT detail FROM audit WHERE event = 'code_send_failed' ORDER BY id DESC LIMIT 1;",
    );
    assert!(rows.contains("not_tried_until"), "{rows}");
    // After `breaker_open`, a trial send goes to the relay again, which is back.
    d.restart_with(|c| c.email.port = s.port);
    d.clock.advance(61);
    let mut l = Steps::begin(&d, "erin");
    let got = l.answer("email");
    assert!(
        got.iter().any(|r| matches!(r, Response::Info { .. })),
        "{got:?}"
    );
    assert_no_code_leaked(&d, &[c0], &[]);
}

#[test]
fn an_admin_disable_and_a_lockout_are_mailed_the_lockout_once() {
    let dir = tempfile::tempdir().expect("dir");
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| {
        point_at(c, &s, SmtpTls::Plain);
        c.rate_limit.source_failures = 2;
    });
    let c0 = enroll_alice(&d, &s);
    let lockout =
        |m: &twofold_tests::smtp::Mail| m.body().contains("were locked after repeated wrong codes");
    // Two wrong codes lock the source; twice over (after an unlock).
    for _ in 0..2 {
        let seen = d.login("alice", &["000000", "000001"]);
        assert!(
            matches!(seen.last(), Some(Response::Denied { .. })),
            "{seen:?} {}",
            d.sqlite3(
                "SELECT event, detail FROM audit WHERE event LIKE 'login%' OR event = 'lockout';"
            )
        );
        let r = d.call(&Request::AdminUnlock {
            user: "alice".into(),
        });
        assert!(!matches!(r, Response::Failed { .. }), "{r:?}");
        // Failures count after the last lock's second.
        d.clock.advance(1);
    }
    assert!(
        s.wait_for(lockout, Duration::from_secs(10)).is_some(),
        "the lockout notice"
    );
    let r = d.call(&Request::AdminDisable {
        user: "alice".into(),
    });
    assert!(!matches!(r, Response::Failed { .. }), "{r:?}");
    let disabled = s.wait_for(
        |m| {
            m.body()
                .contains("An administrator disabled two-factor authentication of alice")
        },
        Duration::from_secs(10),
    );
    assert!(
        disabled.is_some(),
        "the disable notice reaches the address it removed"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        s.mails().iter().filter(|m| lockout(m)).count(),
        1,
        "one lockout mail an hour"
    );
    assert_no_code_leaked(&d, &[c0], &[]);
}
