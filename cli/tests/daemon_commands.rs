//! The built `twofold` binary against a fake daemon: output, requests sent,
//! and exit codes.

mod support;

use support::{twofold, FakeDaemon};
use twofold_proto::{
    Algorithm, ErrorKind, FactorStatus, Request, Response, Secret, TotpEnrollment, UserStatus,
};

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const URI: &str = "otpauth://totp/twofold:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=twofold&algorithm=SHA1&digits=6&period=30";
const GOOD: &str = "123456";
const WRONG: &str = "000000";

fn alice() -> UserStatus {
    UserStatus {
        user: "alice".into(),
        factors: vec![FactorStatus {
            method: twofold_proto::Method::TOTP,
            enrolled_at: 1_700_000_000,
            last_used: Some(1_709_251_200),
            destination: None,
        }],
        backup_codes_left: 7,
        pending_enrollment: false,
        grace_deadline: None,
        locked_until: None,
        temp_code: None,
        credentials: Vec::new(),
    }
}

fn pending() -> Response {
    Response::TotpPending(TotpEnrollment {
        user: "alice".into(),
        secret: Secret::from(SECRET),
        uri: Secret::from(URI),
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
        issuer: "twofold".into(),
    })
}

fn backup_codes() -> Response {
    Response::BackupCodes {
        codes: vec![Secret::from("abcde-fghij"), Secret::from("klmno-pqrst")],
    }
}

fn failed(kind: ErrorKind, message: &str) -> Response {
    Response::Failed {
        kind,
        message: message.into(),
    }
}

/// Answers like a daemon whose only valid TOTP code is [`GOOD`].
fn enrolling(req: &Request) -> Response {
    match req {
        Request::TotpEnrollStart { .. } => pending(),
        Request::TotpEnrollConfirm { code, .. } if code.expose() == GOOD => backup_codes(),
        Request::TotpEnrollConfirm { .. } => failed(ErrorKind::InvalidCode, "invalid code"),
        other => failed(
            ErrorKind::BadRequest,
            &format!("unexpected {}", other.kind()),
        ),
    }
}

fn confirm_codes(reqs: &[Request]) -> Vec<String> {
    reqs.iter()
        .filter_map(|r| match r {
            Request::TotpEnrollConfirm { code, .. } => Some(code.expose().to_owned()),
            _ => None,
        })
        .collect()
}

fn assert_no_code_shown(run: &support::Run, codes: &[&str]) {
    for c in codes {
        assert!(!run.stdout.contains(c), "stdout shows {c}: {}", run.stdout);
        assert!(!run.stderr.contains(c), "stderr shows {c}: {}", run.stderr);
    }
}

#[test]
fn status_text_shows_methods_times_and_counts() {
    let d = FakeDaemon::start("status", |_| Response::Status(alice()));
    let run = d.run(&["status"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("User:               alice\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("totp (enrolled 2023-11-14 22:13:20 UTC, last used 2024-03-01 00:00:00 UTC)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Backup codes left:  7\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Pending enrollment: no\n"),
        "{}",
        run.stdout
    );
    assert_eq!(d.requests(), vec![Request::Status { user: None }]);
}

#[test]
fn status_json_shape() {
    let d = FakeDaemon::start("status-json", |_| Response::Status(alice()));
    let run = d.run(&["status", "--json", "--user", "alice"], "");
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "user": "alice",
            "methods": [{"method": "totp", "enrolled_at": 1_700_000_000u64, "last_used": 1_709_251_200u64}],
            "backup_codes_left": 7,
            "pending_enrollment": false,
            "grace_deadline": null,
            "locked_until": null,
        })
    );
    assert_eq!(
        d.requests(),
        vec![Request::Status {
            user: Some("alice".into())
        }]
    );
}

#[test]
fn enroll_no_confirm_json_prints_secret_and_uri() {
    let d = FakeDaemon::start("enroll-json", enrolling);
    let run = d.run(
        &[
            "enroll",
            "totp",
            "--no-confirm",
            "--json",
            "--algorithm",
            "sha256",
            "--digits",
            "8",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["secret"], SECRET);
    assert_eq!(v["uri"], URI);
    assert_eq!(v["user"], "alice");
    assert_eq!(v["digits"], 6);
    assert!(
        run.stderr.contains("twofold enroll confirm"),
        "{}",
        run.stderr
    );
    assert_eq!(
        d.requests(),
        vec![Request::TotpEnrollStart {
            user: None,
            algorithm: Some(Algorithm::Sha256),
            digits: Some(8)
        }]
    );
}

#[test]
fn enroll_no_confirm_text_shows_qr_uri_and_grouped_secret() {
    let d = FakeDaemon::start("enroll-text", enrolling);
    let run = d.run(&["enroll", "totp", "--no-confirm", "--user", "alice"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains('▀') && run.stdout.contains('█'),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(URI), "{}", run.stdout);
    assert!(
        run.stdout.contains("twofold enroll confirm --user alice"),
        "{}",
        run.stdout
    );
    let no_qr = d.run(&["enroll", "totp", "--no-confirm", "--no-qr"], "");
    assert_eq!(no_qr.code, 0, "{no_qr:?}");
    assert!(!no_qr.stdout.contains('█'), "{}", no_qr.stdout);
    assert!(no_qr.stdout.contains(URI), "{}", no_qr.stdout);
}

#[test]
fn enroll_totp_confirms_after_a_wrong_code() {
    let d = FakeDaemon::start("enroll-retry", enrolling);
    let run = d.run(
        &["enroll", "totp", "--no-qr"],
        &format!("{WRONG}\n{GOOD}\n"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("Enter a code from your authenticator app: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("twofold: invalid code; try again (2 tries left)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("  abcde-fghij\n  klmno-pqrst\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("shown only once"), "{}", run.stdout);
    assert_no_code_shown(&run, &[WRONG, GOOD]);
    assert_eq!(confirm_codes(&d.requests()), vec![WRONG, GOOD]);
}

#[test]
fn enroll_totp_gives_up_after_three_wrong_codes_with_exit_5() {
    let d = FakeDaemon::start("enroll-giveup", enrolling);
    let run = d.run(
        &["enroll", "totp", "--no-qr"],
        "111111\n222222\n333333\n123456\n",
    );
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("1 try left"), "{}", run.stderr);
    assert!(
        run.stderr.contains("gave up after 3 tries"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("abcde-fghij"), "{}", run.stdout);
    assert_eq!(
        confirm_codes(&d.requests()),
        vec!["111111", "222222", "333333"]
    );
    assert_no_code_shown(&run, &["111111", "222222", "333333"]);
}

#[test]
fn enroll_totp_malformed_code_is_not_sent_and_counts_as_a_try() {
    let d = FakeDaemon::start("enroll-malformed", enrolling);
    let run = d.run(&["enroll", "totp", "--no-qr"], "12a456\n123 456\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("6 to 8 digits"), "{}", run.stderr);
    assert!(!run.stderr.contains("12a456"), "{}", run.stderr);
    assert_eq!(confirm_codes(&d.requests()), vec![GOOD]);
}

#[test]
fn enroll_totp_json_keeps_stdout_for_the_codes() {
    let d = FakeDaemon::start("enroll-json-confirm", enrolling);
    let run = d.run(&["enroll", "totp", "--json"], &format!("{GOOD}\n"));
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v, serde_json::json!(["abcde-fghij", "klmno-pqrst"]));
    assert!(run.stderr.contains(URI), "{}", run.stderr);
}

#[test]
fn enroll_totp_input_ending_drops_the_pending_enrollment() {
    let d = FakeDaemon::start("enroll-eof", enrolling);
    let run = d.run(&["enroll", "totp", "--no-qr"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("twofold: no code entered"),
        "{}",
        run.stderr
    );
    assert!(confirm_codes(&d.requests()).is_empty());
    // Issue 11: nothing is left pending on an error.
    assert!(
        d.requests().iter().any(|r| matches!(
            r,
            Request::EnrollCancel { method, .. } if *method == twofold_proto::Method::TOTP
        )),
        "{:?}",
        d.requests()
    );
}

/// The drawn QR code: the lines after the URI.
fn qr_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("URI: "))
        .skip(1)
        .collect()
}

/// Issue 11: the QR code, key and URI scrolled past an 80x24 terminal
/// before the prompt. Now the key and URI come first and the code sits
/// right above the prompt.
#[test]
fn enroll_totp_shows_the_whole_qr_code_right_above_the_prompt_on_80_by_24() {
    let d = FakeDaemon::start("enroll-fit", enrolling);
    let run = d.run(&["enroll", "totp"], "");
    let qr = qr_lines(&run.stdout);
    assert!(!qr.is_empty(), "{}", run.stdout);
    // The QR code is the last thing shown before the prompt, and it and the
    // prompt fit 24 lines of 80 columns.
    assert!(run.stdout.ends_with(&format!("{}\n", qr[qr.len() - 1])));
    assert!(qr.len() < 24, "{} lines", qr.len());
    assert!(
        run.stdout.contains("or scan the QR code below"),
        "{}",
        run.stdout
    );
    assert!(qr.iter().all(|l| l.chars().count() <= 80));
    assert!(qr.iter().all(|l| l.chars().all(|c| "█▀▄ ".contains(c))));
    let key = run.stdout.find("Key:").unwrap();
    let drawn = run.stdout.find(qr[0]).unwrap();
    assert!(key < drawn, "{}", run.stdout);
}

#[test]
fn enroll_totp_qr_invert_draws_the_negative_for_light_backgrounds() {
    let d = FakeDaemon::start("enroll-invert", enrolling);
    let plain = d.run(&["enroll", "totp", "--no-confirm"], "");
    let inverted = d.run(&["enroll", "totp", "--no-confirm", "--qr-invert"], "");
    let (a, b) = (qr_lines(&plain.stdout), qr_lines(&inverted.stdout));
    // The last line is the hint; the QR code is the square before it.
    let side = a[0].chars().count();
    let flip = |c: char| match c {
        '█' => ' ',
        ' ' => '█',
        '▀' => '▄',
        '▄' => '▀',
        other => other,
    };
    // Every full row of modules flips (not the padding of an odd height).
    for (x, y) in a.iter().zip(&b).take(side / 2) {
        let flipped: String = x.chars().map(flip).collect();
        assert_eq!(&flipped, y);
    }
}

#[test]
fn enroll_confirm_with_a_wrong_code_exits_5_with_the_message() {
    let d = FakeDaemon::start("confirm-wrong", enrolling);
    let run = d.run(&["enroll", "confirm", "--code", WRONG], "");
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(run.stderr, "twofold: invalid code\n");
    assert_no_code_shown(&run, &[WRONG]);
}

#[test]
fn enroll_confirm_reads_the_code_from_stdin_and_prints_a_json_array() {
    let d = FakeDaemon::start("confirm-stdin", enrolling);
    let run = d.run(
        &["enroll", "confirm", "--json", "--user", "alice"],
        &format!("{GOOD}\n"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v, serde_json::json!(["abcde-fghij", "klmno-pqrst"]));
    assert_eq!(
        d.requests(),
        vec![Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: Secret::from(GOOD)
        }]
    );
}

#[test]
fn enroll_confirm_malformed_code_is_a_usage_error_and_not_sent() {
    let d = FakeDaemon::start("confirm-malformed", enrolling);
    let run = d.run(&["enroll", "confirm", "--code", "12345x"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("12345x"), "{}", run.stderr);
    assert!(d.requests().is_empty());
}

#[test]
fn socket_comes_from_the_named_config() {
    let d = FakeDaemon::start("via-config", |_| Response::Status(alice()));
    let cfg = d.dir.0.join("twofold.toml");
    std::fs::write(
        &cfg,
        format!("[daemon]\nsocket = {:?}\n", d.socket.to_str().unwrap()),
    )
    .unwrap();
    let run = twofold(&["--config", cfg.to_str().unwrap(), "status"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
}

#[test]
fn regenerate_self_service_sends_the_code_from_stdin() {
    let d = FakeDaemon::start("regen", |_| backup_codes());
    let run = d.run(&["backup-codes", "regenerate"], &format!("{GOOD}\n"));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("  abcde-fghij\n"), "{}", run.stdout);
    assert!(run.stdout.contains("shown only once"), "{}", run.stdout);
    assert!(
        run.stdout.contains("previous backup codes no longer work"),
        "{}",
        run.stdout
    );
    assert_no_code_shown(&run, &[GOOD]);
    assert_eq!(
        d.requests(),
        vec![Request::RegenerateBackupCodes {
            user: None,
            code: Some(Secret::from(GOOD))
        }]
    );
}

#[test]
fn regenerate_with_a_malformed_code_is_a_usage_error_and_not_sent() {
    let d = FakeDaemon::start("regen-malformed", |_| backup_codes());
    let run = d.run(&["backup-codes", "regenerate", "--code", "abcde-fghij"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("6 to 8 digits"), "{}", run.stderr);
    assert_no_code_shown(&run, &["abcde-fghij"]);
    assert!(d.requests().is_empty());
}

#[test]
fn regenerate_without_any_code_is_a_usage_error() {
    let d = FakeDaemon::start("regen-nocode", |_| backup_codes());
    let run = d.run(&["backup-codes", "regenerate", "--json"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no code given"), "{}", run.stderr);
    assert!(d.requests().is_empty());
}

#[test]
fn admin_remove_for_another_user_sends_no_code() {
    let d = FakeDaemon::start("remove-admin", |_| Response::Done {
        message: "TOTP removed for bob".into(),
    });
    let run = d.run(
        &["remove", "totp", "--user", "no-such-user-twofold-test"],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "TOTP removed for bob\n");
    assert_eq!(
        d.requests(),
        vec![Request::RemoveTotp {
            user: Some("no-such-user-twofold-test".into()),
            code: None
        }]
    );
}

#[test]
fn remove_not_found_exits_6() {
    let d = FakeDaemon::start("remove-missing", |_| {
        failed(ErrorKind::NotFound, "no TOTP enrolled")
    });
    let run = d.run(&["remove", "totp", "--code", GOOD], "");
    assert_eq!(run.code, 6, "{run:?}");
    assert_eq!(run.stderr, "twofold: no TOTP enrolled\n");
}

#[test]
fn admin_list_text_and_json() {
    let d = FakeDaemon::start("list", |_| Response::Users {
        users: vec![alice()],
    });
    let run = d.run(&["admin", "list"], "");
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("USER"), "{}", run.stdout);
    assert!(lines[1].starts_with("alice"), "{}", run.stdout);
    assert!(lines[1].contains("2023-11-14 22:13:20"), "{}", run.stdout);
    let run = d.run(&["admin", "list", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v[0]["user"], "alice");
    assert_eq!(v[0]["backup_codes_left"], 7);
}

#[test]
fn admin_disable_prints_what_was_done() {
    let d = FakeDaemon::start("disable", |_| Response::Done {
        message: "all factors of bob removed".into(),
    });
    let run = d.run(&["admin", "disable", "--user", "bob"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "all factors of bob removed\n");
    assert_eq!(
        d.requests(),
        vec![Request::AdminDisable { user: "bob".into() }]
    );
}
