//! FIDO2 security keys through the real libpam and the built
//! pam_twofold.so, with the software authenticator (daemon feature
//! `soft-fido2`) as the key. The daemon verifies every assertion itself
//! from the raw bytes: each way a key can misbehave is refused by its own
//! test, as a counted failure with its reason in the audit trail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_daemon::factors::fido2::soft::{Alg, Fault, SoftAuthenticator, SoftKey};
use twofold_daemon::factors::fido2::{Fido2, CUE};
use twofold_daemon::factors::Registry;
use twofold_proto::{Client, Method, Request, Response, Secret};
use twofold_tests::daemon::{failed_kind, DaemonProcess, TestDaemon};
use twofold_tests::pam::*;

/// The daemon's wait for a touch in these tests.
const DEADLINE: Duration = Duration::from_secs(1);

struct Bed {
    d: TestDaemon,
    keys: Arc<SoftAuthenticator>,
    a: Arc<SoftKey>,
    b: Arc<SoftKey>,
}

fn registry(keys: &Arc<SoftAuthenticator>, uv: bool) -> Registry {
    let mut r = Registry::builtin();
    let f = Fido2::new(keys.clone()).deadline(DEADLINE).require_uv(uv);
    r.register(Arc::new(f));
    r
}

/// A daemon whose FIDO2 factor talks to software keys: `a` (ES256, can
/// verify the user) plugged in, `b` (Ed25519, touch only) in the drawer.
/// One try per login, so a refused assertion ends it.
fn bed_with(uv: bool, tries: u32) -> Bed {
    let keys = SoftAuthenticator::new();
    let a = SoftKey::new("key-a", Alg::Es256, true);
    let b = SoftKey::new("key-b", Alg::Ed25519, false);
    keys.plug(&a);
    let d = TestDaemon::start_with_factors(|c| c.login.max_tries = tries, registry(&keys, uv));
    Bed { d, keys, a, b }
}

/// Enrolls the plugged-in key for alice through the generic requests
/// (its name the daemon's choice).
fn enroll(d: &TestDaemon) -> Response {
    enroll_named(d, None)
}

/// Enrolls the plugged-in key for alice under `name`.
fn enroll_named(d: &TestDaemon, name: Option<&str>) -> Response {
    match d.call(&Request::EnrollStartNamed {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: name.map(str::to_owned),
        pin: None,
    }) {
        Response::Done { message } => assert!(message.contains("pam://"), "{message}"),
        other => panic!("enroll start: {other:?}"),
    }
    d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: Method::FIDO2,
        code: Secret::from(""),
    })
}

/// A bed with key `a` enrolled; returns alice's backup codes too.
fn enrolled_with(uv: bool, tries: u32) -> (Bed, Vec<String>) {
    let bed = bed_with(uv, tries);
    let codes = match enroll(&bed.d) {
        Response::BackupCodes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("enroll confirm: {other:?}"),
    };
    (bed, codes)
}

fn enrolled() -> Bed {
    enrolled_with(false, 1).0
}

/// A local login of alice (console: no PAM_RHOST), service `tf`.
fn login(d: &TestDaemon, conv: Conversation) -> (PamCode, Transcript) {
    PamLogin::new(d.pam().dir(), "tf", "alice")
        .unwrap()
        .tty("tty1")
        .authenticate(conv)
        .unwrap()
}

fn audit(d: &TestDaemon, event: &str) -> Vec<String> {
    d.sqlite3(&format!(
        "SELECT method, detail FROM audit WHERE user = 'alice' AND event = '{event}' ORDER BY id"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// A login the key answers misbehaving with `fault` is refused, as a
/// failure whose audited reason contains `reason`.
fn refused(bed: &Bed, fault: Fault, reason: &str) {
    bed.a.set_fault(fault);
    let before = audit(&bed.d, "login_success").len();
    let (code, t) = login(&bed.d, Conversation::new());
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    assert_eq!(t.infos(), [CUE], "{t:?}");
    assert_eq!(audit(&bed.d, "login_success").len(), before);
    let failures = audit(&bed.d, "login_failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("|") && failures[0].contains(&format!("reason={reason}")),
        "{failures:?}"
    );
}

#[test]
fn a_key_enrolls_and_a_touch_opens_a_console_login() {
    let bed = enrolled();
    let touched = bed.a.touches();
    let (code, t) = login(&bed.d, Conversation::new());
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    // The cue before the wait, and no code prompt.
    assert_eq!(t.infos(), [CUE]);
    assert!(t.prompts().is_empty(), "{t:?}");
    assert_eq!(bed.a.touches(), touched + 1);
    assert_eq!(audit(&bed.d, "enroll"), ["fido2|via=cli"]);
    assert_eq!(audit(&bed.d, "login_success"), ["fido2|uv=none"]);
    // Again: the counter grew, the challenge is new.
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    match bed.d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => {
            assert_eq!(s.factors.len(), 1, "{s:?}");
            assert_eq!(s.factors[0].method, Method::FIDO2);
            assert!(s.factors[0].last_used.is_some(), "{s:?}");
        }
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn a_second_key_logs_in_and_the_first_is_not_registered_twice() {
    let bed = enrolled();
    // The first key again: its credential is excluded.
    let again = bed.d.call(&Request::EnrollStartNamed {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: Some("again".into()),
        pin: None,
    });
    assert!(failed_kind(&again).is_some(), "{again:?}");
    bed.keys.unplug("key-a");
    bed.keys.plug(&bed.b);
    match enroll_named(&bed.d, Some("YubiKey 5")) {
        // Not the first factor: no new backup codes are issued.
        Response::BackupCodes { .. } | Response::Done { .. } => {}
        other => panic!("second key: {other:?}"),
    }
    let (code, t) = login(&bed.d, Conversation::new());
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    // Registration, confirmation, this login.
    assert_eq!(bed.b.touches(), 3, "{t:?}");
    // Both plugged in: the silent check finds a key holding a credential.
    bed.keys.plug(&bed.a);
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    bed.keys.unplug("key-b");
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    assert_eq!(audit(&bed.d, "login_success").len(), 3);
    let s = status(&bed.d);
    let mut names: Vec<&str> = s.credentials.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["YubiKey 5", "key-1"], "{s:?}");
    assert!(s.credentials.iter().all(|k| k.detail.starts_with("pam://")));
    // The same name twice is refused.
    let dup = bed.d.call(&Request::EnrollStartNamed {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: Some("YubiKey 5".into()),
        pin: None,
    });
    assert!(failed_kind(&dup).is_some(), "{dup:?}");
}

fn status(d: &TestDaemon) -> twofold_proto::UserStatus {
    match d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => s,
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn removing_one_key_by_name_keeps_the_other_and_the_backup_codes() {
    let bed = enrolled();
    bed.keys.unplug("key-a");
    bed.keys.plug(&bed.b);
    enroll_named(&bed.d, Some("spare"));
    match bed.d.call(&Request::RemoveCredential {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: "key-1".into(),
        code: None,
    }) {
        Response::Done { message } => assert!(message.contains("key-1"), "{message}"),
        other => panic!("remove: {other:?}"),
    }
    assert_eq!(audit(&bed.d, "factor_removed"), ["fido2|name=key-1"]);
    let s = status(&bed.d);
    let names: Vec<&str> = s.credentials.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["spare"]);
    assert_eq!(s.backup_codes_left, 10);
    // The removed key no longer opens a login (the silent check finds
    // nothing it holds: the code prompt, no cue); the other one does.
    bed.keys.plug(&bed.a);
    bed.keys.unplug("key-b");
    let (code, t) = login(&bed.d, Conversation::new());
    assert_ne!(code, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "{t:?}");
    bed.keys.plug(&bed.b);
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    // An unknown name removes nothing.
    let none = bed.d.call(&Request::RemoveCredential {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: "key-1".into(),
        code: None,
    });
    assert!(failed_kind(&none).is_some(), "{none:?}");
}

#[test]
fn the_cli_enrolls_lists_and_removes_a_named_key_for_another_user_as_admin() {
    let bed = bed_with(false, 1);
    let out = bed
        .d
        .twofold(&["enroll", "fido2", "--user", "alice", "--name", "desk key"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Touch your security key"), "{err}");
    let out = bed.d.twofold(&["status", "--user", "alice"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Security keys:      \"desk key\" (fido2, pam://"),
        "{text}"
    );
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    let out = bed
        .d
        .twofold(&["remove", "fido2", "--user", "alice", "--name", "desk key"]);
    assert!(out.status.success(), "{out:?}");
    assert!(status(&bed.d).credentials.is_empty());
}

#[test]
fn removing_the_keys_unenrolls_and_the_key_is_asked_nothing() {
    let bed = enrolled();
    match bed.d.call(&Request::RemoveFactor {
        user: Some("alice".into()),
        method: Method::FIDO2,
        code: None,
    }) {
        Response::Done { .. } => {}
        other => panic!("remove: {other:?}"),
    }
    assert_eq!(audit(&bed.d, "factor_removed"), ["fido2|"]);
    let touched = bed.a.touches();
    let (code, t) = login(&bed.d, Conversation::new());
    assert_ne!(code, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "{t:?}");
    assert_eq!(bed.a.touches(), touched);
}

#[test]
fn an_assertion_for_another_rp_id_is_refused() {
    refused(&enrolled(), Fault::WrongRpId, "wrong_rp_id");
}

#[test]
fn flags_changed_after_signing_are_refused() {
    // UV set by someone other than the key: the signature no longer holds.
    refused(&enrolled(), Fault::FlipFlags(0x04), "bad_signature");
}

#[test]
fn tampered_authenticator_data_is_refused() {
    refused(&enrolled(), Fault::TamperAuthData, "bad_signature");
}

#[test]
fn a_signature_by_another_key_is_refused() {
    refused(&enrolled(), Fault::OtherKey, "bad_signature");
}

#[test]
fn a_counter_that_does_not_grow_is_refused_as_a_possible_clone() {
    refused(&enrolled(), Fault::CounterStuck, "possible_cloned_key");
}

#[test]
fn a_counter_that_went_back_is_refused_as_a_possible_clone() {
    let bed = enrolled();
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    // A clone made before that login signs with the older counter.
    bed.a.set_counter(1);
    refused(&bed, Fault::None, "possible_cloned_key");
}

#[test]
fn an_assertion_without_user_presence_is_refused() {
    refused(&enrolled(), Fault::NoPresence, "user_not_present");
}

#[test]
fn an_assertion_without_user_verification_is_refused_when_required() {
    let (bed, _) = enrolled_with(true, 1);
    refused(&bed, Fault::NoVerification, "user_not_verified");
}

#[test]
fn verify_services_require_user_verification_on_the_services_named_only() {
    let keys = SoftAuthenticator::new();
    let a = SoftKey::new("key-a", Alg::Es256, true);
    keys.plug(&a);
    let mut r = Registry::builtin();
    // Neither override: the wait and the verification come from [fido2].
    r.register(Arc::new(Fido2::new(keys.clone())));
    let d = TestDaemon::start_with_factors(
        |c| {
            c.login.max_tries = 1;
            c.fido2.verify_services = vec!["tf".into()];
        },
        r,
    );
    assert!(matches!(enroll(&d), Response::BackupCodes { .. }));
    a.set_fault(Fault::NoVerification);
    let pam = d.pam();
    pam.twofold(
        "other",
        &[&format!("socket={}", d.socket().display()), "timeout=2"],
    )
    .unwrap();
    let (rc, t) = PamLogin::new(pam.dir(), "other", "alice")
        .unwrap()
        .authenticate(Conversation::new())
        .unwrap();
    assert_eq!(rc, PAM_SUCCESS, "touch only: {t:?}");
    let (rc, t) = login(&d, Conversation::new());
    assert_eq!(rc, PAM_AUTH_ERR, "{t:?}");
    let failures = audit(&d, "login_failure");
    assert!(
        failures[0].contains("reason=user_not_verified"),
        "{failures:?}"
    );
}

#[test]
fn user_verification_when_required_and_given_opens_the_login() {
    let (bed, _) = enrolled_with(true, 1);
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    // The key verified its user itself (no PIN asked): said in the row.
    assert_eq!(audit(&bed.d, "login_success"), ["fido2|uv=builtin"]);
}

#[test]
fn a_replayed_assertion_is_refused() {
    let bed = enrolled();
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    refused(&bed, Fault::Replay, "bad_signature");
}

#[test]
fn an_assertion_over_another_conversations_challenge_is_refused() {
    let bed = enrolled();
    assert_eq!(login(&bed.d, Conversation::new()).0, PAM_SUCCESS);
    refused(&bed, Fault::ForeignChallenge, "bad_signature");
}

#[test]
fn an_assertion_by_an_unknown_credential_is_refused() {
    refused(&enrolled(), Fault::UnknownCredential, "unknown_credential");
}

#[test]
fn a_key_never_touched_is_cancelled_at_the_deadline_and_the_code_prompt_follows() {
    let (bed, codes) = enrolled_with(false, 3);
    bed.a.set_fault(Fault::NeverTouched);
    let start = Instant::now();
    let asked = Arc::new(Mutex::new(None));
    let seen = asked.clone();
    let code = codes[0].clone();
    let conv = Conversation::new().respond_with(move |_| {
        *seen.lock().unwrap() = Some(start.elapsed());
        Reply::Answer(code.clone())
    });
    let (rc, t) = login(&bed.d, conv);
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [CUE]);
    assert_eq!(t.prompts(), ["Verification code: "]);
    let at = asked.lock().unwrap().expect("prompted");
    assert!(at >= DEADLINE, "{at:?}");
    assert!(at < DEADLINE + Duration::from_secs(1), "{at:?}");
    assert_eq!(bed.a.cancels(), 1);
    // No touch is no failure.
    assert!(audit(&bed.d, "login_failure").is_empty());
    assert_eq!(audit(&bed.d, "login_success"), ["backup_code|"]);
}

#[test]
fn the_pam_client_going_away_mid_wait_cancels_the_operation() {
    let bed = enrolled();
    bed.a.set_fault(Fault::NeverTouched);
    let mut c = Client::connect(bed.d.socket(), Duration::from_secs(5), "test").unwrap();
    c.send(&Request::Begin {
        user: "alice".into(),
        service: "login".into(),
        rhost: None,
        tty: Some("tty1".into()),
        ruser: None,
        ssh_auth_info: None,
    })
    .unwrap();
    match c.recv().unwrap() {
        Response::Wait { text } => assert_eq!(text, CUE),
        other => panic!("expected the cue: {other:?}"),
    }
    c.send(&Request::Ack).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(c);
    let start = Instant::now();
    while bed.a.stopped_by_client() == 0 && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(bed.a.stopped_by_client(), 1);
    assert_eq!(bed.a.cancels(), 0, "stopped before the deadline");
}

#[test]
fn no_key_plugged_in_goes_to_the_code_prompt_at_once() {
    let (bed, codes) = enrolled_with(false, 3);
    bed.keys.unplug("key-a");
    let start = Instant::now();
    let (rc, t) = login(&bed.d, answers(&[&codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "no cue: {t:?}");
    assert!(start.elapsed() < DEADLINE, "{:?}", start.elapsed());
}

#[test]
fn a_plugged_key_without_an_enrolled_credential_goes_to_the_code_prompt_at_once() {
    let (bed, codes) = enrolled_with(false, 3);
    bed.keys.unplug("key-a");
    bed.keys.plug(&bed.b);
    let (rc, t) = login(&bed.d, answers(&[&codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "no cue: {t:?}");
    assert_eq!(bed.b.touches(), 0);
}

#[test]
fn a_remote_login_or_sshd_is_never_offered_the_key() {
    let (bed, codes) = enrolled_with(false, 3);
    let pam = bed.d.pam();
    let (rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .unwrap()
        .rhost("198.51.100.7")
        .authenticate(answers(&[&codes[0]]))
        .unwrap();
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "{t:?}");
    pam.twofold(
        "sshd",
        &[&format!("socket={}", bed.d.socket().display()), "timeout=2"],
    )
    .unwrap();
    let (rc, t) = PamLogin::new(pam.dir(), "sshd", "alice")
        .unwrap()
        .authenticate(answers(&[&codes[1]]))
        .unwrap();
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "{t:?}");
    assert_eq!(bed.a.touches(), 2, "registration and confirmation only");
}

#[test]
fn the_default_hid_backend_finds_no_key_here_and_the_code_prompt_follows_at_once() {
    let (bed, codes) = enrolled_with(false, 3);
    // The same database, served by a daemon with the built-in factors:
    // FIDO2 over USB HID, where this machine has no device.
    let hid = bed.d.beside_with_factors(Registry::builtin());
    let start = Instant::now();
    let (rc, t) = login(&hid, answers(&[&codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "{t:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_twofoldd_binary_with_the_hid_backend_prints_nothing_on_stdout_and_prompts_at_once() {
    let (bed, codes) = enrolled_with(false, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut config = bed.d.config().clone();
    config.daemon.socket = dir.path().join("twofoldd.sock");
    let stdout = dir.path().join("stdout");
    let out = stdout.clone();
    let child = DaemonProcess::start_with(dir.path(), &config, move |twofoldd, file| {
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(r#"exec "$0" --config "$1" >"$2""#)
            .arg(twofoldd)
            .arg(file)
            .arg(&out);
        c
    });
    let pam = twofold_tests::PamConfig::new().unwrap();
    pam.twofold(
        "tf",
        &[
            &format!("socket={}", config.daemon.socket.display()),
            "timeout=2",
        ],
    )
    .unwrap();
    let start = Instant::now();
    let (rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .unwrap()
        .tty("tty1")
        .authenticate(answers(&[&codes[0]]))
        .unwrap();
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "no key here, no cue: {t:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    drop(child);
    let printed = std::fs::read(&stdout).unwrap();
    assert!(
        printed.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&printed)
    );
}
