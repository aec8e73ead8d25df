//! The real OpenSSH server and client with a texted code: sshd on
//! 127.0.0.1 in a private mount namespace (`UsePAM yes`,
//! keyboard-interactive after the key) with pam_twofold.so, the real `ssh`
//! client under `expect` typing `sms` at the prompt and then the code the
//! local HTTP endpoint (Twilio's format) received. Needs root; the host's
//! /etc is never touched (asserted).

use std::time::Duration;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::http::HttpRecorder;
use twofold_tests::mailtest::{
    assert_no_code_leaked, enroll_phone, sms_code, ssh_keyword_script, twilio_at,
};
use twofold_tests::sshd::{Sshd, SSHD};
use twofold_tests::system::{run_bounded, HostFiles, System};
use twofold_tests::{module_line, require_programs, require_root};

#[test]
fn ssh_sms_typed_at_the_prompt_then_the_texted_code_logs_in() {
    require_root();
    require_programs(&["unshare", SSHD, "ssh", "ssh-keygen", "expect"]);
    let host = HostFiles::snapshot();
    let dir = twofold_tests::daemon::open_tempdir();
    let recorded = dir.path().join("requests.jsonl");
    let rec = HttpRecorder::start_logging(&recorded);
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| twilio_at(c, &p, &rec));
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "correct horse 7").unwrap();
    d.enroll("tfuser");
    let enroll_code = enroll_phone(&d, &rec, "tfuser");

    let socket = format!("socket={}", d.socket().display());
    let stack = [
        module_line("required", &[&socket, "timeout=10"]),
        "auth required pam_permit.so".into(),
        "account required pam_unix.so".into(),
        "session required pam_permit.so".into(),
        "password required pam_deny.so".into(),
    ];
    sys.pam_service("sshd", &stack).unwrap();
    let sshd = Sshd::start(&sys, &user, "publickey,keyboard-interactive").unwrap();

    // `sms` at the first prompt; at the second, the code of the second
    // request (the first was the enrollment's), read when it is asked.
    let getter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("http/sms_code.py");
    let script = ssh_keyword_script("sms", &getter, &recorded);
    let file = dir.path().join("sms.exp");
    std::fs::write(&file, script).unwrap();
    let mut cmd = std::process::Command::new("expect");
    cmd.arg(&file)
        .args(sshd.ssh_argv("tfuser", "echo REMOTE-$((40+2)); id -un"));
    let run = run_bounded(&mut cmd, "", Duration::from_secs(60)).unwrap();
    assert!(
        run.ok(),
        "ssh failed ({:?}):\n{}\n--- sshd ---\n{}",
        run.code(),
        run.text,
        sshd.log()
    );
    assert!(run.text.contains("REMOTE-42"), "{}", run.text);
    assert!(
        run.text
            .contains("(tfuser@127.0.0.1) Verification code (or \"sms\" to get one sent):"),
        "{}",
        run.text
    );
    assert!(
        run.text
            .contains("Code sent to +1•••••••0100 (valid 10 minutes)."),
        "{}",
        run.text
    );
    let login_code = sms_code(&rec, 2);
    let rows = d.sqlite3("SELECT service, method FROM audit WHERE event = 'login_success';");
    assert!(rows.contains("sshd|sms"), "{rows}");
    assert_no_code_leaked(&d, &[enroll_code, login_code], &[run.text, sshd.log()]);
    host.assert_unchanged();
}
