//! Helpers of the email suites: a daemon configured for a recorder, a
//! login driven step by step over the protocol, and the check that no code
//! sent ever shows up in a captured stream.

use crate::daemon::TestDaemon;
use crate::smtp::SmtpServer;
use std::time::Duration;
use twofold_config::{Config, SmtpTls};
use twofold_proto::{Client, Request, Response, Secret};

/// The address alice enrolls.
pub const ALICE: &str = "alice@example.org";

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
