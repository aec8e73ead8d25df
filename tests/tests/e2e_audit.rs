//! The audit trail end to end: rows written by real logins through libpam,
//! the same fields on a syslog socket, tampering with the stock `sqlite3`
//! caught by `twofold audit verify`, retention, the `twofold audit` and
//! `twofold stats` commands.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twofold_proto::{Request, Response, Secret};
use twofold_tests::daemon::{bin_path, config_in, open_tempdir, SyslogSink, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;
use twofold_tests::{require_root, PamConfig};

fn login(pam: &PamConfig, user: &str, codes: &[&str]) -> PamCode {
    let conv = answers(codes);
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .rhost("198.51.100.7")
        .tty("pts/3")
        .authenticate(conv)
        .unwrap()
        .0
}

/// A daemon with some history: enrollment, a failure, a success, a backup
/// code, regenerated codes, a lockout, an unlock and a removal.
fn busy() -> (TestDaemon, Vec<String>) {
    let d = TestDaemon::start_with(|c| c.rate_limit.source_failures = 3);
    let alice = d.enroll("alice");
    let pam = d.pam();
    let right = d.code(&alice.secret, 0);
    // A wrong code that cannot turn up by chance in a timestamp.
    let w = if right == "472913" {
        "472914"
    } else {
        "472913"
    };
    assert_eq!(login(&pam, "alice", &[w, &right]), PAM_SUCCESS);
    assert_eq!(login(&pam, "alice", &[&alice.backup_codes[0]]), PAM_SUCCESS);
    d.clock.advance(30);
    let r = d.call(&Request::RegenerateBackupCodes {
        user: Some("alice".into()),
        code: Some(Secret::from(d.code(&alice.secret, 0).as_str())),
    });
    let regenerated: Vec<String> = match r {
        Response::BackupCodes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(login(&pam, "alice", &[w, w, w]), PAM_AUTH_ERR);
    assert!(matches!(
        d.call(&Request::AdminUnlock {
            user: "alice".into()
        }),
        Response::Done { .. }
    ));
    let bob = d.enroll("bob");
    assert!(matches!(
        d.call(&Request::AdminDisable { user: "bob".into() }),
        Response::Done { .. }
    ));
    let mut secrets = vec![
        alice.secret.clone(),
        bob.secret.clone(),
        right,
        w.to_owned(),
    ];
    secrets.extend(alice.backup_codes);
    secrets.extend(bob.backup_codes);
    secrets.extend(regenerated);
    (d, secrets)
}

#[test]
fn each_event_is_one_row_and_one_syslog_line_with_the_same_fields_and_no_secret() {
    let (d, secrets) = busy();
    let rows =
        d.sqlite3("SELECT id, event, user, service, rhost, tty, method FROM audit ORDER BY id");
    let events: Vec<&str> = rows.lines().map(|l| l.split('|').nth(1).unwrap()).collect();
    for e in [
        "config_loaded",
        "enroll",
        "login_failure",
        "login_success",
        "backup_code_used",
        "codes_regenerated",
        "lockout",
        "unlock",
        "admin",
        "factor_removed",
    ] {
        assert!(events.contains(&e), "{e} missing from:\n{rows}");
    }
    assert!(
        rows.contains("|login_success|alice|tf|198.51.100.7|pts/3|totp"),
        "{rows}"
    );
    assert!(
        rows.contains("|login_success|alice|tf|198.51.100.7|pts/3|backup_code"),
        "{rows}"
    );
    // One syslog line per row, same fields, facility authpriv.
    let lines = d.syslog.lines();
    assert_eq!(lines.len(), rows.lines().count(), "{lines:#?}\n{rows}");
    for (line, row) in lines.iter().zip(rows.lines()) {
        let f: Vec<&str> = row.split('|').collect();
        assert!(line.starts_with("<8"), "authpriv is facility 10: {line}");
        let want = format!("audit id={} event={} user=", f[0], f[1]);
        assert!(line.contains(&want), "{line} vs {row}");
    }
    let success = lines
        .iter()
        .find(|l| l.contains("event=login_success") && l.contains("method=totp"))
        .unwrap();
    assert!(
        success.contains(
            "user=alice service=tf rhost=198.51.100.7 tty=pts/3 method=totp actor=root(0)"
        ),
        "{success}"
    );
    let dump = d.sqlite3(
        "SELECT id, at, event, user, service, rhost, tty, method, actor, detail FROM audit",
    );
    for s in &secrets {
        assert!(!dump.contains(s.as_str()), "the table leaks {s:?}");
        assert!(
            !lines.iter().any(|l| l.contains(s.as_str())),
            "syslog leaks {s:?}"
        );
    }
}

fn verify(d: &TestDaemon) -> (i32, String, String) {
    let out = d.twofold(&["audit", "verify"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_intact_trail_verifies_and_plain_edits_are_refused() {
    let (d, _) = busy();
    let (code, out, err) = verify(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("audit chain intact: "), "{out}");
    // The table refuses changes unless its triggers are dropped first.
    let out = Command::new("sqlite3")
        .arg(d.database())
        .arg("UPDATE audit SET user = 'mallory' WHERE id = 2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("append-only"));
    let out = Command::new("sqlite3")
        .arg(d.database())
        .arg("DELETE FROM audit WHERE id = 2")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn an_edited_row_is_named() {
    let (d, _) = busy();
    d.sqlite3("DROP TRIGGER audit_append_only; UPDATE audit SET user = 'mallory' WHERE id = 5;");
    let (code, out, err) = verify(&d);
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(
        err,
        "twofold: audit chain broken at row 5: row 5 does not match its hash: it was edited\n"
    );
}

#[test]
fn a_deleted_row_is_named() {
    let (d, _) = busy();
    d.sqlite3("DROP TRIGGER audit_prune_only; DELETE FROM audit WHERE id = 7;");
    let (code, _, err) = verify(&d);
    assert_eq!(code, 8);
    assert!(
        err.starts_with("twofold: audit chain broken at row 7: row 7 is missing (deleted)"),
        "{err}"
    );
    // Deleting the newest rows (truncation) is caught by the head record.
    let (d, _) = busy();
    let last: u64 = d
        .sqlite3("SELECT MAX(id) FROM audit")
        .trim()
        .parse()
        .unwrap();
    d.sqlite3(&format!(
        "DROP TRIGGER audit_prune_only; DELETE FROM audit WHERE id >= {};",
        last - 1
    ));
    let (code, _, err) = verify(&d);
    assert_eq!(code, 8);
    assert!(err.contains(&format!("row {}", last - 1)), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn reordered_rows_are_named() {
    let (d, _) = busy();
    d.sqlite3(
        "DROP TRIGGER audit_append_only;
         UPDATE audit SET id = -1 WHERE id = 4;
         UPDATE audit SET id = 4 WHERE id = 5;
         UPDATE audit SET id = 5 WHERE id = -1;",
    );
    let (code, _, err) = verify(&d);
    assert_eq!(code, 8);
    assert!(
        err.starts_with("twofold: audit chain broken at row 4: row 4 does not follow row 3"),
        "{err}"
    );
}

#[test]
fn retention_prunes_old_rows_and_what_remains_still_verifies() {
    let d = TestDaemon::start_with(|c| c.audit.retain = twofold_config::Seconds(2 * 3600));
    let alice = d.enroll("alice");
    let pam = d.pam();
    assert_eq!(
        login(&pam, "alice", &[&d.code(&alice.secret, 0)]),
        PAM_SUCCESS
    );
    let before: u64 = d
        .sqlite3("SELECT COUNT(*) FROM audit")
        .trim()
        .parse()
        .unwrap();
    d.clock.advance(3 * 3600);
    assert_eq!(
        login(&pam, "alice", &[&d.code(&alice.secret, 0)]),
        PAM_SUCCESS
    );
    // Retention runs on the daemon's own thread (never inside a login),
    // within a tick of being due.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rows = loop {
        let rows = d.sqlite3("SELECT id, event FROM audit ORDER BY id");
        if rows.contains("|audit_pruned") || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(rows.contains("|audit_pruned"), "{rows}");
    let first: u64 = rows
        .lines()
        .next()
        .unwrap()
        .split('|')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > before, "the {before} old rows went: {rows}");
    let (code, out, err) = verify(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("rows up to {before} pruned")),
        "{out}"
    );
}

fn cli(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    let out = d.twofold(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn audit_command_filters_by_user_event_service_and_time() {
    let (d, _) = busy();
    let (code, out, err) = cli(
        &d,
        &[
            "audit",
            "--user",
            "alice",
            "--event",
            "login_failure",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows
        .iter()
        .all(|r| r["user"] == "alice" && r["event"] == "login_failure"));
    let (_, out, _) = cli(&d, &["audit", "--service", "tf"]);
    assert!(out.lines().all(|l| l.contains("service=tf")), "{out}");
    assert!(out.contains("login_success"), "{out}");
    // Times are the daemon's: the busy history is "now"; 2 minutes ago and
    // before it there is only the enrollment.
    let (_, out, _) = cli(&d, &["audit", "--since", "1m", "--event", "unlock"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (_, out, err) = cli(&d, &["audit", "--until", "@1", "--json"]);
    assert!(out.is_empty(), "{out}");
    assert!(err.is_empty(), "{err}");
    let (code, _, err) = cli(&d, &["audit", "--since", "yesterday"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn audit_follow_prints_new_rows_as_they_come() {
    let d = TestDaemon::start();
    let alice = d.enroll("alice");
    let pam = d.pam();
    let mut child = Command::new(bin_path("twofold"))
        .arg("--socket")
        .arg(d.socket())
        .args(["audit", "--follow", "--event", "login_success"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    assert_eq!(
        login(&pam, "alice", &[&d.code(&alice.secret, 0)]),
        PAM_SUCCESS
    );
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line within 10 s");
    assert!(
        line.contains("login_success") && line.contains("user=alice"),
        "{line}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_user_reads_only_their_own_rows_and_stats_are_admin_only() {
    require_root();
    use std::os::unix::process::CommandExt;
    let (d, _) = busy();
    let as_nobody = |args: &[&str]| {
        let out = Command::new(bin_path("twofold"))
            .arg("--socket")
            .arg(d.socket())
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = as_nobody(&["audit", "--json"]);
    assert_eq!(code, 0);
    assert!(out.is_empty(), "nobody has no rows: {out}");
    assert_eq!(as_nobody(&["audit", "--user", "alice"]).0, 4);
    assert_eq!(as_nobody(&["audit", "verify"]).0, 4);
    assert_eq!(as_nobody(&["stats"]).0, 4);
    assert_eq!(as_nobody(&["admin", "locks"]).0, 4);
    assert_eq!(as_nobody(&["admin", "unlock", "--user", "alice"]).0, 4);
    assert_eq!(
        as_nobody(&["admin", "grace", "--user", "alice", "--reset"]).0,
        4
    );
}

#[test]
fn stats_count_enrollment_logins_lockouts_and_low_backup_codes() {
    let d = TestDaemon::start_with(|c| {
        c.rate_limit.source_failures = 3;
        c.policy.unenrolled = twofold_config::Unenrolled::Enroll;
    });
    let alice = d.enroll("alice");
    let pam = d.pam();
    for b in &alice.backup_codes[..8] {
        assert_eq!(login(&pam, "alice", &[b]), PAM_SUCCESS);
    }
    let w = wrong_code(&d.code(&alice.secret, 0));
    assert_eq!(login(&pam, "alice", &[w, w, w]), PAM_AUTH_ERR);
    // mail is seen unenrolled (and skips enrollment): a grace deadline is stored.
    assert_eq!(login(&pam, "mail", &[""]), PAM_PERM_DENIED);
    let (code, out, err) = cli(&d, &["stats", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["enrolled"]["totp"], 1);
    assert_eq!(v["enrolled"]["backup_code"], 1);
    assert_eq!(v["last_24h"]["logins_ok"], 8);
    assert_eq!(v["last_24h"]["codes_rejected"], 3);
    assert_eq!(v["last_24h"]["lockouts"], 1);
    assert_eq!(v["required_unenrolled"][0]["user"], "mail");
    assert_eq!(
        v["required_unenrolled"][0]["deadline"],
        d.now() + 7 * 86_400
    );
    assert_eq!(v["low_backup_codes"][0]["user"], "alice");
    assert_eq!(v["low_backup_codes"][0]["left"], 2);
    let (_, prom, _) = cli(&d, &["stats", "--prometheus"]);
    assert!(
        prom.contains("twofold_users_enrolled{method=\"totp\"} 1\n"),
        "{prom}"
    );
    assert!(prom.contains("twofold_lockouts_24h 1\n"), "{prom}");
    let (_, text, _) = cli(&d, &["stats"]);
    assert!(text.contains("8 logins ok"), "{text}");
    // A day later the login figures are back to zero.
    d.clock.advance(86_401);
    let (_, out, _) = cli(&d, &["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["last_24h"]["logins_ok"], 0);
}

#[test]
fn a_refused_configuration_is_reported_on_syslog_and_names_the_line() {
    let dir = open_tempdir();
    let sink = SyslogSink::bind(&dir.path().join("log.sock"));
    let good = config_in(dir.path());
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        format!(
            "[daemon]\nsocket = {:?}\n[audit]\nsyslog_socket = {:?}\n[policy]\nmethods = [\"totp\", \"carrier-pigeon\"]\n",
            good.daemon.socket, sink.path
        ),
    )
    .unwrap();
    let out = Command::new(bin_path("twofoldd"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:6:", file.display())), "{err}");
    assert!(err.contains("carrier-pigeon"), "{err}");
    let lines = sink.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("event=config_rejected"), "{}", lines[0]);
    assert!(lines[0].contains("bad.toml:6:"), "{}", lines[0]);
}
