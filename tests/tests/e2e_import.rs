//! Importers (issue 14): files made by the real `google-authenticator`
//! CLI and pam_oath-format files, imported with the real `twofold` CLI (a
//! dry run first, then `--apply`), then logins through the real libpam
//! with codes computed by `oathtool` from the imported secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::otp::oathtool;
use twofold_tests::pam::*;
use twofold_tests::require_programs;

fn daemon() -> TestDaemon {
    TestDaemon::start_with(|c| c.login.max_tries = 1)
}

fn login(d: &TestDaemon, user: &str, code: &str) -> PamCode {
    let pam = d.pam();
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(Conversation::new().answer(code))
        .unwrap()
        .0
}

/// A `.google_authenticator` made by the real CLI with `args`.
fn google_file(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    require_programs(&["google-authenticator", "oathtool"]);
    let path = dir.join(name);
    let out = Command::new("google-authenticator")
        .args(args)
        .args(["-f", "-C", "-q", "-s"])
        .arg(&path)
        .output()
        .expect("run google-authenticator");
    assert!(out.status.success(), "{out:?}");
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn has_factor(d: &TestDaemon, user: &str, method: &str) -> bool {
    d.sqlite3(&format!(
        "SELECT count(*) FROM credentials WHERE user = '{user}' AND method = '{method}' AND confirmed_at IS NOT NULL"
    ))
    .trim()
        == "1"
}

/// TOTP with scratch codes: the dry run writes nothing and reports each
/// setting; `--apply` enrolls; the app's code (oathtool on the file's
/// secret) logs in, and each scratch code once; the file is untouched.
#[test]
fn a_google_authenticator_totp_file_is_imported_and_logs_in() {
    let d = daemon();
    let file = google_file(
        d.dir(),
        "ga-totp",
        &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "5"],
    );
    let before = std::fs::read(&file).unwrap();
    let lines: Vec<String> = String::from_utf8(before.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let secret = lines[0].clone();
    let scratch: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with('"'))
        .skip(1)
        .collect();
    assert_eq!(scratch.len(), 5);
    let path = file.display().to_string();

    let dry = d.twofold(&[
        "admin",
        "import",
        "google-authenticator",
        "--from",
        &path,
        "--user",
        "alice",
    ]);
    assert!(dry.status.success(), "{}", text(&dry));
    let shown = text(&dry);
    assert!(shown.contains("Would import"), "{shown}");
    assert!(
        shown.contains("alice: totp (6 digits, 30 s), 5 scratch codes as backup codes"),
        "{shown}"
    );
    assert!(
        shown.contains("WINDOW_SIZE 3") && shown.contains("RATE_LIMIT 3 per 30 s"),
        "{shown}"
    );
    assert!(shown.contains("DISALLOW_REUSE"), "{shown}");
    assert!(
        !shown.contains(&secret) && !shown.contains(scratch[0].as_str()),
        "{shown}"
    );
    assert!(!has_factor(&d, "alice", "totp"), "a dry run writes nothing");

    let applied = d.twofold(&[
        "admin",
        "import",
        "google-authenticator",
        "--from",
        &path,
        "--user",
        "alice",
        "--apply",
    ]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(has_factor(&d, "alice", "totp"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the source file is untouched"
    );

    assert_eq!(login(&d, "alice", &oathtool(&secret, d.now())), PAM_SUCCESS);
    assert_eq!(login(&d, "alice", scratch[1]), PAM_SUCCESS);
    assert_eq!(
        login(&d, "alice", scratch[1]),
        PAM_AUTH_ERR,
        "a scratch code works once"
    );
    let rows = d.sqlite3("SELECT event, method, detail FROM audit WHERE event = 'enroll'");
    assert!(
        rows.contains("imported_from=google-authenticator:"),
        "{rows}"
    );
    assert!(rows.contains("scratch_codes=5"), "{rows}");
    let everything = format!("{}\n{}", d.log_text(), d.sqlite3("SELECT * FROM audit"));
    assert!(!everything.contains(&secret));

    // A second import finds the credential there and changes nothing.
    let again = d.twofold(&[
        "admin",
        "import",
        "google-authenticator",
        "--from",
        &path,
        "--user",
        "alice",
        "--apply",
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("NOT imported"), "{}", text(&again));
}

/// An HOTP file: the counter is kept, so the next press logs in.
#[test]
fn a_google_authenticator_hotp_file_keeps_its_counter() {
    let d = daemon();
    let file = google_file(d.dir(), "ga-hotp", &["-c", "-u", "-w", "5", "-e", "1"]);
    let content = std::fs::read_to_string(&file).unwrap();
    let secret = content.lines().next().unwrap().to_owned();
    let counter: u64 = content
        .lines()
        .find_map(|l| l.strip_prefix("\" HOTP_COUNTER "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let path = file.display().to_string();
    let out = d.twofold(&[
        "admin",
        "import",
        "google-authenticator",
        "--from",
        &path,
        "--user",
        "bob",
        "--apply",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let code = |c: u64| {
        let out = Command::new("oathtool")
            .args(["--hotp", "-b", "-c", &c.to_string(), &secret])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    if counter > 0 {
        assert_eq!(login(&d, "bob", &code(counter - 1)), PAM_AUTH_ERR, "behind");
    }
    assert_eq!(login(&d, "bob", &code(counter)), PAM_SUCCESS);
}

/// pam_oath's users.oath: HOTP and TOTP lines, counters kept; a
/// malformed line refuses the whole file, naming it and the line.
#[test]
fn a_users_oath_file_is_imported_and_a_malformed_one_imports_nothing() {
    require_programs(&["oathtool"]);
    let d = daemon();
    let key = "3132333435363738393031323334353637383930";
    let file = d.dir().join("users.oath");
    std::fs::write(
        &file,
        format!("# pam_oath\nHOTP carol - {key} 5\nHOTP/T30 dave - {key}\n"),
    )
    .unwrap();
    let path = file.display().to_string();
    let bad = d.dir().join("bad.oath");
    std::fs::write(
        &bad,
        format!("HOTP erin - {key} 0\nHOTP/T30 frank - {key} x\n"),
    )
    .unwrap();
    let out = d.twofold(&[
        "admin",
        "import",
        "oath",
        "--from",
        &bad.display().to_string(),
        "--apply",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("bad.oath: line 2:"), "{err}");
    assert!(!err.contains(key), "{err}");
    assert!(
        !has_factor(&d, "erin", "hotp"),
        "nothing is imported from a malformed file"
    );

    let out = d.twofold(&["admin", "import", "oath", "--from", &path, "--apply"]);
    assert!(out.status.success(), "{}", text(&out));
    let hotp = |c: u64| {
        let out = Command::new("oathtool")
            .args(["--hotp", "-c", &c.to_string(), key])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(login(&d, "carol", &hotp(4)), PAM_AUTH_ERR);
    assert_eq!(login(&d, "carol", &hotp(5)), PAM_SUCCESS);
    let totp = Command::new("oathtool")
        .args(["--totp", "--now", &format!("@{}", d.now()), key])
        .output()
        .unwrap();
    let code = String::from_utf8(totp.stdout).unwrap().trim().to_owned();
    assert_eq!(login(&d, "dave", &code), PAM_SUCCESS);
}
