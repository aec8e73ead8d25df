//! FIDO2 at the login, past the touch: the key's PIN asked by the daemon
//! where `verify_services` requires user verification (wrong, right,
//! blocked, never logged, never a wrong code), a key that cannot verify,
//! the cue as a prompt answered by Enter (`cue_prompt_services`), and a
//! key busy with another login — through the real libpam and the built
//! pam_twofold.so, with the software authenticator as the key.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_daemon::factors::fido2::soft::{Alg, Fault, SoftAuthenticator, SoftKey, PIN_TRIES};
use twofold_daemon::factors::fido2::{
    Fido2, BUSY, CUE, CUE_PROMPT, NO_VERIFICATION, PIN_ASKED, PIN_AUTH_BLOCKED, PIN_BLOCKED,
    PIN_PROMPT,
};
use twofold_daemon::factors::Registry;
use twofold_proto::{ErrorKind, Method, Request, Response, Secret};
use twofold_tests::daemon::{bin_path, TestDaemon};
use twofold_tests::pam::*;

const CODE_PROMPT: &str = "Verification code: ";
/// The PIN of the keys here, and a wrong one: distinctive, to be looked for
/// in every log.
const PIN: &str = "739184265";
const WRONG: &str = "461093827";

struct Bed {
    d: TestDaemon,
    key: Arc<SoftKey>,
    codes: Vec<String>,
}

/// A daemon whose logins wait `deadline` for a touch of software `key`
/// (plugged in, enrolled for alice: with `pin` for a key that has one),
/// with `edit` applied to the config.
fn bed(
    key: Arc<SoftKey>,
    pin: Option<&str>,
    uv: Option<bool>,
    deadline: Duration,
    edit: impl FnOnce(&mut twofold_config::Config),
) -> Bed {
    let keys = SoftAuthenticator::new();
    keys.plug(&key);
    let mut r = Registry::builtin();
    let mut f = Fido2::new(keys.clone()).deadline(deadline);
    if let Some(uv) = uv {
        f = f.require_uv(uv);
    }
    r.register(Arc::new(f));
    let d = TestDaemon::start_with_factors(edit, r);
    match d.call(&Request::EnrollStartNamed {
        user: Some("alice".into()),
        method: Method::FIDO2,
        name: None,
        pin: pin.map(Secret::from),
    }) {
        Response::Done { .. } => {}
        other => panic!("enroll start: {other:?}"),
    }
    let codes = match d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: Method::FIDO2,
        code: Secret::from(""),
    }) {
        Response::BackupCodes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("enroll confirm: {other:?}"),
    };
    Bed { d, key, codes }
}

/// A key with a PIN on a daemon that requires verification; `tries`
/// logins' answers before a lock.
fn pin_bed(tries: u32) -> Bed {
    bed(
        SoftKey::with_pin("key-p", Alg::Es256, PIN),
        Some(PIN),
        Some(true),
        Duration::from_secs(1),
        |c| c.login.max_tries = tries,
    )
}

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

#[test]
fn the_keys_pin_is_asked_hidden_and_opens_the_login_with_the_touch() {
    let b = pin_bed(1);
    let (rc, t) = login(&b.d, answers(&[PIN]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [PIN_ASKED, CUE], "{t:?}");
    assert_eq!(t.prompts(), [PIN_PROMPT], "{t:?}");
    // The success row says the key verified its user with the PIN.
    assert_eq!(audit(&b.d, "login_success"), ["fido2|uv=pin"]);
    assert_eq!(b.key.pin_retries(), PIN_TRIES);
}

#[test]
fn a_wrong_pin_is_said_with_the_tries_left_and_asked_again_without_counting_a_failure() {
    // One try per login: a wrong PIN counted as a wrong code would end it.
    let b = pin_bed(1);
    let (rc, t) = login(&b.d, answers(&[WRONG, PIN]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(
        t.infos(),
        [PIN_ASKED, "Wrong PIN (7 tries left).", CUE],
        "{t:?}"
    );
    assert_eq!(t.prompts(), [PIN_PROMPT, PIN_PROMPT]);
    assert!(audit(&b.d, "login_failure").is_empty());
    assert_eq!(audit(&b.d, "login_success"), ["fido2|uv=pin"]);
    // The right PIN gave the key its tries back.
    assert_eq!(b.key.pin_retries(), PIN_TRIES);
}

#[test]
fn three_wrong_pins_in_a_row_stop_the_key_and_the_code_prompt_follows() {
    let b = pin_bed(1);
    let (rc, t) = login(&b.d, answers(&[WRONG, WRONG, WRONG, &b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(
        t.infos(),
        [
            PIN_ASKED,
            "Wrong PIN (7 tries left).",
            "Wrong PIN (6 tries left).",
            PIN_AUTH_BLOCKED
        ],
        "{t:?}"
    );
    assert_eq!(
        t.prompts(),
        [PIN_PROMPT, PIN_PROMPT, PIN_PROMPT, CODE_PROMPT]
    );
    assert!(audit(&b.d, "login_failure").is_empty());
    assert_eq!(audit(&b.d, "login_success"), ["backup_code|"]);
    assert_eq!(b.key.touches(), 2, "registration and confirmation only");
}

#[test]
fn a_blocked_pin_is_explained_audited_and_the_code_prompt_follows() {
    let b = pin_bed(1);
    // The last try goes wrong: the key blocks its PIN.
    b.key.set_pin_retries(1);
    let (rc, t) = login(&b.d, answers(&[WRONG, &b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [PIN_ASKED, PIN_BLOCKED], "{t:?}");
    assert_eq!(t.prompts(), [PIN_PROMPT, CODE_PROMPT]);
    assert_eq!(b.key.pin_retries(), 0);
    // Blocked from the start: no PIN is asked at all.
    let (rc, t) = login(&b.d, answers(&[&b.codes[1]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [PIN_BLOCKED], "{t:?}");
    assert_eq!(t.prompts(), [CODE_PROMPT]);
    assert_eq!(
        audit(&b.d, "security_key_refused"),
        ["fido2|reason=pin_blocked", "fido2|reason=pin_blocked"]
    );
    assert!(audit(&b.d, "login_failure").is_empty());
}

#[test]
fn an_empty_pin_skips_to_the_code_prompt() {
    let b = pin_bed(1);
    let (rc, t) = login(&b.d, answers(&["", &b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), [PIN_PROMPT, CODE_PROMPT]);
    assert_eq!(b.key.pin_retries(), PIN_TRIES, "nothing was tried");
}

#[test]
fn the_pin_never_reaches_the_log_the_syslog_or_the_audit_trail() {
    let b = pin_bed(1);
    assert_eq!(login(&b.d, answers(&[WRONG, PIN])).0, PAM_SUCCESS);
    let (rc, _) = login(&b.d, answers(&[WRONG, WRONG, WRONG, &b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS);
    let audit_rows = b.d.sqlite3("SELECT * FROM audit");
    let syslog = b.d.syslog.lines().join("\n");
    let log = b.d.log_text();
    assert!(log.contains("login"), "the log is captured: {log}");
    assert!(audit_rows.contains("fido2"), "{audit_rows}");
    for (name, text) in [("log", &log), ("syslog", &syslog), ("audit", &audit_rows)] {
        for secret in [PIN, WRONG] {
            assert!(!text.contains(secret), "{name} holds a PIN: {text}");
        }
    }
}

#[test]
fn required_verification_refuses_a_key_without_pin_or_fingerprint_before_any_touch() {
    let b = bed(
        SoftKey::new("key-t", Alg::Ed25519, false),
        None,
        Some(true),
        Duration::from_secs(1),
        |c| c.login.max_tries = 1,
    );
    let (rc, t) = login(&b.d, answers(&[&b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [NO_VERIFICATION], "{t:?}");
    assert_eq!(t.prompts(), [CODE_PROMPT]);
    assert_eq!(b.key.touches(), 2, "registration and confirmation only");
    assert_eq!(
        audit(&b.d, "security_key_refused"),
        ["fido2|reason=no_user_verification"]
    );
    assert!(audit(&b.d, "login_failure").is_empty());
}

#[test]
fn a_service_without_required_verification_never_asks_the_pin() {
    let b = bed(
        SoftKey::with_pin("key-p", Alg::Es256, PIN),
        Some(PIN),
        None,
        Duration::from_secs(1),
        |c| c.fido2.verify_services = vec!["gdm-password".into()],
    );
    let (rc, t) = login(&b.d, Conversation::new());
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [CUE], "{t:?}");
    assert!(t.prompts().is_empty(), "{t:?}");
}

/// A bed whose service `tf` shows the cue as a prompt.
fn cue_bed(deadline: Duration) -> Bed {
    bed(
        SoftKey::new("key-a", Alg::Es256, true),
        None,
        Some(false),
        deadline,
        |c| {
            c.login.max_tries = 1;
            c.fido2.cue_prompt_services = vec!["tf".into()];
        },
    )
}

#[test]
fn the_cue_prompt_is_answered_by_enter_after_the_touch() {
    let b = cue_bed(Duration::from_secs(5));
    let (rc, t) = login(&b.d, answers(&[""]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), [CUE_PROMPT], "{t:?}");
    assert!(t.infos().is_empty(), "no information line: {t:?}");
    // Presence only: no PIN or built-in check was asked of the key.
    assert_eq!(audit(&b.d, "login_success"), ["fido2|uv=none"]);
}

#[test]
fn enter_at_the_cue_prompt_without_a_touch_skips_to_the_code_prompt_at_once() {
    let deadline = Duration::from_secs(5);
    let b = cue_bed(deadline);
    b.key.set_fault(Fault::NeverTouched);
    let start = Instant::now();
    let (rc, t) = login(&b.d, answers(&["", &b.codes[0]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), [CUE_PROMPT, CODE_PROMPT], "{t:?}");
    assert!(start.elapsed() < deadline / 2, "{:?}", start.elapsed());
    // The key's operation was stopped by the answer, not by the deadline.
    assert_eq!(b.key.stopped_by_client(), 1);
    assert_eq!(b.key.cancels(), 0);
    assert!(audit(&b.d, "login_failure").is_empty());
    assert_eq!(audit(&b.d, "login_success"), ["backup_code|"]);
}

#[test]
fn a_key_busy_with_another_login_says_so_and_the_code_prompt_follows_at_once() {
    let deadline = Duration::from_secs(5);
    let b = bed(
        SoftKey::new("key-a", Alg::Es256, true),
        None,
        Some(false),
        deadline,
        |c| c.login.max_tries = 1,
    );
    b.key.set_fault(Fault::NeverTouched);
    let first = {
        let pam = b.d.pam();
        let code = b.codes[0].clone();
        std::thread::spawn(move || {
            let r = PamLogin::new(pam.dir(), "tf", "alice")
                .unwrap()
                .tty("tty1")
                .authenticate(answers(&[&code]))
                .unwrap();
            drop(pam);
            r
        })
    };
    let start = Instant::now();
    while !b.key.busy() {
        assert!(start.elapsed() < deadline, "the first login never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = Instant::now();
    let (rc, t) = login(&b.d, answers(&[&b.codes[1]]));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [BUSY], "{t:?}");
    assert_eq!(t.prompts(), [CODE_PROMPT]);
    assert!(
        second.elapsed() < deadline / 2,
        "at once: {:?}",
        second.elapsed()
    );
    assert!(b.key.busy(), "the first login still waits");
    let (rc, t) = first.join().unwrap();
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.infos(), [CUE], "{t:?}");
}

#[test]
fn a_key_with_a_pin_enrolls_only_with_its_pin_and_a_wrong_one_is_told_with_the_tries_left() {
    let keys = SoftAuthenticator::new();
    let key = SoftKey::with_pin("key-p", Alg::Es256, PIN);
    keys.plug(&key);
    let mut r = Registry::builtin();
    r.register(Arc::new(Fido2::new(keys.clone())));
    let d = TestDaemon::start_with_factors(|_| {}, r);
    let start = |pin: Option<&str>| {
        d.call(&Request::EnrollStartNamed {
            user: Some("alice".into()),
            method: Method::FIDO2,
            name: None,
            pin: pin.map(Secret::from),
        })
    };
    match start(None) {
        Response::Failed { kind, message } => {
            assert_eq!(kind, ErrorKind::BadRequest);
            assert!(message.contains("--pin"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match start(Some(WRONG)) {
        Response::Failed { kind, message } => {
            assert_eq!(kind, ErrorKind::InvalidCode);
            assert!(message.contains("7 tries left"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(key.touches(), 0);
    // The CLI asks the PIN (a line of stdin here) and enrolls.
    let mut cli = std::process::Command::new(bin_path("twofold"))
        .arg("--socket")
        .arg(d.socket())
        .args(["enroll", "fido2", "--user", "alice", "--pin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cli.stdin
        .take()
        .unwrap()
        .write_all(format!("{PIN}\n").as_bytes())
        .unwrap();
    let out = cli.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Security key PIN: ") && !said.contains(PIN),
        "{said}"
    );
    assert_eq!(key.touches(), 2, "registration and confirmation");
    assert_eq!(key.pin_retries(), PIN_TRIES);
    assert!(!d.log_text().contains(PIN) && !d.log_text().contains(WRONG));
}
