//! Single-prompt mode's three-line stack through the real libpam
//! (pam_start_confdir) against a scripted fake daemon, with `pam_exec.so`
//! checking the password it is handed, so no account files are needed:
//!
//! ```text
//! auth requisite pam_twofold.so single_prompt=ask
//! auth requisite pam_exec.so expose_authtok quiet CHECK   (the password line)
//! auth required  pam_twofold.so single_prompt=verify
//! ```
//!
//! pam_exec returns PAM_SYSTEM_ERR when the check refuses the password.
//! The pamtester runs with the real `pam_unix.so` are `e2e_single_prompt.rs`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use twofold_tests::fake_daemon::{FakeDaemon, Script};
use twofold_tests::pam::*;
use twofold_tests::{module_line, PamConfig};

const SINGLE: &str = "Password & verification code: ";
const PASSWORD: &str = "pass word";
const SERVICE: &str = "tf-single";

twofold_tests::capture_pam_syslog!();

/// A PAM config dir holding the password check and `lines` as `SERVICE`,
/// where `PASSWORD_LINE` stands for the password module's line.
struct Stack {
    pam: PamConfig,
}

const PASSWORD_LINE: &str = "<password line>";

impl Stack {
    fn new(service: &str, lines: &[String]) -> Stack {
        let pam = PamConfig::new().unwrap();
        // pam_exec writes PAM_AUTHTOK and a NUL to the check's stdin.
        let check = pam.dir().join("check-password");
        std::fs::write(
            &check,
            format!("#!/bin/sh\npw=$(tr -d '\\000')\n[ \"$pw\" = '{PASSWORD}' ]\n"),
        )
        .unwrap();
        std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
        let password_line = format!(
            "auth requisite pam_exec.so expose_authtok quiet {}",
            check.display()
        );
        let lines: Vec<&str> = lines
            .iter()
            .map(|l| {
                if l == PASSWORD_LINE {
                    password_line.as_str()
                } else {
                    l.as_str()
                }
            })
            .collect();
        pam.service(service, &lines).unwrap();
        Stack { pam }
    }

    /// The recommended stack against `daemon`.
    fn three_lines(daemon: &FakeDaemon) -> Stack {
        let socket = format!("socket={}", daemon.socket().display());
        Stack::new(
            SERVICE,
            &[
                module_line("requisite", &[&socket, "single_prompt=ask"]),
                PASSWORD_LINE.into(),
                module_line("required", &[&socket, "single_prompt=verify"]),
            ],
        )
    }

    fn login(&self, service: &str) -> PamLogin {
        PamLogin::new(self.pam.dir(), service, "alice").unwrap()
    }
}

/// Whether the fake daemon was connected to at all within a short wait.
fn contacted(daemon: &FakeDaemon) -> bool {
    daemon.next_session(Duration::from_millis(300)).is_some()
}

#[test]
fn one_answer_is_split_the_password_checked_and_the_code_sent() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let stack = Stack::three_lines(&daemon);
    let (code, t) = stack
        .login(SERVICE)
        .authenticate(Conversation::new().answer(&format!("{PASSWORD}123456")))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), [SINGLE]);
    assert_eq!(daemon.session().answers(), ["123456"]);
}

/// Issue 10 (7): with the password line `requisite`, a wrong password ends
/// the stack before twofoldd hears of the login: no code spent, no failure
/// counted, nothing to lock anyone out with.
#[test]
fn regression_single_prompt_a_wrong_password_never_reaches_the_daemon() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let stack = Stack::three_lines(&daemon);
    for answer in ["wrong123456", "pass word 123456", "123456", ""] {
        let (code, t) = stack
            .login(SERVICE)
            .authenticate(Conversation::new().answer(answer))
            .unwrap();
        assert_eq!(code, PAM_SYSTEM_ERR, "{answer:?}: {t:?}");
        assert_eq!(t.prompts(), [SINGLE], "{answer:?}");
    }
    assert!(!contacted(&daemon), "the daemon heard of a wrong password");
}

/// sshd calls pam_authenticate again on the same handle after a failure,
/// and PAM data outlives a call: the code typed at a failed attempt must
/// never answer for the next one.
#[test]
fn regression_a_code_typed_at_a_failed_attempt_never_answers_the_next() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let stack = Stack::three_lines(&daemon);
    let conv = Conversation::new()
        .answer("wrong111111")
        .answer(PASSWORD)
        .answer("222222");
    let mut session = stack.login(SERVICE).start(conv).unwrap();
    assert_eq!(session.authenticate(), PAM_SYSTEM_ERR);
    assert!(!contacted(&daemon));
    assert_eq!(session.authenticate(), PAM_SUCCESS);
    assert_eq!(session.transcript().prompts(), [SINGLE, SINGLE, "Code: "]);
    assert_eq!(daemon.session().answers(), ["222222"]);
}

/// Issue 10 (7): the old one-line form let twofold check the code before
/// the password. It is refused, not read as either new part, and the log
/// line tells the admin the stack to write.
#[test]
fn regression_bare_single_prompt_is_refused_naming_the_new_stack() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let service = "tf-single-old";
    let stack = Stack::new(
        service,
        &[
            module_line("requisite", &[&socket, "single_prompt"]),
            "auth required pam_permit.so".into(),
        ],
    );
    let (code, t) = stack
        .login(service)
        .authenticate(Conversation::new().answer(&format!("{PASSWORD}123456")))
        .unwrap();
    assert_eq!(code, PAM_SERVICE_ERR);
    assert!(t.messages.is_empty(), "{t:?}");
    assert!(!contacted(&daemon));
    let lines = logged(service);
    let refused = lines
        .iter()
        .find(|(pri, l)| {
            *pri == libc::LOG_AUTHPRIV | libc::LOG_ERR && l.contains("refusing to run")
        })
        .unwrap_or_else(|| panic!("no refusal logged: {lines:?}"));
    for needed in [
        "single_prompt without a value is no longer accepted",
        "auth requisite pam_twofold.so single_prompt=ask",
        "auth requisite pam_unix.so use_first_pass",
        "auth required pam_twofold.so single_prompt=verify",
    ] {
        assert!(refused.1.contains(needed), "{refused:?}");
    }
}

/// An `ask` line with no `verify` line after it cannot stop the login (it
/// returns PAM_IGNORE), but at pam_end the untaken code shows it, and the
/// admin is told at LOG_ERR. A complete stack logs nothing of the kind.
#[test]
fn a_stack_without_the_verify_line_is_logged_at_pam_end() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let service = "tf-single-half";
    let half = Stack::new(
        service,
        &[
            module_line("requisite", &[&socket, "single_prompt=ask"]),
            PASSWORD_LINE.into(),
        ],
    );
    let (code, _) = half
        .login(service)
        .authenticate(Conversation::new().answer(PASSWORD))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS);
    let warned = |service: &str| {
        logged(service).iter().any(|(pri, l)| {
            *pri == libc::LOG_AUTHPRIV | libc::LOG_ERR
                && l.contains("no single_prompt=verify line ran")
        })
    };
    assert!(warned(service), "{:?}", logged(service));
    // A wrong password at the half stack: the transaction failed, so
    // nothing got in and nothing is said.
    let service = "tf-single-half-2";
    let half = Stack::new(
        service,
        &[
            module_line("requisite", &[&socket, "single_prompt=ask"]),
            PASSWORD_LINE.into(),
        ],
    );
    let (code, _) = half
        .login(service)
        .authenticate(Conversation::new().answer("wrong"))
        .unwrap();
    assert_eq!(code, PAM_SYSTEM_ERR);
    assert!(!warned(service), "{:?}", logged(service));
    // The full stack, same answer: no warning.
    let service = "tf-single-full";
    let full = Stack::new(
        service,
        &[
            module_line("requisite", &[&socket, "single_prompt=ask"]),
            PASSWORD_LINE.into(),
            module_line("required", &[&socket, "single_prompt=verify"]),
        ],
    );
    let (code, _) = full
        .login(service)
        .authenticate(Conversation::new().answer(PASSWORD).answer("123456"))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS);
    assert!(!warned(service), "{:?}", logged(service));
}

/// What is typed at the combined question never reaches a log line, with
/// debug on for every line there is.
#[test]
fn debug_never_logs_the_password_or_the_code() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let service = "tf-single-debug";
    let stack = Stack::new(
        service,
        &[
            module_line("requisite", &[&socket, "single_prompt=ask", "debug"]),
            PASSWORD_LINE.into(),
            module_line("required", &[&socket, "single_prompt=verify", "debug"]),
        ],
    );
    let (code, _) = stack
        .login(service)
        .authenticate(Conversation::new().answer(&format!("{PASSWORD}918273")))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS);
    let lines = logged(service);
    assert!(lines.iter().any(|(_, l)| l.contains("single_prompt=ask")));
    assert!(lines
        .iter()
        .any(|(_, l)| l.contains("answering with the code typed")));
    for (_, l) in &lines {
        assert!(!l.contains("918273") && !l.contains(PASSWORD), "{l}");
    }
}
