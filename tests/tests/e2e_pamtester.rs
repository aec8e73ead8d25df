//! The stock `pamtester` logs in through pam_twofold.so. pamtester reads
//! /etc/pam.d, so it runs in a private mount namespace (`unshare -m`) where a
//! temp directory is bind-mounted over /etc/pam.d: the host's PAM
//! configuration is never touched. Needs root.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::{require_programs, require_root};

/// Runs `pamtester -v SERVICE USER authenticate` with `confdir` as /etc/pam.d,
/// feeding `input` to its conversation on stdin.
fn pamtester(confdir: &Path, service: &str, user: &str, input: &str) -> Output {
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .args([
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/pam.d && exec pamtester -v "$2" "$3" authenticate"#,
            "sh",
        ])
        .arg(confdir)
        .args([service, user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare/pamtester (scripts/deps installs them)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn pamtester_logs_in_with_a_code_and_is_refused_a_replay() {
    require_root();
    require_programs(&["unshare", "pamtester"]);
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    let alice = d.enroll("alice");
    let pam = d.pam();
    let code = d.code(&alice.secret, 0);

    let ok = pamtester(pam.dir(), "tf", "alice", &format!("{code}\n"));
    let shown = text(&ok);
    assert!(ok.status.success(), "{shown}");
    assert!(shown.contains("successfully authenticated"), "{shown}");
    assert!(shown.contains("Verification code:"), "{shown}");

    let replay = pamtester(pam.dir(), "tf", "alice", &format!("{code}\n"));
    let shown = text(&replay);
    assert!(!replay.status.success(), "{shown}");
    assert!(shown.contains("Authentication failure"), "{shown}");
    assert!(shown.contains("Invalid verification code."), "{shown}");

    let backup = &alice.backup_codes[0];
    let ok = pamtester(pam.dir(), "tf", "alice", &format!("{backup}\n"));
    assert!(ok.status.success(), "{}", text(&ok));

    // The host's /etc/pam.d was never changed: it has no `tf` service.
    assert!(!Path::new("/etc/pam.d/tf").exists());
}
