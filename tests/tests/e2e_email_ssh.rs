//! The real OpenSSH server and client with a mailed code: sshd on
//! 127.0.0.1 in a private mount namespace (`UsePAM yes`,
//! keyboard-interactive after the key) with pam_twofold.so, the real `ssh`
//! client under `expect` typing `email` at the prompt and then the code the
//! real SMTP server (aiosmtpd) received. Needs root; the host's /etc is
//! never touched (asserted).

use std::time::Duration;
use twofold_config::SmtpTls;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::mailtest::{
    assert_no_code_leaked, enroll_address, point_at, ssh_keyword_script,
};
use twofold_tests::smtp::{Mode, SmtpServer};
use twofold_tests::sshd::{Sshd, SSHD};
use twofold_tests::system::{run_bounded, HostFiles, System};
use twofold_tests::{module_line, require_programs, require_root};

#[test]
fn ssh_email_typed_at_the_prompt_then_the_mailed_code_logs_in() {
    require_root();
    require_programs(&["unshare", SSHD, "ssh", "ssh-keygen", "expect"]);
    let host = HostFiles::snapshot();
    let dir = twofold_tests::daemon::open_tempdir();
    let relay = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| point_at(c, &relay, SmtpTls::Plain));
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "correct horse 7").unwrap();
    d.enroll("tfuser");
    let enroll_code = enroll_address(&d, &relay, "tfuser", "tfuser@example.org", 1);

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

    // `email` at the first prompt; at the second, the code of the second
    // code mail (the first was the enrollment's), read when it is asked.
    let recorded = dir.path().join(format!("smtp-{}.jsonl", relay.port));
    let getter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/last_code.py");
    let script = ssh_keyword_script("email", &getter, &recorded);
    let file = dir.path().join("email.exp");
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
            .contains("(tfuser@127.0.0.1) Verification code (or \"email\" to get one sent):"),
        "{}",
        run.text
    );
    assert!(
        run.text
            .contains("Code sent to t•••@e•••.org (valid 10 minutes)."),
        "{}",
        run.text
    );
    let login_code = relay
        .mails()
        .iter()
        .filter(|m| m.header("Subject").as_deref() == Some("Your verification code"))
        .nth(1)
        .and_then(|m| m.code())
        .expect("the login code");
    let rows = d.sqlite3("SELECT service, method FROM audit WHERE event = 'login_success';");
    assert!(rows.contains("sshd|email"), "{rows}");
    assert_no_code_leaked(&d, &[enroll_code, login_code], &[run.text, sshd.log()]);
    host.assert_unchanged();
}
