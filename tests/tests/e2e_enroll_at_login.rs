//! Issue 10, item 4: enrollment inside a login was trust on first use —
//! whoever had only the password during the grace period enrolled their own
//! authenticator and received the backup codes. `[policy] enroll_at_login`
//! now offers `local` (never over the network) and `token` (a one-time
//! token an admin issued), through the real libpam and a real twofoldd.

use twofold_config::{EnrollAtLogin, Unenrolled};
use twofold_daemon::{CONFIRM_PROMPT, INVALID_CODE};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{TestDaemon, T0};
use twofold_tests::pam::*;
use twofold_tests::PamConfig;

/// What libpam returns when pam_twofold is the only module and says "no say".
const IGNORED: PamCode = PAM_PERM_DENIED;
const TOKEN_PROMPT: &str = "Enrollment token from your administrator (empty to skip for now): ";

fn daemon(mode: EnrollAtLogin) -> TestDaemon {
    TestDaemon::start_with(|c| {
        c.policy.unenrolled = Unenrolled::Enroll;
        c.policy.enroll_at_login = mode;
        c.login.max_tries = 2;
    })
}

fn pam_for(d: &TestDaemon) -> PamConfig {
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", d.socket().display());
    pam.twofold("tf", &[&socket, "timeout=3"]).unwrap();
    pam
}

fn login(pam: &PamConfig, rhost: &str, conv: Conversation) -> (PamCode, Transcript) {
    PamLogin::new(pam.dir(), "tf", "mail")
        .unwrap()
        .rhost(rhost)
        .tty("pts/1")
        .authenticate(conv)
        .unwrap()
}

fn token(d: &TestDaemon, valid: Option<u64>) -> String {
    match d.call(&Request::AdminEnrollToken {
        user: "mail".into(),
        valid,
    }) {
        Response::EnrollToken { token, expires_at } => {
            assert_eq!(expires_at, d.now() + valid.unwrap_or(86_400));
            token.expose().to_owned()
        }
        other => panic!("{other:?}"),
    }
}

fn audit(d: &TestDaemon) -> String {
    d.sqlite3("SELECT event, method, detail FROM audit WHERE user = 'mail' ORDER BY id")
}

#[test]
fn regression_a_password_alone_cannot_enroll_in_token_mode() {
    let d = daemon(EnrollAtLogin::Token);
    let pam = pam_for(&d);
    // The thief has the password, no token: no secret or QR is ever shown.
    let (code, t) = login(&pam, "192.0.2.66", answers(&["abcde-fghij", "23456-78923"]));
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    assert_eq!(t.prompts(), vec![TOKEN_PROMPT, TOKEN_PROMPT]);
    assert!(t.infos().iter().all(|l| !l.contains("secret")), "{t:?}");
    assert!(t.errors().contains(&INVALID_CODE), "{t:?}");
    let rows = audit(&d);
    assert!(rows.contains("login_failure||"), "counted: {rows}");
    assert!(!rows.contains("enroll|"), "{rows}");
    // Skipping stays possible inside the grace period (the login is let in
    // without MFA, as enroll mode does), but sets nothing up.
    let (code, t) = login(&pam, "192.0.2.66", answers(&[""]));
    assert_eq!(code, IGNORED, "{t:?}");
    match d.call(&Request::Status {
        user: Some("mail".into()),
    }) {
        Response::Status(s) => assert!(s.factors.is_empty() && !s.pending_enrollment, "{s:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_admins_token_lets_the_owner_enroll_once() {
    let d = daemon(EnrollAtLogin::Token);
    let pam = pam_for(&d);
    let t1 = token(&d, None);
    let (code, t) = login(&pam, "192.0.2.7", enrolling(&[&t1], T0));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), vec![TOKEN_PROMPT, CONFIRM_PROMPT]);
    let rows = audit(&d);
    assert!(
        rows.contains("admin||action=enroll_token expires="),
        "{rows}"
    );
    assert!(
        rows.contains("enroll|totp|via=login authorized_by=enroll_token"),
        "{rows}"
    );
    // The token was spent with the enrollment: after an admin removes the
    // factor, the same token sets nothing up again.
    let r = d.call(&Request::RemoveTotp {
        user: Some("mail".into()),
        code: None,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let (code, t) = login(&pam, "192.0.2.7", answers(&[&t1, ""]));
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(
        audit(&d).contains("reason=token_already_used"),
        "{}",
        audit(&d)
    );
}

#[test]
fn an_expired_token_is_refused() {
    let d = daemon(EnrollAtLogin::Token);
    let pam = pam_for(&d);
    let t1 = token(&d, Some(3600));
    d.clock.advance(3600);
    let (code, t) = login(&pam, "", answers(&[&t1, ""]));
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(audit(&d).contains("reason=token_expired"), "{}", audit(&d));
    // A fresh one works.
    let t2 = token(&d, None);
    let (code, t) = login(&pam, "", enrolling(&[&t2], d.now()));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
}

#[test]
fn local_mode_offers_enrollment_at_local_logins_only() {
    let d = daemon(EnrollAtLogin::Local);
    let pam = pam_for(&d);
    let (code, t) = login(&pam, "192.0.2.66", answers(&[]));
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.prompts().is_empty(), "{t:?}");
    assert!(
        t.infos()
            .iter()
            .any(|l| l.contains("only at a local login")),
        "{t:?}"
    );
    assert!(
        audit(&d).contains("reason=enrollment_not_allowed_here"),
        "{}",
        audit(&d)
    );
    let (code, t) = login(&pam, "", enrolling(&[], T0));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), vec![CONFIRM_PROMPT]);
}

#[test]
fn enroll_token_is_admin_only_and_bounded() {
    let d = daemon(EnrollAtLogin::Token);
    for valid in [Some(10), Some(31 * 86_400)] {
        let r = d.call(&Request::AdminEnrollToken {
            user: "mail".into(),
            valid,
        });
        assert!(matches!(r, Response::Failed { .. }), "{valid:?}: {r:?}");
    }
    // Issued tokens are not a factor: status and stats do not count them.
    token(&d, None);
    match d.call(&Request::Stats) {
        Response::StatsReport(s) => {
            assert!(s.enrolled.iter().all(|m| m.users == 0), "{s:?}");
            // One row per method this build knows (tokens are none).
            assert_eq!(
                s.enrolled.len(),
                twofold_proto::Method::KNOWN.len(),
                "{s:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}
