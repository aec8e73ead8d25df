//! Hardware OATH tokens (HOTP, RFC 4226; issue 16): enrolled by an admin
//! with the real CLI from a secret file, codes from `oathtool --hotp` (an
//! implementation apart from the daemon's), logins through the real
//! libpam.

use std::process::Command;
use std::sync::{Arc, Barrier};
use twofold_proto::Method;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::pam::*;
use twofold_tests::require_programs;

/// RFC 4226 appendix D's key, "12345678901234567890".
const KEY: &str = "3132333435363738393031323334353637383930";

/// `oathtool --hotp`'s code of counter value `n` for [`KEY`].
fn hotp(n: u64) -> String {
    require_programs(&["oathtool"]);
    let out = Command::new("oathtool")
        .args(["--hotp", "-c", &n.to_string(), KEY])
        .output()
        .expect("run oathtool");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn daemon() -> TestDaemon {
    TestDaemon::start_with(|c| c.login.max_tries = 1)
}

/// `twofold admin enroll hotp` from a secret file; the CLI's output.
fn enroll(d: &TestDaemon, user: &str, secret: &str, extra: &[&str]) -> std::process::Output {
    let file = d.dir().join(format!("{user}.key"));
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let path = file.display().to_string();
    let mut args = vec![
        "admin",
        "enroll",
        "hotp",
        "--user",
        user,
        "--secret-file",
        &path,
    ];
    args.extend_from_slice(extra);
    d.twofold(&args)
}

fn login(d: &TestDaemon, user: &str, code: &str) -> PamCode {
    let pam = d.pam();
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(Conversation::new().answer(code))
        .unwrap()
        .0
}

/// Each counter value opens one login; codes ahead of the counter within
/// the window are accepted (a token pressed a few times meanwhile), and
/// the values they skipped are refused afterwards.
#[test]
fn each_counter_value_is_accepted_once_within_the_look_ahead_window() {
    let d = daemon();
    let out = enroll(&d, "alice", KEY, &["--name", "yk-123"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(hotp(0), "755224", "RFC 4226's test vector");

    assert_eq!(login(&d, "alice", &hotp(0)), PAM_SUCCESS);
    assert_eq!(
        login(&d, "alice", &hotp(0)),
        PAM_AUTH_ERR,
        "a value opens one login"
    );
    assert_eq!(login(&d, "alice", &hotp(1)), PAM_SUCCESS);
    assert_eq!(
        login(&d, "alice", &hotp(5)),
        PAM_SUCCESS,
        "three presses skipped"
    );
    assert_eq!(
        login(&d, "alice", &hotp(3)),
        PAM_AUTH_ERR,
        "behind the counter"
    );
    // The window is the 10 values after the last one accepted (5).
    assert_eq!(
        login(&d, "alice", &hotp(16)),
        PAM_AUTH_ERR,
        "beyond the window"
    );
    assert_eq!(
        login(&d, "alice", &hotp(15)),
        PAM_SUCCESS,
        "the window's last value"
    );

    let rows =
        d.sqlite3("SELECT event, method, detail FROM audit WHERE user = 'alice' ORDER BY id");
    assert!(rows.contains("enroll|hotp|name=yk-123 counter=0"), "{rows}");
    assert_eq!(rows.matches("login_success|hotp").count(), 4, "{rows}");
    let everything = format!(
        "{}\n{}\n{rows}",
        d.log_text(),
        d.sqlite3("SELECT * FROM audit")
    );
    assert!(!everything.contains(KEY), "the secret leaked");
}

/// A token pressed far ahead is brought back with two consecutive codes;
/// two codes that are not consecutive are refused and change nothing.
#[test]
fn resync_after_drift_takes_two_consecutive_codes() {
    let d = daemon();
    assert!(enroll(&d, "alice", KEY, &[]).status.success());
    assert_eq!(login(&d, "alice", &hotp(40)), PAM_AUTH_ERR, "drifted");

    let out = d.twofold(&[
        "admin",
        "hotp-resync",
        "--user",
        "alice",
        &hotp(40),
        &hotp(42),
    ]);
    assert!(!out.status.success(), "not consecutive: {out:?}");
    let out = d.twofold(&[
        "admin",
        "hotp-resync",
        "--user",
        "alice",
        &hotp(40),
        &hotp(41),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("its next code is number 42"),
        "{out:?}"
    );
    assert_eq!(
        login(&d, "alice", &hotp(41)),
        PAM_AUTH_ERR,
        "spent by the resync"
    );
    assert_eq!(login(&d, "alice", &hotp(42)), PAM_SUCCESS);
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'admin'");
    assert!(rows.contains("action=hotp_resync counter=41"), "{rows}");
}

/// Two logins racing with one code: exactly one gets in.
#[test]
fn two_concurrent_logins_with_one_code_let_exactly_one_in() {
    let d = Arc::new(daemon());
    assert!(enroll(&d, "alice", KEY, &[]).status.success());
    for n in 0..5 {
        let code = hotp(n);
        let barrier = Arc::new(Barrier::new(2));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (d, code, barrier) = (d.clone(), code.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let pam = d.pam();
                    let login = PamLogin::new(pam.dir(), "tf", "alice").unwrap();
                    barrier.wait();
                    login
                        .authenticate(Conversation::new().answer(&code))
                        .unwrap()
                        .0
                })
            })
            .collect();
        let codes: Vec<PamCode> = runs.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            codes.iter().filter(|c| **c == PAM_SUCCESS).count(),
            1,
            "value {n}: {codes:?}"
        );
    }
}

/// A person with an authenticator app and a token: both kinds of six-digit
/// code work (a code that is not TOTP's is tried as the token's).
#[test]
fn totp_and_hotp_side_by_side() {
    let d = daemon();
    let alice = d.enroll("alice");
    assert!(enroll(&d, "alice", KEY, &[]).status.success());
    assert_eq!(login(&d, "alice", &hotp(0)), PAM_SUCCESS);
    let code = d.code(&alice.secret, 0);
    assert_eq!(login(&d, "alice", &code), PAM_SUCCESS);
    let status = d.twofold(&["status", "--user", "alice"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("totp") && shown.contains("hotp"), "{shown}");
}

/// Malformed secrets are refused with a clear error naming the file, and
/// nothing is enrolled; base32 is read with --base32.
#[test]
fn malformed_secret_files_enroll_nothing() {
    let d = daemon();
    for (secret, extra) in [
        ("31323g", &[][..]),
        ("313", &[]),
        ("", &[]),
        ("not base32!", &["--base32"][..]),
    ] {
        let out = enroll(&d, "alice", secret, extra);
        assert_eq!(out.status.code(), Some(2), "{secret:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("alice.key"), "{err}");
    }
    // Too short for RFC 4226 (under 128 bits): refused by the daemon.
    let out = enroll(&d, "alice", "31323334", &[]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(
        d.sqlite3("SELECT count(*) FROM credentials WHERE method = 'hotp'")
            .trim(),
        "0"
    );
    // The RFC key in base32.
    let out = enroll(
        &d,
        "alice",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        &["--base32"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(login(&d, "alice", &hotp(0)), PAM_SUCCESS);
    assert!(Method::KNOWN.contains(&Method::HOTP));
}

/// Regression (review, session 6): an account whose only factor is a token
/// (or an address, or a key) could have a TOTP authenticator added by any
/// process running as the user, with no proof: the process holds the new
/// secret and passes every prompt from then on. Now the start asks for a
/// current code of a factor that authorizes, spent and audited first.
#[test]
fn regression_a_process_running_as_a_token_user_cannot_add_an_authenticator_of_its_own() {
    use std::io::Write;
    use twofold_proto::{ErrorKind, Request, Secret};
    use twofold_tests::daemon::{bin_path, failed_kind};
    let d = daemon();
    // root's own account, as a process of root's would ask (self-service).
    assert!(enroll(&d, "root", KEY, &[]).status.success());
    let pending_totp = || {
        d.sqlite3("SELECT count(*) FROM credentials WHERE method = 'totp'")
            .trim()
            .to_owned()
    };
    // The attack: the old request, no code.
    let r = d.call(&Request::TotpEnrollStart {
        user: None,
        algorithm: None,
        digits: None,
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    assert_eq!(pending_totp(), "0", "no secret handed out");
    // A wrong code is refused, counted and audited.
    let start = |code: &str| {
        d.call(&Request::EnrollStart {
            user: None,
            method: Method::TOTP,
            algorithm: None,
            digits: None,
            address: None,
            code: Some(Secret::from(code)),
        })
    };
    let r = start("000000");
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
    assert_eq!(pending_totp(), "0");
    let failures = d.sqlite3("SELECT count(*) FROM failures WHERE user = 'root'");
    assert_eq!(failures.trim(), "1");
    // The token's current code authorizes it; through the CLI, which asks
    // for that code when the daemon wants one (read from stdin here).
    let mut cli = Command::new(bin_path("twofold"))
        .arg("--socket")
        .arg(d.socket())
        .args(["enroll", "totp", "--no-confirm", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run twofold");
    writeln!(cli.stdin.take().unwrap(), "{}", hotp(0)).unwrap();
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("otpauth://"),
        "{out:?}"
    );
    assert_eq!(pending_totp(), "1");
    let authorized = d.sqlite3("SELECT count(*) FROM audit WHERE event = 'enroll_authorized'");
    assert_eq!(authorized.trim(), "1");
    // The same press does not authorize twice.
    let r = start(&hotp(0));
    assert_eq!(failed_kind(&r), Some(ErrorKind::InvalidCode), "{r:?}");
}

/// Regression (review, session 6): an enrollment started while the account
/// had no factor needed no code; confirming it later, after the person had
/// been given a factor, needed none either. A process running as the user
/// could start a TOTP early, keep its secret, and add it once the account
/// was protected. Now such a pending enrollment is refused at confirmation.
#[test]
fn regression_an_enrollment_started_before_the_first_factor_cannot_be_confirmed_after_it() {
    use twofold_proto::{ErrorKind, Request, Response};
    use twofold_tests::daemon::failed_kind;
    let d = daemon();
    // The attacker, as root's process, while root has no factor.
    let pending = match d.call(&Request::TotpEnrollStart {
        user: None,
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p,
        other => panic!("{other:?}"),
    };
    // Root is given a token by the admin, a minute later.
    d.clock.advance(60);
    assert!(enroll(&d, "root", KEY, &[]).status.success());
    d.clock.advance(30);
    let code = d.code(pending.secret.expose(), 0);
    let r = d.call(&Request::TotpEnrollConfirm {
        user: None,
        code: code.as_str().into(),
    });
    assert_eq!(failed_kind(&r), Some(ErrorKind::Conflict), "{r:?}");
    assert_eq!(
        d.sqlite3(
            "SELECT count(*) FROM credentials WHERE method = 'totp' AND confirmed_at IS NOT NULL"
        )
        .trim(),
        "0"
    );
    // The TOTP login the attacker hoped for is refused.
    assert_eq!(
        login(&d, "root", &d.code(pending.secret.expose(), 0)),
        PAM_AUTH_ERR
    );
}
