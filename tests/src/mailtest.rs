//! Helpers of the email and SMS suites: a daemon configured for a
//! recorder (SMTP, or HTTP in Twilio's format), enrollment of a
//! destination through the requests, a login driven step by step over the
//! protocol, and the check that no code sent ever shows up in a captured
//! stream.

use crate::daemon::{Calls, TestDaemon};
use crate::http::HttpRecorder;
use crate::smtp::SmtpServer;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use twofold_config::{Config, SmsProvider, SmtpTls};
use twofold_proto::{Client, Method, Request, Response, Secret};

/// The address alice enrolls.
pub const ALICE: &str = "alice@example.org";

/// The number alice enrolls, and as it is shown.
pub const PHONE: &str = "+14155550100";
/// [`PHONE`] masked.
pub const PHONE_MASKED: &str = "+1•••••••0100";

/// Points `c`'s `[sms]` at `rec` as a Twilio-compatible API (account
/// `AC42`, its token in a private file in `dir`).
pub fn twilio_at(c: &mut Config, dir: &Path, rec: &HttpRecorder) {
    let token = dir.join("twilio-token");
    std::fs::write(&token, "tok-e2e\n").expect("write the token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    c.sms.provider = SmsProvider::Twilio;
    c.sms.twilio.base_url = rec.base_url();
    c.sms.twilio.account_sid = "AC42".into();
    c.sms.twilio.auth_token_file = Some(token);
    c.sms.twilio.from = Some("+15005550006".into());
}

/// The code in the `n`th (1-based) Twilio request's Body (sent to [`PHONE`]).
pub fn sms_code(rec: &HttpRecorder, n: usize) -> String {
    let r = rec.wait_requests(n, Duration::from_secs(10));
    assert!(r.len() >= n, "request {n} never came: {r:?}");
    let body = r[n - 1].field("Body").expect("a Body");
    assert_eq!(r[n - 1].field("To").as_deref(), Some(PHONE));
    body.split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a code in the body")
        .to_owned()
}

/// Starts `user`'s enrollment of `destination` for `method` as root (an
/// admin acting for them: no code needed).
pub fn start_destination(d: &impl Calls, user: &str, method: Method, destination: &str) {
    let r = d.call(&Request::EnrollStart {
        user: Some(user.into()),
        method,
        algorithm: None,
        digits: None,
        address: Some(destination.into()),
        code: None,
    });
    assert!(matches!(r, Response::Done { .. }), "enroll start: {r:?}");
}

/// Confirms `user`'s pending `method` destination with `code`.
pub fn confirm_destination(d: &impl Calls, user: &str, method: Method, code: &str) {
    let r = d.call(&Request::EnrollConfirm {
        user: Some(user.into()),
        method,
        code: Secret::from(code),
    });
    assert!(
        matches!(r, Response::BackupCodes { .. }),
        "enroll confirm: {r:?}"
    );
}

/// Enrolls `user`'s `address` (as root), reading the code from the
/// `n`th code mail `s` receives; returns that code.
pub fn enroll_address(
    d: &impl Calls,
    s: &SmtpServer,
    user: &str,
    address: &str,
    n: usize,
) -> String {
    start_destination(d, user, Method::EMAIL, address);
    let code = s.nth_code(n).expect("a code in the mail");
    confirm_destination(d, user, Method::EMAIL, &code);
    code
}

/// Enrolls alice's [`PHONE`] (as root), reading the code from the newest
/// request `rec` receives; returns that code.
pub fn enroll_phone(d: &impl Calls, rec: &HttpRecorder, user: &str) -> String {
    let before = rec.requests().len();
    start_destination(d, user, Method::SMS, PHONE);
    let code = sms_code(rec, before + 1);
    confirm_destination(d, user, Method::SMS, &code);
    code
}

/// A plain SMTP recorder (aiosmtpd) on 127.0.0.1, recording into a fresh
/// temporary directory (kept while the pair lives).
pub fn plain_relay() -> (tempfile::TempDir, SmtpServer) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SmtpServer::start(dir.path(), crate::smtp::Mode::Plain, None, None);
    (dir, s)
}

/// A daemon whose `[email]` points at `s` (plain), then edited by `edit`.
pub fn mail_daemon(s: &SmtpServer, edit: impl FnOnce(&mut Config)) -> TestDaemon {
    TestDaemon::start_with(|c| {
        point_at(c, s, SmtpTls::Plain);
        edit(c);
    })
}

/// Points `c`'s `[email]` at `server` over `tls`.
pub fn point_at(c: &mut Config, server: &SmtpServer, tls: SmtpTls) {
    c.email.host = "127.0.0.1".into();
    c.email.port = server.port;
    c.email.tls = tls;
    c.email.from = "twofold@host.example.org".into();
}

/// A login over the protocol, answered one step at a time.
#[derive(Debug)]
pub struct Steps {
    client: Client,
    /// Every response so far.
    pub seen: Vec<Response>,
}

impl Steps {
    /// Begins a login of `user` (service `sudo`, as root) and runs to its
    /// first prompt or its end.
    pub fn begin(d: &TestDaemon, user: &str) -> Steps {
        let mut client =
            Client::connect(d.socket(), Duration::from_secs(30), "mailtest").expect("connect");
        let resp = client
            .call(&Request::Begin {
                user: user.into(),
                service: "sudo".into(),
                rhost: None,
                tty: Some("pts/0".into()),
                ruser: Some("root".into()),
                ssh_auth_info: None,
            })
            .expect("begin");
        let mut s = Steps {
            client,
            seen: Vec::new(),
        };
        s.run(resp);
        s
    }

    fn run(&mut self, mut resp: Response) {
        loop {
            self.seen.push(resp.clone());
            match resp {
                Response::Info { .. } | Response::Error { .. } => {
                    resp = self.client.call(&Request::Ack).expect("ack");
                }
                _ => return,
            }
        }
    }

    /// Answers the prompt and runs to the next prompt or the end; returns
    /// the responses this step brought.
    pub fn answer(&mut self, text: &str) -> Vec<Response> {
        let from = self.seen.len();
        let resp = self
            .client
            .call(&Request::Answer {
                text: Secret::from(text),
            })
            .expect("answer");
        self.run(resp);
        self.seen[from..].to_vec()
    }

    /// The last response.
    pub fn last(&self) -> &Response {
        self.seen.last().expect("a response")
    }

    /// The texts of the `Info` and `Error` lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|r| match r {
                Response::Info { text } | Response::Error { text } => Some(text.clone()),
                Response::Denied {
                    message: Some(m), ..
                } => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Panics if any code of `codes` appears in the daemon's log, its syslog
/// lines, its audit rows, or any of `more` (transcripts, CLI output).
pub fn assert_no_code_leaked(d: &TestDaemon, codes: &[String], more: &[String]) {
    let audit = d.sqlite3("SELECT * FROM audit;");
    let streams = [
        ("daemon log", d.log_text()),
        ("syslog", d.syslog.lines().join("\n")),
        ("audit rows", audit),
        ("other output", more.join("\n")),
    ];
    assert!(!codes.is_empty(), "no code was collected to look for");
    for code in codes {
        for (name, text) in &streams {
            assert!(!holds(text, code), "a sent code appears in the {name}");
        }
    }
}

/// Whether `text` holds `code` as a number of its own (not inside a longer
/// run of digits such as a timestamp).
pub fn holds(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// A Tcl double-quoted word of `s`.
pub fn tcl(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if "\\\"$[]{}".contains(c) {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// What an `expect` dialog types at one prompt.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// This text.
    Text(&'a str),
    /// The `n`th (1-based) code that `getter` (a Python script taking
    /// `recorded`, `n` and a timeout) prints, read when the prompt comes.
    Fetched {
        /// `tests/smtp/last_code.py` or `tests/http/sms_code.py`.
        getter: &'a Path,
        /// The recorder's log.
        recorded: &'a Path,
        /// Which code.
        n: usize,
    },
    /// A wrong code of the same length: `000000`, or `111111` when the
    /// fetched code is `000000`.
    WrongFor {
        /// As in [`Answer::Fetched`].
        getter: &'a Path,
        /// As in [`Answer::Fetched`].
        recorded: &'a Path,
        /// As in [`Answer::Fetched`].
        n: usize,
    },
}

/// An `expect` script (the program's argv follows the script's name) that
/// waits for each pattern in turn (exact text) and types its answer. Exits
/// with the program's status (124: a prompt never came; 125: the program
/// ended early; 127: no code came to the recorder).
pub fn dialog_script(steps: &[(&str, Answer)]) -> String {
    let mut s = String::from("set timeout 20\nlog_user 1\nspawn -noecho {*}$argv\n");
    for (pattern, answer) in steps {
        let fetch = |getter: &Path, recorded: &Path, n: usize| {
            format!(
                "if {{[catch {{exec {} {} {} {n} 15}} code]}} {{ puts \"\\nEXPECT: no code\"; exit 127 }}; ",
                tcl(crate::smtp::PYTHON),
                tcl(&getter.display().to_string()),
                tcl(&recorded.display().to_string()),
            )
        };
        let act = match answer {
            Answer::Text(t) => format!("send -- {}; send -- \"\\r\"", tcl(t)),
            Answer::Fetched {
                getter,
                recorded,
                n,
            } => format!("{}send -- \"$code\\r\"", fetch(getter, recorded, *n)),
            Answer::WrongFor {
                getter,
                recorded,
                n,
            } => format!(
                "{}if {{$code eq \"000000\"}} {{ send -- \"111111\\r\" }} else {{ send -- \"000000\\r\" }}",
                fetch(getter, recorded, *n)
            ),
        };
        s.push_str(&format!(
            "expect {{\n -exact {} {{ {act} }}\n timeout {{ exit 124 }}\n eof {{ exit 125 }}\n}}\n",
            tcl(pattern)
        ));
    }
    s.push_str(
        "expect {\n eof {}\n timeout { exit 124 }\n}\n\
         set r [wait]\nif {[lindex $r 2] != 0} { exit 126 }\nexit [lindex $r 3]\n",
    );
    s
}

/// Runs `argv` under [`dialog_script`]`(steps)` (the script written into
/// `dir`), for at most a minute.
pub fn run_dialog(dir: &Path, argv: &[String], steps: &[(&str, Answer)]) -> crate::system::Run {
    let file = dir.join("dialog.exp");
    std::fs::write(&file, dialog_script(steps)).expect("write the expect script");
    let mut cmd = std::process::Command::new("expect");
    cmd.arg(&file).args(argv);
    crate::system::run_bounded(&mut cmd, "", Duration::from_secs(60)).expect("run expect")
}

/// An `expect` script for `ssh` (its argv follows the script's name) that
/// types `keyword` at the first prompt ending in `to get one sent): ` and,
/// at the second, the code that `getter` (a Python script taking
/// `recorded`, the 1-based index 2 and a timeout) prints: the second code
/// the recorder got, the first being the enrollment's. Exits with ssh's
/// status (124: a prompt never came; 125: ssh ended early).
pub fn ssh_keyword_script(keyword: &str, getter: &Path, recorded: &Path) -> String {
    let ask = "to get one sent): ";
    dialog_script(&[
        (ask, Answer::Text(keyword)),
        (
            ask,
            Answer::Fetched {
                getter,
                recorded,
                n: 2,
            },
        ),
    ])
}
