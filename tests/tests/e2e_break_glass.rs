//! Break-glass codes (issue 16): an admin issues a one-time code for
//! someone who lost every factor, instead of switching MFA off. Issued
//! through the daemon (and the real CLI), used through the real libpam,
//! on the daemon's injected clock.

use twofold_proto::{Request, Response, Secret, TempCodeInfo, UserStatus};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::pam::*;

fn issue(d: &TestDaemon, user: &str, valid: Option<u64>, uses: Option<u32>) -> (String, u64) {
    match d.call(&Request::AdminTempCode {
        user: user.into(),
        valid,
        uses,
        revoke: false,
    }) {
        Response::TempCode {
            code, expires_at, ..
        } => (code.expose().to_owned(), expires_at),
        other => panic!("{other:?}"),
    }
}

fn login(d: &TestDaemon, user: &str, answer: &str) -> PamCode {
    let pam = d.pam();
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(Conversation::new().answer(answer))
        .unwrap()
        .0
}

fn status(d: &TestDaemon, user: &str) -> UserStatus {
    match d.call(&Request::Status {
        user: Some(user.into()),
    }) {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

fn rows(d: &TestDaemon, sql_where: &str) -> String {
    d.sqlite3(&format!(
        "SELECT event, user, method, actor, detail FROM audit WHERE {sql_where} ORDER BY id"
    ))
}

/// Issued once, shown once; opens one login through libpam; refused the
/// second time; audited when issued and when used; `twofold status` shows
/// it while it is outstanding; the code appears in no log or audit row.
#[test]
fn a_break_glass_code_opens_one_login_and_is_refused_the_second_time() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    d.enroll("alice");
    let (code, expires_at) = issue(&d, "alice", None, None);
    assert_eq!(expires_at, d.now() + 3600, "one hour by default");
    assert_eq!(code.len(), 14, "xxxx-xxxx-xxxx: {code:?}");
    assert_eq!(
        status(&d, "alice").temp_code,
        Some(TempCodeInfo {
            uses_left: 1,
            expires_at
        })
    );

    assert_eq!(login(&d, "alice", &code), PAM_SUCCESS);
    assert_eq!(status(&d, "alice").temp_code, None);
    assert_eq!(login(&d, "alice", &code), PAM_AUTH_ERR, "used up");
    // Typed without dashes, in capitals: still the same (spent) code.
    assert_eq!(
        login(&d, "alice", &code.replace('-', "").to_uppercase()),
        PAM_AUTH_ERR
    );

    let issued = rows(&d, "event = 'admin'");
    assert!(
        issued.contains("action=temp_code") && issued.contains("uses=1"),
        "{issued}"
    );
    let used = rows(&d, "event IN ('temp_code_used', 'login_success')");
    assert!(used.contains("temp_code_used|alice|temp_code"), "{used}");
    assert!(used.contains("left=0"), "{used}");
    assert!(used.contains("login_success|alice|temp_code"), "{used}");
    // Nothing outstanding is left to match: the answer is no code at all.
    let failures = rows(&d, "event = 'login_failure'");
    assert_eq!(failures.lines().count(), 2, "{failures}");

    let everything = format!("{}\n{}", d.log_text(), d.sqlite3("SELECT * FROM audit"));
    for form in [code.clone(), code.replace('-', "")] {
        assert!(!everything.contains(&form), "the code leaked");
    }
}

/// Past its expiry the code opens nothing, and status no longer lists it.
#[test]
fn a_break_glass_code_expires() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    d.enroll("alice");
    let (code, _) = issue(&d, "alice", Some(60), None);
    d.clock.advance(60);
    assert_eq!(status(&d, "alice").temp_code, None);
    assert_eq!(login(&d, "alice", &code), PAM_AUTH_ERR);
    let failures = rows(&d, "event = 'login_failure'");
    assert_eq!(failures.lines().count(), 1, "{failures}");
    assert_eq!(rows(&d, "event = 'login_success'"), "");
}

/// `--uses 2`: two logins, not three; a code issued later replaces the
/// outstanding one; `--revoke` withdraws it.
#[test]
fn uses_replacement_and_revocation() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    d.enroll("alice");
    let (code, _) = issue(&d, "alice", None, Some(2));
    assert_eq!(status(&d, "alice").temp_code.unwrap().uses_left, 2);
    assert_eq!(login(&d, "alice", &code), PAM_SUCCESS);
    assert_eq!(login(&d, "alice", &code), PAM_SUCCESS);
    assert_eq!(login(&d, "alice", &code), PAM_AUTH_ERR);

    let (old, _) = issue(&d, "alice", None, None);
    let (new, _) = issue(&d, "alice", None, None);
    assert_ne!(old, new);
    assert_eq!(login(&d, "alice", &old), PAM_AUTH_ERR, "replaced");

    match d.call(&Request::AdminTempCode {
        user: "alice".into(),
        valid: None,
        uses: None,
        revoke: true,
    }) {
        Response::Done { message } => assert!(message.contains("revoked"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&d, "alice").temp_code, None);
    assert_eq!(login(&d, "alice", &new), PAM_AUTH_ERR, "revoked");
    let revoked = rows(&d, "event = 'admin'");
    assert!(revoked.contains("action=temp_code_revoked"), "{revoked}");
}

/// Refused: an account with no factor (the code never enrolls anyone),
/// a validity or use count out of range. Nothing is stored for them.
#[test]
fn refused_requests_store_nothing() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    d.enroll("alice");
    for (user, valid, uses) in [
        ("bob", None, None),
        ("alice", Some(59), None),
        ("alice", Some(7 * 86_400 + 1), None),
        ("alice", None, Some(0)),
        ("alice", None, Some(11)),
    ] {
        let got = d.call(&Request::AdminTempCode {
            user: user.into(),
            valid,
            uses,
            revoke: false,
        });
        assert!(
            matches!(got, Response::Failed { .. }),
            "{user} {valid:?} {uses:?}: {got:?}"
        );
    }
    assert_eq!(
        d.sqlite3("SELECT count(*) FROM codes WHERE method = 'temp_code'")
            .trim(),
        "0"
    );
}

/// A service whose policy does not allow `temp_code` refuses it.
#[test]
fn the_policy_decides_where_a_break_glass_code_works() {
    let d = TestDaemon::start_with(|c| {
        c.login.max_tries = 1;
        c.policy.methods = vec![
            twofold_proto::Method::TOTP,
            twofold_proto::Method::BACKUP_CODE,
        ];
    });
    d.enroll("alice");
    let (code, _) = issue(&d, "alice", None, None);
    assert_eq!(login(&d, "alice", &code), PAM_AUTH_ERR);
    assert_eq!(
        status(&d, "alice").temp_code.unwrap().uses_left,
        1,
        "not spent"
    );
}

/// The real CLI: `twofold admin temp-code` prints the code once with its
/// expiry; `twofold status` shows it outstanding.
#[test]
fn the_cli_issues_and_shows_it() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    d.enroll("alice");
    let out = d.twofold(&[
        "admin",
        "temp-code",
        "--user",
        "alice",
        "--valid",
        "2h",
        "--uses",
        "2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("Break-glass code for alice (opens 2 logins, until "),
        "{text}"
    );
    let code = text.lines().nth(1).unwrap().trim().to_owned();
    let out = d.twofold(&["status", "--user", "alice"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Break-glass code:   outstanding, opens 2 logins until"),
        "{shown}"
    );
    assert!(!shown.contains(&code));
    assert_eq!(login(&d, "alice", &code), PAM_SUCCESS);
    let _ = Secret::from(code);
}
