use super::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;
use twofold_proto::{ErrorKind, FrameError};

/// A daemon that plays queued results and records what it was sent.
#[derive(Default)]
struct Scripted {
    replies: VecDeque<Result<Response, ClientError>>,
    sent: Vec<Request>,
    /// The protocol version it chose.
    proto: u32,
}

impl Scripted {
    fn new(replies: Vec<Response>) -> Self {
        Scripted {
            replies: replies.into_iter().map(Ok).collect(),
            sent: Vec::new(),
            proto: twofold_proto::PROTO_VERSION,
        }
    }
}

impl Scripted {
    fn answers(&self) -> Vec<&str> {
        self.sent
            .iter()
            .filter_map(|r| match r {
                Request::Answer { text } => Some(text.expose()),
                _ => None,
            })
            .collect()
    }
}

impl Daemon for Scripted {
    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.sent.push(req.clone());
        Ok(())
    }

    fn recv(&mut self) -> Result<Response, ClientError> {
        self.replies
            .pop_front()
            .unwrap_or(Err(ClientError::Frame(FrameError::Closed)))
    }

    fn proto(&self) -> u32 {
        self.proto
    }
}

/// A conversation with queued answers that records what it was shown.
#[derive(Default)]
struct Person {
    answers: VecDeque<Result<Secret, ConvError>>,
    refuse_notices: bool,
    /// Refuses everything, as the module's does once memory ran out.
    closed: bool,
    seen: Vec<String>,
}

impl Conversation for Person {
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError> {
        self.seen.push(format!("prompt(echo={echo}): {text}"));
        if self.closed {
            return Err(ConvError("closed"));
        }
        self.answers
            .pop_front()
            .unwrap_or(Err(ConvError("no answer queued")))
    }

    fn show(&mut self, kind: Notice, text: &str) -> Result<(), ConvError> {
        self.seen.push(format!("{kind:?}: {text}"));
        if self.refuse_notices || self.closed {
            Err(ConvError("refused"))
        } else {
            Ok(())
        }
    }

    fn closed(&self) -> bool {
        self.closed
    }
}

#[derive(Default)]
struct Lines(RefCell<Vec<(Level, String)>>);

impl Log for Lines {
    fn log(&self, level: Level, msg: &str) {
        self.0.borrow_mut().push((level, msg.to_owned()));
    }
}

impl Lines {
    fn all(&self) -> String {
        self.0
            .borrow()
            .iter()
            .map(|(l, m)| format!("{l:?} {m}\n"))
            .collect()
    }
}

fn items() -> LoginItems {
    LoginItems {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.7".into()),
        tty: None,
        ruser: None,
        ssh_auth_info: None,
    }
}

fn run(daemon: &mut Scripted, person: &mut Person, opts: &Options) -> (Outcome, Lines) {
    let log = Lines::default();
    let out = relay(
        opts,
        false,
        &items_for("login"),
        daemon,
        person,
        Typed::default(),
        &log,
    );
    (out, log)
}

/// Relays with PAM_SILENT set, default options and [`items`].
fn run_silent(daemon: &mut Scripted, person: &mut Person) -> Outcome {
    relay(
        &Options::default(),
        true,
        &items(),
        daemon,
        person,
        Typed::default(),
        &Lines::default(),
    )
}

fn items_for(service: &str) -> LoginItems {
    LoginItems {
        service: service.into(),
        ..items()
    }
}

fn prompt(text: &str) -> Response {
    Response::Prompt {
        text: text.into(),
        echo: false,
    }
}

#[test]
fn begin_carries_the_login_items() {
    let mut d = Scripted::new(vec![Response::Success]);
    let (out, _) = run(&mut d, &mut Person::default(), &Options::default());
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        d.sent,
        vec![Request::Begin {
            user: "alice".into(),
            service: "login".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            ruser: None,
            ssh_auth_info: None,
        }]
    );
}

#[test]
fn final_answers_map_to_outcomes() {
    let cases = [
        (Response::Success, Outcome::Success, 0),
        (denied(None), Outcome::Denied, 7),
        (Response::Ignore, Outcome::Ignore, 25),
        (Response::Unavailable, Outcome::Unavailable, 9),
    ];
    for (resp, want, code) in cases {
        let mut d = Scripted::new(vec![resp]);
        let (out, _) = run(&mut d, &mut Person::default(), &Options::default());
        assert_eq!(out, want);
        assert_eq!(out.pam_code(), code);
    }
}

#[test]
fn prompt_answer_reaches_the_daemon() {
    let mut d = Scripted::new(vec![prompt("Code: "), Response::Success]);
    let mut p = Person::default();
    p.answers.push_back(Ok(Secret::from("123456")));
    let (out, log) = run(&mut d, &mut p, &Options::default());
    assert_eq!(out, Outcome::Success);
    assert_eq!(p.seen, vec!["prompt(echo=false): Code: "]);
    assert_eq!(
        d.sent[1],
        Request::Answer {
            text: Secret::from("123456")
        }
    );
    assert!(!log.all().contains("123456"));
}

#[test]
fn notices_are_shown_and_acknowledged() {
    let mut d = Scripted::new(vec![
        Response::Info { text: "i".into() },
        Response::Error { text: "e".into() },
        Response::Wait { text: "w".into() },
        Response::Success,
    ]);
    let mut p = Person::default();
    let (out, _) = run(&mut d, &mut p, &Options::default());
    assert_eq!(out, Outcome::Success);
    assert_eq!(p.seen, vec!["Info: i", "Error: e", "Info: w"]);
    assert_eq!(&d.sent[1..], &[Request::Ack, Request::Ack, Request::Ack]);
}

#[test]
fn refused_notices_do_not_stop_the_login() {
    let mut d = Scripted::new(vec![Response::Info { text: "i".into() }, Response::Success]);
    let mut p = Person {
        refuse_notices: true,
        ..Person::default()
    };
    let (out, _) = run(&mut d, &mut p, &Options::default());
    assert_eq!(out, Outcome::Success);
    assert_eq!(d.sent[1], Request::Ack);
}

/// PAM_SILENT (sudo): nothing is shown on its own; the lines ride inside
/// the next prompt, so the person still learns why they are asked again.
#[test]
fn silent_carries_notices_inside_the_next_prompt() {
    let mut d = Scripted::new(vec![
        Response::Info { text: "i".into() },
        Response::Error {
            text: "Invalid verification code.".into(),
        },
        prompt("Verification code: "),
        Response::Wait { text: "w".into() },
        Response::Success,
    ]);
    let mut p = Person::default();
    p.answers.push_back(Ok(Secret::from("1")));
    let out = run_silent(&mut d, &mut p);
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        vec![
            "prompt(echo=false): i\nInvalid verification code.\nVerification code: ",
            "Info: w",
        ]
    );
    assert_eq!(d.sent.len(), 5, "{:?}", d.sent);
}

/// A wait is shown at once (the person must act), with the lines held
/// before it; lines left after a success are not shown under PAM_SILENT.
#[test]
fn silent_shows_no_line_after_a_success() {
    let mut d = Scripted::new(vec![
        prompt("Verification code: "),
        Response::Info {
            text: "2 backup codes left.".into(),
        },
        Response::Success,
    ]);
    let mut p = Person::default();
    p.answers.push_back(Ok(Secret::from("1")));
    let out = run_silent(&mut d, &mut p);
    assert_eq!(out, Outcome::Success);
    assert_eq!(p.seen, vec!["prompt(echo=false): Verification code: "]);
}

#[test]
fn conversation_failure_on_a_prompt_is_conv_err() {
    let mut d = Scripted::new(vec![prompt("Code: "), Response::Success]);
    let (out, _) = run(&mut d, &mut Person::default(), &Options::default());
    assert_eq!(out, Outcome::ConvError);
    assert_eq!(out.pam_code(), 19);
    // No answer was invented and sent.
    assert_eq!(d.sent.len(), 1);
}

#[test]
fn unexpected_responses_fail_closed_and_are_logged() {
    for resp in [
        Response::Welcome { proto: 1 },
        Response::Done {
            message: "ok".into(),
        },
        Response::Failed {
            kind: ErrorKind::Internal,
            message: "boom".into(),
        },
        Response::Unsupported {
            request: "begin".into(),
        },
    ] {
        let mut d = Scripted::new(vec![resp.clone(), Response::Success]);
        let (out, log) = run(&mut d, &mut Person::default(), &Options::default());
        assert!(matches!(out, Outcome::Failed(_)), "{resp:?}: {out:?}");
        assert_eq!(out.pam_code(), 7);
        assert!(log.all().starts_with("Error "), "{}", log.all());
    }
}

fn denied(message: Option<&str>) -> Response {
    Response::Denied {
        reason: "x".into(),
        message: message.map(str::to_owned),
    }
}

/// Protocol 2: the last lines come inside `Denied`, shown as error lines
/// in order, with nothing sent back (no `Ack` round trip).
#[test]
fn lines_inside_denied_are_shown_as_errors_without_an_ack() {
    let mut d = Scripted::new(vec![
        prompt("Code: "),
        denied(Some("Invalid verification code.\nTry again in 15 minutes.")),
    ]);
    let mut p = Person::default();
    p.answers.push_back(Ok(Secret::from("1")));
    let (out, _) = run(&mut d, &mut p, &Options::default());
    assert_eq!(out, Outcome::Denied);
    assert_eq!(
        p.seen,
        vec![
            "prompt(echo=false): Code: ",
            "Error: Invalid verification code.",
            "Error: Try again in 15 minutes."
        ]
    );
    assert_eq!(d.sent.len(), 2, "begin and the answer only: {:?}", d.sent);
}

/// Under PAM_SILENT the reason a login was refused is still shown, once,
/// as its last line: sudo prints it, then stops (see `denied_code`).
#[test]
fn silent_shows_the_reason_of_a_denial_once() {
    let mut d = Scripted::new(vec![
        prompt("Verification code: "),
        denied(Some(
            "Invalid verification code.\nToo many failed attempts; try again in 15 minutes.",
        )),
    ]);
    let mut p = Person::default();
    p.answers.push_back(Ok(Secret::from("1")));
    let out = run_silent(&mut d, &mut p);
    assert_eq!(out, Outcome::Denied);
    assert_eq!(
        p.seen,
        vec![
            "prompt(echo=false): Verification code: ",
            "Error: Invalid verification code.\nToo many failed attempts; try again in 15 minutes."
        ]
    );
}

/// An answer that is PAM_AUTHTOK (a locker that answers every question
/// with the password) is never sent: the daemon is told
/// `PasswordAnswer`. Any other answer is sent as typed; an empty
/// PAM_AUTHTOK recognises nothing; a protocol-2 daemon gets the answer.
#[test]
fn the_password_typed_at_a_code_prompt_is_never_sent() {
    let relay_with = |answer: &str, password: Option<&str>, proto: u32| {
        let mut d = Scripted::new(vec![prompt("Verification code: "), Response::Success]);
        d.proto = proto;
        let mut p = Person::default();
        p.answers.push_back(Ok(Secret::from(answer)));
        let typed = Typed {
            code: None,
            password: password.map(Secret::from),
        };
        let log = Lines::default();
        relay(
            &Options::default(),
            false,
            &items(),
            &mut d,
            &mut p,
            typed,
            &log,
        );
        (d.sent.pop().unwrap(), log.all())
    };
    let (sent, log) = relay_with("hunter2", Some("hunter2"), 3);
    assert_eq!(sent, Request::PasswordAnswer);
    assert!(!log.contains("hunter2"), "{log}");
    for (answer, password) in [
        ("123456", Some("hunter2")),
        ("hunter2", None),
        ("", Some("")),
    ] {
        let (sent, _) = relay_with(answer, password, 3);
        assert_eq!(
            sent,
            Request::Answer {
                text: answer.into()
            },
            "{answer:?}"
        );
    }
    let (sent, _) = relay_with("hunter2", Some("hunter2"), 2);
    assert_eq!(
        sent,
        Request::Answer {
            text: "hunter2".into()
        }
    );
}

/// A refused login returns PAM_AUTH_ERR, except under sudo, which asks
/// the password again after PAM_AUTH_ERR (and PAM_MAXTRIES) but stops
/// after PAM_CRED_INSUFFICIENT; `denied_code=` overrides.
#[test]
fn a_refused_login_returns_the_code_its_application_stops_on() {
    let log = Lines::default();
    let with = |args: &[&str], service: &str| {
        let opts = Options::parse(args.iter().copied()).unwrap();
        Outcome::Denied.pam_code_for(&opts, &items_for(service), &log)
    };
    assert_eq!(with(&[], "sshd"), crate::ffi::PAM_AUTH_ERR);
    assert_eq!(with(&[], "su"), crate::ffi::PAM_AUTH_ERR);
    assert_eq!(with(&[], "sudo"), crate::ffi::PAM_CRED_INSUFFICIENT);
    assert_eq!(with(&[], "sudo-i"), crate::ffi::PAM_CRED_INSUFFICIENT);
    assert_eq!(
        with(&["denied_code=auth_err"], "sudo"),
        crate::ffi::PAM_AUTH_ERR
    );
    assert_eq!(
        with(&["denied_code=maxtries"], "login"),
        crate::ffi::PAM_MAXTRIES
    );
    assert_eq!(
        with(&["denied_code=cred_insufficient"], "sshd"),
        crate::ffi::PAM_CRED_INSUFFICIENT
    );
    assert!(Options::parse(["denied_code=final"]).is_err());
    // Other outcomes keep their codes under sudo.
    let opts = Options::default();
    assert_eq!(
        Outcome::Failed("x".into()).pam_code_for(&opts, &items_for("sudo"), &log),
        crate::ffi::PAM_AUTH_ERR
    );
}

#[test]
fn a_denied_line_with_nul_fails_closed() {
    let mut d = Scripted::new(vec![denied(Some("a\0b"))]);
    let mut p = Person::default();
    let (out, log) = run(&mut d, &mut p, &Options::default());
    assert!(matches!(out, Outcome::Failed(_)), "{out:?}");
    assert!(p.seen.is_empty(), "{:?}", p.seen);
    assert!(log.all().contains("NUL"), "{}", log.all());
}

#[test]
fn text_with_nul_fails_closed() {
    let mut d = Scripted::new(vec![
        Response::Info {
            text: "a\0b".into(),
        },
        Response::Success,
    ]);
    let (out, log) = run(&mut d, &mut Person::default(), &Options::default());
    assert!(matches!(out, Outcome::Failed(_)), "{out:?}");
    assert!(log.all().contains("NUL"), "{}", log.all());
}

#[test]
fn sixty_four_messages_is_the_limit() {
    let info = Response::Info { text: "i".into() };
    let mut ok = vec![info.clone(); MAX_MESSAGES - 1];
    ok.push(Response::Success);
    let mut d = Scripted::new(ok);
    assert_eq!(
        run(&mut d, &mut Person::default(), &Options::default()).0,
        Outcome::Success
    );

    let mut too_many = vec![info; MAX_MESSAGES];
    too_many.push(Response::Success);
    let mut d = Scripted::new(too_many);
    let (out, log) = run(&mut d, &mut Person::default(), &Options::default());
    assert!(matches!(out, Outcome::Failed(_)), "{out:?}");
    assert!(log.all().contains("more than 64"), "{}", log.all());
}

#[test]
fn link_errors_map_silence_to_unavailable_and_garbage_to_failure() {
    let cases: Vec<(ClientError, Outcome)> = vec![
        (
            ClientError::Timeout(Duration::from_secs(1)),
            Outcome::Unreachable,
        ),
        (
            ClientError::Frame(FrameError::Truncated),
            Outcome::Failed(String::new()),
        ),
        (
            ClientError::Frame(FrameError::Closed),
            Outcome::Failed(String::new()),
        ),
        (
            ClientError::Frame(FrameError::TooLarge {
                len: 1 << 20,
                max: 65536,
            }),
            Outcome::Failed(String::new()),
        ),
        (
            ClientError::Frame(FrameError::Malformed("x".into())),
            Outcome::Failed(String::new()),
        ),
    ];
    for (err, want) in cases {
        let shown = err.to_string();
        let mut d = Scripted {
            replies: VecDeque::from([Err(err)]),
            sent: Vec::new(),
            ..Scripted::default()
        };
        let (out, log) = run(&mut d, &mut Person::default(), &Options::default());
        match want {
            Outcome::Failed(_) => assert!(matches!(out, Outcome::Failed(_)), "{shown}: {out:?}"),
            w => assert_eq!(out, w, "{shown}"),
        }
        assert!(!log.all().is_empty(), "{shown}: nothing logged");
    }
}

#[test]
fn debug_lines_only_with_debug_and_never_the_answer() {
    let script = || Scripted::new(vec![prompt("Code: "), Response::Success]);
    let person = || {
        let mut p = Person::default();
        p.answers.push_back(Ok(Secret::from("424242")));
        p
    };
    let (_, quiet) = run(&mut script(), &mut person(), &Options::default());
    assert_eq!(quiet.all(), "");
    let opts = Options {
        debug: true,
        ..Options::default()
    };
    let (_, loud) = run(&mut script(), &mut person(), &opts);
    let text = loud.all();
    assert!(text.contains("begin login: user=\"alice\""), "{text}");
    assert!(text.contains("daemon sent prompt"), "{text}");
    assert!(!text.contains("424242"), "{text}");
}

#[test]
fn client_name_carries_the_version() {
    assert_eq!(
        CLIENT_NAME,
        format!("pam_twofold/{}", env!("CARGO_PKG_VERSION"))
    );
}

/// Inline messages, fail modes and single-prompt mode.
#[path = "login_modes_tests.rs"]
mod modes;
