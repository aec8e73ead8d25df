//! The factor seam, end to end: a factor written here, outside the daemon
//! — one fixed code — is added with `Registry::register` and then enrolls
//! through the generic requests, opens logins through the real libpam
//! (pam_start_confdir and the built pam_twofold.so), is audited by its
//! name, has replays refused by the store's counter guard, is reported and
//! is removed, with nothing in the login core or the requests naming it.
//! Each test fails when the factor is not registered (or its answers never
//! reach it): what it shows comes through the seam, nowhere else.

use std::sync::Arc;
use twofold_daemon::factors::{
    random_row_id, Confirmation, Ctx, Enroll, EnrollOptions, Factor, Found, Pending, Registry,
    Report, VerifyError, Who,
};
use twofold_daemon::store::{Claim, Credential, NewCredential, Snapshot, StoreError};
use twofold_daemon::{Failure, INVALID_CODE};
use twofold_proto::{ErrorKind, FactorStatus, Method, Request, Response, Secret, UserStatus};
use twofold_tests::daemon::{failed_kind, TestDaemon, T0};
use twofold_tests::pam::*;
use twofold_tests::{module_line, PamConfig};

/// The code this factor accepts. Its `0`s and `1`s are not in the backup
/// codes' alphabet and its `fixed-` is no TOTP code, so no built-in
/// factor claims an answer of this shape before the fixed one is asked.
const CODE: &str = "fixed-1010";
/// The right shape, the wrong code.
const WRONG: &str = "fixed-0101";

/// The test factor's method: a name no build of twofoldd knows.
fn fixed() -> Method {
    Method::new("fixed_code").expect("a valid method name")
}

/// A factor whose secret is one fixed code, sealed like any factor's.
#[derive(Debug)]
struct Fixed;

/// The user's credential of this factor in `creds`, pending or confirmed.
fn credential(creds: &[Credential]) -> Option<&Credential> {
    creds.iter().find(|c| c.method == fixed())
}

/// Whether `a` equals `b`, in a time that does not tell where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused(kind: ErrorKind, message: &str) -> Failure {
    Failure {
        kind,
        message: message.to_owned(),
        detail: None,
    }
}

impl Factor for Fixed {
    fn method(&self) -> Method {
        fixed()
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        credential(&snap.credentials).is_some_and(|c| c.confirmed_at.is_some())
    }

    fn check(
        &self,
        cx: &Ctx<'_>,
        _who: &Who<'_>,
        snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        if !typed.starts_with("fixed-") {
            return Ok(None);
        }
        let Some(cred) = credential(&snap.credentials).filter(|c| c.confirmed_at.is_some()) else {
            return Ok(None);
        };
        let secret = cx
            .keys
            .open(&fixed(), &cred.user, cred.id, &cred.nonce, &cred.sealed)?;
        Ok(Some(if same(&secret, typed.as_bytes()) {
            // A second opens at most one door: the store moves the
            // counter only upwards.
            Found::Claim(Claim::Counter {
                credential: cred.id,
                value: cx.now(),
            })
        } else {
            Found::Rejected("wrong code")
        }))
    }

    fn report(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        creds: &[Credential],
    ) -> Result<Report, StoreError> {
        let mut r = Report::default();
        if let Some(c) = credential(creds) {
            match c.confirmed_at {
                Some(at) => r.factors.push(FactorStatus {
                    method: fixed(),
                    enrolled_at: at,
                    last_used: c.last_used,
                    destination: None,
                }),
                None => r.pending = true,
            }
        }
        Ok(r)
    }

    fn enrollment(&self) -> Option<&dyn Enroll> {
        Some(self)
    }
}

impl Enroll for Fixed {
    fn start(
        &self,
        cx: &Ctx<'_>,
        user: &str,
        _options: &EnrollOptions,
    ) -> Result<Pending, Failure> {
        let id = random_row_id()?;
        let (sealed, nonce) = cx.keys.seal(&fixed(), user, id, CODE.as_bytes())?;
        let new = NewCredential {
            id,
            method: fixed(),
            label: String::new(),
            sealed,
            nonce: nonce.to_vec(),
            params: String::new(),
            single: true,
        };
        if !cx.store.start_pending(user, new, cx.now())? {
            return Err(refused(
                ErrorKind::Conflict,
                "a fixed code is confirmed already",
            ));
        }
        Ok(Pending {
            response: Response::Done {
                message: format!("fixed_code pending for {user}; confirm it with the code"),
            },
            qr: None,
            lines: Vec::new(),
        })
    }

    fn confirm(&self, cx: &Ctx<'_>, user: &str, answer: &Secret) -> Result<Confirmation, Failure> {
        let creds = cx.store.credentials(user)?;
        let Some(cred) = credential(&creds).filter(|c| c.confirmed_at.is_none()) else {
            return Err(refused(ErrorKind::NotFound, "no pending fixed code"));
        };
        let secret = cx
            .keys
            .open(&fixed(), user, cred.id, &cred.nonce, &cred.sealed)?;
        if !same(&secret, answer.expose().trim().as_bytes()) {
            return Err(refused(ErrorKind::InvalidCode, "invalid verification code"));
        }
        Ok(Confirmation {
            id: cred.id,
            counter: Some(cx.now()),
        })
    }
}

/// The built-in factors plus the fixed one.
fn with_fixed() -> Registry {
    let mut factors = Registry::builtin();
    factors.register(Arc::new(Fixed));
    factors
}

/// A daemon offering the fixed factor, whose policy allows it (the
/// configuration is built here, so the parser's refusal of unknown method
/// names does not apply). One try per login, so a few refused logins
/// stay under the rate limit.
fn daemon() -> TestDaemon {
    TestDaemon::start_with_factors(
        |c| {
            c.policy.methods.push(fixed());
            c.login.max_tries = 1;
        },
        with_fixed(),
    )
}

/// Enrolls alice with the fixed code through the generic requests, as
/// root; returns her backup codes. The confirmation spends the clock's
/// current second.
fn enroll_alice(d: &TestDaemon) -> Vec<String> {
    match d.call(&Request::EnrollStart {
        user: Some("alice".into()),
        method: fixed(),
        algorithm: None,
        digits: None,
        address: None,
        code: None,
    }) {
        Response::Done { message } => assert!(message.contains("fixed_code"), "{message}"),
        other => panic!("enroll start: {other:?}"),
    }
    match d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: fixed(),
        code: Secret::from(CODE),
    }) {
        Response::BackupCodes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("enroll confirm: {other:?}"),
    }
}

/// A daemon with alice enrolled a second ago: her code is fresh now.
fn enrolled() -> (TestDaemon, Vec<String>) {
    let d = daemon();
    let codes = enroll_alice(&d);
    d.clock.advance(1);
    (d, codes)
}

/// One login of alice through libpam, service `tf` of `pam`.
fn login(pam: &PamConfig, answers: &[&str]) -> (PamCode, Transcript) {
    let conv = answers.iter().fold(Conversation::new(), |c, a| c.answer(a));
    PamLogin::new(pam.dir(), "tf", "alice")
        .unwrap()
        .rhost("198.51.100.7")
        .tty("ssh")
        .authenticate(conv)
        .unwrap()
}

/// alice's audit rows of `event`, as `method|detail` lines.
fn audit(d: &TestDaemon, event: &str) -> Vec<String> {
    d.sqlite3(&format!(
        "SELECT method, detail FROM audit WHERE user = 'alice' AND event = '{event}' ORDER BY id"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

fn status(d: &TestDaemon) -> UserStatus {
    match d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => s,
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn a_registered_factor_enrolls_through_the_generic_requests_and_gets_backup_codes() {
    let d = daemon();
    match d.call(&Request::EnrollStart {
        user: Some("alice".into()),
        method: fixed(),
        algorithm: None,
        digits: None,
        address: None,
        code: None,
    }) {
        Response::Done { .. } => {}
        other => panic!("enroll start: {other:?}"),
    }
    // The factor's own report says what is pending.
    let s = status(&d);
    assert!(s.pending_enrollment && s.factors.is_empty(), "{s:?}");
    // Its own confirm decides: a wrong answer confirms nothing.
    let wrong = d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: fixed(),
        code: Secret::from(WRONG),
    });
    assert_eq!(
        failed_kind(&wrong),
        Some(ErrorKind::InvalidCode),
        "{wrong:?}"
    );
    match d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: fixed(),
        code: Secret::from(CODE),
    }) {
        // Recovery codes hang on any primary factor, not on TOTP.
        Response::BackupCodes { codes } => assert_eq!(codes.len(), 10),
        other => panic!("enroll confirm: {other:?}"),
    }
    assert_eq!(audit(&d, "enroll"), ["fixed_code|via=cli"]);
    let s = status(&d);
    assert_eq!(
        s.factors,
        [FactorStatus {
            method: fixed(),
            enrolled_at: T0,
            last_used: None,
            destination: None,
        }]
    );
    assert_eq!(s.backup_codes_left, 10);
    assert!(!s.pending_enrollment, "{s:?}");
}

#[test]
fn a_registered_factor_opens_a_login_through_libpam_audited_by_its_name() {
    let (d, _) = enrolled();
    let pam = d.pam();
    let (code, t) = login(&pam, &[CODE]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), ["Verification code: "]);
    assert_eq!(audit(&d, "login_success"), ["fixed_code|"]);
}

#[test]
fn a_replayed_code_of_a_registered_factor_is_refused_until_the_clock_moves_on() {
    let d = daemon();
    enroll_alice(&d);
    let pam = d.pam();
    // The confirmation spent this second (its counter).
    assert_eq!(login(&pam, &[CODE]).0, PAM_AUTH_ERR);
    d.clock.advance(1);
    assert_eq!(login(&pam, &[CODE]).0, PAM_SUCCESS);
    // The same code in the same second: the factor accepts it, the
    // store's guard (the counter must grow) refuses it.
    let (code, t) = login(&pam, &[CODE]);
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    let failures = audit(&d, "login_failure");
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures
            .iter()
            .all(|f| f.contains("reason=code_already_used")),
        "{failures:?}"
    );
    d.clock.advance(1);
    assert_eq!(login(&pam, &[CODE]).0, PAM_SUCCESS);
    assert_eq!(audit(&d, "login_success").len(), 2);
}

#[test]
fn a_wrong_code_of_a_registered_factor_is_refused_by_it_and_audited_as_a_failure() {
    let (d, _) = enrolled();
    let pam = d.pam();
    let (code, t) = login(&pam, &[WRONG]);
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    assert_eq!(t.errors(), [INVALID_CODE]);
    // The factor judged it ("wrong code"), not the core ("not a code").
    let failures = audit(&d, "login_failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("reason=wrong_code"), "{failures:?}");
    assert!(audit(&d, "login_success").is_empty());
    // A wrong code spends nothing.
    assert_eq!(login(&pam, &[CODE]).0, PAM_SUCCESS);
}

#[test]
fn backup_codes_still_log_in_beside_a_registered_factor_and_status_lists_it() {
    let (d, codes) = enrolled();
    let pam = d.pam();
    assert_eq!(login(&pam, &[CODE]).0, PAM_SUCCESS);
    let (code, t) = login(&pam, &[&codes[0]]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(audit(&d, "login_success"), ["fixed_code|", "backup_code|"]);
    assert_eq!(audit(&d, "backup_code_used").len(), 1);
    let s = status(&d);
    assert_eq!(
        s.factors,
        [FactorStatus {
            method: fixed(),
            enrolled_at: T0,
            last_used: Some(T0 + 1),
            destination: None,
        }]
    );
    assert_eq!(s.backup_codes_left, 9);
}

#[test]
fn removing_the_last_registered_factor_takes_the_backup_codes_and_unenrolls() {
    let (d, codes) = enrolled();
    match d.call(&Request::RemoveFactor {
        user: Some("alice".into()),
        method: fixed(),
        code: None,
    }) {
        Response::Done { .. } => {}
        other => panic!("remove: {other:?}"),
    }
    assert_eq!(audit(&d, "factor_removed"), ["fixed_code|"]);
    let s = status(&d);
    assert!(s.factors.is_empty(), "{s:?}");
    assert_eq!(s.backup_codes_left, 0);
    // libpam never hands PAM_IGNORE to the application: the jump over the
    // two pam_deny lines is taken only when the module returned PAM_IGNORE.
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", d.socket().display());
    pam.service(
        "tf",
        &[
            &module_line("[ignore=2 success=done default=die]", &[&socket]),
            "auth requisite pam_deny.so",
            "auth requisite pam_deny.so",
            "auth required pam_permit.so",
        ],
    )
    .unwrap();
    for answer in [CODE, &codes[0]] {
        let (code, t) = login(&pam, &[answer]);
        assert_eq!(code, PAM_SUCCESS, "{t:?}");
        assert!(t.messages.is_empty(), "alice was asked nothing: {t:?}");
    }
    assert_eq!(audit(&d, "login_skipped"), ["|reason=not_enrolled"; 2]);
}

#[test]
fn the_policy_governs_a_registered_factor_like_a_built_in_one() {
    // Registered, but not among the methods the policy allows.
    let d = TestDaemon::start_with_factors(|c| c.login.max_tries = 1, with_fixed());
    let codes = enroll_alice(&d);
    d.clock.advance(1);
    let pam = d.pam();
    // Only the backup codes are asked: the fixed code is no answer.
    assert_eq!(login(&pam, &[CODE]).0, PAM_AUTH_ERR);
    let failures = audit(&d, "login_failure");
    assert!(failures[0].contains("reason=not_a_code"), "{failures:?}");
    assert_eq!(login(&pam, &[&codes[0]]).0, PAM_SUCCESS);
}

#[test]
fn a_factor_not_registered_cannot_be_enrolled() {
    let d = TestDaemon::start_with(|c| c.policy.methods.push(fixed()));
    let r = d.call(&Request::EnrollStart {
        user: Some("alice".into()),
        method: fixed(),
        algorithm: None,
        digits: None,
        address: None,
        code: None,
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
}
