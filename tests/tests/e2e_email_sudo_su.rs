//! Mailed and texted codes through the real `sudo` and `su` on a terminal
//! (`expect`), each run by a test user who exists only inside a private
//! mount namespace: `email` typed at sudo's prompt (PAM_SILENT: the "sent"
//! line is part of the next prompt), the code read from the mail the real
//! SMTP server (aiosmtpd) received, a wrong one first; `sms` typed at su's
//! prompt with the code from the Twilio-format recorder; a sudo policy that
//! leaves email out. Every captured stream is searched for every code
//! sent. Needs root; the host's /etc is never touched (asserted).

use std::path::{Path, PathBuf};
use twofold_config::{Config, Method as CfgMethod, SmtpTls};
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::http::HttpRecorder;
use twofold_tests::mailtest::{
    assert_no_code_leaked, enroll_address, enroll_phone, point_at, run_dialog, sms_code, twilio_at,
    Answer, ALICE, PHONE_MASKED,
};
use twofold_tests::smtp::{Mode, SmtpServer};
use twofold_tests::system::{HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

/// The end of the prompt that names a keyword.
const ASK: &str = "to get one sent): ";
/// The line a mailed code's send shows (alice's address, masked).
const MAIL_SENT: &str = "Code sent to a•••@e•••.org (valid 10 minutes).";

/// A daemon whose email goes to a plain SMTP recorder, with `tfuser` (a
/// sudoer) holding TOTP and the address [`ALICE`] (its code being mail 1).
struct Mailed {
    dir: tempfile::TempDir,
    relay: SmtpServer,
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
    host: HostFiles,
}

fn mailed(edit: impl FnOnce(&mut Config)) -> Mailed {
    require_root();
    require_programs(&["unshare", "setpriv", "sudo", "expect"]);
    let host = HostFiles::snapshot();
    let dir = twofold_tests::daemon::open_tempdir();
    let relay = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let d = TestDaemon::start_with(|c| {
        point_at(c, &relay, SmtpTls::Plain);
        c.login.max_tries = 3;
        edit(c);
    });
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "s3cret pw").unwrap();
    sys.sudoers("tfuser ALL=(ALL:ALL) ALL").unwrap();
    let socket = format!("socket={}", d.socket().display());
    sys.pam_service(
        "sudo",
        &[
            "auth [success=1 default=ignore] pam_unix.so nullok".into(),
            "auth requisite pam_deny.so".into(),
            "auth required pam_permit.so".into(),
            module_line("required", &[&socket, "timeout=10"]),
            "account required pam_unix.so".into(),
            "session required pam_permit.so".into(),
        ],
    )
    .unwrap();
    let enrolled = d.enroll("tfuser");
    enroll_address(&d, &relay, "tfuser", ALICE, 1);
    Mailed {
        dir,
        relay,
        d,
        sys,
        user,
        enrolled,
        host,
    }
}

impl Mailed {
    /// The recorder's log, which `tests/smtp/last_code.py` reads.
    fn recorded(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("smtp-{}.jsonl", self.relay.port))
    }

    /// `sudo -k sh -c 'echo SUDO-OK; id -u'` as tfuser on a terminal,
    /// answering `steps` after the password.
    fn sudo(&self, steps: &[(&str, Answer)]) -> Run {
        let (uid, gid) = (self.user.uid.to_string(), self.user.gid.to_string());
        let argv = self.sys.argv(&[
            "setpriv",
            "--reuid",
            &uid,
            "--regid",
            &gid,
            "--init-groups",
            "sudo",
            "-k",
            "sh",
            "-c",
            "echo SUDO-OK; id -u",
        ]);
        let mut all = vec![(
            "[sudo] password for tfuser: ",
            Answer::Text(&self.user.password),
        )];
        all.extend_from_slice(steps);
        run_dialog(self.dir.path(), &argv, &all)
    }

    /// Every code mailed so far (the enrollment's included).
    fn codes(&self) -> Vec<String> {
        self.relay
            .code_mails()
            .iter()
            .filter_map(|m| m.code())
            .collect()
    }

    fn audit(&self, sql_where: &str) -> String {
        self.d.sqlite3(&format!(
            "SELECT event, method, detail FROM audit WHERE {sql_where};"
        ))
    }
}

fn getter(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn assert_ran_as_root(run: &Run) {
    assert!(run.ok(), "sudo failed ({:?}):\n{}", run.code(), run.text);
    assert!(run.text.contains("SUDO-OK\r\n0\r\n"), "{:?}", run.text);
}

#[test]
fn sudo_email_typed_at_the_prompt_then_the_mailed_code_runs_as_root() {
    let s = mailed(|_| {});
    let (get, rec) = (getter("smtp/last_code.py"), s.recorded());
    let mail = Answer::Fetched {
        getter: &get,
        recorded: &rec,
        n: 2,
    };
    let run = s.sudo(&[(ASK, Answer::Text("email")), (ASK, mail)]);
    assert_ran_as_root(&run);
    // PAM_SILENT: nothing is shown outside a prompt, so the "sent" line
    // reaches the terminal as the first line of the next prompt's text.
    let prompt = "Verification code (or \"email\" to get one sent): ";
    assert!(
        run.text.contains(&format!("{MAIL_SENT}\r\n{prompt}")),
        "{:?}",
        run.text
    );
    assert_eq!(run.text.matches(prompt).count(), 2, "{:?}", run.text);
    assert_eq!(run.text.matches(MAIL_SENT).count(), 1, "{:?}", run.text);
    let rows = s.audit("event IN ('code_sent', 'login_success', 'login_failure')");
    assert!(rows.contains("login_success|email"), "{rows}");
    assert!(!rows.contains("login_failure"), "{rows}");
    let codes = s.codes();
    assert_eq!(codes.len(), 2, "the enrollment's and the login's");
    assert_no_code_leaked(&s.d, &codes, &[run.text]);
    s.host.assert_unchanged();
}

#[test]
fn sudo_a_wrong_mailed_code_says_why_then_the_right_one_runs_as_root() {
    let s = mailed(|_| {});
    let (get, rec) = (getter("smtp/last_code.py"), s.recorded());
    let (getter, recorded) = (get.as_path(), rec.as_path());
    let run = s.sudo(&[
        (ASK, Answer::Text("email")),
        (
            ASK,
            Answer::WrongFor {
                getter,
                recorded,
                n: 2,
            },
        ),
        (
            ASK,
            Answer::Fetched {
                getter,
                recorded,
                n: 2,
            },
        ),
    ]);
    assert_ran_as_root(&run);
    assert_eq!(
        run.text.matches("Invalid verification code.").count(),
        1,
        "{:?}",
        run.text
    );
    // One password: sudo did not start its round again after the miss.
    assert_eq!(run.text.matches("[sudo] password for").count(), 1);
    let rows = s.audit("event IN ('login_success', 'login_failure')");
    assert_eq!(rows.matches("login_failure").count(), 1, "{rows}");
    assert!(rows.contains("login_success|email"), "{rows}");
    let codes = s.codes();
    assert_eq!(codes.len(), 2, "one login code, asked once");
    assert_no_code_leaked(&s.d, &codes, &[run.text]);
    s.host.assert_unchanged();
}

/// `[[policy.service]] services = ["sudo"] methods = ["totp", "backup_code"]`:
/// sudo's prompt does not offer email, and `email` typed there is an answer
/// like any other — a wrong code, counted and audited as `not_a_code`,
/// nothing sent — after which the TOTP code still works.
#[test]
fn sudo_under_a_policy_that_leaves_email_out_takes_email_as_a_wrong_code() {
    let s = mailed(|c| {
        c.policy.service.push(twofold_config::policy::ServiceRule {
            services: vec!["sudo".into()],
            methods: Some(vec![CfgMethod::TOTP, CfgMethod::BACKUP_CODE]),
            unenrolled: None,
        })
    });
    let totp = s.d.code(&s.enrolled.secret, 0);
    let prompt = "Verification code: ";
    let run = s.sudo(&[
        (prompt, Answer::Text("email")),
        (prompt, Answer::Text(&totp)),
    ]);
    assert_ran_as_root(&run);
    assert!(!run.text.contains("email"), "{:?}", run.text);
    assert!(!run.text.contains(ASK), "{:?}", run.text);
    assert!(!run.text.contains("Code sent"), "{:?}", run.text);
    assert_eq!(
        run.text.matches("Invalid verification code.").count(),
        1,
        "{:?}",
        run.text
    );
    let rows = s.audit("event IN ('login_failure', 'login_success', 'code_sent')");
    assert!(rows.contains("reason=not_a_code"), "{rows}");
    assert!(rows.contains("login_success|totp"), "{rows}");
    assert_eq!(
        rows.matches("code_sent").count(),
        1,
        "the enrollment's only: {rows}"
    );
    let codes = s.codes();
    assert_eq!(codes.len(), 1, "no mail for the login");
    assert_no_code_leaked(&s.d, &codes, &[run.text]);
    s.host.assert_unchanged();
}

#[test]
fn su_sms_typed_at_the_prompt_then_the_texted_code_switches_user() {
    require_root();
    require_programs(&["unshare", "setpriv", "su", "expect"]);
    let host = HostFiles::snapshot();
    let dir = twofold_tests::daemon::open_tempdir();
    let recorded = dir.path().join("requests.jsonl");
    let rec = HttpRecorder::start_logging(&recorded);
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        c.login.max_tries = 3;
    });
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "su pass 9").unwrap();
    let socket = format!("socket={}", d.socket().display());
    sys.pam_service(
        "su",
        &[
            "auth requisite pam_unix.so nodelay".into(),
            module_line("required", &[&socket, "timeout=10"]),
            "account required pam_unix.so".into(),
            "session required pam_permit.so".into(),
        ],
    )
    .unwrap();
    d.enroll("tfuser");
    let enroll_code = enroll_phone(&d, &rec, "tfuser");

    // `nobody` runs `su tfuser -c …`: the password, `sms`, then the code
    // of the second request (the first was the enrollment's).
    let argv = sys.argv(&[
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "su",
        "tfuser",
        "-c",
        "echo SU-$((40+2)); id -un",
    ]);
    let get = getter("http/sms_code.py");
    let run = run_dialog(
        dir.path(),
        &argv,
        &[
            ("Password:", Answer::Text(&user.password)),
            (ASK, Answer::Text("sms")),
            (
                ASK,
                Answer::Fetched {
                    getter: &get,
                    recorded: &recorded,
                    n: 2,
                },
            ),
        ],
    );
    assert!(run.ok(), "su failed ({:?}):\n{}", run.code(), run.text);
    assert!(run.text.contains("SU-42\r\ntfuser"), "{:?}", run.text);
    assert!(
        run.text
            .contains("Verification code (or \"sms\" to get one sent): "),
        "{:?}",
        run.text
    );
    let sent = format!("Code sent to {PHONE_MASKED} (valid 10 minutes).");
    assert_eq!(run.text.matches(&sent).count(), 1, "{:?}", run.text);
    let rows = d.sqlite3("SELECT service, method FROM audit WHERE event = 'login_success';");
    assert!(rows.contains("su|sms"), "{rows}");
    let login_code = sms_code(&rec, 2);
    assert_eq!(rec.requests().len(), 2, "one text for the login");
    assert_no_code_leaked(&d, &[enroll_code, login_code], &[run.text]);
    host.assert_unchanged();
}
